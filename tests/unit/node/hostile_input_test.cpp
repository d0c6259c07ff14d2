// Hostile input on the wire: raw bytes that are no Frame, truncated frames, frames
// over the size limit, frames without a kind, frames out of protocol order, broken
// fragments — sent over real gRPC to a running HQ node. Every one ends that stream
// with a clear error status; the store is unchanged; the node goes on serving a
// proper terminal.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "eventually.hpp"

#include "possync/node/node.hpp"
#include "possync/v1/pos.pb.h"
#include "possync/v1/sync.pb.h"

namespace possync::node {
namespace {

using namespace std::chrono_literals;

constexpr core::node_id hq_id = 0x4000000000000001ULL;
constexpr core::node_id t1_id = 0x7000000000000071ULL;

using test::eventually;

/// Opens one Session stream with raw bytes, writes `messages` (each one gRPC message),
/// reads until the server ends the stream, and returns its final status.
grpc::Status send_raw(const std::string& endpoint, const std::vector<std::string>& messages) {
  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  auto call = stub.PrepareCall(&ctx, "/possync.v1.Sync/Session", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  EXPECT_TRUE(cq.Next(&tag, &ok));
  bool broken = !ok;
  for (const auto& m : messages) {
    if (broken) break;
    grpc::Slice slice(m);
    grpc::ByteBuffer bb(&slice, 1);
    call->Write(bb, reinterpret_cast<void*>(2));
    if (!cq.Next(&tag, &ok) || !ok) broken = true;
  }
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  // Read whatever the server sends (an Error frame) until it ends the stream.
  for (int i = 0; i < 100; ++i) {
    grpc::ByteBuffer in;
    call->Read(&in, reinterpret_cast<void*>(4));
    if (!cq.Next(&tag, &ok) || !ok) break;
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

std::string frame_bytes(const v1::Frame& f) {
  return f.SerializeAsString();
}

v1::Frame hello() {
  v1::Frame f;
  auto* h = f.mutable_hello();
  h->set_node(t1_id);
  h->set_role(v1::ROLE_TERMINAL);
  h->set_tenant("t1");
  h->set_branch("b1");
  h->set_protocol_version(1);
  return f;
}

class HostileInput : public ::testing::Test {
protected:
  void SetUp() override {
    rt_ = runtime::create(runtime::options{2, true});
    node_config c;
    c.role = storage::node_role::hq;
    c.tenant = "t1";
    c.node_id = hq_id;
    c.in_memory = true;
    c.listen = "127.0.0.1:0";
    c.tick_ms = 50;
    c.session.hello_timeout_ms = 2000;
    c.devices.push_back(device{"t1", "b1", t1_id, storage::node_role::terminal, "till 1", false});
    auto n = node::start(c, rt_);
    ASSERT_TRUE(n) << n.err().to_string();
    hq_ = std::move(n).value();
    endpoint_ = "127.0.0.1:" + std::to_string(hq_->port());
  }
  void TearDown() override {
    hq_.reset();
    rt_.reset();
  }

  /// Every record HQ holds in its sales lane (must stay 0 under attack).
  size_t sales_at_hq() {
    auto f = hq_->store().read_feed("t1", "b1", 0, 0, 1'000'000);
    return f ? f->size() : 999;
  }

  std::shared_ptr<runtime> rt_;
  std::unique_ptr<node> hq_;
  std::string endpoint_;
};

TEST_F(HostileInput, EveryMalformedStreamEndsWithAClearErrorAndChangesNothing) {
  v1::Frame empty;  // no kind set
  v1::Frame push_first;
  push_first.mutable_push()->set_lane(0);
  v1::Frame bad_lane = hello();
  v1::Frame frag_out_of_order;
  frag_out_of_order.mutable_fragment()->set_frame(1);
  frag_out_of_order.mutable_fragment()->set_index(3);
  frag_out_of_order.mutable_fragment()->set_data("xyz");
  v1::Frame frag_garbage;
  frag_garbage.mutable_fragment()->set_frame(1);
  frag_garbage.mutable_fragment()->set_last(true);
  frag_garbage.mutable_fragment()->set_data(std::string("\xff\xff\xff\xff\xff\xff", 6));
  v1::Frame push_bad_lane;
  push_bad_lane.mutable_push()->set_lane(9);
  v1::Frame second_hello = hello();
  const std::string whole_hello = frame_bytes(hello());

  const struct {
    std::string name;
    std::vector<std::string> messages;
  } cases[] = {
      {"garbage bytes", {std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01garbage", 21)}},
      {"a truncated Hello", {whole_hello.substr(0, whole_hello.size() / 2)}},
      {"a frame over 8 MiB", {std::string(9u << 20, 'x')}},
      {"a frame with no kind", {frame_bytes(empty)}},
      {"a Push before Hello", {frame_bytes(push_first)}},
      {"a fragment out of order", {frame_bytes(frag_out_of_order)}},
      {"a fragment that does not parse", {frame_bytes(frag_garbage)}},
      {"a Push for lane 9", {frame_bytes(hello()), frame_bytes(push_bad_lane)}},
      {"a second Hello", {frame_bytes(hello()), frame_bytes(second_hello)}},
      {"nothing at all", {}},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.name);
    auto st = send_raw(endpoint_, k.messages);
    EXPECT_FALSE(st.ok()) << k.name << " was accepted";
    EXPECT_FALSE(st.error_message().empty()) << k.name;
    EXPECT_NE(st.error_code(), grpc::StatusCode::UNKNOWN) << k.name << ": " << st.error_message();
  }
  EXPECT_EQ(sales_at_hq(), 0u);
  EXPECT_TRUE(eventually([&] { return hq_->status().downstream_sessions == 0; }));
  // Still serving: a proper terminal syncs a sale.
  node_config t;
  t.role = storage::node_role::terminal;
  t.tenant = "t1";
  t.branch = "b1";
  t.node_id = t1_id;
  t.in_memory = true;
  t.upstreams = {endpoint_};
  t.backoff.initial_ms = 50;
  auto term = node::start(t, rt_);
  ASSERT_TRUE(term) << term.err().to_string();
  v1::Sale s;
  s.set_receipt_no("R");
  auto* it = s.add_items();
  it->set_product_id("p1");
  it->set_quantity(1000);
  ASSERT_TRUE((*term)->store().record_sale(core::record_key{"t1", "b1", "sale", (*term)->store().new_id()},
                                           s.SerializeAsString()));
  EXPECT_TRUE(eventually([&] { return sales_at_hq() == 1; })) << (*term)->status().last_error;
}

} // namespace
} // namespace possync::node
