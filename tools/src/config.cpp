#include "config.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <set>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include "possync/actors/log.hpp"

#include "possync/core/ids.hpp"

namespace possync::tools {

namespace {

error bad(const std::string& where, const std::string& what) {
  return error(errc::invalid_argument, where + ": " + what);
}

// yaml-cpp throws on a type mismatch; every read goes through these so the message
// names the key.
template <class T> status read_scalar(const YAML::Node& n, const std::string& where, T& out) {
  if (!n.IsScalar()) return bad(where, "expected a single value");
  try {
    out = n.as<T>();
  } catch (const YAML::Exception&) {
    return bad(where, "cannot read '" + n.Scalar() + "' as the expected type");
  }
  return {};
}

status read_node_id(const YAML::Node& n, const std::string& where, core::node_id& out) {
  std::string text;
  if (auto e = read_scalar(n, where, text)) return e;
  if (text.empty()) {
    out = 0;
    return {};
  }
  auto id = core::parse_node_id(text);
  if (!id) return bad(where, "'" + text + "' is not a node id (1-16 hex digits, not 0)");
  out = *id;
  return {};
}

status check_keys(const YAML::Node& map, const std::string& where, const std::set<std::string>& known) {
  for (const auto& kv : map) {
    std::string key = kv.first.Scalar();
    if (!known.count(key)) {
      std::string list;
      for (const auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      return bad(where + key, "unknown key (known: " + list + ")");
    }
  }
  return {};
}

status read_device(const YAML::Node& n, const std::string& where, node::device& d) {
  if (!n.IsMap()) return bad(where, "expected a map {tenant, branch, node_id, role, name}");
  if (auto e = check_keys(n, where + ".", {"tenant", "branch", "node_id", "role", "name", "revoked"}))
    return e;
  if (n["tenant"])
    if (auto e = read_scalar(n["tenant"], where + ".tenant", d.tenant)) return e;
  if (n["branch"])
    if (auto e = read_scalar(n["branch"], where + ".branch", d.branch)) return e;
  if (!n["node_id"]) return bad(where + ".node_id", "required");
  if (auto e = read_node_id(n["node_id"], where + ".node_id", d.node)) return e;
  if (d.node == 0) return bad(where + ".node_id", "required");
  if (n["role"]) {
    std::string r;
    if (auto e = read_scalar(n["role"], where + ".role", r)) return e;
    auto role = parse_role(r);
    if (!role) return bad(where + ".role", role.err().message);
    d.role = *role;
  }
  if (n["name"])
    if (auto e = read_scalar(n["name"], where + ".name", d.name)) return e;
  if (n["revoked"])
    if (auto e = read_scalar(n["revoked"], where + ".revoked", d.revoked)) return e;
  return {};
}

status parse_endpoint(const std::string& text, const std::string& where) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return bad(where, "'" + text + "' is not host:port");
  for (size_t i = colon + 1; i < text.size(); ++i)
    if (text[i] < '0' || text[i] > '9') return bad(where, "'" + text + "' has a port that is not a number");
  return {};
}

} // namespace

role_settings default_settings(storage::node_role role) {
  role_settings s;
  s.node.role = role;
  s.node.dir = std::string("./possync-data/") + storage::to_string(role);
  switch (role) {
  case storage::node_role::hq:
    s.node.listen = "127.0.0.1:7400";
    break;
  case storage::node_role::branch:
    s.node.listen = "127.0.0.1:7401";
    break;
  case storage::node_role::terminal:
    s.node.listen = "";
    break;
  }
  return s;
}

result<storage::node_role> parse_role(const std::string& text) {
  if (text == "terminal" || text == "1") return storage::node_role::terminal;
  if (text == "branch" || text == "2") return storage::node_role::branch;
  if (text == "hq" || text == "3") return storage::node_role::hq;
  return error(errc::invalid_argument, "unknown role '" + text + "' (terminal, branch or hq)");
}

result<node::device> parse_device(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    auto colon = text.find(':', start);
    if (colon == std::string::npos || parts.size() == 4) {
      parts.push_back(text.substr(start));
      break;
    }
    parts.push_back(text.substr(start, colon - start));
    start = colon + 1;
  }
  if (parts.size() < 4)
    return error(errc::invalid_argument,
                 "device '" + text +
                     "' is not tenant:branch:nodehex:role[:name] (branch empty for HQ nodes)");
  node::device d;
  d.tenant = parts[0];
  d.branch = parts[1];
  auto id = core::parse_node_id(parts[2]);
  if (!id) return error(errc::invalid_argument, "device '" + text + "': '" + parts[2] + "' is not a node id");
  d.node = *id;
  auto role = parse_role(parts[3]);
  if (!role) return error(errc::invalid_argument, "device '" + text + "': " + role.err().message);
  d.role = *role;
  if (parts.size() > 4) d.name = parts[4];
  if (d.tenant.empty() || (d.role != storage::node_role::hq && d.branch.empty()))
    return error(errc::invalid_argument, "device '" + text + "' needs a tenant and (unless hq) a branch");
  return d;
}

