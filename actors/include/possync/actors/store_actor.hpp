#pragma once
// The store actor: the only path by which actors write to a node store. Durable
// applies and outbox acks go to the store's committer (the *_async calls; their
// completions run on the committer thread and only anon_send). Small blocking writes
// (io_job) go to a blocking worker: a detached actor with its own thread, shared by
// every node of a runtime, so nothing on the shared scheduler waits for an fsync.

#include <memory>

#include "caf/fwd.hpp"

#include "possync/actors/messages.hpp"
#include "possync/storage/store.hpp"

namespace possync::actors {

/// Spawns the blocking worker (detached: one thread). It runs each (io, io_job) it
/// receives, in order. Stop it with an exit message when no node uses it any more.
blocking_worker_actor spawn_blocking_worker(caf::actor_system& sys);

/// Spawns the store actor of `store`; io jobs are forwarded to `blocking_worker`.
/// The store must outlive every request the actor accepted (hold it by shared_ptr:
/// io jobs capture it too).
store_actor spawn_store_actor(caf::actor_system& sys, std::shared_ptr<storage::node_store> store,
                              blocking_worker_actor blocking_worker);

/// Installs `store`'s commit listener so that every durable commit reaches `hub` as
/// (committed, ...). The listener runs on the committer thread and only anon_sends.
/// Pass a null hub to remove it.
void connect_listener(storage::node_store& store, hub_actor hub);

} // namespace possync::actors
