// GET /metrics, /healthz, /api/status and the status page over cpp-httplib.

#include "http_server.hpp"

#include <httplib.h>

#include <thread>

namespace possync::node::detail {

struct http_endpoint::impl {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  bool stopped = false;
};

http_endpoint::http_endpoint(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

http_endpoint::~http_endpoint() {
  stop();
}

result<std::unique_ptr<http_endpoint>> http_endpoint::start(const std::string& listen, handlers h) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return error(errc::invalid_argument, "http_listen '" + listen + "' is not host:port");
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
    return error(errc::invalid_argument, "http_listen '" + listen + "' has no port number");
  }
  if (port < 0 || port > 65535) return error(errc::invalid_argument, "http_listen port out of range");
  auto i = std::make_unique<impl>();
  i->server.Get("/metrics", [m = h.metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(m(), "text/plain; version=0.0.4; charset=utf-8");
  });
  i->server.Get("/healthz", [hh = h.health](const httplib::Request&, httplib::Response& res) {
    auto [code, body] = hh();
    res.status = code;
    res.set_content(body, "application/json");
  });
  i->server.Get("/api/status", [st = h.status](const httplib::Request&, httplib::Response& res) {
    auto [code, body] = st();
    res.status = code;
    res.set_header("Cache-Control", "no-store");
    res.set_content(body, "application/json");
  });
  auto page = [p = h.page](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(p(), "text/html; charset=utf-8");
  };
  i->server.Get("/", page);
  i->server.Get("/status", page);
  if (port == 0)
    i->port = i->server.bind_to_any_port(host);
  else
    i->port = i->server.bind_to_port(host, port) ? port : -1;
  if (i->port <= 0) return error(errc::unavailable, "cannot listen for HTTP on '" + listen + "'");
  auto* raw = i.get();
  i->thread = std::thread([raw] { raw->server.listen_after_bind(); });
  return std::unique_ptr<http_endpoint>(new http_endpoint(std::move(i)));
}

uint16_t http_endpoint::port() const {
  return static_cast<uint16_t>(impl_->port);
}

void http_endpoint::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

} // namespace possync::node::detail
