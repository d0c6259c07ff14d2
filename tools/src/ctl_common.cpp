// Shared by the `possync ctl` subcommands.

#include "ctl_common.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace possync::tools {

void add_connection_flags(CLI::App& cmd, connection_flags& f) {
  cmd.add_option("--server,--hq", f.server, "the node's gRPC address (HQ or branch)")->capture_default_str();
  cmd.add_option("--tls-ca", f.tls_ca, "CA certificate (PEM)");
  cmd.add_option("--tls-cert", f.tls_cert, "operator certificate (PEM, common name 'admin')");
  cmd.add_option("--tls-key", f.tls_key, "its key (PEM)");
  cmd.add_option("--tls-server-name", f.server_name, "name the node's certificate must carry [its host]");
  cmd.add_flag("--insecure-dev", f.insecure_dev, "plaintext to a node on loopback (development)");
  cmd.add_flag("--json", f.json_out, "print JSON (one document) instead of a table");
}

result<node::admin_client> connect_admin(const connection_flags& f) {
  node::grpc_client_options o;
  o.server_name = f.server_name;
  if (!f.tls_ca.empty() || !f.tls_cert.empty() || !f.tls_key.empty()) {
    auto t = node::load_tls_files(f.tls_ca, f.tls_cert, f.tls_key);
    if (!t) return std::move(t).err();
    o.tls = std::move(t).value();
  } else if (!f.insecure_dev) {
    return error(errc::invalid_argument,
                 "give the operator's certificate (--tls-ca, --tls-cert, --tls-key: common name 'admin'), or "
                 "--insecure-dev for a node on plaintext loopback");
  } else if (!node::is_loopback_address(f.server)) {
    return error(errc::invalid_argument, "--insecure-dev only talks to loopback addresses, not '" + f.server + "'");
  }
  return node::admin_client(f.server, std::move(o));
}

int ctl_fail(const std::string& what, int code) {
  std::fprintf(stderr, "possync ctl: %s\n", what.c_str());
  return code;
}

result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return error(errc::not_found, "cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace possync::tools
