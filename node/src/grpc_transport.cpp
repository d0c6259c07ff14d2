// gRPC links on the callback API. Shape of both sides: a reactor (owned by gRPC, deleted
// in OnDone) and a link object (owned by the session actor) share a small control block.
// Its mutex serialises the owner's Start* calls against the reactions and OnDone, and
// events are delivered while holding it, so no event can overtake on_closed. The mutex
// is recursive because gRPC may run a reaction inline inside a Start* call.
//
// Server: OnDone follows Finish, and only the control block calls Finish, so `finished`
// alone tells the link that the reactor may be gone. Client: the link holds the call
// (AddHold) while it may start operations; once the hold is released OnDone may run and
// delete the reactor, so the link stops touching it.

#include "possync/node/grpc_transport.hpp"

#include <condition_variable>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include "grpc_internal.hpp"
#include "grpc_status.hpp"
#include "possync/v1/sync.grpc.pb.h"

namespace possync::node {

namespace {

using frame = v1::Frame;
using lock_guard = std::lock_guard<std::recursive_mutex>;

int clamp_int(size_t n) {
  return n > static_cast<size_t>(INT32_MAX) ? INT32_MAX : static_cast<int>(n);
}

int clamp_int(int64_t n) {
  return n > INT32_MAX ? INT32_MAX : n < 0 ? 0 : static_cast<int>(n);
}

// start() of either link, under its control block's lock: installs the sink and
// delivers a close decided before start. False: already started, or closed now.
template <class Control>
bool begin_events(Control& ctl, std::shared_ptr<actors::link_events> events) {
  if (ctl.started) return false;
  ctl.started = true;
  ctl.events = std::move(events);
  if (ctl.pending_close) {
    auto why = std::move(*ctl.pending_close);
    ctl.pending_close.reset();
    ctl.deliver_closed(std::move(why));
    return false;
  }
  return true;
}

// -- server ------------------------------------------------------------------------

class server_stream;

struct server_control {
  std::recursive_mutex mu;
  server_stream* stream = nullptr; // valid until `finished` (OnDone only follows Finish)
  std::shared_ptr<actors::link_events> events;
  bool started = false;
  bool finished = false;              // Finish called: no more operations on `stream`
  bool closed = false;                // on_closed delivered (or suppressed): no more events
  bool cancelled = false;             // OnCancel seen
  bool reading = false;               // a read is outstanding
  bool writing = false;               // a write is outstanding
  std::optional<error> pending_close; // decided before start(): delivered by start()
  std::string peer;
  uint64_t frames_read = 0;  // frames parsed from the client
  std::string identity;  // common name of the verified client certificate, "" without TLS

  void finish(const grpc::Status& status);
  void deliver_closed(error why) {
    if (closed || pending_close) return;
    if (!started) {
      pending_close = std::move(why);
      return;
    }
    closed = true;
    auto ev = std::move(events);
    if (ev) ev->on_closed(std::move(why));
  }
};

class server_stream final : public grpc::ServerBidiReactor<frame, frame> {
public:
  server_stream(grpc::CallbackServerContext* ctx, std::shared_ptr<server_control> ctl, bool gzip)
      : ctx_(ctx), ctl_(std::move(ctl)) {
    ctl_->stream = this;
    // On loopback, compression costs both ends CPU and saves no network.
    if (gzip && !is_loopback_address(ctx_->peer())) ctx_->set_compression_algorithm(GRPC_COMPRESS_GZIP);
    // Lets the client tell "stream established" from "still connecting" (connect timeout).
    StartSendInitialMetadata();
  }

  void read() {
    ctl_->reading = true;
    StartRead(&in_);
  }

  void write(frame f) {
    ctl_->writing = true;
    out_ = std::move(f);
    StartWrite(&out_);
  }

