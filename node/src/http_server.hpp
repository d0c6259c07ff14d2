#pragma once
// A small HTTP endpoint (cpp-httplib, kept out of every header): GET /metrics and
// GET /healthz for monitoring, GET /api/status and the status page (GET /, /status)
// for people. Private to node/.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "possync/core/error.hpp"

namespace possync::node::detail {

class http_endpoint {
public:
  struct handlers {
    std::function<std::string()> metrics;            ///< Prometheus text
    std::function<std::pair<int, std::string>()> health;  ///< status code, JSON body
    std::function<std::pair<int, std::string>()> status;  ///< status code, JSON body of /api/status
    std::function<const std::string&()> page;             ///< HTML of / and /status
  };
  /// Binds "host:port" (port 0: any free port) and serves on a thread of its own.
  /// unavailable when the address cannot be bound; invalid_argument when malformed.
  static result<std::unique_ptr<http_endpoint>> start(const std::string& listen, handlers h);
  ~http_endpoint();
  uint16_t port() const;
  void stop();

  struct impl;

private:
  explicit http_endpoint(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

} // namespace possync::node::detail
