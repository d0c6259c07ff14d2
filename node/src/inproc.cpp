// In-process links: both ends share one wire (mutex + two end states). Events are
// delivered while holding the wire's mutex, so no event can overtake on_closed; the
// mutex is recursive so that a sink may call back into its link.

#include "possync/node/inproc.hpp"

#include <deque>
#include <optional>

#include "possync/v1/sync.pb.h"

namespace possync::node {

namespace {

using lock_guard = std::lock_guard<std::recursive_mutex>;

struct end_state {
  std::shared_ptr<actors::link_events> events;
  bool started = false;
  bool want_read = false;
  bool closed = false;                // on_closed delivered (or the end destroyed): no more events
  std::optional<error> close_pending; // delivered once started and the inbox is empty
  std::deque<v1::Frame> inbox;        // frames from the peer, not yet delivered
};

} // namespace

struct inproc_wire {
  std::recursive_mutex mu;
  size_t max_bytes = 0;
  end_state ends[2];

  bool open() {
    lock_guard lock{mu};
    auto ending = [](const end_state& e) { return e.closed || e.close_pending; };
    return !(ending(ends[0]) && ending(ends[1]));
  }

  // Delivers what end `i` may receive now: the next frame if it asked for one, then
  // on_closed once nothing is queued in front of it.
  void pump(int i) {
    auto& e = ends[i];
    if (!e.started || e.closed) return;
    if (e.want_read && !e.inbox.empty()) {
      e.want_read = false;
      auto f = std::move(e.inbox.front());
      e.inbox.pop_front();
      e.events->on_frame(std::move(f));
    }
    if (!e.closed && e.inbox.empty() && e.close_pending) {
      e.closed = true;
      auto why = std::move(*e.close_pending);
      e.close_pending.reset();
      auto ev = std::move(e.events);
      ev->on_closed(std::move(why));
    }
  }

  // Ends `i` with `why`: after its queued frames when `drain`, else at once.
  void end(int i, const error& why, bool drain) {
    auto& e = ends[i];
    if (e.closed) return;
    if (!drain) e.inbox.clear();
    if (!e.close_pending || !drain) e.close_pending = why;
    pump(i);
  }

  void start(int i, std::shared_ptr<actors::link_events> events) {
    lock_guard lock{mu};
    auto& e = ends[i];
    if (e.started || !events) return;
    e.events = std::move(events);
    e.started = true;
    e.want_read = true;
    pump(i);
  }

  void read_next(int i) {
    lock_guard lock{mu};
    auto& e = ends[i];
    if (!e.started || e.closed) return;
    e.want_read = true;
    pump(i);
  }

  void write(int i, v1::Frame f) {
    lock_guard lock{mu};
    auto& e = ends[i];
    auto& p = ends[1 - i];
    if (!e.started || e.closed) return;
    if (max_bytes != 0 && f.ByteSizeLong() > max_bytes) {
      e.events->on_written(false);
      error why{errc::resource_exhausted, "frame of " + std::to_string(f.ByteSizeLong()) +
                                              " bytes exceeds the limit of " + std::to_string(max_bytes)};
      end(i, why, false);
      end(1 - i, why, false);
      return;
    }
    if (!p.closed && !p.close_pending) p.inbox.push_back(std::move(f));
    e.events->on_written(true);
    pump(1 - i);
  }

  void close(int i, const error& why) {
    lock_guard lock{mu};
    auto& e = ends[i];
    if (e.closed) return;
    end(i, why, false);
    end(1 - i, why, !why);
  }

  void destroy(int i) {
    lock_guard lock{mu};
    auto& e = ends[i];
    e.events.reset();
    e.inbox.clear();
    if (e.closed) return;
    e.closed = true;
    end(1 - i, {errc::cancelled, "peer link destroyed"}, false);
  }

  void cut(const error& why) {
    lock_guard lock{mu};
    end(0, why, false);
    end(1, why, false);
  }
};

namespace {

class inproc_link final : public actors::link {
public:
  inproc_link(std::shared_ptr<inproc_wire> w, int side, std::string peer)
      : w_(std::move(w)), side_(side), peer_(std::move(peer)) {}
  ~inproc_link() override { w_->destroy(side_); }

  void start(std::shared_ptr<actors::link_events> events) override {
    auto w = w_; // a sink may destroy this link from inside a callback
    w->start(side_, std::move(events));
  }
  void read_next() override {
    auto w = w_;
    w->read_next(side_);
  }
  void write(v1::Frame frame) override {
    auto w = w_;
    w->write(side_, std::move(frame));
  }
  void close(const error& why) override {
    auto w = w_;
    w->close(side_, why);
  }
  std::string peer() const override { return peer_; }

private:
  std::shared_ptr<inproc_wire> w_;
  int side_;
  std::string peer_;
};

} // namespace

link_pair inproc_pair(std::string name_a, std::string name_b, inproc_options opts) {
  auto w = std::make_shared<inproc_wire>();
  w->max_bytes = opts.max_message_bytes;
  if (opts.fault) {
    std::lock_guard<std::mutex> lock{opts.fault->mu_};
    auto& wires = opts.fault->wires_;
    for (auto i = wires.begin(); i != wires.end();)
      i = i->expired() ? wires.erase(i) : std::next(i);
    wires.push_back(w);
  }
  return {std::make_unique<inproc_link>(w, 0, "inproc:" + name_b),
          std::make_unique<inproc_link>(w, 1, "inproc:" + name_a)};
}

void inproc_fault::cut(const error& why) {
  std::vector<std::shared_ptr<inproc_wire>> live;
  {
    std::lock_guard<std::mutex> lock{mu_};
    for (auto& w : wires_)
      if (auto s = w.lock()) live.push_back(std::move(s));
  }
  for (auto& w : live)
    w->cut(why);
}

size_t inproc_fault::open_pairs() const {
  std::vector<std::shared_ptr<inproc_wire>> live;
  {
    std::lock_guard<std::mutex> lock{mu_};
    for (auto& w : wires_)
      if (auto s = w.lock()) live.push_back(std::move(s));
  }
  size_t n = 0;
  for (auto& w : live)
    n += w->open() ? 1 : 0;
  return n;
}

} // namespace possync::node
