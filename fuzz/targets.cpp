// Fuzz targets: frame decoding and the session state machine, record validation,
// device tokens.

#include "targets.hpp"

#include <future>
#include <memory>
#include <string>

#include "possync/actors/fragments.hpp"
#include "possync/actors/session_machine.hpp"
#include "possync/core/proto_convert.hpp"
#include "possync/core/schema.hpp"
#include "possync/core/token.hpp"
#include "possync/storage/store.hpp"
#include "possync/v1/pos.pb.h"

#include <google/protobuf/stubs/logging.h>

namespace possync::fuzz {

namespace {

// Malformed inputs make protobuf log every invalid UTF-8 string: millions of lines.
const bool quiet_protobuf = [] {
  google::protobuf::SetLogHandler(nullptr);
  return true;
}();

constexpr core::node_id hq_node = 0x4400000000000044ULL;
constexpr core::node_id term_node = 0x7000000000000071ULL;
constexpr int64_t epoch = 1'700'000'000'000;

/// One in-memory HQ store for the whole run (a fresh database per input would make
/// the fuzzer crawl); inputs may leave records behind, which only widens what later
/// inputs explore.
storage::node_store& hq_store() {
  static std::shared_ptr<storage::database> db = [] {
    storage::db_options o;
    o.in_memory = true;
    o.write_buffer_bytes = 1u << 20;
    o.block_cache_bytes = 1u << 20;
    return *storage::database::open(o);
  }();
  static std::unique_ptr<storage::node_store> store = [] {
    storage::store_options o;
    o.role = storage::node_role::hq;
    o.node = hq_node;
    o.outbox = false;
    o.clock = [] { return static_cast<uint64_t>(epoch); };
    auto s = std::move(storage::node_store::open(db, o).value());
    v1::Device d;
    d.set_node(term_node);
    d.set_role(1);
    d.set_branch("b1");
    storage::put_op op;
    op.key = core::record_key{"t1", "", "device", core::node_id_to_string(term_node)};
    op.body = d.SerializeAsString();
    (void)s->write({op});
    return s;
  }();
  return *store;
}

void run_applies(actors::downlink_machine& d, storage::node_store& store, actors::machine_output& out, int64_t now) {
  for (auto& a : out.applies) {
    std::promise<result<storage::apply_result>> p;
    auto f = p.get_future();
    store.apply_remote_async(std::move(a.records), a.from, a.cursor,
                             [&p](result<storage::apply_result> r) { p.set_value(std::move(r)); });
    d.on_applied(a.token, f.get(), now);
  }
}

} // namespace

int session(const uint8_t* data, size_t size) {
  auto& store = hq_store();
  const actors::local_identity me{hq_node, storage::node_role::hq, "t1", "", ""};
  actors::session_options opts;
  opts.changes_batch = 16;
  actors::downlink_machine d(me, opts, store,
                             [&store, me](const v1::Hello& h) { return actors::admit(h, me, store); });
  actors::reassembler pieces(1u << 20);
  int64_t now = epoch;
  d.start(now);
  size_t pos = 0;
  for (int frames = 0; frames < 64 && pos + 2 <= size; ++frames) {
    const size_t len = (static_cast<size_t>(data[pos]) << 8) | data[pos + 1];
    pos += 2;
    const size_t take = std::min(len, size - pos);
    v1::Frame f;
    const bool parsed = f.ParseFromArray(data + pos, static_cast<int>(take));
    pos += take;
    if (!parsed) break;  // the transport ends such a stream
    auto whole = pieces.take(std::move(f));
    if (!whole) break;
    now += 10;
    if (*whole) d.on_frame(std::move(**whole), now);
    for (int round = 0; round < 8; ++round) {
      auto out = d.take_output();
      for (size_t i = 0; i < out.frames.size(); ++i)
        d.on_written(now);
      if (out.close) return 0;
      if (out.applies.empty() && out.frames.empty()) break;
      run_applies(d, store, out, now);
    }
    d.on_tick(now);
  }
  return 0;
}

int record(const uint8_t* data, size_t size) {
  static const core::collection_registry reg = core::collection_registry::pos();
  v1::Record pr;
  if (!pr.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto r = core::from_proto(pr);
  if (!r) return 0;
  if (core::validate_record(*r, reg)) return 0;
  v1::Record back;
  core::to_proto(*r, &back);
  (void)back.ByteSizeLong();
  return 0;
}

int token(const uint8_t* data, size_t size) {
  static const core::token_verifier verifier = [] {
    // A fixed Ed25519 key (RFC 8032 test 1 secret key), so runs are reproducible.
    const std::string pem =
        "-----BEGIN PRIVATE KEY-----\n"
        "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
        "-----END PRIVATE KEY-----\n";
    return core::token_verifier::from_pem(pem).value();
  }();
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)verifier.verify(text, epoch);
  return 0;
}

} // namespace possync::fuzz
