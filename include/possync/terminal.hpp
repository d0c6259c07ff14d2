#pragma once
// possync embedding API for a POS app (C++17, standard library types only).
//
// A `terminal` is a possync node in the terminal role running inside the POS app: a
// durable local store (RocksDB) plus a sync session to the store's branch server (or
// HQ) that runs in the background. Selling never waits for the network: record_sale()
// returns once the sale is durable on this machine, with the stock decremented in the
// same commit; the sale then travels up by itself, exactly once, whenever a link is
// available. Catalogue and price changes arrive by themselves too; subscribe() tells
// the UI when to refresh.
//
//   possync::terminal_config cfg;
//   cfg.tenant = "acme"; cfg.branch = "jkt-01"; cfg.node_id = 0x1001;
//   cfg.upstreams = {"10.0.0.5:7400"};
//   auto t = possync::terminal::open("/var/lib/pos/possync", cfg);
//   if (!t) { show(t.error_message); return; }
//   auto p = t.value->product_by_barcode("8991234567890");
//   auto sale = t.value->record_sale({{{p->id, 1000, p->price}}, {{"cash", p->price, 0}}});
//
// Thread-safety: every member may be called from any thread at any time. Callbacks
// passed to subscribe() run on a possync thread: keep them short (post to the UI).
// Errors: calls return a `terminal_result`/`terminal_status` whose `code` is a gRPC
// status code number (0 = ok) and `message` says what went wrong; nothing throws.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace possync {

/// Outcome of a call without a value. code: 0 ok, otherwise a gRPC status code
/// (3 invalid argument, 5 not found, 8 disk full, 14 unavailable ...).
struct terminal_status {
  int code = 0;
  std::string message;
  bool ok() const { return code == 0; }
};

/// Outcome of a call with a value (`value` is set when code == 0).
template <class T>
struct terminal_result {
  int code = 0;
  std::string error_message;
  std::optional<T> value;
  bool ok() const { return code == 0; }
  explicit operator bool() const { return ok(); }
};

/// How the terminal connects and what it is.
struct terminal_config {
  std::string tenant;                   ///< required: the chain ("acme")
  std::string branch;                   ///< required: this store's branch id ("jkt-01")
  uint64_t node_id = 0;                 ///< this register's id in HQ's registry; 0 = keep/generate
  std::vector<std::string> upstreams;   ///< "host:port" of the branch server (then HQ), tried in order
  int64_t retry_initial_ms = 1000;      ///< first reconnect delay [1 s], doubling...
  int64_t retry_max_ms = 30000;         ///< ...up to this [30 s]
  int64_t stale_after_ms = 300000;      ///< status().stale after this long without a sync [5 min]
  bool in_memory = false;               ///< no files (tests); nothing survives close
  /// Receive the branch's stock levels [true]. Every sale changes its products' stock,
  /// and each change goes to every register of the branch: with many registers per
  /// branch (W7 in TARGETS.md: 100) that work grows with the square of the registers.
  /// false: the register downloads everything but stock; stock() then refuses
  /// (failed precondition) and product_info.stock_known is false. Sales still
  /// decrement stock at the branch and HQ as always.
  bool live_stock = true;
};

/// A product as the register shows it (the tenant-wide product record).
struct product_info {
  std::string id;
  std::string sku;
  std::string barcode;
  std::string name;
  int64_t price = 0;          ///< minor units, tax included
  bool active = true;
  int64_t stock_milli = 0;    ///< this branch's stock, thousandths of a unit
  bool stock_known = true;    ///< false on a register without live stock (stock_milli 0)
};

/// One line of a sale.
struct sale_line {
  std::string product_id;
  int64_t quantity_milli = 1000;  ///< thousandths of a unit (1000 = one piece)
  int64_t unit_price = 0;         ///< minor units
  int64_t discount = 0;           ///< minor units, whole line
};
/// One payment of a sale.
struct sale_payment {
  std::string method = "cash";    ///< "cash", "card", "qris", "voucher" ...
  int64_t amount = 0;             ///< minor units
  int64_t change = 0;             ///< cash returned
  std::string reference;          ///< approval code
};
/// A sale to record. Totals are computed from the lines.
struct sale_input {
  std::vector<sale_line> lines;
  std::vector<sale_payment> payments;
  std::string cashier_id;
  std::string customer_id;
  std::string receipt_no;         ///< "" = the sale id
  std::string currency = "IDR";
};
/// A recorded sale.
struct sale_receipt {
  std::string sale_id;            ///< ULID, unique across the chain
  int64_t total = 0;
  int64_t time_ms = 0;
};

