// Micro-benchmarks of core's hot paths: the merge and read functions every synced
// record goes through. System workloads (W1-W10) are run by bench/run.

#include <benchmark/benchmark.h>

#include "possync/core/hlc.hpp"
#include "possync/core/policy.hpp"
#include "possync/core/proto_convert.hpp"
#include "possync/core/record.hpp"
#include "possync/core/schema.hpp"

namespace {

using namespace possync::core;

record make_counter(int writers) {
  record r;
  r.key = {"t1", "b1", "stock", "p1"};
  for (int w = 1; w <= writers; ++w) {
    write_spec spec;
    spec.writer = static_cast<node_id>(w);
    spec.hlc = {1000u + static_cast<uint64_t>(w), 0, spec.writer};
    spec.body = *counter_add_body(r, spec.writer, -1000);
    spec.context = version_vector{};  // concurrent: every writer saw nothing
    apply_local_write(r, spec);
  }
  return r;
}

void bm_version_vector_merge(benchmark::State& st) {
  version_vector a, b;
  for (uint64_t n = 1; n <= 16; ++n) {
    a.raise(n * 2, n);
    b.raise(n * 3, n + 1);
  }
  for (auto _ : st) {
    version_vector c = a;
    c.merge(b);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(bm_version_vector_merge);

void bm_merge_replay(benchmark::State& st) {
  // Replaying a state already held: the common case for retried pushes.
  record held = make_counter(static_cast<int>(st.range(0)));
  for (auto _ : st) {
    record target = held;
    auto out = merge_into(target, held);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(bm_merge_replay)->Arg(1)->Arg(8);

void bm_counter_resolve(benchmark::State& st) {
  record r = make_counter(static_cast<int>(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(resolve(r, policy::counter));
}
BENCHMARK(bm_counter_resolve)->Arg(1)->Arg(8);

/// encode_record then decode_record of `r`, per iteration.
void codec_round_trips(benchmark::State& st, const record& r) {
  for (auto _ : st) {
    auto bytes = encode_record(r);
    auto back = decode_record(bytes);
    benchmark::DoNotOptimize(back);
  }
}

void bm_record_codec(benchmark::State& st) {
  codec_round_trips(st, make_counter(4));
}
BENCHMARK(bm_record_codec);

/// A product as W1 downloads it: one version, ~250 B of body, 8 stamped fields.
void bm_product_codec(benchmark::State& st) {
  record r;
  r.key = {"t1", "*", "product", "p000001"};
  version v;
  v.id = {7, 1};
  v.hlc = {1000, 0, 7};
  v.hq = true;
  v.body = std::string(250, 'x');
  for (uint32_t f = 1; f <= 8; ++f)
    v.fields.emplace(f, field_stamp{v.id, v.hlc, true});
  r.versions.push_back(v);
  codec_round_trips(st, r);
}
BENCHMARK(bm_product_codec);

/// A stock counter as a 200-register branch serves it after folding: one version
/// whose past names every register, body with an entry each. Encoded and decoded
/// with version vectors packed (arg 1) or one message per entry (arg 0).
void bm_wide_counter_codec(benchmark::State& st) {
  const auto form = st.range(0) ? vectors::packed : vectors::entries;
  record r;
  r.key = {"t1", "b1", "stock", "p000001"};
  version v;
  v.id = {0x4800000000000001ULL, 9};
  v.hlc = {1000, 0, v.id.node};
  pn_counter c;
  std::vector<version_vector::entry> past;
  for (node_id n = 1; n <= 200; ++n) {
    const node_id term = 0x7000000000000000ULL + n * 0x10001ULL;
    past.emplace_back(term, 1 + n % 40);
    c.entries[term] = {0, 1000 * (1 + n % 40)};
  }
  v.past = version_vector(std::move(past));
  v.body = encode_counter(c);
  r.versions.push_back(v);
  size_t bytes = 0;
  for (auto _ : st) {
    google::protobuf::Arena arena;
    auto* msg = google::protobuf::Arena::CreateMessage<possync::v1::Record>(&arena);
    to_proto(r, msg, form);
    const std::string wire = msg->SerializeAsString();
    bytes = wire.size();
    auto* in = google::protobuf::Arena::CreateMessage<possync::v1::Record>(&arena);
    in->ParseFromString(wire);
    auto back = from_proto(*in);
    benchmark::DoNotOptimize(back);
  }
  st.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(bm_wide_counter_codec)->Arg(0)->Arg(1);

// What every node does to each stock record it receives (a terminal: every stock
// change of its branch): validate it, then decode its merged counter. With one
// register per entry, 200 entries is a 200-register branch's counter.
void bm_counter_validate(benchmark::State& st) {
  const auto reg = collection_registry::pos();
  record r = make_counter(1);
  pn_counter c;
  for (int w = 1; w <= st.range(0); ++w)
    c.entries[static_cast<node_id>(w)] = {100000, 1000 + w};
  r.versions.front().body = encode_counter(c);
  for (auto _ : st)
    benchmark::DoNotOptimize(validate_record(r, reg, record_limits{}));
}
BENCHMARK(bm_counter_validate)->Arg(1)->Arg(200);

void bm_counter_decode(benchmark::State& st) {
  pn_counter c;
  for (int w = 1; w <= st.range(0); ++w)
    c.entries[static_cast<node_id>(w)] = {100000, 1000 + w};
  const std::string body = encode_counter(c);
  for (auto _ : st)
    benchmark::DoNotOptimize(decode_counter(body));
}
BENCHMARK(bm_counter_decode)->Arg(1)->Arg(200);

void bm_hlc_now(benchmark::State& st) {
  uint64_t t = 1'700'000'000'000;
  hlc_clock clock(1, [&] { return t; });
  for (auto _ : st) benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(bm_hlc_now);

} // namespace
