#pragma once
// The device registry of a node (collection "device", tenant scope, id = node id).

#include "possync/node/node.hpp"

namespace possync::node::detail {

/// Writes `d` into `store`'s registry unless an equal entry is there (idempotent; the
/// first registration time is kept). invalid_argument for a device without a node id
/// or tenant, or a terminal/branch without a branch.
status register_device(storage::node_store& store, const device& d, int64_t now_ms);

/// Writes the revocation of token `token_id` (collection "revocation", tenant scope)
/// into an HQ store. invalid_argument for an id that is not 32 hex digits.
status revoke_token(storage::node_store& store, const std::string& tenant, const std::string& token_id,
                    uint64_t node, int64_t expires_ms, const std::string& reason, int64_t now_ms);

} // namespace possync::node::detail
