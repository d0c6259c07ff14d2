#pragma once
// What the console, `inspect` and `demo` read from and write to a node store, on top
// of storage::node_store: the scopes a store holds, record counts, convergence
// digests, products as JSON, and the POS writes (products, field edits, stock, sales).
//
// Enumeration reads the feed: it holds one entry per record key of (tenant, scope,
// lane), so reading it from 0 is a snapshot of the records held.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "possync/core/error.hpp"
#include "possync/sim/pos_fixture.hpp"
#include "possync/storage/store.hpp"

namespace possync::tools {

/// A (tenant, scope) pair; scope "" = tenant-wide.
struct scope_id {
  std::string tenant;
  std::string scope;
  friend bool operator<(const scope_id& a, const scope_id& b) {
    return a.tenant != b.tenant ? a.tenant < b.tenant : a.scope < b.scope;
  }
  /// "tenant/scope" ("acme/" for tenant-wide).
  std::string name() const { return tenant + "/" + scope; }
};

/// Scopes this store may hold: (tenant, ""), (tenant, branch) if branch is set, and
/// for every tenant seen, the branches of the devices in its registry ("device" records).
result<std::vector<scope_id>> known_scopes(const storage::node_store& store, const std::string& tenant,
                                           const std::string& branch);

/// Calls fn for every record of `collection` in `scope` (tombstones included).
status for_each_record(const storage::node_store& store, const scope_id& scope, const std::string& collection,
                       const std::function<void(const core::record&)>& fn);

/// Records of `collection` held in `scopes` (deleted ones not counted).
/// invalid_argument for an unknown collection.
result<uint64_t> count_records(const storage::node_store& store, const std::vector<scope_id>& scopes,
                               const std::string& collection);

/// Keys "scope/id" of the records of `collection` held in `scopes` (tombstones skipped).
result<std::set<std::string>> record_ids(const storage::node_store& store,
                                         const std::vector<scope_id>& scopes, const std::string& collection);

/// Digest of the resolved records of one collection or one scope.
struct digest_part {
  uint64_t records = 0; ///< record keys held (deleted ones included: a delete must match too)
  uint64_t hash = 0;    ///< order-independent hash of (collection, id, resolved value)
};
/// Digest of one scope: overall and per collection.
struct scope_digest {
  scope_id id;
  digest_part all;
  std::map<std::string, digest_part> collections;
};
/// Digests of `scopes` over the collections in `only` (empty: all). Two nodes that
/// hold the same records of a scope have equal digests, whatever the order they got
/// them in. Scopes with no records are left out.
result<std::vector<scope_digest>> digest(const storage::node_store& store,
                                         const std::vector<scope_id>& scopes,
                                         const std::set<std::string>& only = {});
/// {"tenant/scope": {"records": N, "hash": "16 hex", "collections": {"sale": {...}}}}.
nlohmann::json digest_json(const std::vector<scope_digest>& d);

/// The product as JSON {id, sku, barcode, name, price, cost, unit, active, tax_rate_bp,
/// siblings, conflicted}, or nullopt if absent or deleted.
result<std::optional<nlohmann::json>> product_json(const storage::node_store& store,
                                                   const std::string& tenant, const std::string& id);
/// The active products of a tenant, as the sale generator wants them.
result<std::vector<sim::product_spec>> stored_catalog(const storage::node_store& store,
                                                      const std::string& tenant);

/// Writes (creates or replaces) product `id` as one record.
status put_product(storage::node_store& store, const std::string& tenant, const sim::product_spec& p);
/// Reads product `id`, sets one field ("name", "price", "barcode", "sku", "unit", "active",
/// "cost") to `value` and writes it with the read context, so concurrent edits of other
/// fields merge. not_found if absent; invalid_argument for a bad field or value.
status edit_product(storage::node_store& store, const std::string& tenant, const std::string& id,
                    const std::string& field, const std::string& value);
/// `n` generated products p00001..p<n> (5 digits), deterministic.
std::vector<sim::product_spec> numbered_catalog(size_t n, uint64_t seed = 42);

/// A sale made here.
struct sale_made {
  std::string id;                    ///< ULID
  int64_t total = 0;                 ///< minor units
  std::vector<sim::sale_line> lines; ///< product, thousandths
};
/// Records one sale of `quantity_milli` of product `product_id` (price from the
/// store) in `branch`, durable when it returns. not_found if the product is absent.
result<sale_made> sell_product(storage::node_store& store, const std::string& tenant,
                               const std::string& branch, const std::string& terminal_label,
                               const std::string& product_id, int64_t quantity_milli);
/// `n` random sales (1-5 lines) over `catalog`, each durable before the next.
/// failed_precondition on an empty catalogue. On an error the sales made so far
/// are in `made` (durable).
status sell_random(storage::node_store& store, const std::string& tenant, const std::string& branch,
                   const std::string& terminal_label, const std::vector<sim::product_spec>& catalog,
                   sim::rng& r, size_t n, std::vector<sale_made>& made);

/// True if the outbox holds no entry in any lane (read from the outbox itself).
result<bool> outbox_empty(const storage::node_store& store);

/// "1", "2.5", "0.250" -> thousandths; nullopt on anything else.
std::optional<int64_t> parse_quantity(const std::string& text);
/// A decimal integer (optionally negative); nullopt on anything else.
std::optional<int64_t> parse_int(const std::string& text);
/// 16 lower-case hex digits.
std::string hex64(uint64_t v);

} // namespace possync::tools