  void OnReadDone(bool ok) override {
    lock_guard lock{ctl_->mu};
    ctl_->reading = false;
    if (ok) {
      ++ctl_->frames_read;
      if (!ctl_->closed && ctl_->events) ctl_->events->on_frame(std::move(in_));
      return;
    }
    // The client half-closed, or sent bytes that do not parse as a Frame (gRPC reports
    // both as a failed read), or the call broke (then OnCancel has come or will come
    // before OnDone, which tells that apart). Before any frame was read, neither is a
    // session: say so. Later, a clean half-close is how clients end a session; a frame
    // that does not parse ends it the same way (nothing of it was applied).
    if (ctl_->frames_read == 0)
      ctl_->finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "the stream ended before a valid first frame (malformed bytes, or no Hello)"));
    else
      ctl_->finish(grpc::Status::OK);
  }

  void OnWriteDone(bool ok) override {
    lock_guard lock{ctl_->mu};
    ctl_->writing = false;
    if (!ctl_->closed && ctl_->events) ctl_->events->on_written(ok);
  }

  void OnCancel() override {
    lock_guard lock{ctl_->mu};
    ctl_->cancelled = true;
    ctl_->finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
    ctl_->deliver_closed({errc::cancelled, "stream cancelled by the peer or the server"});
  }

  void OnDone() override {
    {
      auto ctl = ctl_;
      lock_guard lock{ctl->mu};
      ctl->stream = nullptr;
      ctl->finished = true;
      if (ctl->cancelled)
        ctl->deliver_closed({errc::cancelled, "stream cancelled by the peer or the server"});
      else
        ctl->deliver_closed({});
    }
    delete this;
  }

private:
  grpc::CallbackServerContext* ctx_;
  std::shared_ptr<server_control> ctl_;
  frame in_;
  frame out_;
};

void server_control::finish(const grpc::Status& status) {
  if (finished) return;
  finished = true;
  stream->Finish(status);
}

class server_link final : public actors::link {
public:
  explicit server_link(std::shared_ptr<server_control> ctl) : ctl_(std::move(ctl)) {}

  ~server_link() override {
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    ctl->events.reset();
    ctl->closed = true;
    ctl->finish(grpc::Status(grpc::StatusCode::CANCELLED, "session closed"));
  }

  void start(std::shared_ptr<actors::link_events> events) override {
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    if (!begin_events(*ctl, std::move(events))) return;
    if (!ctl->finished) ctl->stream->read();
  }

  void read_next() override {
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    if (ctl->started && !ctl->closed && !ctl->finished && !ctl->reading) ctl->stream->read();
  }

  void write(frame f) override {
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    if (!ctl->started || ctl->closed || ctl->writing)
      return; // (a second outstanding write breaks the contract: dropped)
    if (ctl->finished) {
      ctl->events->on_written(false);
      return;
    }
    ctl->stream->write(std::move(f));
  }

  void close(const error& why) override {
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    ctl->finish(to_grpc_status(why));
    ctl->deliver_closed(why);
  }

  std::string peer() const override { return ctl_->peer; }
  std::string peer_identity() const override { return ctl_->identity; }

private:
  std::shared_ptr<server_control> ctl_;
};

/// The common name of the client's verified certificate, "" without one.
std::string client_identity(const grpc::CallbackServerContext* ctx) {
  auto auth = ctx->auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return {};
  auto cn = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (cn.empty()) return {};
  return std::string(cn.front().data(), cn.front().size());
}

class sync_service final : public v1::Sync::CallbackService {
public:
  explicit sync_service(const grpc_server_options& opts) : on_session_(opts.on_session), gzip_(opts.gzip) {}

  grpc::ServerBidiReactor<frame, frame>* Session(grpc::CallbackServerContext* ctx) override {
    auto ctl = std::make_shared<server_control>();
    ctl->peer = ctx->peer();
    ctl->identity = client_identity(ctx);
    auto* stream = new server_stream(ctx, ctl, gzip_);
    if (!on_session_) {
      lock_guard lock{ctl->mu};
      ctl->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "this server accepts no sessions"));
      return stream;
    }
    try {
      on_session_(std::make_unique<server_link>(ctl));
    } catch (...) {
      // The link (if not taken) was destroyed, which finished the stream.
      lock_guard lock{ctl->mu};
      ctl->finish(grpc::Status(grpc::StatusCode::INTERNAL, "session handler failed"));
    }
    return stream;
  }

