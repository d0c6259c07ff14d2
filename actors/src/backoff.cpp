#include "possync/actors/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace possync::actors {

namespace {

// splitmix64: enough spread for jitter; seeded so simulations replay exactly.
uint64_t next_random(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

} // namespace

backoff::backoff(backoff_options opts, size_t endpoints, uint64_t seed)
    : opts_(opts), endpoints_(std::max<size_t>(endpoints, 1)), rng_(seed) {}

void backoff::on_connected(int64_t now_ms) {
  connected_ms_ = now_ms;
}

int64_t backoff::on_failed(int64_t now_ms) {
  // A session that stayed up for the healthy period starts the sequence over, and
  // keeps its endpoint first: it was a good one.
  bool healthy = connected_ms_ >= 0 && now_ms - connected_ms_ >= opts_.healthy_ms;
  connected_ms_ = -1;
  if (healthy)
    failures_ = 0;
  else
    endpoint_ = (endpoint_ + 1) % endpoints_;
  double delay = static_cast<double>(opts_.initial_ms) * std::pow(opts_.multiplier, failures_);
  delay = std::min(delay, static_cast<double>(opts_.max_ms));
  double unit = static_cast<double>(next_random(rng_) >> 11) / 9007199254740992.0; // [0,1)
  delay *= 1.0 + opts_.jitter * (2.0 * unit - 1.0);
  if (failures_ < 64) ++failures_;
  return std::max<int64_t>(0, static_cast<int64_t>(delay));
}

} // namespace possync::actors
