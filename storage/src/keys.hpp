#pragma once
// Private: key layout of every column family (storage/README.md). Every key starts
// with the 4-byte big-endian space. Key parts never contain '\0' (validation).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "possync/core/record.hpp"

namespace possync::storage::keys {

inline void put_u32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
/// Big-endian u64 at `pos`; 0 if out of range.
inline uint64_t get_u64(std::string_view in, size_t pos = 0) {
  if (in.size() < pos + 8) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[pos + i]);
  return v;
}
inline std::string encode_u64(uint64_t v) {
  std::string s;
  put_u64(s, v);
  return s;
}
/// Signed ms time that sorts correctly as bytes.
inline uint64_t sortable_i64(int64_t v) { return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63); }

inline std::string space_prefix(uint32_t space) {
  std::string s;
  put_u32(s, space);
  return s;
}

/// The smallest key greater than every key starting with `prefix` ("" if none).
inline std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto c = static_cast<uint8_t>(prefix.back());
    if (c != 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}

/// records: space tenant\0scope\0collection\0id
inline std::string record(uint32_t space, const core::record_key& k) {
  std::string s;
  s.reserve(4 + k.tenant.size() + k.scope.size() + k.collection.size() + k.id.size() + 3);
  put_u32(s, space);
  s.append(k.tenant).push_back('\0');
  s.append(k.scope).push_back('\0');
  s.append(k.collection).push_back('\0');
  s.append(k.id);
  return s;
}

/// feed: space tenant\0scope\0 lane
inline std::string feed_prefix(uint32_t space, std::string_view tenant, std::string_view scope, uint8_t lane) {
  std::string s;
  put_u32(s, space);
  s.append(tenant).push_back('\0');
  s.append(scope).push_back('\0');
  s.push_back(static_cast<char>(lane));
  return s;
}
/// feed: space tenant\0scope\0 lane seq
inline std::string feed(uint32_t space, std::string_view tenant, std::string_view scope, uint8_t lane,
                        uint64_t seq) {
  std::string s = feed_prefix(space, tenant, scope, lane);
  put_u64(s, seq);
  return s;
}
/// The record key of a records-column key, given what follows the space prefix
/// (tenant\0scope\0collection\0id); nullopt if it has fewer parts.
inline std::optional<core::record_key> parse_record(std::string_view k) {
  core::record_key key;
  std::string* parts[] = {&key.tenant, &key.scope, &key.collection};
  for (auto* p : parts) {
    auto z = k.find('\0');
    if (z == std::string_view::npos) return std::nullopt;
    *p = std::string(k.substr(0, z));
    k.remove_prefix(z + 1);
  }
  key.id = std::string(k);
  return key;
}

/// feed value: collection\0id
inline std::string feed_value(const core::record_key& k) {
  std::string s;
  s.reserve(k.collection.size() + 1 + k.id.size());
  s.append(k.collection).push_back('\0');
  s.append(k.id);
  return s;
}

/// outbox: space upstream(0) lane
inline std::string outbox_prefix(uint32_t space, uint8_t lane) {
  std::string s;
  put_u32(s, space);
  s.push_back('\0');
  s.push_back(static_cast<char>(lane));
  return s;
}
inline std::string outbox(uint32_t space, uint8_t lane, uint64_t seq) {
  std::string s = outbox_prefix(space, lane);
  put_u64(s, seq);
  return s;
}

/// cursors: space peer tenant\0scope\0 lane
inline std::string cursor_prefix(uint32_t space, uint64_t peer) {
  std::string s;
  put_u32(s, space);
  put_u64(s, peer);
  return s;
}
inline std::string cursor(uint32_t space, uint64_t peer, std::string_view tenant, std::string_view scope,
                          uint8_t lane) {
  std::string s = cursor_prefix(space, peer);
  s.append(tenant).push_back('\0');
  s.append(scope).push_back('\0');
  s.push_back(static_cast<char>(lane));
  return s;
}

/// conflicts / audit: space id
inline std::string numbered(uint32_t space, uint64_t id) {
  std::string s;
  put_u32(s, space);
  put_u64(s, id);
  return s;
}

/// meta: space name
inline std::string meta(uint32_t space, std::string_view name) {
  std::string s;
  put_u32(s, space);
  s.append(name);
  return s;
}

/// index 'b': space b tenant\0barcode -> product id
inline std::string barcode(uint32_t space, std::string_view tenant, std::string_view code) {
  std::string s;
  put_u32(s, space);
  s.push_back('b');
  s.append(tenant).push_back('\0');
  s.append(code);
  return s;
}
/// index 'n': space n tenant\0lower(name) (prefix; the full key adds \0 id)
inline std::string name_prefix(uint32_t space, std::string_view tenant, std::string_view lower_name) {
  std::string s;
  put_u32(s, space);
  s.push_back('n');
  s.append(tenant).push_back('\0');
  s.append(lower_name);
  return s;
}
inline std::string name(uint32_t space, std::string_view tenant, std::string_view lower_name, std::string_view id) {
  std::string s = name_prefix(space, tenant, lower_name);
  s.push_back('\0');
  s.append(id);
  return s;
}
/// index 't': space t tenant\0scope\0 time(8, sign-flipped BE) \0 id
inline std::string sale_time_prefix(uint32_t space, std::string_view tenant, std::string_view scope) {
  std::string s;
  put_u32(s, space);
  s.push_back('t');
  s.append(tenant).push_back('\0');
  s.append(scope).push_back('\0');
  return s;
}
inline std::string sale_time(uint32_t space, std::string_view tenant, std::string_view scope, int64_t time_ms,
                             std::string_view id) {
  std::string s = sale_time_prefix(space, tenant, scope);
  put_u64(s, sortable_i64(time_ms));
  s.push_back('\0');
  s.append(id);
  return s;
}

} // namespace possync::storage::keys
