#include "possync/core/ids.hpp"

namespace possync::core {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";
constexpr char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr size_t ulid_length = 26;
constexpr size_t ulid_time_chars = 10;
constexpr uint64_t max_ulid_ms = (uint64_t{1} << 48) - 1;

// Value of an upper-case Crockford base32 digit, or -1.
int crockford_value(char c) {
  for (int i = 0; i < 32; ++i)
    if (crockford[i] == c) return i;
  return -1;
}

} // namespace

std::string node_id_to_string(node_id id) {
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = hex_digits[id & 0xF];
    id >>= 4;
  }
  return out;
}

std::optional<node_id> parse_node_id(std::string_view text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  node_id v = 0;
  for (char c : text) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return std::nullopt;
    v = (v << 4) | static_cast<node_id>(d);
  }
  if (v == 0) return std::nullopt;
  return v;
}

uint64_t seeded_random::next_u64() {
  state_ += 0x9E3779B97F4A7C15ULL;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

node_id new_node_id(random_source& rng) {
  for (;;) {
    node_id id = rng.next_u64();
    if (id != 0) return id;
  }
}

std::string ulid_generator::next(uint64_t now_ms) {
  now_ms &= max_ulid_ms;
  if (last_ms_ != 0 && now_ms <= last_ms_) {
    // Same or earlier millisecond: keep last_ms_ and count up the 80-bit random part
    // so ids still sort in creation order.
    if (++lo_ == 0) {
      hi_ = (hi_ + 1) & 0xFFFF;
      if (hi_ == 0) {
        // 2^80 ids in one millisecond: move to the next millisecond rather than wrap.
        last_ms_ = (last_ms_ + 1) & max_ulid_ms;
      }
    }
  } else {
    last_ms_ = now_ms;
    hi_ = rng_.next_u64() & 0xFFFF;
    lo_ = rng_.next_u64();
  }

  std::string out(ulid_length, '0');
  uint64_t t = last_ms_;
  for (int i = static_cast<int>(ulid_time_chars) - 1; i >= 0; --i) {
    out[static_cast<size_t>(i)] = crockford[t & 0x1F];
    t >>= 5;
  }
  // 80 random bits = 16 characters of 5 bits, most significant first.
  uint64_t hi = hi_;
  uint64_t lo = lo_;
  for (int i = static_cast<int>(ulid_length) - 1; i >= static_cast<int>(ulid_time_chars); --i) {
    out[static_cast<size_t>(i)] = crockford[lo & 0x1F];
    lo = (lo >> 5) | ((hi & 0x1F) << 59);
    hi >>= 5;
  }
  return out;
}

bool is_ulid(std::string_view text) {
  if (text.size() != ulid_length) return false;
  if (text[0] > '7') return false;
  for (char c : text)
    if (crockford_value(c) < 0) return false;
  return true;
}

uint64_t ulid_time_ms(std::string_view text) {
  if (!is_ulid(text)) return 0;
  uint64_t t = 0;
  for (size_t i = 0; i < ulid_time_chars; ++i)
    t = (t << 5) | static_cast<uint64_t>(crockford_value(text[i]));
  return t;
}

} // namespace possync::core
