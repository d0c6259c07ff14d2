// `possync ctl`: operator commands. Today: `ctl token` (keygen, issue, show, revoke).

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "config.hpp"
#include "ctl_common.hpp"
#include "possync/core/ids.hpp"
#include "possync/core/token.hpp"
#include "possync/node/admin.hpp"
#include "possync/storage/cipher.hpp"

namespace possync::tools {

namespace {

using json = nlohmann::json;

int64_t wall_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

int fail(const std::string& what, int code = exit_failure) {
  return ctl_fail(what, code);
}

result<std::string> read_file(const std::string& path) {
  return read_text_file(path);
}

status write_file(const std::string& path, const std::string& text, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out || !(out << text)) return error(errc::unavailable, "cannot write '" + path + "'");
  }
  ::chmod(path.c_str(), mode);
  return {};
}

/// "30d", "12h", "15m", "90s", "500ms" or plain milliseconds.
result<int64_t> parse_duration_ms(const std::string& text) {
  size_t end = 0;
  long long n = 0;
  try {
    n = std::stoll(text, &end);
  } catch (...) {
    return error(errc::invalid_argument, "'" + text + "' is not a duration (e.g. 30d, 12h, 15m, 90s)");
  }
  const std::string unit = text.substr(end);
  int64_t mult = 0;
  if (unit.empty() || unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "m") mult = 60'000;
  else if (unit == "h") mult = 3'600'000;
  else if (unit == "d") mult = 86'400'000;
  if (mult == 0 || n <= 0) return error(errc::invalid_argument, "'" + text + "' is not a positive duration (30d, 12h, 15m, 90s)");
  return static_cast<int64_t>(n) * mult;
}

json claims_json(const core::token_claims& c) {
  return json{{"id", c.id},
              {"tenant", c.tenant},
              {"branch", c.branch},
              {"node", core::node_id_to_string(c.node)},
              {"role", c.role == 1 ? "terminal" : c.role == 2 ? "branch" : c.role == 3 ? "hq" : "?"},
              {"issued_ms", c.issued_ms},
              {"expires_ms", c.expires_ms}};
}

struct token_flags {
  std::string key, out, tenant = "demo", branch, node, role = "terminal", ttl = "30d";
  std::string token, id, reason;
  connection_flags conn;  ///< revoke: HQ's Admin service
  bool json_out = false;
};

int keygen(const token_flags& f) {
  if (f.out.empty()) return fail("--out FILE is required", exit_usage);
  if (std::ifstream(f.out)) return fail("'" + f.out + "' exists; not overwriting a signing key", exit_usage);
  auto pem = core::generate_token_key_pem();
  if (!pem) return fail(pem.err().to_string());
  auto signer = core::token_signer::from_pem(*pem);
  if (!signer) return fail(signer.err().to_string());
  auto pub = signer->public_pem();
  if (!pub) return fail(pub.err().to_string());
  if (auto e = write_file(f.out, *pem, 0600)) return fail(e.to_string());
  if (auto e = write_file(f.out + ".pub", *pub, 0644)) return fail(e.to_string());
  std::printf("made %s (HQ's signing key: keep it on HQ) and %s.pub (for HQ and branches: token_key)\n",
              f.out.c_str(), f.out.c_str());
  return exit_ok;
}

int issue(const token_flags& f) {
  if (f.key.empty()) return fail("--key FILE (HQ's token signing key) is required", exit_usage);
  auto pem = read_file(f.key);
  if (!pem) return fail(pem.err().to_string());
  auto signer = core::token_signer::from_pem(*pem);
  if (!signer) return fail(f.key + ": " + signer.err().message, exit_usage);
  auto node = core::parse_node_id(f.node);
  if (!node || *node == 0) return fail("--node must be the device's node id (1-16 hex digits)", exit_usage);
  auto role = parse_role(f.role);
  if (!role) return fail("--role: " + role.err().message, exit_usage);
  if (*role != storage::node_role::hq && f.branch.empty()) return fail("--branch is required for a " + f.role, exit_usage);
  auto ttl = parse_duration_ms(f.ttl);
  if (!ttl) return fail("--ttl: " + ttl.err().message, exit_usage);
  auto id = core::new_token_id();
  if (!id) return fail(id.err().to_string());
  core::token_claims c;
  c.id = *id;
  c.tenant = f.tenant;
  c.branch = *role == storage::node_role::hq ? "" : f.branch;
  c.node = *node;
  c.role = static_cast<uint32_t>(*role);
  c.issued_ms = wall_now_ms();
  c.expires_ms = c.issued_ms + *ttl;
  auto token = signer->sign(c);
  if (!token) return fail(token.err().to_string(), exit_usage);
  if (!f.out.empty())
    if (auto e = write_file(f.out, *token + "\n", 0600)) return fail(e.to_string());
  if (f.json_out) {
    auto j = claims_json(c);
    j["token"] = *token;
    std::printf("%s\n", j.dump().c_str());
  } else if (f.out.empty()) {
    std::printf("%s\n", token->c_str());
  } else {
    std::printf("token %s for node %s (%s, tenant %s, branch %s) written to %s; expires in %s\n", c.id.c_str(),
                core::node_id_to_string(c.node).c_str(), f.role.c_str(), c.tenant.c_str(), c.branch.c_str(),
                f.out.c_str(), f.ttl.c_str());
  }
  return exit_ok;
}

