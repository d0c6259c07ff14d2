// Hub and its notifier.

#include "possync/actors/hub.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <utility>

namespace possync::actors {

namespace {

struct notifier_state {
  std::string label;
  std::map<uint64_t, change_watch::fn_type> watchers;
  static inline const char* name = "possync.notifier";
};

// Function actors take an argument: spawning an argument-less one trips UBSan inside
// CAF 0.17's init_fun_factory.
notifier_actor::behavior_type notifier(notifier_actor::stateful_pointer<notifier_state> self, std::string label) {
  self->state.label = std::move(label);
  return {
      [=](atom::watch, change_watch& w) { self->state.watchers[w.id] = std::move(w.fn); },
      [=](atom::unwatch, uint64_t id) { self->state.watchers.erase(id); },
      [=](atom::committed, const committed& c) {
        for (auto& [id, fn] : self->state.watchers)
          if (fn) fn(c.changes);
      },
  };
}

/// A downlink session as the hub knows it.
struct subscriber {
  session_actor handle;
  std::vector<feed_id> feeds;
  std::shared_ptr<const std::set<std::string>> collections; ///< null: any collection wakes it
};

struct hub_state {
  /// Feed -> sessions serving it, with the collections each takes (null: any).
  std::map<feed_id, std::map<caf::actor_addr, const std::set<std::string>*>> by_feed;
  /// Session -> its handle, feeds and collections.
  std::map<caf::actor_addr, subscriber> sessions;
  session_actor uplink;
  /// Session -> the feeds it serves that commits landed on since the last flush.
  std::map<caf::actor_addr, std::set<feed_id>> dirty;
  bool uplink_dirty = false;
  bool flush_pending = false;
  notifier_actor notifier;
  std::set<uint64_t> watchers;
  std::string label;
  static inline const char* name = "possync.hub";

  void drop(const caf::actor_addr& a) {
    auto i = sessions.find(a);
    if (i != sessions.end()) {
      for (const auto& f : i->second.feeds) {
        auto j = by_feed.find(f);
        if (j == by_feed.end()) continue;
        j->second.erase(a);
        if (j->second.empty()) by_feed.erase(j);
      }
      sessions.erase(i);
    }
    dirty.erase(a);
  }
};

hub_actor::behavior_type hub_fn(hub_actor::stateful_pointer<hub_state> self, std::string label) {
  self->state.label = std::move(label);
  self->state.notifier = self->spawn<caf::linked>(notifier, self->state.label);
  self->set_down_handler([=](caf::down_msg& m) {
    auto& st = self->state;
    if (st.uplink && m.source == st.uplink.address()) {
      st.uplink = nullptr;
      st.uplink_dirty = false;
    }
    st.drop(m.source);
  });
  auto schedule_flush = [=] {
    if (self->state.flush_pending) return;
    self->state.flush_pending = true;
    self->send(self, atom::flush_v);
  };
  return {
      [=](atom::committed, committed& c) {
        auto& st = self->state;
        if (c.changes.empty()) return;
        if (!st.watchers.empty()) self->send(st.notifier, atom::committed_v, c);
        if (st.uplink) st.uplink_dirty = true;
        if (!st.by_feed.empty()) {
          // The feeds the commit touched, each once with the collections it changed
          // there: a committed group holds hundreds of changes of a few feeds, and a
          // branch's feed has a session per register.
          std::map<feed_id, std::vector<const std::string*>> touched;
          const storage::change* last = nullptr;
          std::vector<const std::string*>* cols = nullptr;
          for (const auto& ch : c.changes) {
            if (!last || last->lane != ch.lane || last->key.scope != ch.key.scope ||
                last->key.tenant != ch.key.tenant)
              cols = &touched[feed_id{ch.key.tenant, ch.key.scope, ch.lane}];
            last = &ch;
            const std::string& name = ch.key.collection;
            if (std::none_of(cols->begin(), cols->end(), [&](const std::string* c) { return *c == name; }))
              cols->push_back(&name);
          }
          for (const auto& [f, changed] : touched) {
            auto i = st.by_feed.find(f);
            if (i == st.by_feed.end()) continue;
            for (const auto& [a, takes] : i->second)
              if (!takes || std::any_of(changed.begin(), changed.end(),
                                        [t = takes](const std::string* c) { return t->count(*c) > 0; }))
                st.dirty[a].insert(f);
          }
        }
        if (st.uplink_dirty || !st.dirty.empty()) schedule_flush();
      },
      [=](atom::subscribe, session_actor& s, feed_subscription& sub) {
        auto& st = self->state;
        auto a = s.address();
        bool known = st.sessions.count(a) > 0;
        st.drop(a);
        if (!known) self->monitor(s);
        for (const auto& f : sub.feeds)
          st.by_feed[f][a] = sub.collections.get();
        st.sessions[a] = subscriber{std::move(s), std::move(sub.feeds), std::move(sub.collections)};
      },
      [=](atom::uplink, session_actor& s) {
        self->monitor(s);
        self->state.uplink = std::move(s);
      },
      [=](atom::watch, change_watch& w) {
        self->state.watchers.insert(w.id);
        self->send(self->state.notifier, atom::watch_v, std::move(w));
      },
      [=](atom::unwatch, uint64_t id) {
        self->state.watchers.erase(id);
        self->send(self->state.notifier, atom::unwatch_v, id);
      },
      [=](atom::flush) {
        auto& st = self->state;
        st.flush_pending = false;
        for (auto& [a, feeds] : st.dirty) {
          auto i = st.sessions.find(a);
          if (i != st.sessions.end())
            self->send(i->second.handle, atom::feed_v, feed_subscription{{feeds.begin(), feeds.end()}, nullptr});
        }
        st.dirty.clear();
        if (st.uplink_dirty && st.uplink) self->send(st.uplink, atom::outbox_v);
        st.uplink_dirty = false;
      },
  };
}

} // namespace

hub_actor spawn_hub(caf::actor_system& sys, std::string label) {
  return sys.spawn(hub_fn, std::move(label));
}

} // namespace possync::actors
