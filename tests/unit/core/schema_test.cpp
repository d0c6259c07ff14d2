#include "possync/core/schema.hpp"

#include <gtest/gtest.h>

#include "possync/core/ids.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::core {
namespace {

std::string a_ulid() {
  seeded_random rng(7);
  ulid_generator gen(rng);
  return gen.next(1700000000000);
}

void expect_error(const status& s, errc code, const std::string& needle) {
  ASSERT_TRUE(s) << "expected an error containing: " << needle;
  EXPECT_EQ(s.code, code) << s.to_string();
  EXPECT_NE(s.message.find(needle), std::string::npos) << s.message;
}

TEST(registry, pos_schema) {
  auto reg = collection_registry::pos();
  struct row {
    const char* name;
    const char* type;
    uint8_t lane;
    policy p;
    scope_rule scope;
    bool ulid;
    uint8_t writers;
  };
  const row rows[] = {
      {"sale", "possync.v1.Sale", 0, policy::immutable, scope_rule::branch, true, writer_any},
      {"payment", "possync.v1.Payment", 0, policy::immutable, scope_rule::branch, true, writer_any},
      {"stock", "possync.v1.StockCounter", 1, policy::counter, scope_rule::branch, false, writer_any},
      {"stock_movement", "possync.v1.StockMovement", 1, policy::immutable, scope_rule::branch, true, writer_any},
      {"return", "possync.v1.Return", 1, policy::immutable, scope_rule::branch, true, writer_any},
      {"product", "possync.v1.Product", 2, policy::field_merge, scope_rule::tenant, false, writer_branch},
      {"category", "possync.v1.Category", 2, policy::hq_wins, scope_rule::tenant, false, 0},
      {"price", "possync.v1.Price", 2, policy::hq_wins, scope_rule::branch, false, writer_branch},
      {"customer", "possync.v1.Customer", 2, policy::field_merge, scope_rule::tenant, false, writer_branch},
      {"report", "possync.v1.Report", 3, policy::immutable, scope_rule::branch, false, writer_any},
      {"setting", "possync.v1.Setting", 2, policy::lww, scope_rule::any, false, writer_branch},
      {"device", "possync.v1.Device", 2, policy::hq_wins, scope_rule::tenant, false, 0},
      {"revocation", "possync.v1.TokenRevocation", 1, policy::hq_wins, scope_rule::tenant, false, 0},
      {"node_command", "possync.v1.NodeCommand", 1, policy::hq_wins, scope_rule::branch, false, 0},
      {"node_presence", "possync.v1.NodePresence", 3, policy::lww, scope_rule::branch, false, writer_branch},
  };
  EXPECT_EQ(reg.list().size(), std::size(rows));
  for (const auto& r : rows) {
    const auto* c = reg.find(r.name);
    ASSERT_NE(c, nullptr) << r.name;
    EXPECT_EQ(c->body_type, r.type);
    EXPECT_EQ(c->lane, r.lane) << r.name;
    EXPECT_EQ(c->policy, r.p) << r.name;
    EXPECT_EQ(c->scope, r.scope) << r.name;
    EXPECT_EQ(c->ulid_ids, r.ulid) << r.name;
    EXPECT_EQ(c->writers, r.writers) << r.name;
  }
  EXPECT_TRUE(reg.find("sale")->sells);
  EXPECT_TRUE(reg.find("return")->restocks);
  EXPECT_FALSE(reg.find("payment")->sells);
  EXPECT_EQ(reg.find("product")->tie, tie_rule::lww);
  EXPECT_EQ(reg.find("report")->max_body_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(reg.find("sale")->max_body_bytes, 64u * 1024);
  EXPECT_EQ(reg.find("nope"), nullptr);
  auto l = reg.list();
  for (size_t i = 1; i < l.size(); ++i) EXPECT_LT(l[i - 1]->name, l[i]->name);
}

TEST(registry, device_ids_are_node_ids) {
  auto reg = collection_registry::pos();
  EXPECT_TRUE(reg.find("device")->node_ids);
  EXPECT_FALSE(reg.find("product")->node_ids);
  EXPECT_FALSE(validate_key(record_key{"t1", "", "device", node_id_to_string(0x1234abcdULL)}, reg));
  EXPECT_FALSE(validate_key(record_key{"t1", "", "device", "00000000000000ff"}, reg));
  expect_error(validate_key(record_key{"t1", "", "device", "ff"}, reg), errc::invalid_argument, "node id");
  expect_error(validate_key(record_key{"t1", "", "device", "00000000000000FF"}, reg), errc::invalid_argument,
               "node id");
  expect_error(validate_key(record_key{"t1", "", "device", "0000000000000000"}, reg), errc::invalid_argument,
               "node id");
  expect_error(validate_key(record_key{"t1", "b1", "device", "00000000000000ff"}, reg), errc::invalid_argument,
               "tenant-wide");
  v1::Device d;
  d.set_node(0xff);
  d.set_role(1);
  d.set_branch("b1");
  d.set_name("Till 1");
  d.set_registered_ms(1700000000000);
  EXPECT_FALSE(validate_body(*reg.find("device"), d.SerializeAsString()));
  expect_error(validate_body(*reg.find("device"), std::string("\xff\xff\xff", 3)), errc::invalid_argument, "");
}

TEST(registry, add_and_replace) {
  auto reg = collection_registry::pos();
  collection_info c;
  c.name = "loyalty_card_2";
  c.body_type = "possync.v1.Customer";
  c.lane = lane_reports;
  EXPECT_FALSE(reg.add(c));
  ASSERT_NE(reg.find("loyalty_card_2"), nullptr);
  EXPECT_EQ(reg.find("loyalty_card_2")->lane, lane_reports);

  c.body_type = "";  // opaque bytes
  c.lane = 1;
  EXPECT_FALSE(reg.add(c));
  EXPECT_EQ(reg.find("loyalty_card_2")->lane, 1);
  EXPECT_EQ(reg.list().size(), 16u);

  c.body_type = "possync.v1.Record";  // from another proto file
  EXPECT_FALSE(reg.add(c));
}

TEST(registry, add_rejects_bad_info) {
  collection_registry reg;
  collection_info c;
  c.name = "";
  expect_error(reg.add(c), errc::invalid_argument, "collection name ''");
  c.name = "Sale";
  expect_error(reg.add(c), errc::invalid_argument, "'Sale' must be 1-32 characters of [a-z0-9_]");
  c.name = "sale-x";
  expect_error(reg.add(c), errc::invalid_argument, "'sale-x'");
  c.name = std::string(33, 'a');
  expect_error(reg.add(c), errc::invalid_argument, "1-32");
  c.name = std::string(32, 'a');
  EXPECT_FALSE(reg.add(c));
  c.name = "ok";
  c.lane = 4;
  expect_error(reg.add(c), errc::invalid_argument, "lane 4");
  c.lane = 0;
  c.body_type = "possync.v1.NoSuchMessage";
  expect_error(reg.add(c), errc::invalid_argument, "'possync.v1.NoSuchMessage'");
  EXPECT_EQ(reg.find("ok"), nullptr);
}

TEST(valid_id, characters_and_length) {
  EXPECT_TRUE(valid_id("abc-DEF_09.x:y"));
  EXPECT_FALSE(valid_id(""));
  EXPECT_FALSE(valid_id("a b"));
  EXPECT_FALSE(valid_id("a/b"));
  EXPECT_FALSE(valid_id("é"));
  EXPECT_TRUE(valid_id(std::string(128, 'x')));
  EXPECT_FALSE(valid_id(std::string(129, 'x')));
  EXPECT_TRUE(valid_id("abcd", 4));
  EXPECT_FALSE(valid_id("abcde", 4));
}

TEST(validate_key, accepts_good_keys) {
  auto reg = collection_registry::pos();
  EXPECT_FALSE(validate_key({"acme", "b1", "sale", a_ulid()}, reg));
  EXPECT_FALSE(validate_key({"acme", "", "product", "sku-1"}, reg));
  EXPECT_FALSE(validate_key({"acme", "b1", "stock", "sku-1"}, reg));
  EXPECT_FALSE(validate_key({"acme", "", "setting", "tz"}, reg));
  EXPECT_FALSE(validate_key({"acme", "b1", "setting", "tz"}, reg));
}

TEST(validate_key, every_error_path) {
  auto reg = collection_registry::pos();
  const auto u = a_ulid();
  expect_error(validate_key({"", "b1", "sale", u}, reg), errc::invalid_argument, "tenant is empty");
  expect_error(validate_key({"ac me", "b1", "sale", u}, reg), errc::invalid_argument,
               "tenant 'ac me' has a character outside");
  expect_error(validate_key({std::string(65, 't'), "b1", "sale", u}, reg), errc::invalid_argument,
               "65 bytes, at most 64");
  expect_error(validate_key({"acme", "b 1", "sale", u}, reg), errc::invalid_argument, "scope 'b 1'");
  expect_error(validate_key({"acme", std::string(65, 'b'), "sale", u}, reg), errc::invalid_argument, "scope");
  expect_error(validate_key({"acme", "b1", "sales", u}, reg), errc::invalid_argument, "unknown collection 'sales'");
  expect_error(validate_key({"acme", "", "sale", u}, reg), errc::invalid_argument,
               "collection 'sale' needs a branch scope, got ''");
  expect_error(validate_key({"acme", "b1", "product", "p1"}, reg), errc::invalid_argument,
               "collection 'product' is tenant-wide, needs scope '', got 'b1'");
  expect_error(validate_key({"acme", "b1", "stock", ""}, reg), errc::invalid_argument, "id is empty");
  expect_error(validate_key({"acme", "b1", "stock", "x/y"}, reg), errc::invalid_argument, "id 'x/y'");
  expect_error(validate_key({"acme", "b1", "stock", std::string(129, 'i')}, reg), errc::invalid_argument,
               "at most 128");
  expect_error(validate_key({"acme", "b1", "sale", "receipt-42"}, reg), errc::invalid_argument,
               "collection 'sale' needs a ULID id, got 'receipt-42'");

  record_limits small;
  small.max_id_bytes = 4;
  small.max_tenant_bytes = 2;
  small.max_scope_bytes = 2;
  expect_error(validate_key({"acme", "", "product", "p1"}, reg, small), errc::invalid_argument, "tenant 'acme'");
  expect_error(validate_key({"ac", "b12", "stock", "p1"}, reg, small), errc::invalid_argument, "scope 'b12'");
  expect_error(validate_key({"ac", "", "product", "p1234"}, reg, small), errc::invalid_argument, "id 'p1234'");
}

TEST(validate_body, parses_against_type) {
  auto reg = collection_registry::pos();
  const auto& product = *reg.find("product");
  v1::Product p;
  p.set_name("tea");
  EXPECT_FALSE(validate_body(product, p.SerializeAsString()));
  EXPECT_FALSE(validate_body(product, ""));
  expect_error(validate_body(product, std::string("\x0a\x05" "ab", 4)), errc::invalid_argument,
               "body of collection 'product' does not parse as possync.v1.Product");
  expect_error(validate_body(product, std::string("\x1a\x02\xff\xfe", 4)), errc::invalid_argument,
               "'product'");  // invalid UTF-8 in a proto3 string

  collection_info opaque;
  opaque.name = "blob";
  opaque.max_body_bytes = 4;
  EXPECT_FALSE(validate_body(opaque, std::string("\xff\xff\xff", 3)));
  expect_error(validate_body(opaque, "12345"), errc::resource_exhausted,
               "body of collection 'blob' is 5 bytes, limit 4");

  collection_info unknown;
  unknown.name = "ghost";
  unknown.body_type = "possync.v1.Ghost";
  expect_error(validate_body(unknown, ""), errc::invalid_argument, "unknown body type 'possync.v1.Ghost'");
}

TEST(validate_body, size_limits) {
  auto reg = collection_registry::pos();
  v1::Report big;
  big.set_payload(std::string(1024 * 1024, 'x'));
  EXPECT_FALSE(validate_body(*reg.find("report"), big.SerializeAsString()));
  v1::Sale sale;
  sale.set_note(std::string(70 * 1024, 'n'));
  expect_error(validate_body(*reg.find("sale"), sale.SerializeAsString()), errc::resource_exhausted, "'sale'");
}

TEST(validate_body, counter_bodies_are_checked) {
  auto reg = collection_registry::pos();
  const auto& stock = *reg.find("stock");
  pn_counter c;
  c.entries[5] = {10, 3};
  EXPECT_FALSE(validate_body(stock, encode_counter(c)));
  v1::StockCounter bad;
  auto* e = bad.add_entries();
  e->set_node(5);
  e->set_inc(-1);
  expect_error(validate_body(stock, bad.SerializeAsString()), errc::invalid_argument, "negative");
}

version good_version(node_id n, uint64_t counter, std::string body) {
  version v;
  v.id = {n, counter};
  v.hlc = {100, 0, n};
  v.body = std::move(body);
  return v;
}

TEST(validate_record, accepts_and_rejects) {
  auto reg = collection_registry::pos();
  v1::Sale sale;
  sale.set_receipt_no("R1");
  record r;
  r.key = {"acme", "b1", "sale", a_ulid()};
  r.versions.push_back(good_version(1, 1, sale.SerializeAsString()));
  EXPECT_FALSE(validate_record(r, reg));
  r.versions.push_back(good_version(2, 1, ""));
  r.versions.back().tombstone = true;
  EXPECT_FALSE(validate_record(r, reg));

  {
    auto bad = r;
    bad.key.scope = "";
    expect_error(validate_record(bad, reg), errc::invalid_argument, "needs a branch scope");
  }
  {
    auto bad = r;
    bad.versions[0].id = {0, 1};
    expect_error(validate_record(bad, reg), errc::invalid_argument, "version 0 has invalid dot");
  }
  {
    auto bad = r;
    bad.versions[1].id = {1, 0};
    expect_error(validate_record(bad, reg), errc::invalid_argument, "invalid dot");
  }
  {
    auto bad = r;
    bad.versions[1] = bad.versions[0];
    expect_error(validate_record(bad, reg), errc::invalid_argument, "appears twice");
  }
  {
    auto bad = r;
    bad.versions[1].body = "x";
    expect_error(validate_record(bad, reg), errc::invalid_argument, "tombstone with a 1-byte body");
  }
  {
    auto bad = r;
    bad.versions[0].body = std::string("\x0a\x09", 2);
    expect_error(validate_record(bad, reg), errc::invalid_argument, "does not parse as possync.v1.Sale");
  }
  {
    auto bad = r;
    bad.versions[0].past = version_vector({{1, 3}});
    expect_error(validate_record(bad, reg), errc::invalid_argument, "covering its own dot");
  }
  {
    auto bad = r;
    bad.versions[0].fields[3] = field_stamp{};
    expect_error(validate_record(bad, reg), errc::invalid_argument, "field 3 has invalid stamp dot");
  }
  {
    record_limits lim;
    lim.max_siblings = 1;
    expect_error(validate_record(r, reg, lim), errc::resource_exhausted, "2 siblings, limit 1");
  }
  {
    auto bad = r;
    bad.versions[0].past = version_vector({{7, 1}, {8, 1}, {9, 1}});
    record_limits lim;
    lim.max_vector_entries = 2;
    expect_error(validate_record(bad, reg, lim), errc::resource_exhausted, "3 version vector entries, limit 2");
  }
  {
    auto bad = r;
    bad.versions[0].body = std::string(70 * 1024, '\0');
    expect_error(validate_record(bad, reg), errc::resource_exhausted, "limit 65536");
  }
  record empty;
  empty.key = {"acme", "", "product", "p1"};
  EXPECT_FALSE(validate_record(empty, reg));
}

} // namespace
} // namespace possync::core
