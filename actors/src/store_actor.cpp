// Store actor and blocking worker.

#include "possync/actors/store_actor.hpp"

#include <utility>

namespace possync::actors {

namespace {

// Takes a (counter) argument: spawning an argument-less function actor trips UBSan
// inside CAF 0.17's init_fun_factory.
blocking_worker_actor::behavior_type blocking_worker(blocking_worker_actor::pointer, std::shared_ptr<uint64_t> runs) {
  return {
      [runs](atom::io, io_job& job) {
        ++*runs;
        if (job.run) job.run();
      },
  };
}

struct store_state {
  std::shared_ptr<storage::node_store> store;
  blocking_worker_actor worker;
  static inline const char* name = "possync.store";
};

store_actor::behavior_type store_fn(store_actor::stateful_pointer<store_state> self,
                                    std::shared_ptr<storage::node_store> store, blocking_worker_actor worker) {
  self->state.store = std::move(store);
  self->state.worker = std::move(worker);
  return {
      [=](atom::apply, session_actor dst, apply_request& req) {
        const uint64_t token = req.token;
        self->state.store->apply_remote_async(
            std::move(req.records), req.from, std::move(req.cursor),
            [dst = std::move(dst), token](result<storage::apply_result> r) {
              apply_done d;
              d.token = token;
              if (r)
                d.value = std::move(r).value();
              else
                d.err = std::move(r).err();
              caf::anon_send(dst, atom::applied_v, std::move(d));
            });
      },
      [=](atom::ack, session_actor dst, uint8_t lane, uint64_t seq) {
        // A failed ack leaves the entries queued (the upstream holds them): the session
        // asks again at its next tick.
        self->state.store->ack_outbox_async(lane, seq, [dst = std::move(dst), lane, seq](status s) {
          if (s) caf::anon_send(dst, atom::ack_v, lane, seq, std::move(s));
        });
      },
      [=](atom::io, io_job& job) { self->send(self->state.worker, atom::io_v, std::move(job)); },
  };
}

} // namespace

blocking_worker_actor spawn_blocking_worker(caf::actor_system& sys) {
  return sys.spawn<caf::detached>(blocking_worker, std::make_shared<uint64_t>(0));
}

store_actor spawn_store_actor(caf::actor_system& sys, std::shared_ptr<storage::node_store> store,
                              blocking_worker_actor blocking_worker) {
  return sys.spawn(store_fn, std::move(store), std::move(blocking_worker));
}

void connect_listener(storage::node_store& store, hub_actor hub) {
  if (!hub) {
    store.set_listener(nullptr);
    return;
  }
  store.set_listener([hub = std::move(hub)](const std::vector<storage::change>& changes) {
    caf::anon_send(hub, atom::committed_v, committed{changes});
  });
}

} // namespace possync::actors
