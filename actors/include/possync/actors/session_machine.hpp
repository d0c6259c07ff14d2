#pragma once
// The sync session protocol as pure state machines (DESIGN.md §6): frames in, frames
// and store commands out, time as an input. No actors, sockets, threads or clocks in
// here; the session actor (session_actor.hpp) feeds a machine and carries out its
// output. Reads go straight to the node store (RocksDB reads are thread-safe and
// served from memory for the small windows read here); writes are handed out as
// commands and their durable completion comes back as an input.
//
// Two machines, one per end of a session:
// - uplink_machine runs on the node that dialed (terminal -> branch, branch -> HQ).
//   It sends Hello, pushes its outbox lane by lane (lane_scheduler) within the
//   flow-control window, drops acked outbox entries, and applies the upstream's
//   Changes together with the new cursor in one durable commit.
// - downlink_machine runs on the node that accepted. It admits the Hello (registry
//   and scope check), answers Welcome, applies each Push durably before acking it
//   (records outside the session's scope are refused one by one in the Ack), and
//   serves the granted feeds from the peer's cursors: catch-up in batches, then live
//   as commits are announced (on_feed_changed). There is no polling. Records of
//   collections not granted are skipped, and so are records whose every version the
//   peer wrote (no echo) once the peer is known to hold them (Hello.upstream names
//   this node, or the feed was caught up in this session).
// Every Changes the uplink receives becomes an apply_request with its cursor, even
// with no records (it then only moves the cursor); the shell must still run it.
//
// The shell's loop, after every input: take_output() and carry it out in order
// (frames to the link one write at a time, applies to the store actor, outbox acks);
// then if no read is outstanding and wants_frame(), ask the link for the next frame.
//
// Thread-safety: none; one machine belongs to one actor.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "possync/core/error.hpp"
#include "possync/core/ids.hpp"
#include "possync/core/schema.hpp"
#include "possync/core/token.hpp"
#include "possync/actors/session_options.hpp"
#include "possync/storage/store.hpp"
#include "possync/v1/sync.pb.h"

