// The link contract (actors/link.hpp) over both transports: real gRPC on 127.0.0.1:0 and
// in-process pairs. Every wait is bounded; nothing asserts on timing.

#include <chrono>
#include <condition_variable>
#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "possync/node/grpc_transport.hpp"
#include "possync/node/inproc.hpp"
#include "possync/v1/sync.pb.h"

namespace possync::node {
namespace {

using namespace std::chrono_literals;
using actors::link;

constexpr auto wait_limit = 10s; // bound of every wait for an expected event
constexpr auto quiet = 150ms;    // how long "nothing more arrives" is watched

struct event {
  enum kind_t { frame, written, closed } kind;
  int stream = 0; // which connection
  int side = 0;   // 0 client (dialing) end, 1 server (accepting) end
  v1::Frame f;
  bool ok = false;
  error why;
};

const char* kind_name(event::kind_t k) {
  return k == event::frame ? "frame" : k == event::written ? "written" : "closed";
}

/// Collects the events of many links in one queue (mutex + condvar, bounded waits).
class recorder {
public:
  class sink final : public actors::link_events {
  public:
    sink(recorder* r, int stream, int side) : r_(r), stream_(stream), side_(side) {}
    void on_frame(v1::Frame f) override { r_->push({event::frame, stream_, side_, std::move(f), false, {}}); }
    void on_written(bool ok) override { r_->push({event::written, stream_, side_, {}, ok, {}}); }
    void on_closed(error why) override {
      r_->push({event::closed, stream_, side_, {}, false, std::move(why)});
    }

  private:
    recorder* r_;
    int stream_, side_;
  };

  std::shared_ptr<sink> make_sink(int stream, int side) { return std::make_shared<sink>(this, stream, side); }

  std::optional<event> next(std::chrono::milliseconds limit = wait_limit) {
    std::unique_lock<std::mutex> lock{mu_};
    if (!cv_.wait_for(lock, limit, [&] { return !q_.empty(); })) return std::nullopt;
    auto e = std::move(q_.front());
    q_.pop_front();
    return e;
  }

  /// The next event, which must be of `kind` for (stream, side).
  event expect(event::kind_t kind, int stream, int side) {
    auto e = next();
    if (!e) {
      ADD_FAILURE() << "no event within the wait limit, wanted " << kind_name(kind);
      return {event::closed, -1, -1, {}, false, {errc::deadline_exceeded, "timeout"}};
    }
    EXPECT_EQ(kind_name(e->kind), std::string(kind_name(kind)))
        << "stream " << e->stream << " side " << e->side << " why " << e->why.to_string();
    EXPECT_EQ(e->stream, stream);
    EXPECT_EQ(e->side, side);
    return std::move(*e);
  }

  /// Waits for the first queued event of `kind` for (stream, side) and removes it,
  /// leaving the others in place.
  std::optional<event> take(event::kind_t kind, int stream, int side) {
    std::unique_lock<std::mutex> lock{mu_};
    auto match = [&] {
      return std::find_if(q_.begin(), q_.end(), [&](const event& e) {
        return e.kind == kind && e.stream == stream && e.side == side;
      });
    };
    if (!cv_.wait_for(lock, wait_limit, [&] { return match() != q_.end(); })) return std::nullopt;
    auto i = match();
    auto e = std::move(*i);
    q_.erase(i);
    return e;
  }

  /// Drops every queued event.
  void clear() {
    std::lock_guard<std::mutex> lock{mu_};
    q_.clear();
  }

  /// Nothing arrives for a while.
  void expect_quiet() {
    auto e = next(quiet);
    EXPECT_FALSE(e) << "unexpected " << kind_name(e->kind) << " on stream " << e->stream << " side "
                    << e->side;
  }

