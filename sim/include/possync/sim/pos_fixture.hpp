#pragma once
// Realistic point-of-sale data for demos, workloads and crash tests: a catalogue of
// products with barcodes, names and prices, and random sales over it. Deterministic
// for a given seed. Money is integer minor units (rupiah), quantities thousandths.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "possync/core/error.hpp"
#include "possync/core/record.hpp"

namespace possync::storage {
class node_store;
}

namespace possync::sim {

/// Deterministic random numbers (splitmix64). Not thread-safe: one per thread.
class rng {
public:
  explicit rng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64();
  /// Uniform in [0, n); n > 0.
  uint64_t below(uint64_t n) { return next_u64() % n; }
  /// Uniform in [lo, hi].
  int64_t between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo + 1)));
  }

private:
  uint64_t state_;
};

/// One product of a catalogue.
struct product_spec {
  std::string id; ///< record id ("p000001")
  std::string sku;
  std::string barcode; ///< 13-digit EAN with a valid check digit
  std::string name;
  std::string unit;  ///< "pcs" or "kg" (kg products sell in fractions)
  int64_t price = 0; ///< minor units, tax included
  int64_t cost = 0;  ///< minor units
  int32_t tax_rate_bp = 1100;
};

/// The fixed 20-product demo catalogue of a small grocery.
const std::vector<product_spec>& demo_catalog();
/// `n` generated grocery products (ids p000000.., unique barcodes, names such as
/// "Indomie Goreng 85g" drawn from brand/item/size lists), deterministic from `seed`.
std::vector<product_spec> generate_catalog(size_t n, uint64_t seed);

/// Serialized possync.v1.Product of `p`.
std::string product_body(const product_spec& p);
/// Key of product `id` (tenant-wide).
core::record_key product_key(const std::string& tenant, const std::string& id);
/// Key of the stock counter of product `id` in `branch`.
core::record_key stock_key(const std::string& tenant, const std::string& branch, const std::string& id);

/// Writes every product of `catalog` and an initial stock of `initial_stock`
/// thousandths per product (a counter_op) in commits of at most `batch` products.
/// With batch >= catalog.size() the whole load is one atomic commit.
status load_catalog(storage::node_store& store, const std::string& tenant, const std::string& branch,
                    const std::vector<product_spec>& catalog, int64_t initial_stock, size_t batch);
/// True if the first product of `catalog` is stored (the catalogue was loaded).
result<bool> catalog_loaded(const storage::node_store& store, const std::string& tenant,
                            const std::vector<product_spec>& catalog);

/// One line of a generated sale.
struct sale_line {
  std::string product_id;
  int64_t quantity = 0; ///< thousandths
};

/// Who sells, for the receipt.
struct sale_context {
  std::string terminal_id = "T1";
  std::string cashier_id = "cashier-1";
  std::string shift_id = "shift-1";
  std::string currency = "IDR";
  uint64_t receipt_no = 1;
  int64_t time_ms = 0;
};

/// A generated sale: the serialized possync.v1.Sale and what it takes from stock.
struct sale_draft {
  std::string body;
  std::vector<sale_line> lines;
  int64_t total = 0;  ///< minor units
  std::string method; ///< "cash", "card" or "qris"
};

/// A random sale of `min_items`..`max_items` lines (distinct products), integer
/// totals (line_total = quantity * unit_price / 1000 - discount; tax included in
/// the price), and one payment (cash with tendered/change, card or QRIS).
sale_draft make_sale(rng& r, const std::vector<product_spec>& catalog, const std::string& sale_id,
                     const sale_context& ctx, int min_items = 1, int max_items = 5);

/// The lines (product, quantity) of a serialized possync.v1.Sale; invalid_argument
/// if it does not parse.
result<std::vector<sale_line>> parse_sale_lines(const std::string& sale_body);

} // namespace possync::sim