private:
  std::function<void(std::unique_ptr<actors::link>)> on_session_;
  bool gzip_;
};

// -- client ------------------------------------------------------------------------

// Drops references to channels (and stubs, which hold one) on a thread of its own.
// Destroying the last reference to a grpc::Channel releases gRPC's shared callback
// completion queue (the "callback alternative" one, used with the epoll1 poller), and when
// that was its last user too, gRPC shuts it down and joins its threads. Done on one of
// those threads (a reactor's OnDone, a link destroyed from inside an event), gRPC 1.51
// joins itself, deletes the queue and goes on polling it: a double free under ASan.
// So nothing here drops a channel reference anywhere but on this thread.
class channel_reaper {
public:
  static channel_reaper& get() {
    static auto* r = new channel_reaper; // never destroyed: in use until the process exits
    return *r;
  }

  void drop(std::shared_ptr<void> p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock{mu_};
    q_.push_back(std::move(p));
    cv_.notify_one();
  }

private:
  channel_reaper() {
    std::thread([this] {
      std::vector<std::shared_ptr<void>> batch;
      for (;;) {
        {
          std::unique_lock<std::mutex> lock{mu_};
          cv_.wait(lock, [&] { return !q_.empty(); });
          batch.swap(q_);
        }
        batch.clear();
      }
    }).detach();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<void>> q_;
};

class client_stream;

struct client_control {
  std::recursive_mutex mu;
  client_stream* stream = nullptr; // valid until OnDone
  bool hold = false;               // the link may start operations on `stream`
  std::shared_ptr<actors::link_events> events;
  bool started = false;
  bool closed = false;                // on_closed delivered (or suppressed)
  bool closing = false;               // close(ok): half-close, drain reads, wait for the status
  bool reading = false;               // a read is outstanding
  bool writing = false;               // a write is outstanding
  bool writes_done_wanted = false;    // half-close after the outstanding write
  bool established = false;           // the server's initial metadata arrived
  bool timed_out = false;             // cancelled by the connect timeout
  std::optional<error> pending_close; // close() before start()

  void release();
  void deliver_closed(error why) {
    if (closed) return;
    closed = true;
    auto ev = std::move(events);
    if (ev) ev->on_closed(std::move(why));
  }
};

class client_stream final : public grpc::ClientBidiReactor<frame, frame> {
public:
  client_stream(std::shared_ptr<client_control> ctl, const std::shared_ptr<grpc::Channel>& channel,
                const std::string& endpoint, const grpc_client_options& opts)
      : ctl_(std::move(ctl)), channel_(channel), stub_(v1::Sync::NewStub(channel)), endpoint_(endpoint),
        connect_timeout_ms_(opts.connect_timeout_ms) {
    ctx_.set_wait_for_ready(false);
    if (opts.gzip && !is_loopback_address(endpoint)) ctx_.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    stub_->async()->Session(&ctx_, this);
  }

  // Called once by the link, control mutex held.
  void begin() {
    ctl_->stream = this;
    AddHold();
    ctl_->hold = true;
    ctl_->reading = true;
    StartRead(&in_);
    StartCall();
    if (connect_timeout_ms_ > 0) {
      // The alarm may fire (or be cancelled) after this reactor is gone: it only
      // touches the control block, and through it the reactor while it is alive.
      std::weak_ptr<client_control> weak = ctl_;
      alarm_.Set(std::chrono::system_clock::now() + std::chrono::milliseconds(connect_timeout_ms_),
                 [weak](bool fired) {
                   auto ctl = weak.lock();
                   if (!fired || !ctl) return;
                   lock_guard lock{ctl->mu};
                   if (ctl->stream && !ctl->established) {
                     ctl->timed_out = true;
                     ctl->stream->cancel();
                   }
                 });
    }
  }

  void read() { StartRead(&in_); }

  void write(frame f) {
    out_ = std::move(f);
    StartWrite(&out_);
  }

  void writes_done() { StartWritesDone(); }
  void cancel() { ctx_.TryCancel(); }
  void remove_hold() { RemoveHold(); }

