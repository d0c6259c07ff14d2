#pragma once
// Small helpers shared by the uplink and downlink machines (private).

#include <cstdint>
#include <string>

#include "possync/core/error.hpp"
#include "possync/storage/store.hpp"
#include "possync/v1/sync.pb.h"

namespace possync::actors::detail {

/// A wire code (Error.code, Rejection.code) as an errc; out-of-range or 0 -> unknown.
inline errc code_from_wire(uint32_t code) {
  if (code == 0 || code > static_cast<uint32_t>(errc::unauthenticated)) return errc::unknown;
  return static_cast<errc>(code);
}

/// An Error frame carrying `e`.
inline v1::Frame error_frame(const error& e) {
  v1::Frame f;
  auto* err = f.mutable_error();
  err->set_code(static_cast<uint32_t>(e.code == errc::ok ? errc::unknown : e.code));
  err->set_message(e.message);
  return f;
}

/// Name of a frame's kind, for error messages.
inline const char* frame_name(const v1::Frame& f) {
  switch (f.kind_case()) {
  case v1::Frame::kHello:
    return "Hello";
  case v1::Frame::kWelcome:
    return "Welcome";
  case v1::Frame::kPush:
    return "Push";
  case v1::Frame::kAck:
    return "Ack";
  case v1::Frame::kChanges:
    return "Changes";
  case v1::Frame::kHeartbeat:
    return "Heartbeat";
  case v1::Frame::kCommand:
    return "Command";
  case v1::Frame::kError:
    return "Error";
  case v1::Frame::KIND_NOT_SET:
    break;
  }
  return "an empty frame";
}

inline v1::Role role_to_wire(storage::node_role r) {
  switch (r) {
  case storage::node_role::terminal:
    return v1::ROLE_TERMINAL;
  case storage::node_role::branch:
    return v1::ROLE_BRANCH;
  case storage::node_role::hq:
    return v1::ROLE_HQ;
  }
  return v1::ROLE_UNSPECIFIED;
}

/// Bytes a record costs in a batch (bodies dominate; keys and metadata roughly).
inline size_t record_cost(const core::record& r) {
  size_t n = r.key.tenant.size() + r.key.scope.size() + r.key.collection.size() + r.key.id.size();
  for (const auto& v : r.versions)
    n += v.body.size() + 32 + 16 * v.past.entries().size();
  return n;
}

} // namespace possync::actors::detail