/// What the POS screen shows about sync (cf. the original sync dashboard).
struct terminal_sync_status {
  bool online = false;                       ///< a session with the upstream is up
  std::string upstream;                      ///< which endpoint
  std::array<uint64_t, 4> pending{};         ///< unsent records per lane (sales, stock, catalogue, reports)
  uint64_t pending_total = 0;
  int64_t last_sync_ms = 0;                  ///< wall clock of the last complete sync, 0 = never
  int64_t since_last_sync_ms = -1;           ///< -1 = never
  bool stale = false;                        ///< no sync for longer than stale_after_ms
  uint64_t lag_records = 0;                  ///< updates known to be waiting upstream
  int64_t clock_skew_ms = 0;                 ///< upstream clock minus ours
  bool caught_up = false;                    ///< catalogue download complete and live
  std::string last_error;                    ///< why the last session ended; cleared once a new session is welcomed
};

/// An elapsed time as a POS screen says it: "just now" (under 5 s), "45 s ago",
/// "2 min ago", "3 h ago" (under 48 h), "2 days ago". `ms` < 0 (never): "never".
std::string relative_age(int64_t ms);

/// One line for the POS screen's sync indicator (cf. the original sync dashboard):
///   "Online · all synced · last sync just now"
///   "Online · 3 sales pending · last sync 2 min ago"
///   "Offline · 12 sales, 1 update waiting · last sync 3 h ago — check the network"
/// Sales are lane 0, updates every other lane. Past stale_after_ms (`stale`) it ends
/// with a warning: offline "— check the network", online "— sync is behind".
std::string describe(const terminal_sync_status& s);

/// A change that arrived or was made (for UI refresh).
struct terminal_change {
  std::string collection;   ///< "product", "price", "stock", "sale" ...
  std::string scope;        ///< "" tenant-wide, else the branch
  std::string id;
};

/// A running terminal node. Close by destroying it (sessions end cleanly; nothing
/// durable is lost).
class terminal {
public:
  /// Opens (or creates) the store in `dir` and starts syncing in the background.
  static terminal_result<std::unique_ptr<terminal>> open(const std::string& dir, const terminal_config& cfg);
  ~terminal();
  terminal(const terminal&) = delete;
  terminal& operator=(const terminal&) = delete;

  /// Records a sale; returns after the durable local commit (sale + payments + stock
  /// decrement in one commit). Code 3 for an invalid sale, 8 when the disk is full,
  /// 14 on other I/O errors (the sale is then NOT recorded).
  terminal_result<sale_receipt> record_sale(const sale_input& sale);
  /// Product by id, or code 5 (not found).
  terminal_result<product_info> product(const std::string& id) const;
  /// Product by barcode (main or alternative), or code 5.
  terminal_result<product_info> product_by_barcode(const std::string& barcode) const;
  /// Up to `limit` products whose name starts with `prefix` (case-insensitive), by name.
  terminal_result<std::vector<product_info>> search(const std::string& prefix, size_t limit = 50) const;
  /// This branch's stock of a product, thousandths. Code 9 (failed precondition) on a
  /// register opened with live_stock = false.
  terminal_result<int64_t> stock(const std::string& product_id) const;

  /// `fn` is called after each durable commit (local or synced). Returns an id.
  uint64_t subscribe(std::function<void(const std::vector<terminal_change>&)> fn);
  void unsubscribe(uint64_t id);

  terminal_sync_status status() const;
  /// Connect/push now instead of waiting for the retry timer.
  void sync_now();
  /// Download the whole catalogue again (unsent sales are kept and still sent).
  terminal_status full_resync();
  /// This register's node id.
  uint64_t node_id() const;

  struct impl;

private:
  explicit terminal(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

} // namespace possync
