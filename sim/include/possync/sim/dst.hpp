#pragma once
// Deterministic fault simulation (`possync sim --seeds N --faults all`).
//
// One seed fixes everything: the deployment (HQ, branches, terminals), the POS
// workload, every fault, every delay, the order in which the nodes run and the
// simulated clock. The run happens on one thread, driven by an event queue ordered by
// (simulated time, insertion number); nothing reads the wall clock or a shared random
// source, so the same seed on the same build gives the same trace, byte for byte.
//
// What runs is the engine below the CAF/gRPC shell, unchanged: the session protocol
// machines (actors::uplink_machine / downlink_machine, with admission, the lane
// scheduler, the backoff), the node stores (storage::node_store over RocksDB's
// in-memory environment, one database per node, commits on the caller's thread) and
// every merge and conflict policy of core/. The simulator replaces only the shell:
// it carries frames between machines over simulated links, runs their store commands
// as events, announces commits to downlinks the way the hub does, and restarts
// uplinks with the production backoff. The CAF shell itself is covered by node_tests
// and the real-process tests.
//
// A run: a chaos period (faults on, POS traffic on), then every fault healed and the
// traffic stopped, then the simulation runs until quiet (outboxes empty, feeds caught
// up) or the convergence bound passes; then the invariants are checked (see
// check_invariants in src/dst_world.hpp and the README of this folder).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "possync/core/error.hpp"

namespace possync::sim::dst {

/// Kinds of fault, as bits of a mask.
enum fault : uint32_t {
  fault_partition = 1u << 0, ///< node pairs or a whole branch cut off, seconds to days
  fault_cut = 1u << 1,       ///< a connection dropped, possibly mid-frame (frame lost)
  fault_delay = 1u << 2,     ///< frames delayed (ms to seconds), links slowed
  fault_duplicate = 1u << 3, ///< a frame delivered twice; full outbox replays (acks lost)
  fault_crash = 1u << 4,     ///< a node dies (writes not yet durable are lost) and restarts
  fault_clock = 1u << 5,     ///< clock skew of hours, backward jumps
  fault_disk = 1u << 6,      ///< disk full and I/O errors on writes for a while
  fault_disk_loss = 1u << 7, ///< a terminal loses its disk; rebuilt from upstream
  fault_reset = 1u << 8,     ///< an operator resets a branch or terminal (its unsent outbox kept)
  fault_all = (1u << 9) - 1,
};

/// "all", "none" or a comma list of partition,cut,delay,duplicate,crash,clock,disk,
/// disk-loss,reset. invalid_argument naming the unknown word.
result<uint32_t> parse_faults(const std::string& text);
/// The mask as parse_faults reads it ("all" when every bit is set).
std::string faults_to_string(uint32_t mask);

/// A bug planted on purpose in the simulated shell, to show that the simulation catches
/// it: a run with one must fail its invariants on some seeds (tests/unit/sim/dst_test.cpp).
/// Never what a node does; `none` is the engine as built.
enum class sabotage : uint8_t {
  none,
  /// The accepting end acks a Push as soon as it asks for the apply, before the apply is
  /// durable: a crash in between loses what the pusher already dropped from its outbox.
  ack_before_apply,
  /// An uplink, on any Ack, drops every entry its lane holds, also those not pushed yet.
  ack_whole_lane,
  /// A downloading node stores a Changes frame's cursor in a commit of its own, just
  /// before the frame's records: a crash or a failed write in between skips them.
  cursor_before_records,
};

/// "none", "ack-before-apply", "ack-whole-lane" or "cursor-before-records";
/// invalid_argument otherwise.
result<sabotage> parse_sabotage(const std::string& text);
std::string to_string(sabotage s);

/// One simulated run. Sizes are small on purpose: many seeds beat one big run.
struct options {
  uint64_t seed = 1;
  uint32_t faults = fault_all;
  size_t branches = 2;
  size_t terminals_per_branch = 2;
  size_t products = 12;
  int64_t chaos_ms = 6 * 3600'000;          ///< simulated time with faults and traffic [6 h]
  double sales_per_terminal_hour = 20;      ///< POS traffic during the chaos period
  int64_t converge_bound_ms = 30 * 60'000;  ///< after the last fault, everything quiet within this [30 min]
  bool trace = false;                       ///< keep the trace text in the result
  sabotage broken = sabotage::none;         ///< a planted bug (testing the simulation itself)
};

/// Outcome of one seed.
struct seed_result {
  uint64_t seed = 0;
  bool ok = false;                      ///< every invariant held
  std::vector<std::string> violations;  ///< one line each, naming node, key and figures
  uint64_t trace_hash = 0;              ///< FNV-1a 64 of the trace text (always computed)
  std::string trace;                    ///< the trace, one event per line (only with options.trace)
  uint64_t events = 0;                  ///< events run
  uint64_t faults_injected = 0;
  int64_t simulated_ms = 0;             ///< whole run, including the quiet period
  int64_t converged_after_ms = -1;      ///< from the last fault until quiet; -1 = never
  uint64_t sales_acked = 0;             ///< sales acknowledged to a POS app
  uint64_t sales_lost_with_disk = 0;    ///< acked but unsent when their terminal lost its disk
  uint64_t conflicts = 0;               ///< conflict entries found in the nodes' tables
  double seconds = 0;                   ///< wall time of the run (not part of the trace)
};

/// Runs one seed. Errors only for a setup that cannot start (bad options, a store
/// that does not open); a run whose invariants fail is a result with ok = false.
result<seed_result> run_seed(const options& opts);

/// The one-line command that replays a seed: "possync sim --seed S --faults F --trace"
/// (plus "--sabotage NAME" when a bug was planted).
std::string replay_command(const options& opts);

/// Many seeds.
struct multi_options {
  options base;                 ///< seed = the first seed; seeds first .. first+count-1
  uint64_t count = 100;
  size_t threads = 0;           ///< seeds run in parallel on this many threads (0 = cores)
  /// Called after each seed (from a worker thread, serialized): progress output.
  std::function<void(const seed_result&)> on_seed;
};

/// Outcome of many seeds. Field names are those TARGETS.md names for --json.
struct multi_result {
  uint64_t seeds = 0;
  uint64_t failed = 0;
  uint64_t faults_injected = 0;
  double simulated_hours = 0;
  uint64_t events = 0;
  uint64_t sales_acked = 0;
  uint64_t sales_lost_with_disk = 0;
  double seconds = 0;
  std::vector<seed_result> failures;  ///< each failing seed (violations kept, no trace)
};

result<multi_result> run_seeds(const multi_options& opts);

/// JSON: seeds, failed, faults_injected, simulated_hours, events, sales_acked,
/// sales_lost_with_disk, seconds, failures [{seed, replay, violations}].
std::string to_json(const multi_result& r, const options& base);
std::string to_json(const seed_result& r, const options& opts);
/// For a person: totals, then each failing seed with its replay command.
std::string to_text(const multi_result& r, const options& base);
std::string to_text(const seed_result& r, const options& opts);

} // namespace possync::sim::dst