  void OnReadInitialMetadataDone(bool ok) override {
    lock_guard lock{ctl_->mu};
    if (ok) ctl_->established = true;
  }

  void OnReadDone(bool ok) override {
    lock_guard lock{ctl_->mu};
    ctl_->reading = false;
    if (!ok) {
      // The server finished or the call failed: nothing more to read or write; OnDone
      // brings the status.
      ctl_->release();
      return;
    }
    if (ctl_->closing || ctl_->closed) {
      // Draining after close(ok): the status only arrives once every frame was read.
      ctl_->reading = true;
      StartRead(&in_);
      return;
    }
    if (ctl_->events) ctl_->events->on_frame(std::move(in_));
  }

  void OnWriteDone(bool ok) override {
    lock_guard lock{ctl_->mu};
    ctl_->writing = false;
    if (ctl_->writes_done_wanted) {
      ctl_->writes_done_wanted = false;
      if (ok) StartWritesDone();
    }
    if (!ctl_->closed && ctl_->events) ctl_->events->on_written(ok);
    if (!ok) ctl_->release();
  }

  void OnDone(const grpc::Status& status) override {
    {
      auto ctl = ctl_;
      lock_guard lock{ctl->mu};
      ctl->stream = nullptr;
      ctl->hold = false;
      if (status.ok())
        ctl->deliver_closed({});
      else if (ctl->timed_out)
        ctl->deliver_closed({errc::unavailable, "no session with " + endpoint_ + " within " +
                                                    std::to_string(connect_timeout_ms_) + " ms"});
      else
        ctl->deliver_closed(from_grpc_status(status));
    }
    // The stub and the ClientContext hold the channel too: keep it past the delete.
    auto keep = channel_;
    delete this;
    channel_reaper::get().drop(std::move(keep));
  }

private:
  std::shared_ptr<client_control> ctl_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Sync::Stub> stub_;
  std::string endpoint_;
  int64_t connect_timeout_ms_;
  grpc::ClientContext ctx_;
  grpc::Alarm alarm_;
  frame in_;
  frame out_;
};

void client_control::release() {
  if (!hold) return;
  hold = false;
  stream->remove_hold(); // OnDone (and delete) may follow as soon as the lock is released
}

class client_link final : public actors::link {
public:
  client_link(std::string endpoint, std::shared_ptr<grpc::Channel> channel, grpc_client_options opts)
      : ctl_(std::make_shared<client_control>()), endpoint_(std::move(endpoint)),
        channel_(std::move(channel)), opts_(std::move(opts)) {}

  ~client_link() override {
    channel_reaper::get().drop(std::move(channel_));
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    ctl->events.reset();
    bool was_closed = ctl->closed;
    ctl->closed = true;
    if (!ctl->stream) return;
    // A graceful close(ok) in progress goes on without us; anything else is cancelled.
    if (!ctl->closing && !was_closed) ctl->stream->cancel();
    ctl->release();
  }

  void start(std::shared_ptr<actors::link_events> events) override {
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    if (!begin_events(*ctl, std::move(events))) return;
    auto* stream = new client_stream(ctl, channel_, endpoint_, opts_);
    stream->begin();
  }

  void read_next() override {
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    if (!ctl->hold || ctl->closed || ctl->closing || ctl->reading) return;
    ctl->reading = true;
    ctl->stream->read();
  }

  void write(frame f) override {
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    if (!ctl->started || ctl->closed || ctl->writing) return;
    if (!ctl->hold || ctl->closing) {
      ctl->events->on_written(false);
      return;
    }
    ctl->writing = true;
    ctl->stream->write(std::move(f));
  }

  void close(const error& why) override {
    auto ctl = ctl_;
    lock_guard lock{ctl->mu};
    if (!ctl->started) {
      if (!ctl->pending_close) ctl->pending_close = why;
      return;
    }
    if (ctl->closed || ctl->closing) return;
    if (!why) {
      // Half-close; on_closed carries the server's status (OnDone).
      if (!ctl->hold) return; // already ending: OnDone is on its way
      ctl->closing = true;
      if (ctl->writing)
        ctl->writes_done_wanted = true;
      else
        ctl->stream->writes_done();
      if (!ctl->reading) {
        ctl->reading = true;
        ctl->stream->read();
      }
      ctl->release();
      return;
    }
    if (ctl->stream) ctl->stream->cancel();
    ctl->release();
    ctl->deliver_closed(why);
  }

