#include "store_view.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "possync/core/ids.hpp"
#include "possync/core/policy.hpp"
#include "possync/core/proto_convert.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::tools {

namespace {

constexpr size_t page = 2048;

// Calls fn(record) for every record of (tenant, scope, lane), paging through the feed.
template <class Fn>
status each_record(const storage::node_store& store, const scope_id& s, uint8_t lane, Fn&& fn) {
  uint64_t after = 0;
  for (;;) {
    auto batch = store.read_feed(s.tenant, s.scope, lane, after, page);
    if (!batch) return std::move(batch).err();
    for (const auto& e : *batch) {
      fn(e.rec);
      after = e.seq;
    }
    if (batch->size() < page) return {};
  }
}

core::resolved_view resolve_with(const storage::node_store& store, const core::record& r) {
  const auto* info = store.registry().find(r.key.collection);
  if (!info) return core::resolve(r, core::policy::lww);
  return core::resolve(r, info->policy, info->tie);
}

uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv(uint64_t h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  // Length and a separator, so ("ab","c") and ("a","bc") differ.
  h ^= s.size();
  h *= 0x100000001b3ull;
  return h;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

result<std::vector<scope_id>> known_scopes(const storage::node_store& store, const std::string& tenant,
                                           const std::string& branch) {
  std::set<scope_id> out;
  out.insert({tenant, ""});
  if (!branch.empty()) out.insert({tenant, branch});
  std::set<std::string> tenants{tenant};
  const auto* dev = store.registry().find("device");
  for (const auto& t : tenants) {
    if (!dev) break;
    v1::Device d;
    auto st = each_record(store, {t, ""}, dev->lane, [&](const core::record& r) {
      if (r.key.collection != "device") return;
      auto v = resolve_with(store, r);
      if (v.exists && d.ParseFromString(v.body) && !d.branch().empty()) out.insert({t, d.branch()});
    });
    if (st) return st;
  }
  return std::vector<scope_id>(out.begin(), out.end());
}

status for_each_record(const storage::node_store& store, const scope_id& scope, const std::string& collection,
                       const std::function<void(const core::record&)>& fn) {
  const auto* info = store.registry().find(collection);
  if (!info) return error(errc::invalid_argument, "unknown collection '" + collection + "'");
  return each_record(store, scope, info->lane, [&](const core::record& r) {
    if (r.key.collection == collection) fn(r);
  });
}

result<uint64_t> count_records(const storage::node_store& store, const std::vector<scope_id>& scopes,
                               const std::string& collection) {
  auto ids = record_ids(store, scopes, collection);
  if (!ids) return std::move(ids).err();
  return static_cast<uint64_t>(ids->size());
}

result<std::set<std::string>> record_ids(const storage::node_store& store,
                                         const std::vector<scope_id>& scopes, const std::string& collection) {
  const auto* info = store.registry().find(collection);
  if (!info) return error(errc::invalid_argument, "unknown collection '" + collection + "'");
  std::set<std::string> ids;
  for (const auto& s : scopes) {
    auto st = each_record(store, s, info->lane, [&](const core::record& r) {
      if (r.key.collection != collection) return;
      if (resolve_with(store, r).exists) ids.insert(r.key.scope + "/" + r.key.id);
    });
    if (st) return st;
  }
  return ids;
}

result<std::vector<scope_digest>> digest(const storage::node_store& store,
                                         const std::vector<scope_id>& scopes,
                                         const std::set<std::string>& only) {
  std::vector<scope_digest> out;
  for (const auto& s : scopes) {
    scope_digest d;
    d.id = s;
    for (uint8_t lane = 0; lane < core::lane_count; ++lane) {
      auto st = each_record(store, s, lane, [&](const core::record& r) {
        if (!only.empty() && !only.count(r.key.collection)) return;
        auto v = resolve_with(store, r);
        uint64_t h = 0xcbf29ce484222325ull;
        h = fnv(h, r.key.collection);
        h = fnv(h, r.key.id);
        h = fnv(h, v.exists ? std::string("1") : std::string("0"));
        if (v.exists) h = fnv(h, v.body);
        h = mix(h);
        auto& c = d.collections[r.key.collection];
        c.records++;
        c.hash += h;
        d.all.records++;
        d.all.hash += h;
      });
      if (st) return st;
    }
    if (d.all.records > 0) out.push_back(std::move(d));
  }
  return out;
}

nlohmann::json digest_json(const std::vector<scope_digest>& d) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& s : d) {
    nlohmann::json cols = nlohmann::json::object();
    for (const auto& [name, part] : s.collections)
      cols[name] = {{"records", part.records}, {"hash", hex64(part.hash)}};
    out[s.id.name()] = {{"records", s.all.records}, {"hash", hex64(s.all.hash)}, {"collections", cols}};
  }
  return out;
}

