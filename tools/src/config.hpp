#pragma once
// Configuration of the node subcommands (`hq`, `branch`, `terminal`): defaults, then
// a YAML file (`--config FILE`), then command-line flags, each later source
// overriding the earlier one. The YAML keys (all optional) and their defaults are
// listed in deploy/examples/*.yaml and the README:
//
//   role                   subcommand's role; must match it if given
//   tenant                 [demo]
//   branch                 [""]; required for branch and terminal
//   node_id                [""]: 16 hex digits; "" = the id kept in the store (or a new one)
//   dir                    [./possync-data/<role>]
//   listen                 [hq 127.0.0.1:7400, branch 127.0.0.1:7401, terminal ""]
//   upstreams              [[]] list of "host:port", tried in order
//   insecure_dev           [false] plaintext gRPC for development: loopback addresses only
//   tls.{ca, cert, key}    [""] PEM files (deploy/make-certs.sh): mutual TLS; required
//                          unless insecure_dev
//   tls.server_name        [""] name the upstream's certificate must carry ("" = its host)
//   token_file             [""] this node's device token (read again before each session)
//   http_listen            [""] serve GET /metrics, /healthz, the status page (/) and
//                          /api/status on host:port
//   encryption_keyring     [""] keyring file: the store's values are AES-256-GCM encrypted
//                          (chosen at creation). POSSYNC_ENCRYPTION_KEYRING (the keyring
//                          text itself) is used when no file is given.
//   token_key              [""] hq/branch: HQ's token public key (PEM); set = every
//                          downstream must present a valid token
//   log_level              [info]: trace, debug, info, warn, error, off (logs go to stderr)
//   log_format             [text]: text ("message key=value ...") or json (one object per line)
//   presence_interval_ms   [10000] branch: a terminal's changed figures go to HQ at most
//                          this often (online/offline at once); 0 = never
//   status_stale_after_ms  [300000] status page: a node out of sync or unseen this long is stale
//   max_sessions           [20000] hq/branch: downstream sessions at once
//   max_hellos_per_minute  [120] hq/branch: sessions one node may open per minute
//   port_file              [""]: write the bound port here once listening
//   console                [false for hq/branch; the terminal always has one]
//   tick_ms                [200]   session timer period while a session has timed work
//   gzip                   [true]  gRPC message compression
//   session.{push_window [8], push_batch [256], changes_batch [128],
//            heartbeat_ms [5000], idle_timeout_ms [30000], stock_pause_ms [1000],
//            urgent_hold_ms [20], quiet_tick_ms [1000]: timer period of a quiet session}
//   backoff.{initial_ms [1000], max_ms [30000], multiplier [2.0], jitter [0.2],
//            healthy_ms [60000]}
//   devices                [[]] HQ: list of {tenant, branch, node_id, role, name}
//   sale_retention_days    [0] terminal/branch: acknowledged sales and payments older
//                          than this are removed locally (0 = keep forever; HQ ignores it)
//   recover_on_corruption  [false] rebuild a store that does not open because it is
//                          damaged (possync recover), instead of refusing to start

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "possync/core/error.hpp"
#include "possync/node/node.hpp"

namespace possync::tools {

/// Everything a node subcommand runs with.
struct role_settings {
  node::node_config node;         ///< the runtime's configuration
  std::string log_level = "info"; ///< spdlog level name
  std::string log_format = "text"; ///< "text" (message key=value ...) or "json" (one object per line)
  std::string port_file;          ///< "" = none
  bool console = false;           ///< read console commands from stdin
  std::string script;             ///< terminal: run the console commands of this file, then exit
  bool insecure_dev = false;      ///< plaintext on loopback instead of TLS
  std::string tls_ca, tls_cert, tls_key;  ///< PEM files
  std::string token_key;          ///< HQ's token public key file ("" = tokens not checked)
  std::string encryption_keyring; ///< keyring file ("" = $POSSYNC_ENCRYPTION_KEYRING, or none)
};

/// Reads the TLS and token key files named in `s` into s.node. Without TLS files and
/// without insecure_dev: invalid_argument explaining both ways out.
status load_security(role_settings& s);

/// Defaults of a role: dir ./possync-data/<role>, listen per role, tenant "demo".
role_settings default_settings(storage::node_role role);

/// Reads a YAML file into `s` (keys above). Unknown keys, wrong types, a `role` that
/// differs from s.node.role are invalid_argument naming the file and key.
status load_yaml(const std::string& path, role_settings& s);

/// "terminal", "branch", "hq" (also "1", "2", "3").
result<storage::node_role> parse_role(const std::string& text);
/// "tenant:branch:nodehex:role[:name]" (branch "" for HQ nodes).
result<node::device> parse_device(const std::string& text);
/// Sets the default spdlog logger to stderr at `level`; invalid_argument for an unknown level.
status setup_logging(const std::string& level, const std::string& format = "text");

/// The flags shared by the node subcommands, recorded while CLI11 parses and applied
/// over the file afterwards.
class node_flags {
public:
  /// Registers --config and the flags of `role` on `cmd`.
  node_flags(CLI::App* cmd, storage::node_role role);
  /// Defaults, then --config, then the flags given. Errors name the flag or key.
  result<role_settings> resolve() const;

private:
  storage::node_role role_;
  std::string config_path_;
  std::vector<std::function<status(role_settings&)>> overrides_;
};

} // namespace possync::tools
