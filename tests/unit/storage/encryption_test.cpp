// Encryption at rest (AES-256-GCM): bodies never reach RocksDB in the clear; a value
// altered, swapped or opened with another key is reported as data_loss, never served;
// an encrypted store does not open without its keyring; key rotation keeps old values
// readable. Tampering goes through RocksDB directly, as an attacker with the disk would.

#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include "raw_rocksdb.hpp"
#include "test_util.hpp"

namespace possync::storage::test {
namespace {

const std::string secret = "SECRET-RECEIPT-4711";
const std::string key1 = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const std::string key2 = "2 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

std::shared_ptr<const value_cipher> cipher(const std::string& keyring) {
  auto c = value_cipher::from_keyring(keyring);
  EXPECT_TRUE(c) << c.err().to_string();
  return c ? *c : nullptr;
}

result<std::unique_ptr<node_store>> open_encrypted(std::shared_ptr<database> db,
                                                   std::shared_ptr<const value_cipher> c) {
  store_options o;
  o.role = node_role::terminal;
  o.cipher = std::move(c);
  return node_store::open(std::move(db), o);
}

struct filled {
  std::vector<core::record_key> sales;
};

/// An encrypted store at `path` with three sales whose receipt numbers carry `secret`.
filled fill(const std::string& path, const std::string& keyring) {
  filled f;
  auto s = open_encrypted(open_db(path), cipher(keyring));
  EXPECT_TRUE(s) << s.err().to_string();
  for (int i = 0; i < 3; ++i) {
    auto k = sale_key(**s);
    auto r = (*s)->record_sale(k, sale_body({{"p1", 1000}}, 1000, secret + "-" + std::to_string(i)));
    EXPECT_TRUE(r) << r.err().to_string();
    f.sales.push_back(k);
  }
  return f;
}

TEST(encryption, bodies_are_sealed_on_disk_and_read_back_with_the_key) {
  temp_dir dir;
  auto f = fill(dir.str(), key1);
  for (const char* cf : {"records", "outbox"}) {
    auto values = raw_values(dir.str(), cf);
    ASSERT_FALSE(values.empty()) << cf;
    for (const auto& [k, v] : values) {
      EXPECT_EQ(v.find(secret), std::string::npos) << cf << " holds a body in the clear";
      EXPECT_TRUE(value_cipher::looks_sealed(v)) << cf;
    }
  }
  auto s = open_encrypted(open_db(dir.str()), cipher(key1));
  ASSERT_TRUE(s) << s.err().to_string();
  for (const auto& k : f.sales) {
    auto r = (*s)->read(k);
    ASSERT_TRUE(r && r->exists) << k.to_string();
    EXPECT_NE(r->body.find(secret), std::string::npos);
  }
  auto out = (*s)->outbox_window(0, 0, 100);
  ASSERT_TRUE(out) << out.err().to_string();
  EXPECT_EQ(out->size(), 3u);
}

TEST(encryption, the_store_remembers_it_is_encrypted) {
  temp_dir dir, plain;
  fill(dir.str(), key1);
  auto no_key = open_encrypted(open_db(dir.str()), nullptr);
  ASSERT_FALSE(no_key);
  EXPECT_EQ(no_key.err().code, errc::failed_precondition);
  {
    auto p = open_store(open_db(plain.str()));
    ASSERT_TRUE(p);
  }
  auto late = open_encrypted(open_db(plain.str()), cipher(key1));
  ASSERT_FALSE(late);
  EXPECT_EQ(late.err().code, errc::failed_precondition);
}

TEST(encryption, another_key_tampering_and_swapping_are_data_loss) {
  temp_dir dir;
  auto f = fill(dir.str(), key1);
  {
    // Same key id, other key bytes.
    auto wrong = open_encrypted(open_db(dir.str()), cipher("1 " + std::string(64, 'a')));
    ASSERT_TRUE(wrong) << wrong.err().to_string();
    auto r = (*wrong)->read(f.sales[0]);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::data_loss) << r.err().to_string();
  }
  // Flip one byte of the first sale's value; swap the second and third sales' values.
  rewrite(dir.str(), "records", [&](std::vector<std::pair<std::string, std::string>>& values) {
    std::vector<size_t> sales;
    for (size_t i = 0; i < values.size(); ++i)
      if (values[i].first.find("sale") != std::string::npos) sales.push_back(i);
    ASSERT_EQ(sales.size(), 3u);
    auto& v = values[sales[0]].second;
    v[v.size() / 2] = static_cast<char>(v[v.size() / 2] ^ 0x01);
    std::swap(values[sales[1]].second, values[sales[2]].second);
  });
  rewrite(dir.str(), "outbox", [](std::vector<std::pair<std::string, std::string>>& values) {
    ASSERT_FALSE(values.empty());
    values[0].second.resize(values[0].second.size() - 1);  // truncated
  });
  auto s = open_encrypted(open_db(dir.str()), cipher(key1));
  ASSERT_TRUE(s) << s.err().to_string();
  for (const auto& k : f.sales) {
    auto r = (*s)->read(k);
    ASSERT_FALSE(r) << k.to_string() << " was served";
    EXPECT_EQ(r.err().code, errc::data_loss) << r.err().to_string();
  }
  auto feed = (*s)->read_feed("t1", "b1", 0, 0, 100);
  ASSERT_FALSE(feed);
  EXPECT_EQ(feed.err().code, errc::data_loss);
  auto out = (*s)->outbox_window(0, 0, 100);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.err().code, errc::data_loss);
}

TEST(encryption, rotation_keeps_old_values_readable_and_seals_new_ones_with_the_new_key) {
  temp_dir dir;
  auto f = fill(dir.str(), key1);
  {
    auto s = open_encrypted(open_db(dir.str()), cipher(key2 + "\n" + key1 + "\n"));
    ASSERT_TRUE(s) << s.err().to_string();
    for (const auto& k : f.sales) {
      auto r = (*s)->read(k);
      ASSERT_TRUE(r && r->exists) << (r ? "" : r.err().to_string());
    }
    auto k = sale_key(**s);
    ASSERT_TRUE((*s)->record_sale(k, sale_body({{"p1", 1000}}, 2000, secret)));
  }
  size_t with_new = 0;
  for (const auto& [k, v] : raw_values(dir.str(), "records"))
    if (value_cipher::looks_sealed(v) && v[7] == 2) ++with_new;  // key id, big-endian, bytes 4..7
  EXPECT_GE(with_new, 1u);
  // Without the old key the old values are data_loss, the new one reads.
  auto s = open_encrypted(open_db(dir.str()), cipher(key2));
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)->read(f.sales[0]).err().code, errc::data_loss);
}

TEST(encryption, keyrings_are_checked) {
  for (const std::string& bad : {std::string(""), std::string("# only a comment"), std::string("1 abc"),
                                std::string("0 ") + std::string(64, 'a'), std::string("x ") + std::string(64, 'a'),
                                std::string("1 ") + std::string(64, 'g'),
                                key1 + "\n" + key1}) {
    auto c = value_cipher::from_keyring(bad);
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.err().code, errc::invalid_argument) << bad;
  }
  auto line = value_cipher::new_keyring_line(7);
  ASSERT_TRUE(line);
  auto c = value_cipher::from_keyring(*line);
  ASSERT_TRUE(c) << c.err().to_string();
  EXPECT_EQ((*c)->current_id(), 7u);
}

} // namespace
} // namespace possync::storage::test
