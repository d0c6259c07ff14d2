#include "possync/sim/pos_fixture.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include "possync/storage/store.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::sim {

uint64_t rng::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

// EAN-13 from a 12-digit prefix: append the check digit.
std::string ean13(const std::string& first12) {
  int sum = 0;
  for (size_t i = 0; i < 12; ++i)
    sum += (first12[i] - '0') * (i % 2 == 0 ? 1 : 3);
  return first12 + static_cast<char>('0' + (10 - sum % 10) % 10);
}

product_spec demo(const char* id, const char* digits, const char* name, const char* unit, int64_t price) {
  product_spec p;
  p.id = id;
  p.sku = std::string("SKU-") + (id + 1);
  p.barcode = ean13(digits);
  p.name = name;
  p.unit = unit;
  p.price = price;
  p.cost = price * 8 / 10;
  return p;
}

} // namespace

const std::vector<product_spec>& demo_catalog() {
  static const std::vector<product_spec> catalog = {
      demo("p0001", "899100000001", "Aqua Mineral Water 600ml", "pcs", 4000),
      demo("p0002", "899100000002", "Indomie Goreng 85g", "pcs", 3500),
      demo("p0003", "899100000003", "Indomie Soto 75g", "pcs", 3300),
      demo("p0004", "899100000004", "Teh Botol Sosro 450ml", "pcs", 5500),
      demo("p0005", "899100000005", "Coca-Cola 390ml", "pcs", 7000),
      demo("p0006", "899100000006", "Coffee Kapal Api 165g", "pcs", 14500),
      demo("p0007", "899100000007", "Chitato Beef BBQ 68g", "pcs", 11000),
      demo("p0008", "899100000008", "Roti Tawar Sari Roti", "pcs", 16000),
      demo("p0009", "899100000009", "Ultra Milk Chocolate 250ml", "pcs", 6500),
      demo("p0010", "899100000010", "Beras Pandan Wangi", "kg", 15000),
      demo("p0011", "899100000011", "Gula Pasir Gulaku 1kg", "pcs", 17500),
      demo("p0012", "899100000012", "Minyak Goreng Bimoli 2l", "pcs", 38000),
      demo("p0013", "899100000013", "Telur Ayam", "kg", 29000),
      demo("p0014", "899100000014", "Sabun Lifebuoy 85g", "pcs", 4500),
      demo("p0015", "899100000015", "Shampoo Sunsilk 170ml", "pcs", 24000),
      demo("p0016", "899100000016", "Pepsodent Toothpaste 190g", "pcs", 15500),
      demo("p0017", "899100000017", "Cokelat SilverQueen 58g", "pcs", 13500),
      demo("p0018", "899100000018", "Kopi Good Day Cappuccino", "pcs", 2000),
      demo("p0019", "899100000019", "Bawang Merah", "kg", 42000),
      demo("p0020", "899100000020", "Tissue Paseo 250 sheets", "pcs", 21000),
  };
  return catalog;
}

std::vector<product_spec> generate_catalog(size_t n, uint64_t seed) {
  static const char* brands[] = {"Abc",   "Bango",   "Cap Lang", "Dancow",  "Energen",  "Fanta",   "Good Day",
                                 "Hilo",  "Indomie", "Jawara",   "Kapal",   "Lays",     "Mamy",    "Nestle",
                                 "Oreo",  "Pocari",  "Quaker",   "Rinso",   "Sedaap",   "Tango",   "Ultra",
                                 "Vixal", "Wardah",  "Yakult",   "Zwitsal", "Sunlight", "Pantene", "Molto"};
  static const char* items[] = {"Biscuit", "Cereal",  "Coffee", "Cookies", "Crackers", "Detergent",
                                "Juice",   "Ketchup", "Milk",   "Noodles", "Oil",      "Rice",
                                "Sauce",   "Shampoo", "Snack",  "Soap",    "Soda",     "Sugar",
                                "Syrup",   "Tea",     "Water",  "Wafer",   "Yoghurt",  "Candy",
                                "Chips",   "Flour",   "Jam",    "Butter"};
  static const char* sizes[] = {"50g",   "85g",   "100g", "250g", "500g", "1kg",
                                "250ml", "600ml", "1l",   "1.5l", "2l",   "6 pack"};
  rng r(seed);
  std::vector<product_spec> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    product_spec p;
    char buf[32];
    std::snprintf(buf, sizeof buf, "p%06zu", i);
    p.id = buf;
    std::snprintf(buf, sizeof buf, "SKU-%06zu", i);
    p.sku = buf;
    std::snprintf(buf, sizeof buf, "899%09zu", i);
    p.barcode = ean13(buf);
    p.name = std::string(brands[r.below(std::size(brands))]) + " " + items[r.below(std::size(items))] + " " +
             sizes[r.below(std::size(sizes))] + " #" + std::to_string(i);
    p.unit = r.below(20) == 0 ? "kg" : "pcs";
    p.price = r.between(10, 2000) * 500; // 5,000 .. 1,000,000 rupiah in steps of 500
    p.cost = p.price * 8 / 10;
    p.tax_rate_bp = 1100;
    out.push_back(std::move(p));
  }
  return out;
}