  std::string peer() const override { return endpoint_; }

private:
  std::shared_ptr<client_control> ctl_;
  std::string endpoint_;
  std::shared_ptr<grpc::Channel> channel_;
  grpc_client_options opts_;
};

grpc::ChannelArguments channel_args(const grpc_client_options& opts) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(clamp_int(opts.max_message_bytes));
  args.SetMaxSendMessageSize(clamp_int(opts.max_message_bytes));
  if (opts.stream_window_bytes > 0) {
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, clamp_int(opts.stream_window_bytes));
  }
  if (opts.keepalive.time_ms > 0) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, clamp_int(opts.keepalive.time_ms));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, clamp_int(opts.keepalive.timeout_ms));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  if (!opts.share_channel) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // The uplink supervisor paces reconnects (backoff_options). gRPC's own channel backoff
  // (1 s growing to 120 s) would otherwise refuse the supervisor's attempts for many
  // seconds after the upstream comes back, so keep it short.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return args;
}

std::shared_ptr<grpc::ChannelCredentials> client_credentials(const grpc_client_options& opts) {
  if (!opts.tls.enabled()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = opts.tls.ca_pem;
  o.pem_private_key = opts.tls.key_pem;
  o.pem_cert_chain = opts.tls.cert_pem;
  return grpc::SslCredentials(o);
}

std::shared_ptr<grpc::Channel> channel_for(const std::string& endpoint, const grpc_client_options& opts) {
  auto make = [&] {
    auto args = channel_args(opts);
    if (opts.tls.enabled() && !opts.server_name.empty())
      args.SetSslTargetNameOverride(opts.server_name);
    return grpc::CreateCustomChannel(endpoint, client_credentials(opts), args);
  };
  if (!opts.share_channel) return make();
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<grpc::Channel>> cache;
  auto key = endpoint + '|' + std::to_string(opts.max_message_bytes) + '|' +
             std::to_string(opts.keepalive.time_ms) + '|' + std::to_string(opts.keepalive.timeout_ms) + '|' +
             std::to_string(opts.stream_window_bytes) + '|' + opts.server_name + '|' +
             std::to_string(std::hash<std::string>{}(opts.tls.ca_pem + opts.tls.cert_pem + opts.tls.key_pem));
  std::lock_guard<std::mutex> lock{mu};
  for (auto i = cache.begin(); i != cache.end();)
    i = i->second.expired() ? cache.erase(i) : std::next(i);
  if (auto ch = cache[key].lock()) return ch;
  auto ch = make();
  cache[key] = ch;
  return ch;
}

} // namespace

namespace detail {

std::string peer_certificate_name(const grpc::CallbackServerContext* ctx) {
  return client_identity(ctx);
}

std::shared_ptr<grpc::Channel> dial(const std::string& endpoint, const grpc_client_options& opts) {
  return channel_for(endpoint, opts);
}

void reap(std::shared_ptr<void> channel_or_stub) {
  channel_reaper::get().drop(std::move(channel_or_stub));
}

} // namespace detail

// -- public API --------------------------------------------------------------------

result<tls_options> load_tls_files(const std::string& ca_file, const std::string& cert_file,
                                   const std::string& key_file) {
  if (ca_file.empty() || cert_file.empty() || key_file.empty())
    return error{errc::invalid_argument, "TLS needs three files: the CA certificate, this node's certificate "
                                         "and its key (tls.ca, tls.cert, tls.key)"};
  auto read = [](const std::string& path, std::string& out) -> status {
    std::ifstream in(path, std::ios::binary);
    if (!in) return error{errc::not_found, "cannot read '" + path + "'"};
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    if (out.find("-----BEGIN ") == std::string::npos)
      return error{errc::invalid_argument, "'" + path + "' holds no PEM block"};
    return {};
  };
  tls_options t;
  if (auto e = read(ca_file, t.ca_pem)) return e;
  if (auto e = read(cert_file, t.cert_pem)) return e;
  if (auto e = read(key_file, t.key_pem)) return e;
  return t;
}

