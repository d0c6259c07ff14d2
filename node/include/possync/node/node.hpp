#pragma once
// The node runtime: one possync engine in one role (terminal, branch or HQ). A node
// owns (or shares) a RocksDB database, a node store, and its actors on a CAF actor
// system: the store actor, the hub, the downlink sessions it accepts (gRPC server or
// in-process links) and the supervisor of its uplink session to its upstream.
//
// Many nodes can share one `runtime` (one actor system) and one database (each with
// its own store space): the simulator runs thousands of terminals in one process so.
//
// No CAF, gRPC or RocksDB types in this header (pimpl). Thread-safety: every member
// may be called from any thread.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "possync/actors/backoff.hpp"
#include "possync/actors/link.hpp"
#include "possync/actors/session_options.hpp"
#include "possync/core/error.hpp"
#include "possync/node/admin.hpp"
#include "possync/node/grpc_transport.hpp"
#include "possync/storage/lifecycle.hpp"
#include "possync/storage/store.hpp"
#include "possync/terminal.hpp"

namespace possync::node {

/// The actor system (and its scheduler threads), shareable by many nodes.
class runtime {
public:
  struct options {
    size_t threads = 0;            ///< scheduler worker threads; 0 = hardware concurrency (min 2)
    bool low_latency = true;       ///< poll aggressively instead of sleeping 50 µs between polls
  };
  static std::shared_ptr<runtime> create(options opts);
  static std::shared_ptr<runtime> create() { return create(options{}); }
  ~runtime();
  struct impl;
  impl& get() { return *impl_; }

private:
  explicit runtime(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

/// Opens a link to an upstream endpoint. The default dials gRPC ("host:port").
using connector = std::function<std::unique_ptr<actors::link>(const std::string& endpoint)>;

/// A device entry of HQ's registry (collection "device").
struct device {
  std::string tenant;
  std::string branch;          ///< "" for HQ nodes
  core::node_id node = 0;
  storage::node_role role = storage::node_role::terminal;
  std::string name;            ///< for people: "Register 2, Jakarta Selatan"
  bool revoked = false;
};

/// Everything a node needs. Defaults in brackets.
struct node_config {
  storage::node_role role = storage::node_role::terminal;
  std::string tenant = "demo";             ///< [demo]
  std::string branch;                      ///< required for terminal and branch
  core::node_id node_id = 0;               ///< 0 = kept in the store, or a new random id
  std::string dir;                         ///< data directory; required unless `db` or in_memory
  bool in_memory = false;                  ///< RocksDB in-memory env (tests, simulation)
  std::shared_ptr<storage::database> db;   ///< share an open database instead of `dir`
  uint32_t space = 0;                      ///< store space inside a shared database
  std::string listen;                      ///< "127.0.0.1:0" to accept downstream sessions over gRPC; "" = none
  /// Mutual TLS for the gRPC server and the upstream links (deploy/make-certs.sh makes
  /// the files). Empty: plaintext, which only loopback addresses accept. With TLS, a
  /// peer's certificate common name must be its node id (16 hex digits) at admission.
  tls_options tls;
  std::string upstream_server_name;        ///< name the upstream's certificate must carry ("" = its host)
  /// This node's device token (issued by HQ: `possync ctl token issue`), sent in Hello.
  std::string token;
  /// Or a file holding it, read again before every session: a renewed token is picked
  /// up on the next reconnect. Takes precedence over `token`.
  std::string token_file;
  /// HQ's token public key (PEM). Set on an upstream (HQ, branch): every Hello must
  /// carry a valid token (see actors::admission_policy); "" = tokens not checked.
  std::string token_public_key_pem;
  /// Encryption at rest of this node's store (storage/cipher.hpp keyring text: lines
  /// "<id> <64 hex>", the first the current key). Chosen when the store is created.
  /// "" = plaintext. Meant for terminals, whose PCs sit in shops.
  std::string encryption_keyring;
  /// Serve GET /metrics (Prometheus text, node/metrics.hpp), GET /healthz and the status
  /// page (GET /, /status and /api/status, node/status_page.hpp) over HTTP on
  /// "host:port" (port 0: any free port; see http_port()). "" = none. Plain HTTP: the
  /// figures carry no secrets, but keep it on a management network.
  std::string http_listen;
  /// The status page (GET / and /api/status on http_listen) flags a node stale once it
  /// has been out of sync, or offline, for longer than this [5 min]. See status_page.hpp.
  int64_t status_stale_after_ms = 300'000;
  /// Downstream sessions open at once; more are refused with resource_exhausted [20,000].
  uint32_t max_sessions = 20'000;
  /// Hellos one node may send per minute (reconnect storms, password-guessing with
  /// tokens); more are refused with resource_exhausted until the minute has passed [120].
  uint32_t max_hellos_per_minute = 120;
  std::vector<std::string> upstreams;      ///< endpoints tried in order, rotating on failure
  /// Terminals only: collections this node does not download from its upstream
  /// (Hello.collections); other roles refuse to start with it.
  /// Registers of a large branch leave out "stock": every sale changes its products'
  /// counters, and each change goes to every register of the branch, so the work grows
  /// with the square of the registers. Such a node's local counters hold only its own
  /// movements (terminal::stock() refuses to show them as the branch's stock). A node
  /// that takes back a collection it skipped downloads its upstream's feeds again from
  /// the start at its next start (meta "sync.skipped"; unsent writes stay). [none]
  std::vector<std::string> skip_collections;
  connector connect;                       ///< how to dial an upstream; default gRPC
  actors::session_options session;
  actors::backoff_options backoff;
  int64_t tick_ms = 200;                   ///< session timer period
  /// The uplink session runs on a thread of its own (sales go up without waiting for
  /// the shared scheduler); the simulator turns it off for thousands of nodes.
  bool uplink_thread = true;
  std::vector<device> devices;             ///< HQ: registered at start (idempotent)
  bool gzip = true;                        ///< gRPC message compression
  /// gRPC flow-control window per stream, both directions (grpc_client_options) [64 KiB]
  size_t stream_window_bytes = 64u << 10;
  /// Branch: how often at most a terminal's figures (pending, lag) are reported to HQ
  /// (collection "node_presence"); online/offline changes go at once [10 s]. 0 = never.
  int64_t presence_interval_ms = 10'000;
  /// When the store in `dir` does not open because it is damaged (data_loss), rebuild
  /// it (storage::recover_store: moved aside to <dir>.damaged-<time>, unsent outbox
  /// salvaged, same node id, everything else downloaded again) instead of refusing to
  /// start [false]. Damage inside data blocks that does not stop the store opening is
  /// found by `possync verify`, not here.
  bool recover_on_corruption = false;
  /// Retention on terminals and branches: sales and payments older than this many
  /// days whose upstream has acknowledged them are removed locally (never replicated
  /// as deletions), at start and every retention_interval_ms. 0 = keep forever [0].
  /// Ignored on HQ, which keeps everything.
  uint32_t sale_retention_days = 0;
  int64_t retention_interval_ms = 3'600'000;  ///< how often retention runs [1 h]
};


/// What a POS operator reads about a node.
struct node_status {
  core::node_id node = 0;
  storage::node_role role = storage::node_role::terminal;
  std::string tenant, branch;
  bool online = false;                     ///< an upstream session is welcomed
  std::string upstream;                    ///< endpoint of the current/last upstream
  bool caught_up = false;
  std::array<uint64_t, core::lane_count> pending{};  ///< outbox entries per lane
  int64_t last_sync_ms = 0;                ///< 0 = never
  uint64_t lag_records = 0;
  int64_t skew_ms = 0;                     ///< upstream clock minus ours
  uint32_t downstream_sessions = 0;
  uint32_t uplink_restarts = 0;            ///< sessions the supervisor restarted
  std::string last_error;                  ///< why the last uplink session ended; "" again once a new one is welcomed
  uint64_t rejected = 0;                   ///< records the upstream refused (current/last session)
  std::string last_rejection;              ///< the last of them: "key: reason"
  uint16_t port = 0;                       ///< bound gRPC port, 0 = not listening
};

/// The POS screen's view of `s` at wall clock `now_ms` (terminal::status() is this):
/// stale once no complete sync for longer than `stale_after_ms`, counted from
/// `started_ms` (when the node started) while it never synced.
terminal_sync_status sync_status_of(const node_status& s, int64_t now_ms, int64_t stale_after_ms,
                                    int64_t started_ms);

/// What changed, for UI refresh (from any commit: local or received).
using change_fn = std::function<void(const std::vector<storage::change>&)>;

/// One running node. Stopping (or destroying) ends its sessions cleanly.
class node {
public:
  static result<std::unique_ptr<node>> start(node_config cfg, std::shared_ptr<runtime> rt = nullptr);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  const node_config& config() const;
  storage::node_store& store();
  /// The port the gRPC server bound (listen "host:0" picks one), 0 if not listening.
  uint16_t port() const;
  /// The port of /metrics and /healthz (http_listen), 0 if not serving.
  uint16_t http_port() const;
  node_status status() const;

  /// Accept a downstream session on an in-process link (simulator, tests).
  void accept(std::unique_ptr<actors::link> l);
  /// Try the upstream now (skips the supervisor's backoff wait) and push at once.
  void sync_now();
  /// Forget the upstream's cursors and download everything again.
  possync::status full_resync();
  /// Cut (false) or restore (true) the uplink: for operators, tests and the demo.
  void set_uplink_enabled(bool enabled);
  /// Register (or update) a device in this node's registry (HQ).
  possync::status register_device(const device& d);
  /// HQ: revoke a device token (its id, from `possync ctl token issue`). Sessions
  /// holding it end within session.auth_check_ms here and at every branch once the
  /// revocation has reached it; the token is refused at Hello from then on.
  /// failed_precondition on a node that is not HQ.
  possync::status revoke_token(const std::string& token_id, core::node_id node = 0, int64_t expires_ms = 0,
                               const std::string& reason = "");

  // -- operators (the Admin service calls these too; admin.hpp) --------------------
  /// The nodes this node knows: registry, the downstream nodes it serves (or served
  /// since it started) and, at HQ, the terminals its branches report. branch != "":
  /// only that branch.
  result<std::vector<node_info>> nodes(const std::string& branch = "") const;
  result<std::vector<conflict_info>> conflicts(bool unresolved_only, size_t limit = 100) const;
  result<conflict_info> conflict(uint64_t id) const;
  /// Settles conflict `id`: writes the chosen body as a version that supersedes all
  /// of the conflict's versions (it syncs like any write), marks it resolved and
  /// audits it. Returns the new version's dot.
  result<std::string> resolve_conflict(uint64_t id, resolution_mode mode, const std::string& body_json = "",
                                       const std::string& reason = "", const std::string& actor = "local");
  /// HQ: orders registered node `target` to resync or reset. The order travels as
  /// data (collection "node_command") and is carried out once when it arrives, also
  /// after the node was offline. Audited.
  result<command_receipt> order(core::node_id target, command_kind kind, const std::string& reason,
                                const std::string& actor = "local");
  /// Orders carried out by this node since it started (a test and status aid).
  uint64_t orders_done() const;
  /// Consistent online backup of this node's database (database::checkpoint) into
  /// `target_dir`, which must not exist or be empty (already_exists). Writes go on
  /// while it is taken; an encrypted store's backup stays encrypted.
  /// failed_precondition for an in-memory node.
  result<backup_info> backup(const std::string& target_dir);
  /// Operator reset of a running terminal or branch: ends its sessions (downstream
  /// sessions are refused until done), empties its store keeping the node id and every
  /// unsent write (node_store::start_over: salvaged outbox queued first, dot floor, new
  /// counter identity), then lets the uplink reconnect (if it was enabled), which
  /// downloads everything again. failed_precondition on HQ; deadline_exceeded if the
  /// sessions do not end within 10 s (nothing changed then). `reason` is for the
  /// session ends and the audit trail of the caller.
  possync::status reset(const std::string& reason);
  /// What recover_on_corruption did at start, if it ran.
  const std::optional<storage::recover_report>& recovery() const;
  /// Retention: sales removed since this node started (0 before the first run). A
  /// total, not the last run's count: a poller that looks between runs misses nothing.
  uint64_t sales_purged() const;

  /// Called on a background thread after every durable commit; must not block.
  /// Returns an id for unsubscribe().
  uint64_t subscribe(change_fn fn);
  void unsubscribe(uint64_t id);

  void stop();
  struct impl;

private:
  explicit node(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

/// "0123456789abcdef": the registry id of a node.
std::string device_id(core::node_id n);

} // namespace possync::node
