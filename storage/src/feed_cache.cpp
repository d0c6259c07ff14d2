#include "feed_cache.hpp"

namespace possync::storage {

std::shared_ptr<const core::record> feed_cache::find(std::string_view rkey, uint64_t seq) const {
  if (budget_ == 0) return nullptr;
  std::lock_guard<std::mutex> lk(mu_);
  auto it = map_.find(std::string(rkey));
  if (it == map_.end() || it->second.seq != seq) return nullptr;
  return it->second.rec;
}

void feed_cache::put(std::string_view rkey, uint64_t seq, std::shared_ptr<const core::record> rec) {
  if (budget_ == 0 || !rec) return;
  const size_t b = estimate(*rec) + rkey.size();
  if (b > budget_) return;
  std::lock_guard<std::mutex> lk(mu_);
  auto [it, fresh] = map_.try_emplace(std::string(rkey));
  if (!fresh) {
    if (it->second.seq >= seq) return; // a newer state is already here
    bytes_ -= it->second.bytes;
  }
  it->second = entry{seq, std::move(rec), b};
  bytes_ += b;
  order_.emplace_back(it->first, seq);
  evict_locked();
}

void feed_cache::evict_locked() {
  while (bytes_ > budget_ && !order_.empty()) {
    auto [key, seq] = std::move(order_.front());
    order_.pop_front();
    auto it = map_.find(key);
    if (it == map_.end() || it->second.seq != seq) continue; // replaced since
    bytes_ -= it->second.bytes;
    map_.erase(it);
  }
  // Keys replaced many times leave stale pairs behind: drop them before they outgrow the map.
  if (order_.size() > 2 * map_.size() + 64) {
    std::deque<std::pair<std::string, uint64_t>> live;
    for (auto& p : order_) {
      auto it = map_.find(p.first);
      if (it != map_.end() && it->second.seq == p.second) live.push_back(std::move(p));
    }
    order_ = std::move(live);
  }
}

size_t feed_cache::estimate(const core::record& r) {
  size_t b = sizeof(core::record) + r.key.tenant.size() + r.key.scope.size() + r.key.collection.size() +
             r.key.id.size() + 64;
  for (const auto& v : r.versions)
    b += sizeof(core::version) + v.body.size() + v.past.size() * 16 + v.fields.size() * 64;
  return b;
}

} // namespace possync::storage