int show(const token_flags& f) {
  std::string token = f.token;
  if (token.rfind("@", 0) == 0) {
    auto t = read_file(token.substr(1));
    if (!t) return fail(t.err().to_string());
    std::istringstream(*t) >> token;
  }
  if (f.key.empty()) return fail("--key (HQ's token public or private key) is required to check the token", exit_usage);
  auto pem = read_file(f.key);
  if (!pem) return fail(pem.err().to_string());
  auto v = core::token_verifier::from_pem(*pem);
  if (!v) return fail(f.key + ": " + v.err().message, exit_usage);
  auto c = v->verify(token, wall_now_ms());
  if (!c) return fail(c.err().to_string());
  std::printf("%s\n", f.json_out ? claims_json(*c).dump().c_str() : claims_json(*c).dump(2).c_str());
  return exit_ok;
}

int revoke(const token_flags& f) {
  if (f.id.empty()) return fail("--id TOKEN_ID is required (from `ctl token issue --json` or `ctl token show`)", exit_usage);
  uint64_t node = 0;
  if (!f.node.empty()) {
    auto n = core::parse_node_id(f.node);
    if (!n) return fail("--node must be 1-16 hex digits", exit_usage);
    node = *n;
  }
  auto c = connect_admin(f.conn);
  if (!c) return fail(c.err().message, exit_usage);
  if (auto e = c->revoke_token(f.id, node, 0, f.reason)) return fail("revoke: " + e.to_string());
  std::printf("%s\n", f.conn.json_out ? json{{"revoked", f.id}}.dump().c_str() : ("revoked token " + f.id).c_str());
  return exit_ok;
}

} // namespace

void add_ctl_command(CLI::App& app, command_fn& run) {
  auto* ctl = app.add_subcommand("ctl", "operator commands: a node's Admin service (status, nodes, log, conflicts, "
                                       "resync, reset, time), device tokens, encryption keys");
  ctl->require_subcommand(1);
  add_ctl_admin_commands(*ctl, run);
  auto key_id = std::make_shared<uint32_t>(1);
  auto* kr = ctl->add_subcommand("keyring", "encryption at rest: `keyring new` prints a new key line");
  kr->require_subcommand(1);
  auto* krn = kr->add_subcommand("new", "print a new random AES-256 key as a keyring line ('<id> <64 hex>')");
  krn->add_option("--id", *key_id, "key id (a rotation uses a new id, first line of the keyring)")
      ->capture_default_str();
  krn->callback([key_id, &run] {
    run = [key_id] {
      if (*key_id == 0) return fail("--id must be 1 or more", exit_usage);
      auto line = storage::value_cipher::new_keyring_line(*key_id);
      if (!line) return fail(line.err().to_string());
      std::printf("%s\n", line->c_str());
      return int{exit_ok};
    };
  });
  auto* tok = ctl->add_subcommand("token", "device tokens: keygen, issue, show, revoke");
  tok->require_subcommand(1);
  auto f = std::make_shared<token_flags>();

  auto* kg = tok->add_subcommand("keygen", "make HQ's Ed25519 token signing key (FILE) and its public key (FILE.pub)");
  kg->add_option("--out", f->out, "signing key file to create")->required();
  kg->callback([f, &run] { run = [f] { return keygen(*f); }; });

  auto* is = tok->add_subcommand("issue", "sign a device token (prints it, or writes --out)");
  is->add_option("--key", f->key, "HQ's token signing key (PEM)")->required();
  is->add_option("--tenant", f->tenant, "tenant")->capture_default_str();
  is->add_option("--branch", f->branch, "branch of the device (not for hq)");
  is->add_option("--node", f->node, "the device's node id (hex)")->required();
  is->add_option("--role", f->role, "terminal, branch or hq")->capture_default_str();
  is->add_option("--ttl", f->ttl, "lifetime: 30d, 12h, 15m, 90s")->capture_default_str();
  is->add_option("--out", f->out, "write the token to this file (mode 0600) instead of stdout");
  is->add_flag("--json", f->json_out, "print the claims and the token as JSON");
  is->callback([f, &run] { run = [f] { return issue(*f); }; });

  auto* sh = tok->add_subcommand("show", "verify a token and print its claims");
  sh->add_option("token", f->token, "the token, or @FILE")->required();
  sh->add_option("--key", f->key, "HQ's token public (or private) key")->required();
  sh->add_flag("--json", f->json_out, "one line of JSON");
  sh->callback([f, &run] { run = [f] { return show(*f); }; });

  auto* rv = tok->add_subcommand("revoke", "revoke a token at HQ: live sessions holding it end");
  rv->add_option("--id", f->id, "the token's id")->required();
  rv->add_option("--node", f->node, "the node it was issued to (recorded)");
  rv->add_option("--reason", f->reason, "why (recorded)");
  add_connection_flags(*rv, f->conn);
  rv->callback([f, &run] { run = [f] { return revoke(*f); }; });
}

} // namespace possync::tools
