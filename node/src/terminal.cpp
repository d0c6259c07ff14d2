// The embedding API for POS apps: a node in the terminal role.

#include "possync/terminal.hpp"

#include <algorithm>
#include <chrono>

#include "possync/node/node.hpp"
#include "possync/v1/pos.pb.h"

namespace possync {

namespace {

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

template <class T>
terminal_result<T> fail(const error& e) {
  terminal_result<T> r;
  r.code = static_cast<int>(e.code);
  r.error_message = e.message;
  return r;
}

template <class T>
terminal_result<T> fail(errc c, std::string msg) {
  return fail<T>(error(c, std::move(msg)));
}

template <class T>
terminal_result<T> ok(T v) {
  terminal_result<T> r;
  r.value = std::move(v);
  return r;
}

} // namespace

namespace node {

terminal_sync_status sync_status_of(const node_status& s, int64_t now_ms, int64_t stale_after_ms,
                                    int64_t started_ms) {
  terminal_sync_status out;
  out.online = s.online;
  out.upstream = s.upstream;
  for (size_t l = 0; l < out.pending.size() && l < s.pending.size(); ++l) {
    out.pending[l] = s.pending[l];
    out.pending_total += s.pending[l];
  }
  out.last_sync_ms = s.last_sync_ms;
  out.since_last_sync_ms = s.last_sync_ms > 0 ? std::max<int64_t>(0, now_ms - s.last_sync_ms) : -1;
  const int64_t since = now_ms - (s.last_sync_ms > 0 ? s.last_sync_ms : started_ms);
  out.stale = since > stale_after_ms;
  out.lag_records = s.lag_records;
  out.clock_skew_ms = s.skew_ms;
  out.caught_up = s.caught_up;
  out.last_error = s.last_error;
  return out;
}

} // namespace node

struct terminal::impl {
  terminal_config cfg;
  std::unique_ptr<node::node> n;
  int64_t opened_ms = 0;

  storage::node_store& store() const { return n->store(); }

