// The CAF shell under CAF's deterministic test scheduler: nothing runs until the test
// runs it, and time moves only when it is advanced. Links are fakes that record what
// the session does; the store actor is a fake that runs blocking jobs inline; stores are
// real (in-memory RocksDB).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "caf/all.hpp"
#include "caf/scheduler/test_coordinator.hpp"

#include "possync/actors/hub.hpp"
#include "possync/actors/messages.hpp"
#include "possync/actors/session_actor.hpp"
#include "possync/actors/store_actor.hpp"
#include "possync/actors/supervisor.hpp"
#include "possync/actors/ticker.hpp"
#include "session_harness.hpp"

namespace possync::actors {
namespace {

using namespace std::chrono_literals;

constexpr core::node_id branch_node = 0xb0000000000000b1ULL;
constexpr core::node_id term_node = 0x7000000000000071ULL;
constexpr int64_t epoch_ms = 1'700'000'000'000;

/// What a fake link saw, shared with the test.
struct link_log {
  std::shared_ptr<link_events> events;
  bool started = false;
  int reads = 0;
  std::vector<v1::Frame> written;
  std::optional<error> closed_with;
  std::optional<error> close_on_start; ///< the "network" fails at once
};

class fake_link final : public link {
public:
  explicit fake_link(std::shared_ptr<link_log> log) : log_(std::move(log)) {}
  void start(std::shared_ptr<link_events> events) override {
    log_->events = std::move(events);
    log_->started = true;
    if (log_->close_on_start) close(*log_->close_on_start);
  }
  void read_next() override { ++log_->reads; }
  void write(v1::Frame f) override {
    log_->written.push_back(std::move(f));
    log_->events->on_written(true);
  }
  void close(const error& why) override {
    if (log_->closed_with) return;
    log_->closed_with = why;
    log_->events->on_closed(why);
  }
  std::string peer() const override { return "fake"; }

private:
  std::shared_ptr<link_log> log_;
};

/// Counts what a session would receive from the hub.
struct probe_counts {
  int feed = 0;
  int outbox = 0;
  std::vector<feed_id> last_feeds;  ///< the feeds named by the last announcement
  std::vector<std::pair<uint8_t, uint64_t>> failed_acks; ///< (lane, seq) the store reported failed
  std::vector<error> ack_errors;
  int ticks = 0;              ///< (tick)
  std::vector<int64_t> wakes; ///< (tick, at)
};

session_actor::behavior_type probe(session_actor::pointer self, std::shared_ptr<probe_counts> c) {
  return {
      [](atom::frame, v1::Frame&) {},
      [](atom::written, bool) {},
      [](atom::closed, error&) {},
      [](atom::applied, apply_done&) {},
      [c](atom::ack, uint8_t lane, uint64_t seq, error& why) {
        c->failed_acks.emplace_back(lane, seq);
        c->ack_errors.push_back(std::move(why));
      },
      [](atom::io_done) {},
      [c](atom::feed, feed_subscription& changed) {
        ++c->feed;
        c->last_feeds = changed.feeds;
      },
      [c](atom::outbox) { ++c->outbox; },
      [c](atom::tick) { ++c->ticks; },
      [c](atom::tick, int64_t at) { c->wakes.push_back(at); },
      [self](atom::stop, error&) { self->quit(); },
  };
}

/// A store actor that runs blocking jobs inline and counts them.
store_actor::behavior_type fake_store(store_actor::pointer, std::shared_ptr<int> jobs) {
  return {
      [](atom::apply, session_actor, apply_request&) {},
      [](atom::ack, session_actor, uint8_t, uint64_t) {},
      [jobs](atom::io, io_job& j) {
        ++*jobs;
        if (j.run) j.run();
      },
  };
}

storage::change change_of(const std::string& tenant, const std::string& scope, uint8_t lane,
                          const std::string& id, const std::string& collection = "product") {
  storage::change c;
  c.key = core::record_key{tenant, scope, collection, id};
  c.lane = lane;
  c.seq = 1;
  return c;
}

/// The Hello of register term_node of branch b1, tenant t1.
v1::Frame terminal_hello() {
  v1::Frame hello;
  auto* h = hello.mutable_hello();
  h->set_node(term_node);
  h->set_role(v1::ROLE_TERMINAL);
  h->set_tenant("t1");
  h->set_branch("b1");
  h->set_protocol_version(protocol_version);
  return hello;
}

class ActorTest : public ::testing::Test {
protected:
  static caf::actor_system_config& init(caf::actor_system_config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    return cfg;
  }

  ActorTest()
      : sys_(init(cfg_)), sched_(dynamic_cast<caf::scheduler::test_coordinator&>(sys_.scheduler())) {}

