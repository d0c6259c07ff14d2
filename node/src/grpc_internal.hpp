#pragma once
// Shared between the gRPC sources of this folder (grpc_transport.cpp, admin_service.cpp).
// gRPC headers: private to node/src.

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "possync/node/grpc_transport.hpp"

namespace possync::node::detail {

/// The common name of the caller's verified TLS certificate, "" without one.
std::string peer_certificate_name(const grpc::CallbackServerContext* ctx);
/// A channel to `endpoint` with the options of grpc_connect (shared unless
/// opts.share_channel is false).
std::shared_ptr<grpc::Channel> dial(const std::string& endpoint, const grpc_client_options& opts);
/// Drops the last references to channels and stubs on the reaper thread (see
/// grpc_transport.cpp: dropping them on a gRPC thread crashes gRPC 1.51).
void reap(std::shared_ptr<void> channel_or_stub);
/// possync.v1.Admin over `h`; over TLS only the certificate "admin" may call.
std::unique_ptr<grpc::Service> make_admin_service(std::shared_ptr<admin_handler> h, bool tls);

} // namespace possync::node::detail
