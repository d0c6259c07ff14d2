#pragma once
// What the `possync ctl` subcommands share: how they reach a node's Admin service
// (--server, TLS with the operator's certificate or --insecure-dev on loopback,
// --json) and how they report failure.

#include <string>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "possync/core/error.hpp"
#include "possync/node/admin.hpp"

namespace possync::tools {

struct connection_flags {
  std::string server = "127.0.0.1:7400";  ///< the node's gRPC address (HQ's default listen)
  std::string tls_ca, tls_cert, tls_key, server_name;
  bool insecure_dev = false;
  bool json_out = false;
};

/// --server (alias --hq), --tls-ca, --tls-cert, --tls-key, --tls-server-name,
/// --insecure-dev, --json on `cmd`, bound to `f`.
void add_connection_flags(CLI::App& cmd, connection_flags& f);
/// A client for the node named by `f`. invalid_argument when the flags do not add up
/// (no certificate and no --insecure-dev; --insecure-dev to a non-loopback address).
result<node::admin_client> connect_admin(const connection_flags& f);

/// Prints "possync ctl: <what>" on stderr; returns `code`.
int ctl_fail(const std::string& what, int code = exit_failure);
/// A whole file as text (not_found naming it).
result<std::string> read_text_file(const std::string& path);

/// status, nodes, log, conflicts, resync, reset, backup, time (cmd_ctl_admin.cpp).
void add_ctl_admin_commands(CLI::App& ctl, command_fn& run);

} // namespace possync::tools
