// Device registry writes.

#include "registry.hpp"

#include "possync/v1/pos.pb.h"

namespace possync::node::detail {

status register_device(storage::node_store& store, const device& d, int64_t now_ms) {
  if (d.node == 0) return error(errc::invalid_argument, "device without a node id");
  if (d.tenant.empty()) return error(errc::invalid_argument, "device " + device_id(d.node) + " without a tenant");
  if (d.role != storage::node_role::hq && d.branch.empty())
    return error(errc::invalid_argument, "device " + device_id(d.node) + " (" + storage::to_string(d.role) +
                                             ") without a branch");
  core::record_key key{d.tenant, "", "device", device_id(d.node)};
  v1::Device body;
  body.set_node(d.node);
  body.set_role(static_cast<uint32_t>(d.role));
  body.set_branch(d.branch);
  body.set_name(d.name);
  body.set_revoked(d.revoked);
  body.set_registered_ms(now_ms);
  auto cur = store.read(key);
  if (!cur) return cur.err();
  if (cur->exists) {
    v1::Device old;
    if (old.ParseFromString(cur->body)) {
      if (old.node() == body.node() && old.role() == body.role() && old.branch() == body.branch() &&
          old.name() == body.name() && old.revoked() == body.revoked())
        return {};
      if (old.registered_ms() != 0) body.set_registered_ms(old.registered_ms());
    }
  }
  storage::put_op op;
  op.key = std::move(key);
  op.body = body.SerializeAsString();
  auto r = store.write({std::move(op)});
  if (!r) return r.err();
  return {};
}

status revoke_token(storage::node_store& store, const std::string& tenant, const std::string& token_id,
                    uint64_t node, int64_t expires_ms, const std::string& reason, int64_t now_ms) {
  bool hex = token_id.size() == 32;
  for (char c : token_id)
    hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!hex) return error(errc::invalid_argument, "token id '" + token_id + "' is not 32 lower-case hex digits");
  v1::TokenRevocation body;
  body.set_node(node);
  body.set_revoked_ms(now_ms);
  body.set_expires_ms(expires_ms);
  body.set_reason(reason);
  storage::put_op op;
  op.key = core::record_key{tenant, "", "revocation", token_id};
  op.body = body.SerializeAsString();
  auto r = store.write({std::move(op)});
  if (!r) return r.err();
  return {};
}

} // namespace possync::node::detail