  void SetUp() override {
    storage::db_options o;
    o.in_memory = true;
    o.write_buffer_bytes = 1u << 20;
    auto db = storage::database::open(o);
    ASSERT_TRUE(db) << db.err().to_string();
    db_ = *db;
    storage::store_options so;
    so.role = storage::node_role::branch;
    so.node = branch_node;
    so.clock = [] { return static_cast<uint64_t>(epoch_ms); };
    so.rng = std::make_shared<core::seeded_random>(7);
    auto s = storage::node_store::open(db_, so);
    ASSERT_TRUE(s) << s.err().to_string();
    store_ = std::shared_ptr<storage::node_store>(std::move(s).value());
  }

  void TearDown() override {
    // Every actor must be gone before the system is destroyed.
    for (auto& a : kill_)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched_.run();
  }

  template <class Handle>
  Handle keep(Handle h) {
    kill_.push_back(caf::actor_cast<caf::actor>(h));
    return h;
  }

  local_identity branch_identity() const {
    return local_identity{branch_node, storage::node_role::branch, "t1", "b1"};
  }

  session_setup setup(session_setup::kind k) {
    session_setup s;
    s.k = k;
    s.me = branch_identity();
    s.store = store_;
    s.store_h = keep(sys_.spawn(fake_store, jobs_));
    s.hub = keep(spawn_hub(sys_));
    auto me = s.me;
    auto st = store_;
    s.admit = [me, st](const v1::Hello& h) { return admit(h, me, *st); };
    s.clock = [this] { return now_; };
    s.tick_ms = 100;
    return s;
  }