status setup_logging(const std::string& level, const std::string& format) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    return error(errc::invalid_argument,
                 "log level '" + level + "' is unknown (trace, debug, info, warn, error, off)");
  if (format != "text" && format != "json")
    return error(errc::invalid_argument, "log format '" + format + "' is unknown (text, json)");
  // Console responses own stdout; logs go to stderr.
  auto logger = spdlog::get("possync");
  if (!logger) logger = spdlog::stderr_color_mt("possync");
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
  log::set_format(format == "json" ? log::format::json : log::format::text);
  return {};
}

status load_yaml(const std::string& path, role_settings& s) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return error(errc::invalid_argument, "config file '" + path + "' cannot be read");
  } catch (const YAML::Exception& e) {
    return error(errc::invalid_argument, "config file '" + path + "': " + e.what());
  }
  if (root.IsNull()) return {};
  const std::string f = path + ": ";
  if (!root.IsMap()) return bad(path, "expected a map of settings");
  if (auto e = check_keys(root, f,
                          {"role",
                           "tenant",
                           "branch",
                           "node_id",
                           "dir",
                           "listen",
                           "upstreams",
                           "insecure_dev",
                           "tls",
                           "token_file",
                           "token_key",
                           "encryption_keyring",
                           "http_listen",
                           "log_level",
                           "log_format",
                           "presence_interval_ms",
                           "status_stale_after_ms",
                           "max_sessions",
                           "max_hellos_per_minute",
                           "port_file",
                           "console",
                           "tick_ms",
                           "gzip",
                           "stream_window_bytes",
                           "sale_retention_days",
                           "skip_collections",
                           "recover_on_corruption",
                           "session",
                           "backoff",
                           "devices"}))
    return e;
  auto& c = s.node;
  if (root["role"]) {
    std::string r;
    if (auto e = read_scalar(root["role"], f + "role", r)) return e;
    auto role = parse_role(r);
    if (!role) return bad(f + "role", role.err().message);
    if (*role != c.role)
      return bad(f + "role",
                 std::string("is '") + r + "' but this command runs a " + storage::to_string(c.role));
  }
  if (root["tenant"])
    if (auto e = read_scalar(root["tenant"], f + "tenant", c.tenant)) return e;
  if (root["branch"])
    if (auto e = read_scalar(root["branch"], f + "branch", c.branch)) return e;
  if (root["node_id"])
    if (auto e = read_node_id(root["node_id"], f + "node_id", c.node_id)) return e;
  if (root["dir"])
    if (auto e = read_scalar(root["dir"], f + "dir", c.dir)) return e;
  if (root["listen"])
    if (auto e = read_scalar(root["listen"], f + "listen", c.listen)) return e;
  if (auto u = root["upstreams"]) {
    if (!u.IsSequence()) return bad(f + "upstreams", "expected a list of host:port");
    c.upstreams.clear();
    for (size_t i = 0; i < u.size(); ++i) {
      std::string ep;
      std::string where = f + "upstreams[" + std::to_string(i) + "]";
      if (auto e = read_scalar(u[i], where, ep)) return e;
      if (auto e = parse_endpoint(ep, where)) return e;
      c.upstreams.push_back(ep);
    }
  }
  if (root["insecure_dev"])
    if (auto e = read_scalar(root["insecure_dev"], f + "insecure_dev", s.insecure_dev)) return e;
  if (auto n = root["tls"]) {
    if (!n.IsMap()) return bad(f + "tls", "expected a map of ca, cert, key, server_name");
    if (auto e = check_keys(n, f + "tls.", {"ca", "cert", "key", "server_name"})) return e;
    if (n["ca"])
      if (auto e = read_scalar(n["ca"], f + "tls.ca", s.tls_ca)) return e;
    if (n["cert"])
      if (auto e = read_scalar(n["cert"], f + "tls.cert", s.tls_cert)) return e;
    if (n["key"])
      if (auto e = read_scalar(n["key"], f + "tls.key", s.tls_key)) return e;
    if (n["server_name"])
      if (auto e = read_scalar(n["server_name"], f + "tls.server_name", c.upstream_server_name)) return e;
  }
  if (root["token_file"])
    if (auto e = read_scalar(root["token_file"], f + "token_file", c.token_file)) return e;
  if (root["token_key"])
    if (auto e = read_scalar(root["token_key"], f + "token_key", s.token_key)) return e;
  if (root["http_listen"])
    if (auto e = read_scalar(root["http_listen"], f + "http_listen", c.http_listen)) return e;
  if (root["encryption_keyring"])
    if (auto e = read_scalar(root["encryption_keyring"], f + "encryption_keyring", s.encryption_keyring)) return e;
  if (root["log_level"])
    if (auto e = read_scalar(root["log_level"], f + "log_level", s.log_level)) return e;
  if (root["log_format"])
    if (auto e = read_scalar(root["log_format"], f + "log_format", s.log_format)) return e;
  if (root["presence_interval_ms"])
    if (auto e = read_scalar(root["presence_interval_ms"], f + "presence_interval_ms", c.presence_interval_ms)) return e;
  if (root["status_stale_after_ms"])
    if (auto e = read_scalar(root["status_stale_after_ms"], f + "status_stale_after_ms", c.status_stale_after_ms))
      return e;
  if (root["max_sessions"])
    if (auto e = read_scalar(root["max_sessions"], f + "max_sessions", c.max_sessions)) return e;
  if (root["max_hellos_per_minute"])
    if (auto e = read_scalar(root["max_hellos_per_minute"], f + "max_hellos_per_minute", c.max_hellos_per_minute))
      return e;
  if (root["port_file"])
    if (auto e = read_scalar(root["port_file"], f + "port_file", s.port_file)) return e;
  if (root["console"])
    if (auto e = read_scalar(root["console"], f + "console", s.console)) return e;
  if (root["tick_ms"])
    if (auto e = read_scalar(root["tick_ms"], f + "tick_ms", c.tick_ms)) return e;
  if (root["gzip"])
    if (auto e = read_scalar(root["gzip"], f + "gzip", c.gzip)) return e;
  if (root["stream_window_bytes"]) {
    int64_t w = 0;
    if (auto e = read_scalar(root["stream_window_bytes"], f + "stream_window_bytes", w)) return e;
    // gRPC takes an int; below a few KiB every frame would crawl through the window.
    if (w != 0 && (w < 4096 || w > (int64_t{1} << 30)))
      return bad(f + "stream_window_bytes", "must be 0 (gRPC's automatic sizing) or 4096 to 1073741824");
    c.stream_window_bytes = static_cast<size_t>(w);
  }
  if (root["sale_retention_days"])
    if (auto e = read_scalar(root["sale_retention_days"], f + "sale_retention_days", c.sale_retention_days)) return e;
  if (root["recover_on_corruption"])
    if (auto e = read_scalar(root["recover_on_corruption"], f + "recover_on_corruption", c.recover_on_corruption))
      return e;
  if (auto n = root["skip_collections"]) {
    if (!n.IsSequence()) return bad(f + "skip_collections", "expected a list of collection names");
    c.skip_collections.clear();
    for (size_t i = 0; i < n.size(); ++i) {
      std::string name;
      if (auto e = read_scalar(n[i], f + "skip_collections[" + std::to_string(i) + "]", name)) return e;
      c.skip_collections.push_back(name);
    }
  }
  if (auto n = root["session"]) {
    if (!n.IsMap()) return bad(f + "session", "expected a map");
    if (auto e = check_keys(n, f + "session.",
                            {"push_window", "push_batch", "changes_batch", "heartbeat_ms", "idle_timeout_ms",
                             "stock_pause_ms", "urgent_hold_ms", "quiet_tick_ms"}))
      return e;
    auto& so = c.session;
    if (n["push_window"])
      if (auto e = read_scalar(n["push_window"], f + "session.push_window", so.push_window)) return e;
    if (n["push_batch"])
      if (auto e = read_scalar(n["push_batch"], f + "session.push_batch", so.push_batch)) return e;
    if (n["changes_batch"])
      if (auto e = read_scalar(n["changes_batch"], f + "session.changes_batch", so.changes_batch)) return e;
    if (n["heartbeat_ms"])
      if (auto e = read_scalar(n["heartbeat_ms"], f + "session.heartbeat_ms", so.heartbeat_ms)) return e;
    if (n["idle_timeout_ms"])
      if (auto e = read_scalar(n["idle_timeout_ms"], f + "session.idle_timeout_ms", so.idle_timeout_ms))
        return e;
    if (n["stock_pause_ms"]) {
      if (auto e = read_scalar(n["stock_pause_ms"], f + "session.stock_pause_ms", so.live_pause_ms[1])) return e;
      if (so.live_pause_ms[1] < 0) return bad(f + "session.stock_pause_ms", "must be 0 or more");
    }
    if (n["quiet_tick_ms"]) {
      if (auto e = read_scalar(n["quiet_tick_ms"], f + "session.quiet_tick_ms", so.quiet_tick_ms)) return e;
      if (so.quiet_tick_ms <= 0) return bad(f + "session.quiet_tick_ms", "must be above 0");
    }
    if (n["urgent_hold_ms"]) {
      if (auto e = read_scalar(n["urgent_hold_ms"], f + "session.urgent_hold_ms", so.urgent_hold_ms))
        return e;
      if (so.urgent_hold_ms < 0) return bad(f + "session.urgent_hold_ms", "must be 0 or more");
    }
  }
  if (auto n = root["backoff"]) {
    if (!n.IsMap()) return bad(f + "backoff", "expected a map");
    if (auto e =
            check_keys(n, f + "backoff.", {"initial_ms", "max_ms", "multiplier", "jitter", "healthy_ms"}))
      return e;
    auto& b = c.backoff;
    if (n["initial_ms"])
      if (auto e = read_scalar(n["initial_ms"], f + "backoff.initial_ms", b.initial_ms)) return e;
    if (n["max_ms"])
      if (auto e = read_scalar(n["max_ms"], f + "backoff.max_ms", b.max_ms)) return e;
    if (n["multiplier"])
      if (auto e = read_scalar(n["multiplier"], f + "backoff.multiplier", b.multiplier)) return e;
    if (n["jitter"])
      if (auto e = read_scalar(n["jitter"], f + "backoff.jitter", b.jitter)) return e;
    if (n["healthy_ms"])
      if (auto e = read_scalar(n["healthy_ms"], f + "backoff.healthy_ms", b.healthy_ms)) return e;
  }
  if (auto n = root["devices"]) {
    if (!n.IsSequence())
      return bad(f + "devices", "expected a list of {tenant, branch, node_id, role, name}");
    c.devices.clear();
    for (size_t i = 0; i < n.size(); ++i) {
      node::device d;
      d.tenant = c.tenant;
      if (auto e = read_device(n[i], f + "devices[" + std::to_string(i) + "]", d)) return e;
      c.devices.push_back(std::move(d));
    }
  }
  return {};
}