std::string product_body(const product_spec& p) {
  v1::Product m;
  m.set_sku(p.sku);
  m.set_barcode(p.barcode);
  m.set_name(p.name);
  m.set_category_id("cat-grocery");
  m.set_price(p.price);
  m.set_cost(p.cost);
  m.set_unit(p.unit);
  m.set_active(true);
  m.set_tax_rate_bp(p.tax_rate_bp);
  m.set_shelf_label(p.name);
  m.set_track_stock(true);
  m.set_min_stock(10'000);
  return m.SerializeAsString();
}

core::record_key product_key(const std::string& tenant, const std::string& id) {
  return core::record_key{tenant, "", "product", id};
}

core::record_key stock_key(const std::string& tenant, const std::string& branch, const std::string& id) {
  return core::record_key{tenant, branch, "stock", id};
}

status load_catalog(storage::node_store& store, const std::string& tenant, const std::string& branch,
                    const std::vector<product_spec>& catalog, int64_t initial_stock, size_t batch) {
  if (batch == 0) return error(errc::invalid_argument, "load_catalog: batch must be at least 1");
  for (size_t begin = 0; begin < catalog.size(); begin += batch) {
    size_t end = std::min(catalog.size(), begin + batch);
    std::vector<storage::write_op> ops;
    ops.reserve(2 * (end - begin));
    for (size_t i = begin; i < end; ++i) {
      storage::put_op put;
      put.key = product_key(tenant, catalog[i].id);
      put.body = product_body(catalog[i]);
      ops.emplace_back(std::move(put));
      if (initial_stock != 0)
        ops.emplace_back(storage::counter_op{stock_key(tenant, branch, catalog[i].id), initial_stock});
    }
    auto res = store.write(std::move(ops));
    if (!res) {
      auto e = std::move(res).err();
      e.message = "loading products " + std::to_string(begin) + ".." + std::to_string(end) + ": " + e.message;
      return e;
    }
  }
  return {};
}

result<bool> catalog_loaded(const storage::node_store& store, const std::string& tenant,
                            const std::vector<product_spec>& catalog) {
  if (catalog.empty()) return true;
  auto v = store.read(product_key(tenant, catalog.front().id));
  if (!v) return std::move(v).err();
  return v->exists;
}

sale_draft make_sale(rng& r, const std::vector<product_spec>& catalog, const std::string& sale_id,
                     const sale_context& ctx, int min_items, int max_items) {
  sale_draft d;
  v1::Sale s;
  char receipt[48];
  std::snprintf(receipt, sizeof receipt, "%s-%06llu", ctx.terminal_id.c_str(),
                static_cast<unsigned long long>(ctx.receipt_no));
  s.set_receipt_no(receipt);
  s.set_terminal_id(ctx.terminal_id);
  s.set_cashier_id(ctx.cashier_id);
  s.set_shift_id(ctx.shift_id);
  s.set_currency(ctx.currency);
  s.set_time_ms(ctx.time_ms);
  if (catalog.empty()) {
    d.body = s.SerializeAsString();
    return d;
  }
  int want = static_cast<int>(r.between(min_items, max_items));
  want = std::min<int>(want, static_cast<int>(catalog.size()));
  std::set<size_t> picked;
  int64_t subtotal = 0, discount_total = 0, tax_total = 0;
  while (static_cast<int>(picked.size()) < want) {
    size_t idx = r.below(catalog.size());
    if (!picked.insert(idx).second) continue;
    const product_spec& p = catalog[idx];
    int64_t qty = p.unit == "kg" ? r.between(1, 8) * 250 : r.between(1, 3) * 1000;
    int64_t gross = qty * p.price / 1000;
    int64_t discount = r.below(10) == 0 ? gross / 10 : 0; // one line in ten: 10% promotion
    int64_t line_total = gross - discount;
    int64_t tax = line_total * p.tax_rate_bp / (10'000 + p.tax_rate_bp); // price includes tax
    auto* item = s.add_items();
    item->set_product_id(p.id);
    item->set_sku(p.sku);
    item->set_name(p.name);
    item->set_quantity(qty);
    item->set_unit_price(p.price);
    item->set_discount(discount);
    item->set_tax(tax);
    item->set_line_total(line_total);
    subtotal += gross;
    discount_total += discount;
    tax_total += tax;
    d.lines.push_back({p.id, qty});
  }
  int64_t total = subtotal - discount_total;
  s.set_subtotal(subtotal);
  s.set_discount_total(discount_total);
  s.set_tax_total(tax_total);
  s.set_total(total);
  static const char* methods[] = {"cash", "card", "qris"};
  d.method = methods[r.below(3)];
  auto* pay = s.add_payments();
  pay->set_id(sale_id + "-1");
  pay->set_sale_id(sale_id);
  pay->set_method(d.method);
  pay->set_amount(total);
  pay->set_time_ms(ctx.time_ms);
  if (d.method == "cash") {
    // Customers hand over the next round note amount.
    int64_t note = total <= 50'000 ? 50'000 : 100'000;
    int64_t tendered = (total + note - 1) / note * note;
    pay->set_tendered(tendered);
    pay->set_change(tendered - total);
  } else {
    char ref[24];
    std::snprintf(ref, sizeof ref, "%s%010llu", d.method == "card" ? "AP" : "QR",
                  static_cast<unsigned long long>(r.below(10'000'000'000ull)));
    pay->set_reference(ref);
    pay->set_tendered(total);
  }
  d.total = total;
  d.body = s.SerializeAsString();
  return d;
}

result<std::vector<sale_line>> parse_sale_lines(const std::string& sale_body) {
  v1::Sale s;
  if (!s.ParseFromString(sale_body))
    return error(errc::invalid_argument, "sale body does not parse as possync.v1.Sale");
  std::vector<sale_line> out;
  out.reserve(s.items_size());
  for (const auto& it : s.items())
    out.push_back({it.product_id(), it.quantity()});
  return out;
}

} // namespace possync::sim