  caf::actor_system_config cfg_;
  caf::actor_system sys_;
  caf::scheduler::test_coordinator& sched_;
  std::shared_ptr<storage::database> db_;
  std::shared_ptr<storage::node_store> store_;
  std::shared_ptr<int> jobs_ = std::make_shared<int>(0);
  std::vector<caf::actor> kill_;
  int64_t now_ = epoch_ms;
};

TEST_F(ActorTest, HubCoalescesAnnouncementsPerSession) {
  auto hub = keep(spawn_hub(sys_));
  auto a = std::make_shared<probe_counts>();
  auto b = std::make_shared<probe_counts>();
  auto up = std::make_shared<probe_counts>();
  auto sa = keep(sys_.spawn(probe, a));
  auto sb = keep(sys_.spawn(probe, b));
  auto su = keep(sys_.spawn(probe, up));
  caf::anon_send(hub, atom::subscribe_v, sa, feed_subscription{{feed_id{"t1", "", 2}}, nullptr});
  caf::anon_send(hub, atom::subscribe_v, sb, feed_subscription{{feed_id{"t1", "b2", 1}}, nullptr});
  caf::anon_send(hub, atom::uplink_v, su);
  sched_.run();
  // Three commits queued before the hub runs: one announcement each at most.
  for (int i = 0; i < 3; ++i)
    caf::anon_send(hub, atom::committed_v, committed{{change_of("t1", "", 2, "p" + std::to_string(i))}});
  sched_.run();
  EXPECT_EQ(a->feed, 1);
  EXPECT_EQ(a->last_feeds, (std::vector<feed_id>{feed_id{"t1", "", 2}}));  // names what changed
  EXPECT_EQ(b->feed, 0); // other feed
  EXPECT_EQ(up->outbox, 1);
  // Another tenant or lane does not reach `a`.
  caf::anon_send(hub, atom::committed_v, committed{{change_of("t2", "", 2, "x"), change_of("t1", "", 1, "y")}});
  sched_.run();
  EXPECT_EQ(a->feed, 1);
  EXPECT_EQ(up->outbox, 2);
  // One commit of two feeds, interleaved: each session hears once, of its own feed.
  caf::anon_send(hub, atom::committed_v,
                 committed{{change_of("t1", "", 2, "q1"), change_of("t1", "b2", 1, "q2"),
                            change_of("t1", "", 2, "q3"), change_of("t1", "b2", 1, "q4")}});
  sched_.run();
  EXPECT_EQ(a->feed, 2);
  EXPECT_EQ(a->last_feeds, (std::vector<feed_id>{feed_id{"t1", "", 2}}));
  EXPECT_EQ(b->feed, 1);
  EXPECT_EQ(b->last_feeds, (std::vector<feed_id>{feed_id{"t1", "b2", 1}}));
  // A session that takes some collections only (a register without live stock) hears
  // of a commit on its feed only if it changed one of them.
  auto c = std::make_shared<probe_counts>();
  auto sc = keep(sys_.spawn(probe, c));
  auto takes = std::make_shared<const std::set<std::string>>(std::set<std::string>{"stock_movement", "return"});
  caf::anon_send(hub, atom::subscribe_v, sc, feed_subscription{{feed_id{"t1", "b2", 1}}, takes});
  sched_.run();
  caf::anon_send(hub, atom::committed_v,
                 committed{{change_of("t1", "b2", 1, "s1", "stock"), change_of("t1", "b2", 1, "s2", "stock")}});
  sched_.run();
  EXPECT_EQ(b->feed, 2);
  EXPECT_EQ(c->feed, 0);
  caf::anon_send(hub, atom::committed_v,
                 committed{{change_of("t1", "b2", 1, "s3", "stock"), change_of("t1", "b2", 1, "m1", "stock_movement")}});
  sched_.run();
  EXPECT_EQ(b->feed, 3);
  EXPECT_EQ(c->feed, 1);
  EXPECT_EQ(c->last_feeds, (std::vector<feed_id>{feed_id{"t1", "b2", 1}}));
  caf::anon_send(sc, atom::stop_v, error());
  // A session that exits is forgotten.
  caf::anon_send(sa, atom::stop_v, error());
  sched_.run();
  caf::anon_send(hub, atom::committed_v, committed{{change_of("t1", "b2", 1, "z")}});
  sched_.run();
  EXPECT_EQ(a->feed, 2);
  EXPECT_EQ(b->feed, 4);
  EXPECT_EQ(c->feed, 1);
}

// The ticker sends each session its tick when due, late by at most its resolution, and
// times a thousand sessions with a handful of timers of its own (CAF's delayed_send
// wakes the clock thread on every call).
TEST_F(ActorTest, TickerTicksEachSessionWhenDueWithFewTimersOfItsOwn) {
  auto ticker = keep(spawn_ticker(sys_, 5));
  auto a = std::make_shared<probe_counts>();
  auto b = std::make_shared<probe_counts>();
  auto sa = keep(sys_.spawn(probe, a));
  auto sb = keep(sys_.spawn(probe, b));
  caf::anon_send(ticker, atom::wake_v, sa, int64_t{100}, int64_t{0});
  caf::anon_send(ticker, atom::wake_v, sb, int64_t{50}, int64_t{42});
  sched_.run();
  sched_.advance_time(45ms);
  sched_.run();
  EXPECT_EQ(a->ticks + b->ticks, 0);
  EXPECT_TRUE(b->wakes.empty());
  sched_.advance_time(10ms); // 55 ms
  sched_.run();
  EXPECT_EQ(b->wakes, (std::vector<int64_t>{42}));
  EXPECT_EQ(a->ticks, 0);
  sched_.advance_time(50ms); // 105 ms
  sched_.run();
  EXPECT_EQ(a->ticks, 1);
  EXPECT_EQ(b->ticks, 0);

  // A thousand sessions' ticks, due within one resolution of each other, and one
  // earlier wake that overtakes them: three timers of the ticker's own at most.
  auto many = std::make_shared<probe_counts>();
  std::vector<session_actor> sessions;
  for (int i = 0; i < 1000; ++i) {
    sessions.push_back(keep(sys_.spawn(probe, many)));
    caf::anon_send(ticker, atom::wake_v, sessions.back(), int64_t{200} + i % 3, int64_t{0});
  }
  caf::anon_send(ticker, atom::wake_v, sa, int64_t{20}, int64_t{7});
  sched_.run();
  size_t timers = 0;
  for (int i = 0; i < 30; ++i) {
    timers += sched_.advance_time(10ms);
    sched_.run();
  }
  EXPECT_EQ(many->ticks, 1000);
  EXPECT_EQ(a->wakes, (std::vector<int64_t>{7}));
  EXPECT_LE(timers, 3u);
}

// The real store actor tells the session of an outbox ack that failed, so that the
// uplink asks again (a failed write leaves the acked entries queued); a good ack is
// silent. The committer runs on its own thread: the store's next synchronous request
// returns only after the earlier completions ran (FIFO), so no wait is timed.
TEST_F(ActorTest, StoreActorReportsAFailedOutboxAckToTheSession) {
  auto counts = std::make_shared<probe_counts>();
  auto session = keep(sys_.spawn(probe, counts));
  auto worker = keep(sys_.spawn([](blocking_worker_actor::pointer) -> blocking_worker_actor::behavior_type {
    return {[](atom::io, io_job& j) {
      if (j.run) j.run();
    }};
  }));
  auto store = keep(spawn_store_actor(sys_, store_, worker));
  caf::anon_send(store, atom::ack_v, session, uint8_t{0}, uint64_t{1});
  caf::anon_send(store, atom::ack_v, session, uint8_t{9}, uint64_t{3}); // no lane 9: refused
  sched_.run();
  ASSERT_FALSE(store_->ack_outbox(0, 0)); // after both completions
  sched_.run();
  ASSERT_EQ(counts->failed_acks.size(), 1u);
  EXPECT_EQ(counts->failed_acks[0], (std::pair<uint8_t, uint64_t>{9, 3}));
  EXPECT_EQ(counts->ack_errors[0].code, errc::invalid_argument) << counts->ack_errors[0].to_string();
}

TEST_F(ActorTest, HubRunsWatchersUntilUnwatched) {
  auto hub = keep(spawn_hub(sys_));
  int calls = 0;
  size_t changes = 0;
  caf::anon_send(hub, atom::watch_v, change_watch{7, [&](const std::vector<storage::change>& ch) {
                                                    ++calls;
                                                    changes += ch.size();
                                                  }});
  caf::anon_send(hub, atom::committed_v, committed{{change_of("t1", "", 2, "a"), change_of("t1", "", 2, "b")}});
  sched_.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(changes, 2u);
  caf::anon_send(hub, atom::unwatch_v, uint64_t{7});
  caf::anon_send(hub, atom::committed_v, committed{{change_of("t1", "", 2, "c")}});
  sched_.run();
  EXPECT_EQ(calls, 1);
}

TEST_F(ActorTest, DownlinkRefusesUnknownNodeAndAudits) {
  auto log = std::make_shared<link_log>();
  auto s = spawn_session(sys_, setup(session_setup::kind::downlink), std::make_unique<fake_link>(log));
  sched_.run();
  ASSERT_TRUE(log->started);
  EXPECT_TRUE(log->written.empty()); // waits for the Hello
  log->events->on_frame(terminal_hello());
  sched_.run();
  ASSERT_EQ(log->written.size(), 1u);
  ASSERT_TRUE(log->written[0].has_error());
  EXPECT_EQ(log->written[0].error().code(), static_cast<uint32_t>(errc::permission_denied));
  ASSERT_TRUE(log->closed_with);
  EXPECT_EQ(log->closed_with->code, errc::permission_denied);
  EXPECT_GE(*jobs_, 1); // the audit
  auto audits = store_->sessions(10);
  ASSERT_TRUE(audits);
  ASSERT_EQ(audits->size(), 1u);
  EXPECT_NE((*audits)[0].result.find("permission_denied"), std::string::npos);
}

TEST_F(ActorTest, DownlinkTimesOutWithoutHello) {
  auto log = std::make_shared<link_log>();
  auto su = setup(session_setup::kind::downlink);
  su.opts.hello_timeout_ms = 250;
  auto s = spawn_session(sys_, su, std::make_unique<fake_link>(log));
  sched_.run();
  EXPECT_FALSE(log->closed_with);
  for (int i = 0; i < 5 && !log->closed_with; ++i) {
    now_ += 100;
    sched_.advance_time(100ms);
    sched_.run();
  }
  ASSERT_TRUE(log->closed_with);
  EXPECT_NE(log->closed_with->code, errc::ok);
}

// A session with nothing timed to do ticks every quiet_tick_ms, not every tick_ms (a
// process with thousands of sessions spent a fifth of its idle CPU on empty ticks);
// timed work that comes up meanwhile (here stock changed during its feed's pause) is
// ticked within tick_ms all the same, not at the next quiet tick.
TEST_F(ActorTest, AQuietSessionTicksSlowlyYetServesPausedStockOnTime) {
  test::register_device(*store_, term_node, storage::node_role::terminal, "b1");
  auto log = std::make_shared<link_log>();
  auto su = setup(session_setup::kind::downlink); // tick_ms 100
  su.opts.quiet_tick_ms = su.opts.auth_check_ms = 5000;
  su.opts.heartbeat_ms = 600'000;
  su.opts.idle_timeout_ms = 6'000'000;
  su.opts.live_pause_ms = {0, 1000, 0, 0};
  auto hub = su.hub;
  keep(spawn_session(sys_, su, std::make_unique<fake_link>(log)));
  sched_.run();
  log->events->on_frame(terminal_hello());
  sched_.run();
  ASSERT_FALSE(log->closed_with) << log->closed_with->to_string();
  ASSERT_TRUE(!log->written.empty() && log->written[0].has_welcome());

  size_t timeouts = 0;
  auto step = [&](int64_t ms) {
    now_ += ms;
    timeouts += sched_.advance_time(std::chrono::milliseconds(ms));
    sched_.run();
  };
  for (int i = 0; i < 30; ++i)
    step(100);
  EXPECT_LE(timeouts, 2u) << "a quiet session ticked every tick_ms";

  auto restock = [&](int64_t delta) {
    storage::counter_op op;
    op.key = core::record_key{"t1", "b1", "stock", "p0"};
    op.delta = delta;
    auto w = store_->write({op});
    ASSERT_TRUE(w) << w.err().to_string();
    caf::anon_send(hub, atom::committed_v, committed{w->changes});
    sched_.run();
  };
  auto stock_frames = [&] {
    size_t n = 0;
    for (const auto& f : log->written)
      if (f.has_changes())
        for (const auto& r : f.changes().records())
          n += r.key().collection() == "stock";
    return n;
  };
  restock(5000); // a quiet spell's first change goes at once and opens the pause
  EXPECT_EQ(stock_frames(), 1u);
  const int64_t round = now_;
  step(100);
  restock(-1000); // waits out the pause (1,000 ms, stretched by up to half per peer)
  EXPECT_EQ(stock_frames(), 1u);
  int64_t served_at = 0;
  for (int i = 0; i < 40 && !served_at; ++i) {
    step(100);
    if (stock_frames() == 2) served_at = now_;
  }
  ASSERT_NE(served_at, 0) << "the paused change was never served";
  EXPECT_LE(served_at - round, 1500 + 100) << "served at a quiet tick, not within tick_ms of the pause's end";
}

TEST_F(ActorTest, UplinkSendsHelloFirst) {
  auto log = std::make_shared<link_log>();
  auto su = setup(session_setup::kind::uplink);
  su.me = local_identity{branch_node, storage::node_role::branch, "t1", "b1"};
  su.snapshot = std::make_shared<uplink_snapshot>();
  auto s = keep(spawn_session(sys_, su, std::make_unique<fake_link>(log)));
  sched_.run();
  ASSERT_FALSE(log->written.empty());
  ASSERT_TRUE(log->written[0].has_hello());
  EXPECT_EQ(log->written[0].hello().node(), branch_node);
  EXPECT_FALSE(su.snapshot->get().online);
  // The peer goes away: the session ends with unavailable.
  log->events->on_closed(error(errc::unavailable, "gone"));
  sched_.run();
  EXPECT_FALSE(su.snapshot->get().online);
}

TEST_F(ActorTest, SupervisorRetriesWithBackoffAndStopsWhenDisabled) {
  auto dials = std::make_shared<int>(0);
  supervisor_setup sv;
  sv.endpoints = {"a", "b"};
  sv.connect = [dials](const std::string&) -> std::unique_ptr<link> {
    ++*dials;
    auto log = std::make_shared<link_log>();
    log->close_on_start = error(errc::unavailable, "connection refused");
    return std::make_unique<fake_link>(log);
  };
  sv.backoff.initial_ms = 100;
  sv.backoff.max_ms = 400;
  sv.backoff.jitter = 0;
  sv.session = setup(session_setup::kind::uplink);
  auto snap = std::make_shared<uplink_snapshot>();
  sv.session.snapshot = snap;
  auto sup = keep(spawn_supervisor(sys_, sv));
  sched_.run();
  EXPECT_EQ(*dials, 1);
  auto v = snap->get();
  EXPECT_FALSE(v.session);
  EXPECT_NE(v.last_error.find("connection refused"), std::string::npos) << v.last_error;
  EXPECT_EQ(v.endpoint, "a");
  // Nothing happens before the backoff delay.
  sched_.run();
  EXPECT_EQ(*dials, 1);
  sched_.advance_time(100ms);
  sched_.run();
  EXPECT_EQ(*dials, 2);
  EXPECT_EQ(snap->get().restarts, 1u);
  EXPECT_EQ(snap->get().endpoint, "b"); // rotates
  // sync_now skips the wait.
  caf::anon_send(sup, atom::sync_v);
  sched_.run();
  EXPECT_EQ(*dials, 3);
  // Disabled: no more attempts, whatever the time.
  caf::anon_send(sup, atom::enable_v, false);
  sched_.run();
  sched_.advance_time(10s);
  sched_.run();
  EXPECT_EQ(*dials, 3);
  caf::anon_send(sup, atom::enable_v, true);
  sched_.run();
  EXPECT_EQ(*dials, 4);
  caf::anon_send(sup, atom::stop_v, error(errc::unavailable, "stopping"));
  sched_.run();
  sched_.advance_time(10s);
  sched_.run();
  EXPECT_EQ(*dials, 4);
}

} // namespace
} // namespace possync::actors