  /// The product as this branch sells it: the tenant-wide record, the branch's price
  /// override if any, and the branch's stock.
  result<std::optional<product_info>> load(const std::string& id) const {
    auto r = store().read(core::record_key{cfg.tenant, "", "product", id});
    if (!r) return r.err();
    if (!r->exists) return std::optional<product_info>{};
    v1::Product p;
    if (!p.ParseFromString(r->body)) return error(errc::data_loss, "product " + id + " has an unreadable body");
    product_info out;
    out.id = id;
    out.sku = p.sku();
    out.barcode = p.barcode();
    out.name = p.name();
    out.price = p.price();
    out.active = p.active();
    auto pr = store().read(core::record_key{cfg.tenant, cfg.branch, "price", id});
    if (pr && pr->exists) {
      v1::Price price;
      if (price.ParseFromString(pr->body)) out.price = price.price();
    }
    out.stock_known = cfg.live_stock;
    if (cfg.live_stock) {
      auto stock = store().stock_level(cfg.tenant, cfg.branch, id);
      if (!stock) return stock.err();
      out.stock_milli = *stock;
    }
    return std::optional<product_info>(std::move(out));
  }
};

terminal_result<std::unique_ptr<terminal>> terminal::open(const std::string& dir, const terminal_config& cfg) {
  using R = std::unique_ptr<terminal>;
  if (cfg.tenant.empty()) return fail<R>(errc::invalid_argument, "terminal_config.tenant is required");
  if (cfg.branch.empty()) return fail<R>(errc::invalid_argument, "terminal_config.branch is required");
  if (dir.empty() && !cfg.in_memory)
    return fail<R>(errc::invalid_argument, "a data directory is required (or in_memory)");
  node::node_config nc;
  nc.role = storage::node_role::terminal;
  nc.tenant = cfg.tenant;
  nc.branch = cfg.branch;
  nc.node_id = cfg.node_id;
  nc.dir = dir;
  nc.in_memory = cfg.in_memory;
  nc.upstreams = cfg.upstreams;
  if (!cfg.live_stock) nc.skip_collections = {"stock"};
  nc.backoff.initial_ms = cfg.retry_initial_ms > 0 ? cfg.retry_initial_ms : 1000;
  nc.backoff.max_ms = std::max(nc.backoff.initial_ms, cfg.retry_max_ms);
  auto n = node::node::start(std::move(nc));
  if (!n) return fail<R>(n.err());
  auto i = std::make_unique<impl>();
  i->cfg = cfg;
  i->n = std::move(n).value();
  i->opened_ms = wall_ms();
  return ok<R>(R(new terminal(std::move(i))));
}

terminal::terminal(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

terminal::~terminal() {
  if (impl_ && impl_->n) impl_->n->stop();
}

terminal_result<sale_receipt> terminal::record_sale(const sale_input& in) {
  using R = sale_receipt;
  auto& st = impl_->store();
  if (in.lines.empty()) return fail<R>(errc::invalid_argument, "a sale needs at least one line");
  const auto sale_id = st.new_id();
  const int64_t now = wall_ms();
  v1::Sale sale;
  sale.set_receipt_no(in.receipt_no.empty() ? sale_id : in.receipt_no);
  sale.set_terminal_id(core::node_id_to_string(st.node()));
  sale.set_cashier_id(in.cashier_id);
  sale.set_customer_id(in.customer_id);
  sale.set_currency(in.currency);
  sale.set_time_ms(now);
  int64_t subtotal = 0, discounts = 0, tax = 0;
  for (size_t k = 0; k < in.lines.size(); ++k) {
    const auto& l = in.lines[k];
    const std::string where = "line " + std::to_string(k + 1);
    if (l.product_id.empty()) return fail<R>(errc::invalid_argument, where + ": no product id");
    if (l.quantity_milli <= 0) return fail<R>(errc::invalid_argument, where + ": quantity must be positive");
    if (l.unit_price < 0 || l.discount < 0)
      return fail<R>(errc::invalid_argument, where + ": negative price or discount");
    auto* item = sale.add_items();
    item->set_product_id(l.product_id);
    item->set_quantity(l.quantity_milli);
    item->set_unit_price(l.unit_price);
    item->set_discount(l.discount);
    const int64_t gross = l.quantity_milli * l.unit_price / 1000;
    const int64_t line_total = gross - l.discount;
    item->set_line_total(line_total);
    auto rec = st.read(core::record_key{impl_->cfg.tenant, "", "product", l.product_id});
    if (rec && rec->exists) {
      v1::Product p;
      if (p.ParseFromString(rec->body)) {
        item->set_sku(p.sku());
        item->set_name(p.name());
        if (p.tax_rate_bp() > 0) {
          // Prices include tax: the tax part of a line is total * rate / (1 + rate).
          const int64_t t = line_total * p.tax_rate_bp() / (10000 + p.tax_rate_bp());
          item->set_tax(t);
          tax += t;
        }
      }
    }
    subtotal += gross;
    discounts += l.discount;
  }
  const int64_t total = subtotal - discounts;
  sale.set_subtotal(subtotal);
  sale.set_discount_total(discounts);
  sale.set_tax_total(tax);
  sale.set_total(total);
  for (size_t k = 0; k < in.payments.size(); ++k) {
    const auto& p = in.payments[k];
    if (p.amount < 0 || p.change < 0)
      return fail<R>(errc::invalid_argument, "payment " + std::to_string(k + 1) + ": negative amount");
    auto* pay = sale.add_payments();
    pay->set_id(sale_id + "-" + std::to_string(k + 1));
    pay->set_sale_id(sale_id);
    pay->set_method(p.method);
    pay->set_amount(p.amount);
    pay->set_tendered(p.amount + p.change);
    pay->set_change(p.change);
    pay->set_reference(p.reference);
    pay->set_time_ms(now);
  }
  auto r = st.record_sale(core::record_key{impl_->cfg.tenant, impl_->cfg.branch, "sale", sale_id},
                          sale.SerializeAsString());
  if (!r) return fail<R>(r.err());
  return ok<R>(sale_receipt{sale_id, total, now});
}

terminal_result<product_info> terminal::product(const std::string& id) const {
  auto p = impl_->load(id);
  if (!p) return fail<product_info>(p.err());
  if (!p->has_value()) return fail<product_info>(errc::not_found, "no product " + id);
  return ok<product_info>(std::move(**p));
}

terminal_result<product_info> terminal::product_by_barcode(const std::string& barcode) const {
  auto id = impl_->store().product_by_barcode(impl_->cfg.tenant, barcode);
  if (!id) return fail<product_info>(id.err());
  if (!id->has_value()) return fail<product_info>(errc::not_found, "no product with barcode " + barcode);
  return product(**id);
}

terminal_result<std::vector<product_info>> terminal::search(const std::string& prefix, size_t limit) const {
  using R = std::vector<product_info>;
  auto ids = impl_->store().search_products(impl_->cfg.tenant, prefix, limit);
  if (!ids) return fail<R>(ids.err());
  R out;
  out.reserve(ids->size());
  for (const auto& id : *ids) {
    auto p = impl_->load(id);
    if (!p) return fail<R>(p.err());
    if (p->has_value()) out.push_back(std::move(**p));
  }
  return ok<R>(std::move(out));
}

terminal_result<int64_t> terminal::stock(const std::string& product_id) const {
  if (!impl_->cfg.live_stock)
    return fail<int64_t>(
        errc::failed_precondition,
        "this register does not receive the branch's stock (terminal_config.live_stock is off)");
  auto s = impl_->store().stock_level(impl_->cfg.tenant, impl_->cfg.branch, product_id);
  if (!s) return fail<int64_t>(s.err());
  return ok<int64_t>(*s);
}

uint64_t terminal::subscribe(std::function<void(const std::vector<terminal_change>&)> fn) {
  return impl_->n->subscribe([fn = std::move(fn)](const std::vector<storage::change>& changes) {
    std::vector<terminal_change> out;
    out.reserve(changes.size());
    for (const auto& c : changes)
      out.push_back(terminal_change{c.key.collection, c.key.scope, c.key.id});
    fn(out);
  });
}

void terminal::unsubscribe(uint64_t id) {
  impl_->n->unsubscribe(id);
}

terminal_sync_status terminal::status() const {
  return node::sync_status_of(impl_->n->status(), wall_ms(), impl_->cfg.stale_after_ms, impl_->opened_ms);
}

void terminal::sync_now() {
  impl_->n->sync_now();
}

terminal_status terminal::full_resync() {
  auto e = impl_->n->full_resync();
  return terminal_status{static_cast<int>(e.code), e.message};
}

uint64_t terminal::node_id() const {
  return impl_->store().node();
}

} // namespace possync