result<std::optional<nlohmann::json>> product_json(const storage::node_store& store,
                                                   const std::string& tenant, const std::string& id) {
  auto v = store.read(sim::product_key(tenant, id));
  if (!v) return std::move(v).err();
  if (!v->exists) return std::optional<nlohmann::json>{};
  v1::Product p;
  if (!p.ParseFromString(v->body))
    return error(errc::data_loss, "product '" + id + "' does not parse as possync.v1.Product");
  nlohmann::json j = {{"id", id},
                      {"sku", p.sku()},
                      {"barcode", p.barcode()},
                      {"name", p.name()},
                      {"price", p.price()},
                      {"cost", p.cost()},
                      {"unit", p.unit()},
                      {"active", p.active()},
                      {"tax_rate_bp", p.tax_rate_bp()},
                      {"siblings", v->siblings},
                      {"conflicted", v->conflicted}};
  return std::optional<nlohmann::json>(std::move(j));
}

result<std::vector<sim::product_spec>> stored_catalog(const storage::node_store& store,
                                                      const std::string& tenant) {
  std::vector<sim::product_spec> out;
  const auto* info = store.registry().find("product");
  if (!info) return error(errc::failed_precondition, "this store has no product collection");
  v1::Product p;
  auto st = each_record(store, {tenant, ""}, info->lane, [&](const core::record& r) {
    if (r.key.collection != "product") return;
    auto v = resolve_with(store, r);
    if (!v.exists || !p.ParseFromString(v.body) || !p.active()) return;
    sim::product_spec s;
    s.id = r.key.id;
    s.sku = p.sku();
    s.barcode = p.barcode();
    s.name = p.name();
    s.unit = p.unit().empty() ? "pcs" : p.unit();
    s.price = p.price();
    s.cost = p.cost();
    s.tax_rate_bp = p.tax_rate_bp();
    out.push_back(std::move(s));
  });
  if (st) return st;
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

status put_product(storage::node_store& store, const std::string& tenant, const sim::product_spec& p) {
  storage::put_op put;
  put.key = sim::product_key(tenant, p.id);
  put.body = sim::product_body(p);
  auto res = store.write({std::move(put)});
  if (!res) return std::move(res).err();
  return {};
}

status edit_product(storage::node_store& store, const std::string& tenant, const std::string& id,
                    const std::string& field, const std::string& value) {
  auto key = sim::product_key(tenant, id);
  auto rec = store.get(key);
  if (!rec) return std::move(rec).err();
  if (!rec->has_value()) return error(errc::not_found, "product '" + id + "' not found");
  auto v = resolve_with(store, **rec);
  if (!v.exists) return error(errc::not_found, "product '" + id + "' is deleted");
  v1::Product p;
  if (!p.ParseFromString(v.body))
    return error(errc::data_loss, "product '" + id + "' does not parse as possync.v1.Product");
  auto as_int = [&](int64_t& out) -> status {
    auto n = parse_int(value);
    if (!n) return error(errc::invalid_argument, field + " must be an integer, got '" + value + "'");
    out = *n;
    return {};
  };
  int64_t n = 0;
  if (field == "name") {
    p.set_name(value);
  } else if (field == "price") {
    if (auto e = as_int(n)) return e;
    p.set_price(n);
  } else if (field == "cost") {
    if (auto e = as_int(n)) return e;
    p.set_cost(n);
  } else if (field == "barcode") {
    p.set_barcode(value);
  } else if (field == "sku") {
    p.set_sku(value);
  } else if (field == "unit") {
    p.set_unit(value);
  } else if (field == "active") {
    if (value != "true" && value != "false")
      return error(errc::invalid_argument, "active must be true or false, got '" + value + "'");
    p.set_active(value == "true");
  } else {
    return error(errc::invalid_argument,
                 "unknown product field '" + field + "' (name, price, cost, barcode, sku, unit, active)");
  }
  storage::put_op put;
  put.key = key;
  put.body = core::serialize_deterministic(p);
  // The context of what we read: a concurrent edit we did not see stays a sibling and
  // its fields merge with ours.
  put.context = (*rec)->context();
  auto res = store.write({std::move(put)});
  if (!res) return std::move(res).err();
  return {};
}

std::vector<sim::product_spec> numbered_catalog(size_t n, uint64_t seed) {
  auto specs = sim::generate_catalog(n, seed);
  for (size_t i = 0; i < specs.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "p%05zu", i + 1);
    specs[i].id = buf;
  }
  return specs;
}