bool is_loopback_address(const std::string& address) {
  auto starts = [&](const char* p) { return address.rfind(p, 0) == 0; };
  if (starts("unix:") || starts("unix-abstract:")) return true;
  std::string rest = address;
  for (const char* scheme : {"ipv4:", "ipv6:", "dns:///", "dns:"})
    if (rest.rfind(scheme, 0) == 0) {
      rest = rest.substr(std::string(scheme).size());
      break;
    }
  std::string host;
  if (!rest.empty() && rest[0] == '[') {
    auto end = rest.find(']');
    if (end == std::string::npos) return false;
    host = rest.substr(1, end - 1);
  } else {
    auto colon = rest.rfind(':');
    host = colon == std::string::npos ? rest : rest.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

struct grpc_server::impl {
  explicit impl(const grpc_server_options& opts) : service(opts) {
    if (opts.admin) admin = detail::make_admin_service(opts.admin, opts.tls.enabled());
  }
  sync_service service;
  std::unique_ptr<grpc::Service> admin;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::mutex shutdown_mu;
  bool down = false;
};

grpc_server::grpc_server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

grpc_server::~grpc_server() {
  shutdown();
}

result<std::unique_ptr<grpc_server>> grpc_server::start(grpc_server_options opts) {
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (opts.tls.enabled()) {
    if (opts.tls.ca_pem.empty() || opts.tls.cert_pem.empty() || opts.tls.key_pem.empty())
      return error{errc::invalid_argument, "TLS needs the CA, the certificate and the key (some are missing)"};
    grpc::SslServerCredentialsOptions o(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    o.pem_root_certs = opts.tls.ca_pem;
    o.pem_key_cert_pairs.push_back({opts.tls.key_pem, opts.tls.cert_pem});
    creds = grpc::SslServerCredentials(o);
  } else {
    if (!is_loopback_address(opts.listen))
      return error{errc::failed_precondition,
                   "refusing plaintext gRPC on non-loopback address '" + opts.listen +
                       "': give the node a certificate (tls), or listen on 127.0.0.1 for development"};
    creds = grpc::InsecureServerCredentials();
  }
  auto i = std::make_unique<impl>(opts);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(opts.listen, creds, &i->port);
  builder.RegisterService(&i->service);
  if (i->admin) builder.RegisterService(i->admin.get());
  builder.SetMaxReceiveMessageSize(clamp_int(opts.max_message_bytes));
  builder.SetMaxSendMessageSize(clamp_int(opts.max_message_bytes));
  if (opts.stream_window_bytes > 0) {
    builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, clamp_int(opts.stream_window_bytes));
  }
  if (opts.keepalive.time_ms > 0) {
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, clamp_int(opts.keepalive.time_ms));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, clamp_int(opts.keepalive.timeout_ms));
  }
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             clamp_int(opts.keepalive.min_peer_ping_ms));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  i->server = builder.BuildAndStart();
  if (!i->server) // BuildAndStart fails when a port cannot be bound
    return error{errc::unavailable, "cannot listen on '" + opts.listen + "'"};
  return std::unique_ptr<grpc_server>(new grpc_server(std::move(i)));
}

uint16_t grpc_server::port() const {
  return impl_->port > 0 && impl_->port <= 65535 ? static_cast<uint16_t>(impl_->port) : 0;
}

void grpc_server::shutdown(std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> lock{impl_->shutdown_mu};
  if (impl_->down) return;
  impl_->down = true;
  // Streams still open at the deadline are cancelled: their OnCancel finishes them, so
  // Shutdown does not wait for the session owners.
  impl_->server->Shutdown(std::chrono::system_clock::now() + grace);
}

std::unique_ptr<actors::link> grpc_connect(const std::string& endpoint, grpc_client_options opts) {
  auto channel = channel_for(endpoint, opts);
  return std::make_unique<client_link>(endpoint, std::move(channel), std::move(opts));
}

} // namespace possync::node
