#include "possync/core/version_vector.hpp"

#include <algorithm>

namespace possync::core {

std::string dot::to_string() const {
  return node_id_to_string(node) + ":" + std::to_string(counter);
}

const char* to_string(ordering o) noexcept {
  switch (o) {
  case ordering::equal:
    return "equal";
  case ordering::dominates:
    return "dominates";
  case ordering::dominated:
    return "dominated";
  case ordering::concurrent:
    return "concurrent";
  }
  return "unknown";
}

version_vector::version_vector(std::vector<entry> entries) {
  std::sort(entries.begin(), entries.end());
  for (const auto& [node, counter] : entries) {
    if (counter == 0) continue;
    if (!entries_.empty() && entries_.back().first == node)
      entries_.back().second = std::max(entries_.back().second, counter);
    else
      entries_.emplace_back(node, counter);
  }
}

uint64_t version_vector::get(node_id node) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), node,
                             [](const entry& e, node_id n) { return e.first < n; });
  return it != entries_.end() && it->first == node ? it->second : 0;
}

void version_vector::raise(node_id node, uint64_t counter) {
  if (counter == 0) return;
  auto it = std::lower_bound(entries_.begin(), entries_.end(), node,
                             [](const entry& e, node_id n) { return e.first < n; });
  if (it != entries_.end() && it->first == node)
    it->second = std::max(it->second, counter);
  else
    entries_.insert(it, entry{node, counter});
}

void version_vector::merge(const version_vector& other) {
  std::vector<entry> out;
  out.reserve(entries_.size() + other.entries_.size());
  auto a = entries_.begin();
  auto b = other.entries_.begin();
  while (a != entries_.end() || b != other.entries_.end()) {
    if (b == other.entries_.end() || (a != entries_.end() && a->first < b->first)) {
      out.push_back(*a++);
    } else if (a == entries_.end() || b->first < a->first) {
      out.push_back(*b++);
    } else {
      out.emplace_back(a->first, std::max(a->second, b->second));
      ++a;
      ++b;
    }
  }
  entries_ = std::move(out);
}

ordering version_vector::compare(const version_vector& other) const {
  bool greater = false; // some entry of this exceeds other's
  bool less = false;    // some entry of other exceeds this
  auto a = entries_.begin();
  auto b = other.entries_.begin();
  while (a != entries_.end() || b != other.entries_.end()) {
    if (b == other.entries_.end() || (a != entries_.end() && a->first < b->first)) {
      greater = true;
      ++a;
    } else if (a == entries_.end() || b->first < a->first) {
      less = true;
      ++b;
    } else {
      if (a->second > b->second) greater = true;
      if (a->second < b->second) less = true;
      ++a;
      ++b;
    }
    if (greater && less) return ordering::concurrent;
  }
  if (greater) return ordering::dominates;
  if (less) return ordering::dominated;
  return ordering::equal;
}

std::string version_vector::encode() const {
  // Sized for the longest varints once, then trimmed: stores and peers encode the past
  // of every version they write or send, 200 nodes long for a busy branch's counters.
  std::string out(max_varint_bytes * (1 + 2 * entries_.size()), '\0');
  char* p = write_varint(out.data(), entries_.size());
  node_id prev = 0;
  for (const auto& [node, counter] : entries_) {
    p = write_varint(p, node - prev);
    p = write_varint(p, counter);
    prev = node;
  }
  out.resize(static_cast<size_t>(p - out.data()));
  return out;
}

result<version_vector> version_vector::decode(std::string_view bytes) {
  size_t pos = 0;
  uint64_t count = 0;
  if (!get_varint(bytes, pos, count))
    return error{errc::invalid_argument, "version vector: truncated entry count"};
  // Each entry takes at least two bytes; reject absurd counts before reserving.
  if (count > (bytes.size() - pos) / 2)
    return error{errc::invalid_argument,
                 "version vector: entry count " + std::to_string(count) + " exceeds the encoded size"};
  version_vector vv;
  vv.entries_.reserve(static_cast<size_t>(count));
  node_id prev = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t delta = 0;
    uint64_t counter = 0;
    if (!get_varint(bytes, pos, delta) || !get_varint(bytes, pos, counter))
      return error{errc::invalid_argument, "version vector: truncated entry " + std::to_string(i)};
    if (delta == 0)
      return error{errc::invalid_argument, "version vector: entry " + std::to_string(i) +
                                               " has a node id not above the previous one"};
    node_id node = prev + delta;
    if (node < prev)
      return error{errc::invalid_argument, "version vector: node id overflow at entry " + std::to_string(i)};
    if (counter == 0)
      return error{errc::invalid_argument, "version vector: entry " + std::to_string(i) + " has counter 0"};
    vv.entries_.emplace_back(node, counter);
    prev = node;
  }
  if (pos != bytes.size())
    return error{errc::invalid_argument,
                 "version vector: " + std::to_string(bytes.size() - pos) + " trailing bytes"};
  return vv;
}

std::string version_vector::to_string() const {
  std::string out = "{";
  bool first = true;
  for (const auto& [node, counter] : entries_) {
    if (!first) out += ", ";
    first = false;
    out += node_id_to_string(node) + ":" + std::to_string(counter);
  }
  out += "}";
  return out;
}

char* write_varint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

void put_varint(std::string& out, uint64_t v) {
  char buf[max_varint_bytes];
  out.append(buf, static_cast<size_t>(write_varint(buf, v) - buf));
}

bool get_varint(std::string_view in, size_t& pos, uint64_t& v) {
  uint64_t result = 0;
  size_t p = pos;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (p >= in.size()) return false;
    auto byte = static_cast<uint8_t>(in[p++]);
    uint64_t part = byte & 0x7F;
    // The tenth byte may only carry the top bit of a 64-bit value.
    if (shift == 63 && part > 1) return false;
    result |= part << shift;
    if ((byte & 0x80) == 0) {
      pos = p;
      v = result;
      return true;
    }
  }
  return false;
}

} // namespace possync::core