  size_t closed_count(int stream, int side) {
    std::lock_guard<std::mutex> lock{mu_};
    return closed_[{stream, side}];
  }

private:
  void push(event e) {
    std::lock_guard<std::mutex> lock{mu_};
    if (e.kind == event::closed) ++closed_[{e.stream, e.side}];
    q_.push_back(std::move(e));
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<event> q_;
  std::map<std::pair<int, int>, size_t> closed_;
};

v1::Frame numbered(uint64_t n) {
  v1::Frame f;
  f.mutable_heartbeat()->set_lag_records(n);
  return f;
}

v1::Frame big_frame(size_t bytes) {
  // Random letters: gzip cannot shrink them below the limits used here.
  std::mt19937 rng{42};
  std::string s(bytes, 'a');
  for (auto& c : s)
    c = static_cast<char>('a' + rng() % 26);
  v1::Frame f;
  f.mutable_error()->set_message(std::move(s));
  return f;
}

enum class transport { inproc, grpc };

std::string transport_name(const ::testing::TestParamInfo<transport>& info) {
  return info.param == transport::grpc ? "grpc" : "inproc";
}

/// Two started ends of one stream.
struct conn {
  int id = 0;
  std::unique_ptr<link> end[2]; // [0] dialing (client), [1] accepting (server)
};

class transport_fixture : public ::testing::Test {
protected:
  virtual transport kind() const = 0;

  void TearDown() override {
    if (server_) server_->shutdown(100ms);
  }

  bool is_grpc() const { return kind() == transport::grpc; }

  void start_server(grpc_server_options opts = {}) {
    opts.on_session = [this](std::unique_ptr<link> l) {
      std::lock_guard<std::mutex> lock{accept_mu_};
      accepted_.push_back(std::move(l));
      accept_cv_.notify_all();
    };
    auto s = grpc_server::start(std::move(opts));
    ASSERT_TRUE(s) << s.err().to_string();
    server_ = std::move(*s);
    ASSERT_NE(server_->port(), 0);
  }

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  std::unique_ptr<link> accept() {
    std::unique_lock<std::mutex> lock{accept_mu_};
    if (!accept_cv_.wait_for(lock, wait_limit, [&] { return !accepted_.empty(); })) return nullptr;
    auto l = std::move(accepted_.front());
    accepted_.pop_front();
    return l;
  }

  /// Opens and starts stream `id`; events go to rec_ tagged with `id`.
  conn open(int id, size_t max_bytes = 8u << 20, grpc_client_options copts = {}) {
    conn c;
    c.id = id;
    if (is_grpc()) {
      if (!server_) {
        grpc_server_options sopts;
        sopts.max_message_bytes = max_bytes;
        start_server(sopts);
      }
      c.end[0] = grpc_connect(endpoint(), copts);
      c.end[0]->start(rec_.make_sink(id, 0));
      c.end[1] = accept();
      if (!c.end[1]) {
        ADD_FAILURE() << "no session accepted";
        return c;
      }
    } else {
      inproc_options o;
      o.max_message_bytes = max_bytes;
      auto [a, b] = inproc_pair("terminal-" + std::to_string(id), "hq", o);
      c.end[0] = std::move(a);
      c.end[1] = std::move(b);
      c.end[0]->start(rec_.make_sink(id, 0));
    }
    c.end[1]->start(rec_.make_sink(id, 1));
    return c;
  }

  /// Sends `n` numbered frames each way on every stream at once (one write outstanding
  /// per end, reads pulled one by one) and checks they arrive complete and in order.
  void exchange(std::vector<conn*> conns, uint64_t n) {
    struct end_state {
      uint64_t sent = 0, acked = 0, received = 0;
    };
    std::vector<std::array<end_state, 2>> st(conns.size());
    std::map<int, size_t> pos;
    for (size_t i = 0; i < conns.size(); ++i)
      pos[conns[i]->id] = i;
    for (size_t i = 0; i < conns.size(); ++i)
      for (int s = 0; s < 2; ++s)
        if (n > 0) {
          conns[i]->end[s]->write(numbered(++st[i][s].sent));
        }
    auto done = [&] {
      for (auto& e : st)
        for (auto& s : e)
          if (s.acked < n || s.received < n) return false;
      return true;
    };
    size_t budget = conns.size() * 4 * n + 16;
    while (!done() && budget-- > 0) {
      auto e = rec_.next();
      ASSERT_TRUE(e) << "exchange stalled";
      ASSERT_EQ(pos.count(e->stream), 1u) << "event of stream " << e->stream;
      auto& s = st[pos[e->stream]][e->side];
      auto& l = conns[pos[e->stream]]->end[e->side];
      switch (e->kind) {
      case event::written:
        ASSERT_TRUE(e->ok);
        ++s.acked;
        ASSERT_EQ(s.acked, s.sent) << "more than one write outstanding";
        if (s.sent < n) l->write(numbered(++s.sent));
        break;
      case event::frame:
        ASSERT_TRUE(e->f.has_heartbeat());
        ASSERT_EQ(e->f.heartbeat().lag_records(), s.received + 1) << "out of order";
        ++s.received;
        l->read_next();
        break;
      case event::closed:
        FAIL() << "stream " << e->stream << " side " << e->side << " closed: " << e->why.to_string();
      }
    }
    ASSERT_TRUE(done());
  }

