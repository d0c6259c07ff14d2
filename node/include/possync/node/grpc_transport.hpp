#pragma once
// Links over gRPC: service possync.v1.Sync, rpc Session(stream Frame) returns (stream Frame),
// one bidirectional stream per peer pair, on gRPC's callback API.
//
// - grpc_server accepts Session streams and hands each one, as an actors::link, to
//   `on_session`. The receiver owns the link and must start() it.
// - grpc_connect() returns a link that dials the endpoint when started.
//
// Both honour the contract of actors/link.hpp. Additions valid for both sides:
// - Destroying a link closes it with `cancelled` and delivers no further event to its
//   sink (the sink's shared_ptr is released). A link may be destroyed at any time: before
//   start(), after on_closed(), after its server was shut down.
// - write() after the stream broke but before on_closed() was delivered yields
//   on_written(false); write()/read_next() after on_closed() do nothing.
// - A frame larger than max_message_bytes (either side's limit) ends the stream with
//   resource_exhausted; the process carries on.
// - Server close(why) finishes the RPC with status code = why.code (errc numbers are gRPC
//   codes) and message = why.message; the client's on_closed carries that code and message.
//   Client close(ok) half-closes and on_closed carries the server's final status; client
//   close(error) cancels the RPC (the server sees `cancelled`) and on_closed carries `why`.
// - A client that cannot reach its endpoint gets on_closed(unavailable, gRPC's message).
// - A few events come on the owner's own thread, from inside the call that caused them:
//   on_closed from start() when the link was closed before it started, on_written(false)
//   from write() on a broken stream, on_closed from close(error).
// - Events are delivered under the link's lock: a sink may call its link back, but must
//   not wait for another thread that uses the link.
//
// Security: with `tls` set, links use TLS 1.2+; the server requires and verifies a
// client certificate signed by the same CA (mutual TLS), and the server link reports
// the client certificate's common name as peer_identity() (the node's admission
// checks it against the Hello's node id). Without `tls`, plaintext is allowed on
// loopback addresses only (development; `--insecure-dev` in the CLI) and refused
// anywhere else.
//
// No gRPC headers here (pimpl); the status mapping lives in node/src/grpc_status.hpp.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "possync/actors/link.hpp"
#include "possync/core/error.hpp"

namespace possync::node {

/// HTTP/2 keepalive pings: detect dead peers on idle connections.
struct keepalive_options {
  int64_t time_ms = 20'000;    ///< ping after this long without activity [20 s]; 0 = never
  int64_t timeout_ms = 10'000; ///< drop the connection if a ping is not answered within [10 s]
  int64_t min_peer_ping_ms =
      5'000; ///< server: accept client pings this often [5 s] (keep <= clients' time_ms)
};

/// Certificates of one node, PEM text (see deploy/make-certs.sh). Empty = plaintext.
struct tls_options {
  std::string ca_pem;    ///< the CA every peer's certificate must chain to
  std::string cert_pem;  ///< this node's certificate (chain)
  std::string key_pem;   ///< its private key
  bool enabled() const { return !cert_pem.empty() || !key_pem.empty() || !ca_pem.empty(); }
};

/// Reads the three PEM files. not_found naming a file that cannot be read;
/// invalid_argument for a file that holds no PEM block, or when only some are given.
result<tls_options> load_tls_files(const std::string& ca_file, const std::string& cert_file,
                                   const std::string& key_file);

class admin_handler;  // admin.hpp

