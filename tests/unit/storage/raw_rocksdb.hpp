#pragma once
// Reading and rewriting a closed store's column families with RocksDB directly: tests
// that tamper with what is on disk (encryption, verify, recovery).

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

namespace possync::storage::test {

/// Opens the closed database at `path` with all its column families and runs `fn`
/// with the DB, the family names and their handles (aligned).
inline void with_raw_db(const std::string& path, bool read_only,
                        const std::function<void(rocksdb::DB&, const std::vector<std::string>&,
                                                 const std::vector<rocksdb::ColumnFamilyHandle*>&)>& fn) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = read_only ? rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), path, descs, &handles, &raw)
                     : rocksdb::DB::Open(rocksdb::DBOptions(), path, descs, &handles, &raw);
  ASSERT_TRUE(s.ok()) << s.ToString();
  fn(*raw, names, handles);
  for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
  delete raw;
}

/// Every (key, value) of a column family, read with RocksDB directly (store closed).
inline std::vector<std::pair<std::string, std::string>> raw_values(const std::string& path,
                                                                   const std::string& cf_name) {
  std::vector<std::pair<std::string, std::string>> out;
  with_raw_db(path, true, [&](rocksdb::DB& db, const auto& names, const auto& handles) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] != cf_name) continue;
      std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), handles[i]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) out.emplace_back(it->key().ToString(), it->value().ToString());
    }
  });
  return out;
}

/// Applies `edit` to the values of `cf_name` (store closed).
inline void rewrite(const std::string& path, const std::string& cf_name,
                    const std::function<void(std::vector<std::pair<std::string, std::string>>&)>& edit) {
  auto values = raw_values(path, cf_name);
  edit(values);
  with_raw_db(path, false, [&](rocksdb::DB& db, const auto& names, const auto& handles) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] != cf_name) continue;
      for (const auto& [k, v] : values) ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), handles[i], k, v).ok());
    }
  });
}

} // namespace possync::storage::test