namespace {

// A flag whose value is applied after the file: `fn` turns the parsed text into a
// setting (or an error naming the flag).
template <class T>
void later(CLI::App* cmd, std::vector<std::function<status(role_settings&)>>& ov, const std::string& name,
           const std::string& help, std::function<status(role_settings&, const T&)> fn) {
  cmd->add_option_function<T>(
      name, [&ov, fn](const T& v) { ov.push_back([fn, v](role_settings& s) { return fn(s, v); }); }, help);
}

} // namespace

node_flags::node_flags(CLI::App* cmd, storage::node_role role) : role_(role) {
  auto def = default_settings(role);
  auto& ov = overrides_;
  cmd->add_option("--config", config_path_,
                  "YAML config file (keys: see deploy/examples/); flags override it");
  later<std::string>(cmd, ov, "--dir", "data directory [" + def.node.dir + "]",
                     [](role_settings& s, const std::string& v) {
                       s.node.dir = v;
                       return status{};
                     });
  later<std::string>(cmd, ov, "--tenant", "tenant (the chain) [demo]",
                     [](role_settings& s, const std::string& v) {
                       s.node.tenant = v;
                       return status{};
                     });
  if (role != storage::node_role::hq)
    later<std::string>(cmd, ov, "--branch", "branch id (required)",
                       [](role_settings& s, const std::string& v) {
                         s.node.branch = v;
                         return status{};
                       });
  later<std::string>(cmd, ov, "--node-id", "this node's id, 16 hex digits [kept in the store, or new]",
                     [](role_settings& s, const std::string& v) -> status {
                       auto id = core::parse_node_id(v);
                       if (!id)
                         return error(errc::invalid_argument, "--node-id '" + v + "' is not 1-16 hex digits");
                       s.node.node_id = *id;
                       return {};
                     });
  later<std::string>(cmd, ov, "--listen",
                     "accept downstream sessions on host:port (port 0: any) [" +
                         (def.node.listen.empty() ? std::string("none") : def.node.listen) + "]",
                     [](role_settings& s, const std::string& v) -> status {
                       if (!v.empty())
                         if (auto e = parse_endpoint(v, "--listen")) return e;
                       s.node.listen = v;
                       return {};
                     });
  if (role != storage::node_role::hq)
    later<std::vector<std::string>>(
        cmd, ov, "--upstream", "upstream host:port (repeatable, tried in order; replaces the file's list)",
        [](role_settings& s, const std::vector<std::string>& v) -> status {
          s.node.upstreams.clear();
          for (const auto& ep : v) {
            if (auto e = parse_endpoint(ep, "--upstream")) return e;
            s.node.upstreams.push_back(ep);
          }
          return {};
        });
  cmd->add_flag_callback(
      "--insecure-dev",
      [&ov] {
        ov.push_back([](role_settings& s) {
          s.insecure_dev = true;
          return status{};
        });
      },
      "development only: plaintext gRPC, on loopback addresses only, instead of TLS [off]");
  later<std::string>(cmd, ov, "--http-listen", "serve GET /metrics (Prometheus) and /healthz on host:port [none]",
                     [](role_settings& s, const std::string& v) -> status {
                       if (!v.empty())
                         if (auto e = parse_endpoint(v, "--http-listen")) return e;
                       s.node.http_listen = v;
                       return {};
                     });
  later<std::string>(cmd, ov, "--encryption-keyring",
                     "keyring file: encrypt the store at rest (AES-256-GCM; `possync ctl keyring new` makes one)",
                     [](role_settings& s, const std::string& v) {
                       s.encryption_keyring = v;
                       return status{};
                     });
  later<std::string>(cmd, ov, "--tls-ca", "CA certificate (PEM) every peer's certificate must chain to",
                     [](role_settings& s, const std::string& v) {
                       s.tls_ca = v;
                       return status{};
                     });
  later<std::string>(cmd, ov, "--tls-cert", "this node's certificate (PEM; common name = its node id)",
                     [](role_settings& s, const std::string& v) {
                       s.tls_cert = v;
                       return status{};
                     });
  later<std::string>(cmd, ov, "--tls-key", "this node's private key (PEM)",
                     [](role_settings& s, const std::string& v) {
                       s.tls_key = v;
                       return status{};
                     });
  if (role != storage::node_role::hq) {
    later<std::string>(cmd, ov, "--tls-server-name", "name the upstream's certificate must carry [its host]",
                       [](role_settings& s, const std::string& v) {
                         s.node.upstream_server_name = v;
                         return status{};
                       });
    later<std::string>(cmd, ov, "--token-file", "this node's device token, issued by HQ (read before each session)",
                       [](role_settings& s, const std::string& v) {
                         s.node.token_file = v;
                         return status{};
                       });
  }
  if (role != storage::node_role::terminal)
    later<std::string>(cmd, ov, "--token-key", "HQ's token public key (PEM): downstream nodes must present tokens",
                       [](role_settings& s, const std::string& v) {
                         s.token_key = v;
                         return status{};
                       });
  later<std::string>(cmd, ov, "--log-level", "trace, debug, info, warn, error, off (stderr) [info]",
                     [](role_settings& s, const std::string& v) {
                       s.log_level = v;
                       return status{};
                     });
  later<std::string>(cmd, ov, "--log-format", "text (message key=value ...) or json (one object per line) [text]",
                     [](role_settings& s, const std::string& v) {
                       s.log_format = v;
                       return status{};
                     });
  if (role != storage::node_role::terminal)
    later<std::string>(cmd, ov, "--port-file", "write the bound port to this file once listening",
                       [](role_settings& s, const std::string& v) {
                         s.port_file = v;
                         return status{};
                       });
  if (role == storage::node_role::branch)
    later<int64_t>(cmd, ov, "--presence-interval-ms",
                   "report a terminal's changed figures to HQ at most this often (0: never) [10000]",
                   [](role_settings& s, const int64_t& v) {
                     s.node.presence_interval_ms = v;
                     return status{};
                   });
  if (role != storage::node_role::terminal)
    later<int64_t>(cmd, ov, "--status-stale-after-ms",
                   "the status page marks a node stale when out of sync or unseen this long [300000]",
                   [](role_settings& s, const int64_t& v) {
                     s.node.status_stale_after_ms = v;
                     return status{};
                   });
  if (role == storage::node_role::terminal)
    later<std::vector<std::string>>(
        cmd, ov, "--skip-collection",
        "do not download this collection (repeatable; e.g. stock on registers of a large branch) [none]",
        [](role_settings& s, const std::vector<std::string>& v) {
          s.node.skip_collections = v;
          return status{};
        });
  if (role != storage::node_role::hq) {
    later<uint32_t>(cmd, ov, "--sale-retention-days",
                    "remove acknowledged sales and payments older than N days locally (0: keep) [0]",
                    [](role_settings& s, const uint32_t& v) {
                      s.node.sale_retention_days = v;
                      return status{};
                    });
    cmd->add_flag_callback(
        "--recover-on-corruption",
        [&ov] {
          ov.push_back([](role_settings& s) {
            s.node.recover_on_corruption = true;
            return status{};
          });
        },
        "a store that does not open because it is damaged is rebuilt (unsent writes kept) [off]");
  }
  later<int64_t>(cmd, ov, "--backoff-initial-ms", "first reconnect delay [1000]",
                 [](role_settings& s, const int64_t& v) {
                   s.node.backoff.initial_ms = v;
                   return status{};
                 });
  later<int64_t>(cmd, ov, "--backoff-max-ms", "reconnect delay cap [30000]",
                 [](role_settings& s, const int64_t& v) {
                   s.node.backoff.max_ms = v;
                   return status{};
                 });
  later<int64_t>(cmd, ov, "--heartbeat-ms", "heartbeat after this long without sending [5000]",
                 [](role_settings& s, const int64_t& v) {
                   s.node.session.heartbeat_ms = v;
                   return status{};
                 });
  later<int64_t>(cmd, ov, "--idle-timeout-ms", "end a session silent this long [30000]",
                 [](role_settings& s, const int64_t& v) {
                   s.node.session.idle_timeout_ms = v;
                   return status{};
                 });
  if (role == storage::node_role::hq)
    later<std::vector<std::string>>(
        cmd, ov, "--device",
        "register tenant:branch:nodehex:role[:name] at start (repeatable; adds to the file's)",
        [](role_settings& s, const std::vector<std::string>& v) -> status {
          for (const auto& text : v) {
            auto d = parse_device(text);
            if (!d) return d.err();
            s.node.devices.push_back(*d);
          }
          return {};
        });
  if (role == storage::node_role::terminal) {
    later<std::string>(cmd, ov, "--script", "run the console commands of FILE, then exit (1 if one failed)",
                       [](role_settings& s, const std::string& v) {
                         s.script = v;
                         return status{};
                       });
  } else {
    cmd->add_flag_callback(
        "--console",
        [&ov] {
          ov.push_back([](role_settings& s) {
            s.console = true;
            return status{};
          });
        },
        "read console commands from stdin (see `help`)");
  }
}

