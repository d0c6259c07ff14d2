#pragma once
// Dots and version vectors: the causality metadata of every version.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "possync/core/error.hpp"
#include "possync/core/ids.hpp"

namespace possync::core {

/// One write event: the `counter`-th write of `node` to one record (1-based).
struct dot {
  node_id node = 0;
  uint64_t counter = 0;
  friend bool operator==(const dot& a, const dot& b) { return a.node == b.node && a.counter == b.counter; }
  friend bool operator!=(const dot& a, const dot& b) { return !(a == b); }
  friend bool operator<(const dot& a, const dot& b) {
    return a.node != b.node ? a.node < b.node : a.counter < b.counter;
  }
  bool valid() const { return node != 0 && counter != 0; }
  std::string to_string() const;  ///< "00ab…:12"
};

/// Result of comparing two causal histories.
enum class ordering { equal, dominates, dominated, concurrent };
const char* to_string(ordering o) noexcept;

/// A version vector: node -> highest counter seen, kept sorted by node, no zero
/// entries. Small (one entry per node that ever wrote the record).
class version_vector {
public:
  using entry = std::pair<node_id, uint64_t>;

  version_vector() = default;
  explicit version_vector(std::vector<entry> entries);  ///< sorts, merges duplicates, drops zeros

  /// Counter for `node` (0 if absent).
  uint64_t get(node_id node) const;
  /// Raise `node`'s entry to at least `counter`.
  void raise(node_id node, uint64_t counter);
  /// True if this history includes `d` (get(d.node) >= d.counter).
  bool covers(const dot& d) const { return d.valid() && get(d.node) >= d.counter; }
  /// Pointwise max.
  void merge(const version_vector& other);
  /// Compare as causal histories.
  ordering compare(const version_vector& other) const;
  /// Add event `d` (raise(d.node, d.counter)).
  void add(const dot& d) { raise(d.node, d.counter); }

  const std::vector<entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  friend bool operator==(const version_vector& a, const version_vector& b) { return a.entries_ == b.entries_; }
  friend bool operator!=(const version_vector& a, const version_vector& b) { return !(a == b); }

  /// Compact binary encoding: varint count, then per entry varint(node delta
  /// from the previous node) and varint(counter).
  std::string encode() const;
  static result<version_vector> decode(std::string_view bytes);
  std::string to_string() const;  ///< "{00ab…:3, 01cd…:1}"

private:
  std::vector<entry> entries_;
};

/// LEB128 varint helpers shared by core's compact encodings.
constexpr size_t max_varint_bytes = 10;
/// Writes `v` as a varint at `p` (room for max_varint_bytes); returns the end.
char* write_varint(char* p, uint64_t v);
void put_varint(std::string& out, uint64_t v);
/// Reads a varint at `pos`, advancing it; false on truncation or overflow.
bool get_varint(std::string_view in, size_t& pos, uint64_t& v);

} // namespace possync::core
