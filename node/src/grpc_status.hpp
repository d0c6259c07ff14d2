#pragma once
// The one mapping between possync::error and grpc::Status (errc numbers are gRPC codes).

#include <grpcpp/support/status.h>

#include "possync/core/error.hpp"

namespace possync::node {

/// ok -> OK; otherwise code = the errc number, message = the error's message.
inline grpc::Status to_grpc_status(const error& e) {
  if (!e) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(e.code), e.message);
}

/// OK -> an empty error; codes outside possync::errc become unknown.
inline error from_grpc_status(const grpc::Status& s) {
  if (s.ok()) return {};
  auto code = static_cast<int>(s.error_code());
  if (code <= 0 || code > static_cast<int>(errc::unauthenticated))
    return {errc::unknown, "grpc status " + std::to_string(code) + ": " + s.error_message()};
  return {static_cast<errc>(code), s.error_message()};
}

} // namespace possync::node