result<role_settings> node_flags::resolve() const {
  role_settings s = default_settings(role_);
  if (!config_path_.empty())
    if (auto e = load_yaml(config_path_, s)) return e;
  for (const auto& f : overrides_)
    if (auto e = f(s)) return e;
  if (role_ == storage::node_role::terminal) s.console = true;
  return s;
}

namespace {

/// The whole of a file; not_found naming `what` and the path.
status slurp_into(const std::string& path, const std::string& what, std::string& out) {
  std::ifstream in(path);
  if (!in) return error(errc::not_found, "cannot read the " + what + " '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return {};
}

} // namespace

status load_security(role_settings& s) {
  const bool any_tls = !s.tls_ca.empty() || !s.tls_cert.empty() || !s.tls_key.empty();
  if (any_tls) {
    auto t = node::load_tls_files(s.tls_ca, s.tls_cert, s.tls_key);
    if (!t) return t.err();
    s.node.tls = std::move(t).value();
  } else if (!s.insecure_dev && (!s.node.listen.empty() || !s.node.upstreams.empty())) {
    return error(errc::invalid_argument,
                 "no TLS certificates: give --tls-ca, --tls-cert and --tls-key (or tls: in the config file; "
                 "deploy/make-certs.sh creates them), or --insecure-dev for plaintext on loopback (development)");
  }
  if (!s.encryption_keyring.empty()) {
    if (auto e = slurp_into(s.encryption_keyring, "encryption keyring", s.node.encryption_keyring)) return e;
  } else if (const char* env = std::getenv("POSSYNC_ENCRYPTION_KEYRING")) {
    s.node.encryption_keyring = env;
  }
  if (!s.token_key.empty())
    if (auto e = slurp_into(s.token_key, "token key", s.node.token_public_key_pem)) return e;
  return {};
}

} // namespace possync::tools