namespace possync::actors {

/// Protocol version spoken here (Hello.protocol_version).
constexpr uint32_t protocol_version = 1;

/// One feed of a node: its records of (tenant, scope, lane), in lane-seq order.
struct feed_id {
  std::string tenant;
  std::string scope;
  uint8_t lane = 0;
  friend bool operator==(const feed_id& a, const feed_id& b) {
    return a.tenant == b.tenant && a.scope == b.scope && a.lane == b.lane;
  }
  friend bool operator<(const feed_id& a, const feed_id& b) {
    if (a.tenant != b.tenant)
      return a.tenant < b.tenant;
    if (a.scope != b.scope)
      return a.scope < b.scope;
    return a.lane < b.lane;
  }
};

/// Who this node is.
struct local_identity {
  core::node_id node = 0;
  storage::node_role role = storage::node_role::terminal;
  std::string tenant;
  std::string branch;  ///< "" for HQ
  std::string token;   ///< uplink: the device token sent in Hello ("" = none)
  std::string software; ///< possync version announced in Hello ("" = none)
  /// uplink: collections to download, sent as Hello.collections (empty = everything the
  /// role may read). A register of a large branch leaves out "stock" (node_config).
  std::vector<std::string> collections;
};

/// What an upstream grants one downstream session after admitting its Hello.
struct grant {
  core::node_id peer = 0;
  /// Hello.writer (peer if 0): records only it wrote are not echoed back to the peer.
  core::node_id peer_writer = 0;
  storage::node_role role = storage::node_role::terminal;
  std::string tenant;
  std::string branch;
  std::vector<feed_id> feeds;             ///< served down, in this order
  std::set<std::string> collections;      ///< collections served (others are skipped)
  std::set<std::string> write_scopes;     ///< scopes the peer may push ("" = tenant-wide)
  std::string token_id;                   ///< the verified device token's id ("" = none checked)
  int64_t token_expires_ms = 0;           ///< its expiry (0 = none): the session ends then
};

/// What admission checks besides the Hello and the registry.
struct admission_policy {
  /// Common name of the peer's verified TLS certificate ("" = none).
  std::string peer_identity;
  /// TLS is on: the certificate's common name must be the Hello's node id in hex.
  bool require_identity = false;
  /// Set: Hello.token must be a token this key verifies, for the Hello's tenant,
  /// branch, node and role, unexpired at now_ms and not revoked (collection
  /// "revocation" in the store).
  std::shared_ptr<const core::token_verifier> tokens;
  int64_t now_ms = 0;
};

/// Feeds a node of `role` downloads from its upstream by default:
/// terminal: lanes 1-2 of tenant scope "" and of its branch (stock, catalogue, prices;
///   not other registers' sales nor reports);
/// branch: every lane of "" and lanes 1-3 of its branch (its own sales went up from it);
/// hq: every lane of "" (peering is not built yet).
std::vector<feed_id> default_feeds(storage::node_role role, const std::string& tenant,
                                   const std::string& branch);
/// Collections a node of `role` receives: terminals everything but "device"
/// (the registry); branches and HQ everything.
std::set<std::string> default_collections(storage::node_role role, const core::collection_registry& reg);

/// What a node of `role` asks for in Hello.collections when it skips `skip`: every
/// default collection but those, in name order; empty when `skip` is (the Hello then
/// asks for everything). invalid_argument for an unknown name, or if nothing is left.
result<std::vector<std::string>> download_collections(storage::node_role role,
                                                      const core::collection_registry& reg,
                                                      const std::vector<std::string>& skip);

/// Admission of a Hello at an upstream: protocol version (failed_precondition), tenant
/// and branch of this node (permission_denied), and the device registry held in
/// `store` (collection "device", tenant scope, id = 16 lower-case hex digits of the
/// node id): an unknown or revoked node, or a role/branch that does not match its
/// registration, is refused with permission_denied naming the node. A branch node
/// admits only terminals of its own branch; HQ admits branch nodes and terminals.
/// Hello.scopes, Hello.collections and Hello.cursors may only name what the role may
/// read (its tenant's shared data and its own branch's): anything else is refused with
/// permission_denied (an unknown collection: invalid_argument), never trimmed silently.
/// With `policy`: the certificate's identity (permission_denied when it names another
/// node; unauthenticated when required and missing) and the device token
/// (unauthenticated: missing, malformed, forged, expired; permission_denied: issued
/// for another tenant, branch, node or role, or revoked).
result<grant> admit(const v1::Hello& hello, const local_identity& me, const storage::node_store& store,
                    const admission_policy& policy = {});
/// The collections admit() and still_admitted() read: the device registry and the
/// token revocations. A node's reset keeps them (storage::start_over_options::keep),
/// so that a branch admits its terminals again before its download brings them back.
std::vector<std::string> admission_collections();
/// Whether a live session's credentials still hold at `now_ms`: its token unexpired
/// (unauthenticated) and not revoked, its device not revoked (permission_denied).
/// `reread` = false checks the expiry only: the caller knows that no record of
/// admission_collections() changed since it last looked (collection_changes).
status still_admitted(const grant& g, const storage::node_store& store, int64_t now_ms, bool reread = true);
using admit_fn = std::function<result<grant>(const v1::Hello&)>;
/// Whether a session granted `g` may push a record with `key`: its tenant, a scope of
/// g.write_scopes, and a collection whose writers include the peer's role (see
/// core::collection_info::writers). permission_denied naming the record, the node and
/// what it may write; invalid_argument for an unknown collection.
status may_write(const grant& g, const core::record_key& key, const core::collection_registry& reg);

/// A durable apply the shell must run (store actor -> node_store::apply_remote_async);
/// its completion comes back as on_applied(token, ...).
struct apply_request {
  uint64_t token = 0;
  std::vector<core::record> records;
  storage::apply_source from;
  std::optional<storage::cursor_update> cursor;  ///< saved in the same commit
};

/// What a machine wants done, drained by take_output().
struct machine_output {
  std::vector<v1::Frame> frames;                          ///< to send, in order
  std::vector<apply_request> applies;                     ///< to run, in order
  /// (lane, seq): drop outbox up to seq; a failed one goes back as on_outbox_ack_failed.
  std::vector<std::pair<uint8_t, uint64_t>> outbox_acks;
  std::optional<std::vector<feed_id>> subscribe;          ///< downlink: announce commits on these feeds
  /// ...that change one of these collections (the granted ones; null: any).
  std::shared_ptr<const std::set<std::string>> subscribe_collections;
  bool clear_cursors = false;   ///< uplink: full resync ordered: clear the upstream's (status().upstream) cursors
  /// uplink: Welcome came from this node, not the one in meta "sync.upstream": the
  /// shell stores put_meta("sync.upstream", core::node_id_to_string(node)) so that the
  /// next Hello names it (its cursors are filed under it).
  std::optional<core::node_id> upstream_welcomed;
  /// End the session, after the frames above are written: ok() = clean end, else why
  /// it failed. Nothing follows it; the machine ignores later inputs.
  std::optional<error> close;
  /// Call on_tick again at this clock time (before the next periodic tick); 0 = no need.
  int64_t wake_at_ms = 0;
  bool empty() const {
    return frames.empty() && applies.empty() && outbox_acks.empty() && !subscribe && !clear_cursors &&
           !upstream_welcomed && !close && wake_at_ms == 0;
  }
};

/// Counters of one session (for status, audit and heartbeats).
struct session_stats {
  uint64_t records_up = 0;     ///< records pushed (uplink) or received in pushes (downlink)
  uint64_t records_down = 0;   ///< records received in Changes (uplink) or served (downlink)
  uint64_t bytes_up = 0;
  uint64_t bytes_down = 0;
  uint64_t rejected = 0;       ///< records refused by the upstream
};

/// The uplink's view of its session, for node status.
struct uplink_status {
  bool welcomed = false;       ///< Hello answered
  bool caught_up = false;      ///< every feed reported caught up at least once
  core::node_id upstream = 0;
  int64_t skew_ms = 0;         ///< upstream clock minus ours, as the upstream saw at Hello
  uint64_t lag_records = 0;    ///< sum of the upstream's remaining estimates
  int64_t last_sync_ms = 0;    ///< last time the outbox was empty and every feed caught up
  std::array<uint64_t, core::lane_count> in_flight{};  ///< pushed, not yet acked, per lane
  session_stats stats;
  std::string last_rejection;  ///< "tenant/scope/collection/id: reason" of the last refused record
};

/// Dialing end. See the file comment.
class uplink_machine {
public:
  /// `store` must outlive the machine; it is read (outbox, cursors, meta) and its HLC
  /// is advanced (clock_now/clock_update), never written otherwise.
  uplink_machine(local_identity me, session_options opts, storage::node_store& store);
  ~uplink_machine();
  uplink_machine(uplink_machine&&) noexcept;
  uplink_machine& operator=(uplink_machine&&) noexcept;

