// possync_fuzz_replay TARGET CORPUS_DIR [--mutations N] [--seed S] [--write-seeds]
//
// Without libFuzzer (any compiler, the CI build): runs every file of CORPUS_DIR
// through TARGET, then N seeded random mutations of them (bit flips, byte changes,
// inserts, deletes, truncation, splices of two entries). A crash, hang or sanitizer
// report fails the run (ctest: fuzz_replay_*). --write-seeds writes the hand-made seed
// inputs of TARGET into CORPUS_DIR first (valid frames, records and tokens to mutate).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "possync/core/ids.hpp"
#include "possync/core/proto_convert.hpp"
#include "possync/core/record.hpp"
#include "possync/core/token.hpp"
#include "possync/v1/pos.pb.h"
#include "possync/v1/sync.pb.h"
#include "targets.hpp"

namespace {

namespace fs = std::filesystem;
using namespace possync;

using target_fn = int (*)(const uint8_t*, size_t);

std::string framed(const v1::Frame& f) {
  std::string b = f.SerializeAsString();
  std::string out;
  out += static_cast<char>((b.size() >> 8) & 0xff);
  out += static_cast<char>(b.size() & 0xff);
  return out + b;
}

v1::Record sale_record(const std::string& id, uint64_t counter) {
  v1::Sale s;
  s.set_receipt_no("R1");
  s.set_time_ms(1'700'000'000'000);
  auto* it = s.add_items();
  it->set_product_id("p1");
  it->set_quantity(1000);
  it->set_unit_price(3500);
  it->set_line_total(3500);
  s.set_total(3500);
  core::record r;
  r.key = core::record_key{"t1", "b1", "sale", id};
  core::version v;
  v.id = core::dot{0x7000000000000071ULL, counter};
  v.hlc = core::hlc_timestamp{1'700'000'000'000, 0, 0x7000000000000071ULL};
  v.body = s.SerializeAsString();
  r.versions.push_back(v);
  v1::Record out;
  core::to_proto(r, &out);
  return out;
}

std::map<std::string, std::string> seeds(const std::string& target) {
  std::map<std::string, std::string> out;
  v1::Frame hello;
  auto* h = hello.mutable_hello();
  h->set_node(0x7000000000000071ULL);
  h->set_role(v1::ROLE_TERMINAL);
  h->set_tenant("t1");
  h->set_branch("b1");
  h->set_protocol_version(1);
  if (target == "session") {
    v1::Frame push;
    auto* p = push.mutable_push();
    p->set_lane(0);
    p->set_first_seq(1);
    p->set_last_seq(2);
    *p->add_records() = sale_record("01HZY0000000000000000000A1", 1);
    *p->add_records() = sale_record("01HZY0000000000000000000A2", 2);
    v1::Frame hb;
    hb.mutable_heartbeat()->add_pending(1);
    out["hello"] = framed(hello);
    out["hello-push"] = framed(hello) + framed(push);
    out["hello-push-heartbeat"] = framed(hello) + framed(push) + framed(hb);
    // The push in two Fragment pieces.
    const std::string bytes = push.SerializeAsString();
    v1::Frame a, b;
    a.mutable_fragment()->set_frame(1);
    a.mutable_fragment()->set_data(bytes.substr(0, bytes.size() / 2));
    b.mutable_fragment()->set_frame(1);
    b.mutable_fragment()->set_index(1);
    b.mutable_fragment()->set_last(true);
    b.mutable_fragment()->set_data(bytes.substr(bytes.size() / 2));
    out["hello-fragments"] = framed(hello) + framed(a) + framed(b);
  } else if (target == "record") {
    out["sale"] = sale_record("01HZY0000000000000000000A1", 1).SerializeAsString();
    v1::Product p;
    p.set_name("Indomie Goreng");
    p.set_price(3500);
    v1::Record r;
    r.mutable_key()->set_tenant("t1");
    r.mutable_key()->set_collection("product");
    r.mutable_key()->set_id("p1");
    auto* v = r.add_versions();
    v->mutable_dot()->set_node(0x4000000000000001ULL);
    v->mutable_dot()->set_counter(3);
    v->set_body(p.SerializeAsString());
    v->set_hq(true);
    out["product"] = r.SerializeAsString();
  } else if (target == "token") {
    auto pem = core::generate_token_key_pem();
    auto signer = core::token_signer::from_pem(*pem);
    core::token_claims c;
    c.id = "0123456789abcdef0123456789abcdef";
    c.tenant = "t1";
    c.branch = "b1";
    c.node = 0x71;
    c.role = 1;
    c.issued_ms = 1;
    c.expires_ms = 4'000'000'000'000;
    out["token"] = *signer->sign(c);
    out["short"] = "pst1.AAAA.BBBB";
  }
  return out;
}

std::string mutate(std::mt19937_64& rng, const std::vector<std::string>& corpus) {
  std::string s = corpus[rng() % corpus.size()];
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    const size_t n = s.size();
    switch (rng() % 7) {
    case 0:  // flip a bit
      if (n) s[rng() % n] ^= static_cast<char>(1u << (rng() % 8));
      break;
    case 1:  // set a byte (interesting values)
      if (n) {
        static const unsigned char vals[] = {0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x1a};
        s[rng() % n] = static_cast<char>(vals[rng() % sizeof vals]);
      }
      break;
    case 2:  // insert random bytes
      s.insert(n ? rng() % n : 0, std::string(1 + rng() % 8, static_cast<char>(rng())));
      break;
    case 3:  // delete a range
      if (n) {
        size_t at = rng() % n;
        s.erase(at, 1 + rng() % std::min<size_t>(16, n - at));
      }
      break;
    case 4:  // truncate
      if (n) s.resize(rng() % n);
      break;
    case 5: {  // splice with another entry
      const std::string& o = corpus[rng() % corpus.size()];
      if (!o.empty()) s = s.substr(0, n ? rng() % n : 0) + o.substr(rng() % o.size());
      break;
    }
    default:  // duplicate a range
      if (n) {
        size_t at = rng() % n;
        s.insert(at, s.substr(at, 1 + rng() % std::min<size_t>(32, n - at)));
      }
      break;
    }
  }
  if (s.size() > 64 * 1024) s.resize(64 * 1024);
  return s;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s session|record|token CORPUS_DIR [--mutations N] [--seed S] [--write-seeds]\n",
                 argv[0]);
    return 2;
  }
  const std::string name = argv[1];
  const fs::path dir = argv[2];
  uint64_t mutations = 0, seed = 1;
  bool write_seeds = false;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--mutations" && i + 1 < argc) mutations = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--write-seeds") write_seeds = true;
    else {
      std::fprintf(stderr, "unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  const std::map<std::string, target_fn> targets{
      {"session", possync::fuzz::session}, {"record", possync::fuzz::record}, {"token", possync::fuzz::token}};
  auto t = targets.find(name);
  if (t == targets.end()) {
    std::fprintf(stderr, "unknown target '%s' (session, record, token)\n", name.c_str());
    return 2;
  }
  if (write_seeds) {
    fs::create_directories(dir);
    for (const auto& [file, bytes] : seeds(name))
      std::ofstream(dir / ("seed-" + file), std::ios::binary) << bytes;
  }
  std::vector<std::string> corpus;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::ostringstream ss;
      ss << in.rdbuf();
      corpus.push_back(ss.str());
    }
  if (corpus.empty()) {
    std::fprintf(stderr, "no inputs in '%s'\n", dir.c_str());
    return 2;
  }
  const auto begin = std::chrono::steady_clock::now();
  for (const auto& c : corpus)
    t->second(reinterpret_cast<const uint8_t*>(c.data()), c.size());
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0; i < mutations; ++i) {
    auto m = mutate(rng, corpus);
    t->second(reinterpret_cast<const uint8_t*>(m.data()), m.size());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  std::printf("%s: %zu corpus inputs and %llu mutations (seed %llu) in %.1f s, no crash\n", name.c_str(),
              corpus.size(), static_cast<unsigned long long>(mutations), static_cast<unsigned long long>(seed), secs);
  return 0;
}
