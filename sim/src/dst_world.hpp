#pragma once
// The simulated world of one seed (private to sim/), and the boundary between the
// world (dst_world.cpp: event loop, links, node shells, faults, POS traffic) and the
// invariant checker (dst_check.cpp). The world records in `history` what the POS apps
// were told and what the faults did; the checker compares it with the stores.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "possync/core/ids.hpp"
#include "possync/core/record.hpp"
#include "possync/core/schema.hpp"
#include "possync/sim/dst.hpp"
#include "possync/storage/store.hpp"

namespace possync::sim::dst {

/// One node of the simulated deployment as the checker sees it after the run.
struct node_view {
  std::string name;               ///< "hq", "b1", "b1.t2" (stable for a seed; used in the trace)
  storage::node_role role = storage::node_role::terminal;
  std::string branch;             ///< "" for HQ
  bool live_stock = true;         ///< false: a terminal that does not download stock
  core::node_id id = 0;           ///< current identity (a terminal rebuilt after disk loss has a new one)
  storage::node_store* store = nullptr;  ///< open after the run
};

/// A sale acknowledged to the POS app (its record_sale returned ok).
struct acked_sale {
  core::record_key key;
  std::string node;               ///< node_view::name of the terminal (or branch) that recorded it
  core::node_id identity = 0;     ///< the node id it was recorded under
  core::node_id counter_identity = 0; ///< the stock counter entry it decremented (node_store::counter_node)
  std::vector<std::pair<std::string, int64_t>> items;  ///< (product id, quantity in thousandths)
  int64_t at_ms = 0;              ///< simulated time of the acknowledgement
};

/// A stock change other than a sale that was acknowledged: a return (restock) or a
/// stocktake adjustment (a stock_movement with kind "adjust").
struct acked_stock_change {
  core::record_key key;           ///< the return or stock_movement record
  std::string node;
  core::node_id identity = 0;
  core::node_id counter_identity = 0; ///< the stock counter entry it moved
  std::string branch;
  std::string product;
  int64_t delta = 0;              ///< thousandths; + adds stock
  int64_t at_ms = 0;
};

/// A terminal identity whose disk was lost: what was acked but still in its outbox
/// then (it may or may not have reached upstream; the only data allowed to be lost).
struct lost_disk {
  std::string node;
  core::node_id identity = 0;     ///< the identity that died with the disk
  core::node_id reborn_as = 0;    ///< the fresh identity it was rebuilt under
  std::vector<core::record_key> unsent;  ///< every outbox entry's key at the moment of loss (all lanes)
  int64_t at_ms = 0;
};

/// One Push frame an uplink sent, with which lanes had unsent work just before it
/// was chosen (for the "sales lane never waited behind a lower lane" invariant).
struct push_record {
  std::string node;
  uint64_t session = 0;           ///< unique per uplink session of the run
  uint8_t lane = 0;
  std::array<bool, core::lane_count> had_work{};
  int64_t at_ms = 0;
};

/// The same field of one record edited on two nodes that could not see each other's
/// edit (a conflict the field_merge / hq_wins rules must detect and record).
struct concurrent_edit {
  core::record_key key;
  std::string field;
  std::string node_a, node_b;
};

/// Everything the world did that the checker needs.
struct history {
  std::vector<acked_sale> sales;
  std::vector<acked_stock_change> stock_changes;
  std::vector<lost_disk> lost;
  std::vector<push_record> pushes;
  std::vector<concurrent_edit> concurrent_edits;
  /// Keys a node's conflicts table listed when a reset emptied it with the rest of its store.
  std::vector<core::record_key> conflicts_emptied;
  /// Stock counter identities a reset gave a node -> that node's identity.
  std::map<core::node_id, core::node_id> counter_owner;
  /// Initial stock level per (branch, product id), loaded at HQ before the run.
  std::vector<std::tuple<std::string, std::string, int64_t>> initial_stock;
  uint32_t lower_lane_every = 8;  ///< the lane scheduler's share the pushes were made with
  int64_t last_fault_ms = 0;      ///< when the last fault healed (chaos end at the latest)
  int64_t quiet_ms = -1;          ///< when the system was first quiet after that; -1 = never
  uint64_t faults_injected = 0;
  uint64_t events = 0;
};

/// One seed's deployment and run. Single-threaded; not copyable.
class world {
public:
  /// Builds the deployment (stores, registry, catalogue, initial stock) for opts.seed.
  static result<std::unique_ptr<world>> create(const options& opts);
  ~world();
  world(const world&) = delete;
  world& operator=(const world&) = delete;

  /// Chaos period, heal, then run until quiet or converge_bound_ms after the last fault.
  void run();

  const options& opts() const;
  const history& hist() const;
  /// Every node, HQ first, then each branch followed by its terminals.
  std::vector<node_view> nodes() const;
  const core::collection_registry& registry() const;
  int64_t now_ms() const;
  /// FNV-1a 64 of every trace line so far (the checker appends its verdict lines).
  uint64_t trace_hash() const;
  /// The trace text (empty unless opts.trace).
  const std::string& trace() const;
  /// Appends one line to the trace ("<time> <node> <event> ...").
  void trace_line(const std::string& line);

  struct impl;

private:
  explicit world(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

/// The invariants (dst.hpp, README): one line per violation, empty when all hold.
/// Each line names the invariant, the node and the key or figures involved.
std::vector<std::string> check_invariants(const world& w);

} // namespace possync::sim::dst