  /// The link is up: sends Hello with the cursors kept for the last upstream.
  void start(int64_t now_ms);
  void on_frame(v1::Frame&& frame, int64_t now_ms);
  void on_applied(uint64_t token, result<storage::apply_result> r, int64_t now_ms);
  /// Local commits may have queued outbox entries.
  void on_outbox_changed(int64_t now_ms);
  /// An outbox ack it handed out failed (a failed write: disk full, I/O error). The
  /// entries stay queued; the upstream already holds them. The ack is handed out again
  /// at the next tick (else an idle session would never drain them: the entries are
  /// past what it pushes, so only a new session would send them again).
  void on_outbox_ack_failed(uint8_t lane, uint64_t seq, int64_t now_ms);
  /// The last frame handed out was written.
  void on_written(int64_t now_ms);
  /// Time passes (heartbeats, idle timeout); call every few hundred ms, or every
  /// session_options::quiet_tick_ms while quiet().
  void on_tick(int64_t now_ms);
  /// Nothing waits for a tick but heartbeats and timeouts: live, no downloaded Changes
  /// held, no failed outbox ack to hand out again, no hold running.
  bool quiet() const;
  /// True when it can take another frame (applies in flight below the window).
  bool wants_frame() const;
  machine_output take_output();
  uplink_status status() const;

private:
  struct state;
  std::unique_ptr<state> s_;
};

/// The downlink's view of its session.
struct downlink_status {
  bool admitted = false;
  grant granted;
  bool caught_up = false;      ///< every granted feed served up to its head
  int64_t peer_skew_ms = 0;    ///< our clock minus the peer's, at Hello
  std::vector<uint64_t> peer_pending;  ///< from the peer's last Heartbeat
  int64_t peer_last_sync_ms = 0;
  uint64_t peer_lag_records = 0;       ///< from the peer's last Heartbeat
  bool peer_caught_up = false;         ///< from the peer's last Heartbeat
  std::string peer_software;           ///< Hello.software
  int64_t last_recv_ms = 0;            ///< last frame from the peer
  uint64_t heartbeats = 0;             ///< Heartbeats received (a new one: new figures)
  session_stats stats;
};

/// Accepting end. See the file comment.
class downlink_machine {
public:
  /// `store` must outlive the machine; it is read (feeds, heads) and its HLC advanced.
  downlink_machine(local_identity me, session_options opts, storage::node_store& store, admit_fn admit);
  ~downlink_machine();
  downlink_machine(downlink_machine&&) noexcept;
  downlink_machine& operator=(downlink_machine&&) noexcept;

  /// The stream is accepted (starts the Hello timeout).
  void start(int64_t now_ms);
  void on_frame(v1::Frame&& frame, int64_t now_ms);
  void on_applied(uint64_t token, result<storage::apply_result> r, int64_t now_ms);
  /// Commits landed on these feeds (the hub coalesces announcements and names the
  /// feeds, so only they are read again; feeds not granted are ignored).
  void on_feed_changed(const std::vector<feed_id>& changed, int64_t now_ms);
  void on_written(int64_t now_ms);
  void on_tick(int64_t now_ms);
  /// Nothing waits for a tick but heartbeats, timeouts and the periodic admission
  /// check: live, and no feed has changes left to serve (a paused one is served by a tick).
  bool quiet() const;
  bool wants_frame() const;
  machine_output take_output();
  downlink_status status() const;

private:
  struct state;
  std::unique_ptr<state> s_;
};

} // namespace possync::actors
