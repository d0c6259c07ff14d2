#pragma once
// Helpers for storage tests: temp directories and POS bodies.

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "possync/storage/store.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::storage::test {

/// A fresh directory under /tmp, removed on destruction.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("possync-storage-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

inline std::shared_ptr<database> open_db(const std::string& path, bool group_commit = true,
                                         std::shared_ptr<io_faults> faults = nullptr) {
  db_options o;
  o.path = path;
  o.group_commit = group_commit;
  o.faults = std::move(faults);
  o.block_cache_bytes = 4u << 20;
  o.write_buffer_bytes = 1u << 20;
  auto d = database::open(o);
  EXPECT_TRUE(d) << (d ? "" : d.err().to_string());
  return d ? *d : nullptr;
}

inline std::shared_ptr<database> open_mem_db() {
  db_options o;
  o.in_memory = true;
  o.write_buffer_bytes = 1u << 20;
  auto d = database::open(o);
  EXPECT_TRUE(d) << (d ? "" : d.err().to_string());
  return d ? *d : nullptr;
}

inline std::unique_ptr<node_store> open_store(std::shared_ptr<database> db, uint32_t space = 0,
                                              node_role role = node_role::terminal, bool outbox = true) {
  store_options o;
  o.space = space;
  o.role = role;
  o.outbox = outbox;
  auto s = node_store::open(std::move(db), o);
  EXPECT_TRUE(s) << (s ? "" : s.err().to_string());
  return s ? std::move(s).value() : nullptr;
}

inline std::string product_body(const std::string& name, const std::string& barcode, int64_t price,
                                std::vector<std::string> alt = {}) {
  v1::Product p;
  p.set_name(name);
  p.set_barcode(barcode);
  p.set_price(price);
  p.set_sku("SKU-" + barcode);
  for (auto& a : alt) p.add_alt_barcodes(a);
  return p.SerializeAsString();
}

struct line {
  std::string product;
  int64_t qty;
};

inline std::string sale_body(const std::vector<line>& lines, int64_t time_ms, const std::string& receipt = "R1") {
  v1::Sale s;
  s.set_receipt_no(receipt);
  s.set_time_ms(time_ms);
  int64_t total = 0;
  for (auto& l : lines) {
    auto* it = s.add_items();
    it->set_product_id(l.product);
    it->set_quantity(l.qty);
    it->set_unit_price(1000);
    it->set_line_total(l.qty);
    total += l.qty;
  }
  s.set_total(total);
  return s.SerializeAsString();
}

inline core::record_key product_key(const std::string& id, const std::string& tenant = "t1") {
  return core::record_key{tenant, "", "product", id};
}
inline core::record_key sale_key(node_store& s, const std::string& branch = "b1", const std::string& tenant = "t1") {
  return core::record_key{tenant, branch, "sale", s.new_id()};
}

} // namespace possync::storage::test
