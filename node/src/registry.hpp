#pragma once
// The device registry of a node (collection "device", tenant scope, id = node id).

#include "possync/node/node.hpp"

namespace possync::node::detail {

/// Writes `d` into `store`'s registry unless an equal entry is there (idempotent; the
/// first registration time is kept). invalid_argument for a device without a node id
/// or tenant, or a terminal/branch without a branch.
status register_device(storage::node_store& store, const device& d, int64_t now_ms);

} // namespace possync::node::detail
