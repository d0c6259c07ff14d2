#include <set>

#include <gtest/gtest.h>

#include "possync/sim/pos_fixture.hpp"
#include "possync/sim/workload_local.hpp"
#include "possync/v1/pos.pb.h"

namespace {

using namespace possync;

bool valid_ean13(const std::string& code) {
  if (code.size() != 13) return false;
  int sum = 0;
  for (size_t i = 0; i < 13; ++i) {
    if (code[i] < '0' || code[i] > '9') return false;
    sum += (code[i] - '0') * (i % 2 == 0 ? 1 : 3);
  }
  return sum % 10 == 0;
}

TEST(pos_fixture, catalogues_have_unique_ids_and_valid_barcodes) {
  for (const auto& catalog : {sim::demo_catalog(), sim::generate_catalog(5000, 7)}) {
    std::set<std::string> ids, barcodes;
    for (const auto& p : catalog) {
      EXPECT_TRUE(ids.insert(p.id).second) << p.id;
      EXPECT_TRUE(barcodes.insert(p.barcode).second) << p.barcode;
      EXPECT_TRUE(valid_ean13(p.barcode)) << p.barcode;
      EXPECT_GT(p.price, 0);
      EXPECT_FALSE(p.name.empty());
    }
  }
}

TEST(pos_fixture, generated_catalogue_is_deterministic) {
  auto a = sim::generate_catalog(100, 3), b = sim::generate_catalog(100, 3);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].name, b[i].name);
}

TEST(pos_fixture, sale_totals_add_up_in_minor_units) {
  sim::rng r(11);
  const auto& catalog = sim::demo_catalog();
  for (int n = 0; n < 500; ++n) {
    auto d = sim::make_sale(r, catalog, "S" + std::to_string(n), sim::sale_context{});
    v1::Sale s;
    ASSERT_TRUE(s.ParseFromString(d.body));
    ASSERT_GE(s.items_size(), 1);
    ASSERT_LE(s.items_size(), 5);
    int64_t lines = 0, gross = 0, discounts = 0;
    for (const auto& it : s.items()) {
      EXPECT_EQ(it.line_total(), it.quantity() * it.unit_price() / 1000 - it.discount());
      lines += it.line_total();
      gross += it.quantity() * it.unit_price() / 1000;
      discounts += it.discount();
    }
    EXPECT_EQ(s.subtotal(), gross);
    EXPECT_EQ(s.discount_total(), discounts);
    EXPECT_EQ(s.total(), lines);
    EXPECT_EQ(d.total, s.total());
    ASSERT_EQ(s.payments_size(), 1);
    const auto& pay = s.payments(0);
    EXPECT_EQ(pay.amount(), s.total());
    EXPECT_EQ(pay.sale_id(), "S" + std::to_string(n));
    EXPECT_EQ(pay.tendered() - pay.change(), s.total());
    auto parsed = sim::parse_sale_lines(d.body);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->size(), d.lines.size());
  }
}

TEST(pos_fixture, parse_sale_lines_rejects_garbage) {
  auto r = sim::parse_sale_lines(std::string("\xff\xff\xff", 3));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

TEST(workload_local, small_run_converges_with_nothing_lost) {
  sim::local_options o;
  o.products = 300;
  o.sales = 40;
  o.writers = 4;
  o.concurrent_sales = 200;
  o.in_flight = 8;
  o.pipelined_sales = 120;
  o.lookups = 500;
  o.searches = 50;
  auto rep = sim::run_local(o);
  ASSERT_TRUE(rep) << rep.err().to_string();
  EXPECT_EQ(rep->committed, 360u);  // 40 single + 200 concurrent + 120 pipelined
  EXPECT_GT(rep->pipelined_commits_per_s, 0);
  EXPECT_EQ(rep->lost, 0u);
  EXPECT_EQ(rep->duplicated, 0u);
  EXPECT_EQ(rep->stock_mismatches, 0u);
  EXPECT_TRUE(rep->converged);
  auto json = sim::to_json(*rep);
  for (const char* field :
       {"\"workload\"", "\"parameters\"", "\"seconds\"", "\"commit_p50_us\"", "\"commit_p99_us\"",
        "\"commits_per_s\"", "\"lookup_p99_us\"", "\"search_p99_us\"", "\"lost\"", "\"duplicated\"",
        "\"converged\"", "\"peak_rss_mb\""})
    EXPECT_NE(json.find(field), std::string::npos) << field;
}

TEST(workload_local, rejects_zero_writers) {
  sim::local_options o;
  o.writers = 0;
  auto rep = sim::run_local(o);
  ASSERT_FALSE(rep);
  EXPECT_EQ(rep.err().code, errc::invalid_argument);
}

} // namespace
