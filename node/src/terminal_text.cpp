// The POS screen's words for sync state: relative_age() and describe() of
// include/possync/terminal.hpp. Pure: the elapsed times come in the status.

#include <string>

#include "possync/terminal.hpp"

namespace possync {

namespace {

/// "1 sale", "12 sales".
std::string count_of(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + ' ' + (n == 1 ? one : many);
}

} // namespace

std::string relative_age(int64_t ms) {
  if (ms < 0) return "never";
  if (ms < 5'000) return "just now";
  const int64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + " s ago";
  const int64_t m = s / 60;
  if (m < 60) return std::to_string(m) + " min ago";
  const int64_t h = m / 60;
  if (h < 48) return std::to_string(h) + " h ago";
  return std::to_string(h / 24) + " days ago";
}

std::string describe(const terminal_sync_status& s) {
  std::string out = s.online ? "Online" : "Offline";
  out += " · ";
  const uint64_t sales = s.pending[0];
  uint64_t updates = 0;
  for (size_t l = 1; l < s.pending.size(); ++l)
    updates += s.pending[l];
  if (sales == 0 && updates == 0) {
    out += s.online ? (s.caught_up ? "all synced" : "catching up") : "nothing waiting";
  } else {
    if (sales) out += count_of(sales, "sale", "sales");
    if (sales && updates) out += ", ";
    if (updates) out += count_of(updates, "update", "updates");
    out += s.online ? " pending" : " waiting";
  }
  out += " · ";
  out += s.since_last_sync_ms < 0 ? "never synced" : "last sync " + relative_age(s.since_last_sync_ms);
  if (s.stale) out += s.online ? " — sync is behind" : " — check the network";
  return out;
}

} // namespace possync