result<sale_made> sell_product(storage::node_store& store, const std::string& tenant,
                               const std::string& branch, const std::string& terminal_label,
                               const std::string& product_id, int64_t quantity_milli) {
  if (branch.empty()) return error(errc::failed_precondition, "this node has no branch to sell in");
  auto v = store.read(sim::product_key(tenant, product_id));
  if (!v) return std::move(v).err();
  v1::Product p;
  if (!v->exists) return error(errc::not_found, "product '" + product_id + "' not found");
  if (!p.ParseFromString(v->body))
    return error(errc::data_loss, "product '" + product_id + "' does not parse as possync.v1.Product");
  sale_made made;
  made.id = store.new_id();
  int64_t t = now_ms();
  v1::Sale s;
  s.set_receipt_no(made.id);
  s.set_terminal_id(terminal_label);
  s.set_cashier_id("console");
  s.set_currency("IDR");
  s.set_time_ms(t);
  auto* item = s.add_items();
  item->set_product_id(product_id);
  item->set_sku(p.sku());
  item->set_name(p.name());
  item->set_quantity(quantity_milli);
  item->set_unit_price(p.price());
  int64_t line = quantity_milli * p.price() / 1000;
  item->set_line_total(line);
  int64_t rate = p.tax_rate_bp();
  item->set_tax(rate > 0 ? line * rate / (10000 + rate) : 0);
  s.set_subtotal(line);
  s.set_tax_total(item->tax());
  s.set_total(line);
  auto* pay = s.add_payments();
  pay->set_id(made.id + "-1");
  pay->set_sale_id(made.id);
  pay->set_method("cash");
  pay->set_amount(line);
  pay->set_tendered(line);
  pay->set_time_ms(t);
  auto res = store.record_sale(core::record_key{tenant, branch, "sale", made.id}, s.SerializeAsString());
  if (!res) return std::move(res).err();
  made.total = line;
  made.lines.push_back({product_id, quantity_milli});
  return made;
}

status sell_random(storage::node_store& store, const std::string& tenant, const std::string& branch,
                   const std::string& terminal_label, const std::vector<sim::product_spec>& catalog,
                   sim::rng& r, size_t n, std::vector<sale_made>& made) {
  if (branch.empty()) return error(errc::failed_precondition, "this node has no branch to sell in");
  if (catalog.empty())
    return error(errc::failed_precondition, "no products in this store yet (catalogue not synced?)");
  sim::sale_context ctx;
  ctx.terminal_id = terminal_label;
  for (size_t i = 0; i < n; ++i) {
    sale_made m;
    m.id = store.new_id();
    ctx.receipt_no = i + 1;
    ctx.time_ms = now_ms();
    auto draft = sim::make_sale(r, catalog, m.id, ctx);
    auto res = store.record_sale(core::record_key{tenant, branch, "sale", m.id}, draft.body);
    if (!res) {
      auto e = std::move(res).err();
      e.message = "sale " + std::to_string(i + 1) + " of " + std::to_string(n) + ": " + e.message;
      return e;
    }
    m.total = draft.total;
    m.lines = std::move(draft.lines);
    made.push_back(std::move(m));
  }
  return {};
}

result<bool> outbox_empty(const storage::node_store& store) {
  for (uint8_t lane = 0; lane < core::lane_count; ++lane) {
    auto w = store.outbox_window(lane, 0, 1);
    if (!w) return std::move(w).err();
    if (!w->empty()) return false;
  }
  return true;
}

std::optional<int64_t> parse_int(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  size_t i = text[0] == '-' ? 1 : 0;
  if (i == text.size()) return std::nullopt;
  int64_t v = 0;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    v = v * 10 + (text[i] - '0');
  }
  return text[0] == '-' ? -v : v;
}

std::optional<int64_t> parse_quantity(const std::string& text) {
  auto dot = text.find('.');
  auto whole = parse_int(text.substr(0, dot));
  if (!whole || text[0] == '-') return std::nullopt;
  int64_t milli = *whole * 1000;
  if (dot != std::string::npos) {
    std::string frac = text.substr(dot + 1);
    if (frac.empty() || frac.size() > 3) return std::nullopt;
    while (frac.size() < 3)
      frac += '0';
    auto f = parse_int(frac);
    if (!f || frac[0] == '-') return std::nullopt;
    milli += *f;
  }
  return milli;
}

} // namespace possync::tools
