#pragma once
// The console of a running node: the same line protocol for every role (`possync hq
// --console`, `possync branch --console`, `possync terminal`, `possync demo
// --keep-running`), meant for people and for tests that drive a real process over
// pipes.
//
// Protocol
// - One command per input line; words are separated by spaces; a word may be
//   "double quoted" (with \" and \\ inside) to hold spaces. Empty lines and lines
//   starting with '#' are ignored (no response).
// - Exactly one response line per command, in order, starting with "ok" or "err":
//     ok                         success without a value
//     ok <JSON>                  success with a value (one line of JSON)
//     err <code>: <message>      failure; <code> is an errc name (invalid_argument,
//                                not_found, failed_precondition, unavailable,
//                                resource_exhausted ...), "usage" for a malformed
//                                command, or "timeout" for a wait that ran out.
//   Nothing else is written to stdout while a command runs (logs go to stderr).
// - A prompt ("possync> ", no newline) is printed only when stdin is a terminal.
// - End of input or `quit` ends the console (and the process of hq/branch/terminal).
//
// Commands (QTY in units, "1.5" allowed, stored as thousandths; PRICE in minor units):
//   help                          ok {"commands":[...]}
//   status                        ok {node, role, tenant, branch, online, upstream, caught_up,
//                                    pending:[sales,stock,catalog,reports], pending_total,
//                                    last_sync_ms, lag_records, skew_ms, downstream_sessions,
//                                    uplink_restarts, last_error, rejected, last_rejection, port,
//                                    summary} where summary (not at HQ) is the POS screen's line,
//                                    possync::describe(): "Online · 3 sales pending · last sync
//                                    2 min ago", stale past 5 min (terminal_config default)
//   product ID NAME PRICE [BARCODE]   write/replace a product (unit pcs, active)
//                                     ok {"id":ID}
//   price ID PRICE                field edit: read, change price, write with the read context
//   rename ID NAME                field edit of the name (same)
//   catalogue N [STOCK [BRANCH]]  products p00001..pN (generated names, prices, barcodes);
//                                 with STOCK, add STOCK units of each to BRANCH's stock
//                                 (default: this node's branch)   ok {"products":N}
//   stock ID QTY [BRANCH]         add QTY units to the stock of ID in BRANCH (a counter
//                                 delta; on a new product this sets the initial stock)
//                                 ok {"branch":B,"id":ID,"stock_milli":LEVEL}
//   sell PRODUCT QTY              one durable sale (record_sale) in this node's branch
//                                 ok {"sale":ULID,"total":T}
//   sell-n N                      N random sales (1-5 lines) over the products in this store
//                                 ok {"sales":N,"total":T,"sold":{"p00001":milli,...}}
//   count COLLECTION              records of COLLECTION held here (all known scopes)
//                                 ok {"collection":C,"count":N}
//   get-stock BRANCH ID           ok {"branch":B,"id":ID,"stock_milli":LEVEL}
//   get-product ID                ok {id, sku, barcode, name, price, cost, unit, active,
//                                    tax_rate_bp, siblings, conflicted} | err not_found
//   digest [COLLECTION ...]       ok {"tenant/scope":{"records":N,"hash":H,"collections":{...}}}
//                                 resolved records per (tenant, scope), order-independent:
//                                 equal on two nodes holding the same records
//   wait-synced SECONDS           until the outbox is empty and (with an upstream) the
//                                 download is caught up           ok {status} | err timeout
//   wait-count COLLECTION N SECONDS   until count >= N            ok {"count":C} | err timeout
//   wait-product ID FIELD VALUE SECONDS   until get-product's FIELD (as text: price
//                                 "1500", active "true") equals VALUE   ok {product} | err timeout
//   offline / online              cut / restore the uplink (node::set_uplink_enabled)
//   sync                          try the upstream now
//   resync                        forget cursors, download everything again
//   device TENANT:BRANCH:NODEHEX:ROLE[:NAME]   register a device (HQ)
//   conflicts                     ok {"conflicts":[{key, policy, rule, resolved}]} (unresolved)
//   use NAME                      switch node (demo: hq, branch, t1, t2, t3)   ok {"node":NAME}
//   nodes                         ok {"nodes":[NAME...],"current":NAME}
//   quit                          ok, then the console ends

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "possync/node/node.hpp"

namespace possync::tools {

/// Splits a console line into words (double quotes group, \" and \\ escape).
/// invalid_argument for an unterminated quote.
result<std::vector<std::string>> split_words(const std::string& line);

/// Console over one or more running nodes (the first is current). Not thread-safe:
/// one reader thread calls execute()/run().
class console {
public:
  /// A node the console can work on.
  struct target {
    std::string name; ///< for `use`
    node::node* node; ///< not owned; must outlive the console
  };
  explicit console(std::vector<target> nodes);
  ~console();
  console(const console&) = delete;
  console& operator=(const console&) = delete;

  /// Runs one command line; returns the response line (no newline), or "" for a
  /// blank/comment line.
  std::string execute(const std::string& line);
  /// True once `quit` ran (not at end of input).
  bool done() const { return done_; }
  /// Reads lines from `fd` until end of input, `quit`, or `stop` turns true (checked
  /// every 100 ms); writes responses to `out` (flushed after each).
  void run(int fd, FILE* out, const std::atomic<bool>& stop);
  /// Runs the commands of a file, echoing "> command" before each response. Returns
  /// the number of commands that failed, or -1 if the file cannot be read.
  int run_script(const std::string& path, FILE* out, const std::atomic<bool>& stop);

private:
  std::string dispatch(const std::vector<std::string>& w);
  template <class Pred> bool wait_for(Pred pred, double seconds);

  std::vector<target> nodes_;
  size_t current_ = 0;
  std::vector<uint64_t> subscriptions_;
  bool done_ = false;
  const std::atomic<bool>* stop_ = nullptr;
  uint64_t sale_seed_;
  int64_t started_ms_; ///< wall clock at construction: staleness while never synced
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t changes_ = 0;
};

/// node_status as the JSON of `status`.
std::string status_json(const node::node_status& s);

} // namespace possync::tools