  recorder rec_;
  std::mutex accept_mu_;
  std::condition_variable accept_cv_;
  std::deque<std::unique_ptr<link>> accepted_;
  std::unique_ptr<grpc_server> server_; // last: gone before what on_session touches
};

class transport_test : public transport_fixture, public ::testing::WithParamInterface<transport> {
protected:
  transport kind() const override { return GetParam(); }
};

TEST_P(transport_test, thousand_frames_both_ways_in_order_then_clean_close) {
  auto c = open(0);
  exchange({&c}, 1000);
  rec_.expect_quiet();
  c.end[0]->close({});
  // Both ends see a clean end, once each, in whichever order.
  for (int i = 0; i < 2; ++i) {
    auto e = rec_.next();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->kind, event::closed);
    EXPECT_FALSE(e->why) << e->why.to_string();
  }
  rec_.expect_quiet();
  EXPECT_EQ(rec_.closed_count(0, 0), 1u);
  EXPECT_EQ(rec_.closed_count(0, 1), 1u);
  c.end[0]->close({}); // idempotent, no event
  c.end[1]->close({errc::internal, "late"});
  c.end[0]->write(numbered(1)); // after on_closed: nothing happens
  c.end[1]->read_next();
  rec_.expect_quiet();
}

TEST_P(transport_test, reads_are_pulled) {
  auto c = open(0);
  for (uint64_t i = 1; i <= 3; ++i) {
    c.end[0]->write(numbered(i));
    auto w = rec_.take(event::written, 0, 0);
    ASSERT_TRUE(w);
    EXPECT_TRUE(w->ok);
  }
  // start() asked for one frame: exactly one arrives until read_next().
  EXPECT_EQ(rec_.expect(event::frame, 0, 1).f.heartbeat().lag_records(), 1u);
  rec_.expect_quiet();
  for (uint64_t i = 2; i <= 3; ++i) {
    c.end[1]->read_next();
    EXPECT_EQ(rec_.expect(event::frame, 0, 1).f.heartbeat().lag_records(), i);
  }
  c.end[1]->read_next();
  rec_.expect_quiet();
}

TEST_P(transport_test, clean_close_from_the_accepting_end) {
  auto c = open(0);
  exchange({&c}, 3);
  c.end[1]->close({});
  for (int i = 0; i < 2; ++i) {
    auto e = rec_.next();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->kind, event::closed);
    EXPECT_FALSE(e->why) << e->why.to_string();
  }
  rec_.expect_quiet();
  EXPECT_EQ(rec_.closed_count(0, 0), 1u);
  EXPECT_EQ(rec_.closed_count(0, 1), 1u);
}

TEST_P(transport_test, server_error_reaches_the_client_with_its_code) {
  auto c = open(0);
  exchange({&c}, 2);
  c.end[1]->close({errc::permission_denied, "node 42 is not registered"});
  auto s = rec_.take(event::closed, 0, 1);
  auto e = rec_.take(event::closed, 0, 0);
  ASSERT_TRUE(s && e);
  EXPECT_EQ(s->why.code, errc::permission_denied);
  EXPECT_EQ(e->why.code, errc::permission_denied) << e->why.to_string();
  EXPECT_EQ(e->why.message, "node 42 is not registered");
  rec_.expect_quiet();
}

TEST_P(transport_test, client_error_close_cancels_the_server_end) {
  auto c = open(0);
  exchange({&c}, 2);
  c.end[0]->close({errc::aborted, "protocol violation"});
  auto e = rec_.take(event::closed, 0, 0);
  auto s = rec_.take(event::closed, 0, 1);
  ASSERT_TRUE(s && e);
  EXPECT_EQ(e->why.code, errc::aborted);
  // gRPC cannot carry a client's reason: the server sees the cancellation.
  EXPECT_EQ(s->why.code, is_grpc() ? errc::cancelled : errc::aborted) << s->why.to_string();
  rec_.expect_quiet();
}

TEST_P(transport_test, peer_destroyed_mid_stream) {
  for (int victim = 0; victim < 2; ++victim) {
    auto c = open(victim);
    c.end[victim]->write(numbered(1));
    auto w = rec_.take(event::written, victim, victim);
    ASSERT_TRUE(w);
    EXPECT_TRUE(w->ok);
    c.end[victim].reset();
    // The destroyed end says nothing more; the survivor learns the stream ended.
    for (size_t guard = 0; guard < 4; ++guard) {
      auto e = rec_.next();
      ASSERT_TRUE(e);
      ASSERT_EQ(e->stream, victim);
      ASSERT_EQ(e->side, 1 - victim) << "event from a destroyed link: " << kind_name(e->kind);
      if (e->kind == event::frame) {
        c.end[1 - victim]->read_next();
        continue;
      }
      ASSERT_EQ(e->kind, event::closed);
      EXPECT_EQ(e->why.code, errc::cancelled) << e->why.to_string();
      break;
    }
    rec_.expect_quiet();
    EXPECT_EQ(rec_.closed_count(victim, 1 - victim), 1u);
  }
}

TEST_P(transport_test, thirty_two_concurrent_streams) {
  constexpr int n = 32;
  std::vector<conn> conns;
  for (int i = 0; i < n; ++i)
    conns.push_back(open(i));
  std::vector<conn*> ptrs;
  for (auto& c : conns)
    ptrs.push_back(&c);
  exchange(ptrs, 50);
  for (int i = 0; i < n; ++i)
    conns[i].end[i % 2]->close(i % 4 == 0 ? error{errc::aborted, "stop"} : error{});
  for (int k = 0; k < 2 * n; ++k) {
    auto e = rec_.next();
    ASSERT_TRUE(e) << "closed " << k << " of " << 2 * n;
    ASSERT_EQ(e->kind, event::closed) << kind_name(e->kind);
    EXPECT_EQ(!e->why, e->stream % 4 != 0) << e->stream << ": " << e->why.to_string();
  }
  rec_.expect_quiet();
  for (int i = 0; i < n; ++i)
    for (int s = 0; s < 2; ++s)
      EXPECT_EQ(rec_.closed_count(i, s), 1u);
}

TEST_P(transport_test, frame_over_the_size_limit_is_refused) {
  auto c = open(0, 64u << 10);
  exchange({&c}, 2);
  c.end[0]->write(big_frame(1u << 20));
  bool written_false = false;
  std::optional<error> client_closed, server_closed;
  for (int guard = 0; guard < 4 && !(client_closed && server_closed); ++guard) {
    auto e = rec_.next();
    ASSERT_TRUE(e);
    if (e->kind == event::written) {
      EXPECT_EQ(e->side, 0);
      written_false = !e->ok;
    } else {
      ASSERT_EQ(e->kind, event::closed) << kind_name(e->kind);
      (e->side == 0 ? client_closed : server_closed) = e->why;
    }
  }
  ASSERT_TRUE(client_closed && server_closed);
  EXPECT_EQ(client_closed->code, errc::resource_exhausted) << client_closed->to_string();
  EXPECT_TRUE(*server_closed) << "the receiving end must not see a clean end";
  (void)written_false;
  rec_.expect_quiet();
  // The process (and, over gRPC, the server) carries on.
  auto d = open(1, 64u << 10);
  exchange({&d}, 5);
}

TEST_P(transport_test, destroy_before_start_and_after_close) {
  if (is_grpc()) {
    start_server();
    grpc_connect(endpoint()).reset(); // never started: no network at all
    // Accepted but never started by its owner: the client sees the cancellation.
    auto c = grpc_connect(endpoint());
    c->start(rec_.make_sink(0, 0));
    accept().reset();
    auto e = rec_.expect(event::closed, 0, 0);
    EXPECT_EQ(e.why.code, errc::cancelled) << e.why.to_string();
  } else {
    auto [a, b] = inproc_pair("a", "b");
    a.reset();
    b->start(rec_.make_sink(0, 1));
    auto e = rec_.expect(event::closed, 0, 1);
    EXPECT_EQ(e.why.code, errc::cancelled);
  }
  {
    auto c = open(1);
    c.end[0]->close({});
    c.end[0].reset(); // close(ok) then destroy at once: the server still sees a clean end
    auto e = rec_.take(event::closed, 1, 1);
    ASSERT_TRUE(e);
    EXPECT_FALSE(e->why) << e->why.to_string();
    c.end[1].reset();
  }
  {
    auto c = open(2);
    c.end[1]->close({errc::unavailable, "going away"});
    c.end[1].reset();
    auto s = rec_.take(event::closed, 2, 1);
    auto e = rec_.take(event::closed, 2, 0);
    ASSERT_TRUE(s && e);
    EXPECT_EQ(s->why.code, errc::unavailable);
    EXPECT_EQ(e->why.code, errc::unavailable) << e->why.to_string();
    c.end[0].reset();
  }
  rec_.clear(); // a client's on_closed may or may not beat its destruction
  rec_.expect_quiet();
}

TEST_P(transport_test, close_before_start_is_reported_at_start) {
  if (is_grpc()) {
    auto l = grpc_connect("127.0.0.1:1");
    l->close({errc::cancelled, "never mind"});
    l->start(rec_.make_sink(0, 0));
  } else {
    auto [a, b] = inproc_pair("a", "b");
    a->close({errc::cancelled, "never mind"});
    a->start(rec_.make_sink(0, 0));
  }
  EXPECT_EQ(rec_.expect(event::closed, 0, 0).why.code, errc::cancelled);
  rec_.expect_quiet();
}

INSTANTIATE_TEST_SUITE_P(both, transport_test, ::testing::Values(transport::inproc, transport::grpc),
                         transport_name);

// -- gRPC only ---------------------------------------------------------------------

class grpc_transport_test : public transport_fixture {
protected:
  transport kind() const override { return transport::grpc; }
};

TEST_F(grpc_transport_test, dead_port_yields_unavailable) {
  uint16_t port = 0;
  {
    auto s = grpc_server::start({});
    ASSERT_TRUE(s);
    port = (*s)->port();
  } // the port is free again
  grpc_client_options o;
  o.share_channel = false;
  auto l = grpc_connect("127.0.0.1:" + std::to_string(port), o);
  l->start(rec_.make_sink(0, 0));
  auto e = rec_.expect(event::closed, 0, 0);
  EXPECT_EQ(e.why.code, errc::unavailable) << e.why.to_string();
  EXPECT_FALSE(e.why.message.empty());
  rec_.expect_quiet();
}

TEST_F(grpc_transport_test, write_to_dead_port_fails_then_closes) {
  uint16_t port = 0;
  {
    auto s = grpc_server::start({});
    ASSERT_TRUE(s);
    port = (*s)->port();
  }
  auto l = grpc_connect("127.0.0.1:" + std::to_string(port));
  l->start(rec_.make_sink(0, 0));
  l->write(numbered(1));
  auto first = rec_.next();
  ASSERT_TRUE(first);
  if (first->kind == event::written) {
    EXPECT_FALSE(first->ok);
    first = rec_.next();
    ASSERT_TRUE(first);
  }
  EXPECT_EQ(first->kind, event::closed);
  EXPECT_EQ(first->why.code, errc::unavailable) << first->why.to_string();
  rec_.expect_quiet();
}

TEST_F(grpc_transport_test, connect_timeout_when_the_peer_never_answers) {
  // A socket that listens but never speaks HTTP/2: TCP connects, the stream never starts.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  grpc_client_options o;
  o.connect_timeout_ms = 300;
  o.share_channel = false;
  auto l = grpc_connect("127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), o);
  l->start(rec_.make_sink(0, 0));
  auto e = rec_.expect(event::closed, 0, 0);
  EXPECT_EQ(e.why.code, errc::unavailable) << e.why.to_string();
  rec_.expect_quiet();
  l.reset();
  ::close(fd);
}

TEST_F(grpc_transport_test, connect_timeout_spares_established_streams) {
  grpc_client_options o;
  o.connect_timeout_ms = 100;
  auto c = open(0, 8u << 20, o);
  exchange({&c}, 1);
  rec_.expect_quiet(); // longer than the timeout
  rec_.expect_quiet();
  exchange({&c}, 1);
}

TEST_F(grpc_transport_test, server_shutdown_ends_open_streams) {
  auto c = open(0);
  exchange({&c}, 3);
  server_->shutdown(50ms);
  auto a = rec_.next();
  auto b = rec_.next();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->kind, event::closed);
  EXPECT_EQ(b->kind, event::closed);
  EXPECT_TRUE(a->why);
  EXPECT_TRUE(b->why);
  server_.reset();
  // The links outlive the server and stay safe to use.
  c.end[1]->write(numbered(9));
  c.end[1]->close({errc::internal, "after shutdown"});
  c.end[0]->read_next();
  c.end[1].reset();
  c.end[0].reset();
  rec_.expect_quiet();
}

TEST_F(grpc_transport_test, large_frame_from_the_server_over_the_client_limit) {
  grpc_client_options o;
  o.max_message_bytes = 64u << 10;
  o.share_channel = false;
  auto c = open(0, 8u << 20, o);
  exchange({&c}, 2);
  c.end[1]->write(big_frame(1u << 20));
  std::optional<error> client_closed;
  for (int guard = 0; guard < 4 && !client_closed; ++guard) {
    auto e = rec_.next();
    ASSERT_TRUE(e);
    if (e->kind == event::closed && e->side == 0) client_closed = e->why;
  }
  ASSERT_TRUE(client_closed);
  EXPECT_EQ(client_closed->code, errc::resource_exhausted) << client_closed->to_string();
}

// Small flow-control windows (stream_window_bytes, both ends) still carry frames far
// larger than the window, both ways at once, and small frames after them.
TEST_F(grpc_transport_test, small_stream_windows_carry_large_frames) {
  grpc_server_options so;
  so.stream_window_bytes = 4096;
  start_server(so);
  grpc_client_options co;
  co.stream_window_bytes = 4096;
  co.share_channel = false;
  auto c = open(0, 8u << 20, co);
  exchange({&c}, 20);
  const auto big = big_frame(1u << 20);
  c.end[0]->write(big);
  c.end[1]->write(big);
  size_t got = 0, written = 0;
  for (int guard = 0; guard < 8 && (got < 2 || written < 2); ++guard) {
    auto e = rec_.next();
    ASSERT_TRUE(e) << "stalled";
    if (e->kind == event::frame) {
      ASSERT_TRUE(e->f.has_error());
      EXPECT_EQ(e->f.error().message(), big.error().message());
      ++got;
      c.end[e->side]->read_next();
    } else if (e->kind == event::written) {
      EXPECT_TRUE(e->ok);
      ++written;
    } else {
      FAIL() << "side " << e->side << " closed: " << e->why.to_string();
    }
  }
  EXPECT_EQ(got, 2u);
  EXPECT_EQ(written, 2u);
  exchange({&c}, 20);
}

TEST_F(grpc_transport_test, plaintext_on_a_remote_address_is_refused) {
  grpc_server_options o;
  o.listen = "0.0.0.0:0";
  auto s = grpc_server::start(o);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.err().code, errc::failed_precondition);
  EXPECT_TRUE(is_loopback_address("127.0.0.1:7000"));
  EXPECT_TRUE(is_loopback_address("localhost:7000"));
  EXPECT_TRUE(is_loopback_address("[::1]:7000"));
  EXPECT_TRUE(is_loopback_address("unix:/tmp/x.sock"));
  EXPECT_FALSE(is_loopback_address("10.0.0.1:7000"));
  EXPECT_FALSE(is_loopback_address("[::]:7000"));
  EXPECT_FALSE(is_loopback_address("hq.example.com:443"));
}

TEST_F(grpc_transport_test, peer_names_the_other_side) {
  auto c = open(0);
  EXPECT_EQ(c.end[0]->peer(), endpoint());
  EXPECT_NE(c.end[1]->peer().find("127.0.0.1"), std::string::npos) << c.end[1]->peer();
}

} // namespace
} // namespace possync::node