/// How a grpc_server listens. Defaults in brackets.
struct grpc_server_options {
  std::string listen = "127.0.0.1:0"; ///< "host:port" ["127.0.0.1:0": a free loopback port]
  /// Called on a gRPC thread for every new Session stream, possibly concurrently; must not
  /// block. The receiver owns the link and must start() it. Empty: every stream is refused
  /// with unavailable.
  std::function<void(std::unique_ptr<actors::link>)> on_session;
  bool gzip = true;                    ///< compress what the server sends [on; never to a loopback peer]
  size_t max_message_bytes = 8u << 20; ///< largest frame received or sent [8 MiB]
  /// HTTP/2 flow-control window of each stream, in bytes [64 KiB]: how much the peer
  /// may send ahead of what this side has read. Small, a sale's Push or Ack queues
  /// behind at most this much catalogue or report in transit (W6: at gRPC's automatic
  /// sizing, up to megabytes and hundreds of ms on loopback). It caps one stream's
  /// throughput at window / round trip: raise it on long-haul links. 0 = gRPC's
  /// automatic sizing (BDP probing).
  size_t stream_window_bytes = 64u << 10;
  tls_options tls;                     ///< mutual TLS; empty = plaintext, loopback only
  keepalive_options keepalive;
  /// Serves possync.v1.Admin too (admin.hpp; callers: TLS client certificate
  /// "admin", or any caller over plaintext loopback); null = not served.
  std::shared_ptr<admin_handler> admin;
};

/// A running gRPC server for the Sync service. Thread-safe.
class grpc_server {
public:
  /// Binds and starts. Errors: failed_precondition (plaintext on a non-loopback
  /// address), invalid_argument (incomplete TLS options), unavailable (cannot bind).
  static result<std::unique_ptr<grpc_server>> start(grpc_server_options opts);
  /// Shuts down with a short grace period (see shutdown()).
  ~grpc_server();
  grpc_server(const grpc_server&) = delete;
  grpc_server& operator=(const grpc_server&) = delete;

  /// The bound port (the one picked for "host:0"); 0 for a unix socket.
  uint16_t port() const;
  /// Stops accepting, lets open streams end for up to `grace`, then cancels the rest
  /// (their links get on_closed(cancelled)); returns when every stream is done.
  /// Idempotent. Links handed out stay safe to use (and to destroy) afterwards.
  void shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

  struct impl;

private:
  explicit grpc_server(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

/// How grpc_connect dials. Defaults in brackets.
struct grpc_client_options {
  bool gzip = true;                    ///< compress what the client sends [on; never to a loopback endpoint]
  size_t max_message_bytes = 8u << 20; ///< largest frame received or sent [8 MiB]
  /// HTTP/2 flow-control window of each stream, in bytes [64 KiB]: how much the peer
  /// may send ahead of what this side has read. Small, a sale's Push or Ack queues
  /// behind at most this much catalogue or report in transit (W6: at gRPC's automatic
  /// sizing, up to megabytes and hundreds of ms on loopback). It caps one stream's
  /// throughput at window / round trip: raise it on long-haul links. 0 = gRPC's
  /// automatic sizing (BDP probing).
  size_t stream_window_bytes = 64u << 10;
  /// Give up if the stream is not established within this long [5 s]; on_closed then
  /// carries unavailable. 0 = wait for gRPC's own connect timeout (about 20 s).
  int64_t connect_timeout_ms = 5'000;
  keepalive_options keepalive;
  /// Reuse one channel (one HTTP/2 connection) per endpoint and options [on].
  bool share_channel = true;
  tls_options tls;           ///< mutual TLS (the server's certificate is verified); empty = plaintext
  /// The name the server's certificate must carry ("" = the endpoint's host), for
  /// dialing an address its certificate does not name.
  std::string server_name;
};

/// A link to the Sync service at `endpoint` ("host:port"). Nothing happens on the network
/// until start(). Fails fast (wait_for_ready off): an unreachable endpoint yields
/// on_closed(unavailable). peer() returns `endpoint`.
std::unique_ptr<actors::link> grpc_connect(const std::string& endpoint, grpc_client_options opts = {});

/// True for addresses that stay on this machine: 127.0.0.0/8, [::1], localhost, unix:.
bool is_loopback_address(const std::string& address);

} // namespace possync::node
