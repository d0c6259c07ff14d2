#pragma once
// Bounded polling for node tests: nothing asserts on timing, everything waits with a deadline.

#include <chrono>
#include <functional>
#include <thread>

namespace possync::node::test {

/// Polls `pred` every 10 ms until it holds or `limit` passes; returns its last value.
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

} // namespace possync::node::test
