// Deterministic fault simulation: fault masks, one seed (world + checker), many seeds
// on worker threads, and the reports.

#include "possync/sim/dst.hpp"

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "dst_check.hpp"
#include "dst_world.hpp"

namespace possync::sim::dst {

namespace {

struct fault_name {
  fault bit;
  const char* name;
};
constexpr fault_name fault_names[] = {
    {fault_partition, "partition"}, {fault_cut, "cut"},
    {fault_delay, "delay"},         {fault_duplicate, "duplicate"},
    {fault_crash, "crash"},         {fault_clock, "clock"},
    {fault_disk, "disk"},           {fault_disk_loss, "disk-loss"},
    {fault_reset, "reset"},
};

struct sabotage_name {
  sabotage bug;
  const char* name;
};
constexpr sabotage_name sabotage_names[] = {
    {sabotage::none, "none"},
    {sabotage::ack_before_apply, "ack-before-apply"},
    {sabotage::ack_whole_lane, "ack-whole-lane"},
    {sabotage::cursor_before_records, "cursor-before-records"},
};

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::string hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

} // namespace

result<uint32_t> parse_faults(const std::string& text) {
  const std::string t = trim(text);
  if (t == "all") return uint32_t{fault_all};
  if (t == "none") return uint32_t{0};
  if (t.empty()) return error(errc::invalid_argument, "faults: empty list (all, none or a comma list)");
  uint32_t mask = 0;
  size_t pos = 0;
  while (pos <= t.size()) {
    size_t comma = t.find(',', pos);
    if (comma == std::string::npos) comma = t.size();
    const std::string word = trim(t.substr(pos, comma - pos));
    bool known = false;
    for (const auto& f : fault_names)
      if (word == f.name) {
        mask |= f.bit;
        known = true;
      }
    if (!known) {
      std::string names;
      for (const auto& f : fault_names) names += std::string(names.empty() ? "" : ",") + f.name;
      return error(errc::invalid_argument,
                   "faults: unknown fault '" + word + "' (all, none or a comma list of " + names + ")");
    }
    pos = comma + 1;
  }
  return mask;
}

std::string faults_to_string(uint32_t mask) {
  mask &= fault_all;
  if (mask == fault_all) return "all";
  if (mask == 0) return "none";
  std::string out;
  for (const auto& f : fault_names)
    if (mask & f.bit) out += std::string(out.empty() ? "" : ",") + f.name;
  return out;
}

result<sabotage> parse_sabotage(const std::string& text) {
  const std::string t = trim(text);
  std::string names;
  for (const auto& b : sabotage_names) {
    if (t == b.name) return b.bug;
    names += std::string(names.empty() ? "" : ", ") + b.name;
  }
  return error(errc::invalid_argument, "sabotage: unknown bug '" + t + "' (" + names + ")");
}

std::string to_string(sabotage s) {
  for (const auto& b : sabotage_names)
    if (b.bug == s) return b.name;
  return "none";
}

std::string replay_command(const options& opts) {
  std::string cmd =
      "possync sim --seed " + std::to_string(opts.seed) + " --faults " + faults_to_string(opts.faults);
  if (opts.broken != sabotage::none) cmd += " --sabotage " + to_string(opts.broken);
  return cmd + " --trace";
}

result<seed_result> run_seed(const options& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  auto w = world::create(opts);
  if (!w) return std::move(w).err();
  auto& wd = **w;
  wd.run();
  auto rep = check_world(wd);

  seed_result r;
  r.seed = opts.seed;
  r.ok = rep.violations.empty();
  const auto& h = wd.hist();
  const std::string at = std::to_string(wd.now_ms());
  for (const auto& v : rep.violations) wd.trace_line(at + " check VIOLATION " + v);
  wd.trace_line(at + " check verdict " + (r.ok ? "ok" : "FAILED") + " violations=" +
                std::to_string(rep.violations.size()) + " sales_acked=" + std::to_string(h.sales.size()) +
                " sales_at_hq=" + std::to_string(rep.sales_at_hq) +
                " sales_lost_with_disk=" + std::to_string(rep.sales_lost_with_disk) +
                " lost_stock_movements=" + std::to_string(rep.lost_stock_movements) +
                " conflicts=" + std::to_string(rep.conflicts) + " faults=" + std::to_string(h.faults_injected) +
                " quiet_ms=" + std::to_string(h.quiet_ms));
  r.violations = std::move(rep.violations);
  r.trace_hash = wd.trace_hash();
  if (opts.trace) r.trace = wd.trace();
  r.events = h.events;
  r.faults_injected = h.faults_injected;
  r.simulated_ms = wd.now_ms();
  r.converged_after_ms = h.quiet_ms >= 0 ? h.quiet_ms - h.last_fault_ms : -1;
  r.sales_acked = h.sales.size();
  r.sales_lost_with_disk = rep.sales_lost_with_disk;
  r.conflicts = rep.conflicts;
  w->reset();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

result<multi_result> run_seeds(const multi_options& mo) {
  const auto t0 = std::chrono::steady_clock::now();
  multi_result out;
  const uint64_t n = mo.count;
  size_t threads = mo.threads ? mo.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<size_t>(std::min<uint64_t>(threads, std::max<uint64_t>(n, 1)));

  // Per seed, only what the totals need (the failures keep their violations).
  struct slot {
    bool done = false;
    seed_result r;
  };
  std::vector<slot> slots(n);
  std::atomic<uint64_t> next{0};
  std::mutex cb_mu;
  auto worker = [&] {
    for (;;) {
      const uint64_t i = next.fetch_add(1);
      if (i >= n) return;
      options o = mo.base;
      o.seed = mo.base.seed + i;
      o.trace = false;
      auto r = run_seed(o);
      seed_result sr;
      if (r) {
        sr = std::move(r).value();
      } else {
        sr.seed = o.seed;
        sr.ok = false;
        sr.violations.push_back("setup: " + r.err().to_string());
      }
      if (mo.on_seed) {
        std::lock_guard<std::mutex> lk(cb_mu);
        mo.on_seed(sr);
      }
      if (sr.ok) sr.violations.clear();
      slots[i].r = std::move(sr);
      slots[i].done = true;
    }
  };
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
  }
  for (auto& s : slots) {
    const auto& r = s.r;
    ++out.seeds;
    out.faults_injected += r.faults_injected;
    out.simulated_hours += static_cast<double>(r.simulated_ms) / 3'600'000.0;
    out.events += r.events;
    out.sales_acked += r.sales_acked;
    out.sales_lost_with_disk += r.sales_lost_with_disk;
    if (!r.ok) {
      ++out.failed;
      out.failures.push_back(std::move(s.r));
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

namespace {

/// ", sabotage NAME" when a bug was planted, else nothing.
std::string planted(const options& o) {
  return o.broken == sabotage::none ? std::string() : ", sabotage " + to_string(o.broken);
}

nlohmann::json failure_json(const seed_result& r, const options& base) {
  options o = base;
  o.seed = r.seed;
  nlohmann::json j;
  j["seed"] = r.seed;
  j["replay"] = replay_command(o);
  j["violations"] = r.violations;
  return j;
}

} // namespace

std::string to_json(const multi_result& r, const options& base) {
  nlohmann::json j;
  j["workload"] = "dst";
  j["faults"] = faults_to_string(base.faults);
  if (base.broken != sabotage::none) j["sabotage"] = to_string(base.broken);
  j["first_seed"] = base.seed;
  j["seeds"] = r.seeds;
  j["failed"] = r.failed;
  j["faults_injected"] = r.faults_injected;
  j["simulated_hours"] = r.simulated_hours;
  j["events"] = r.events;
  j["sales_acked"] = r.sales_acked;
  j["sales_lost_with_disk"] = r.sales_lost_with_disk;
  j["seconds"] = r.seconds;
  j["failures"] = nlohmann::json::array();
  for (const auto& f : r.failures) j["failures"].push_back(failure_json(f, base));
  return j.dump();
}

std::string to_json(const seed_result& r, const options& opts) {
  options o = opts;
  o.seed = r.seed;
  nlohmann::json j;
  j["workload"] = "dst";
  j["seed"] = r.seed;
  j["faults"] = faults_to_string(opts.faults);
  if (opts.broken != sabotage::none) j["sabotage"] = to_string(opts.broken);
  j["ok"] = r.ok;
  j["violations"] = r.violations;
  j["replay"] = replay_command(o);
  j["trace_hash"] = hex64(r.trace_hash);
  j["events"] = r.events;
  j["faults_injected"] = r.faults_injected;
  j["simulated_ms"] = r.simulated_ms;
  j["simulated_hours"] = static_cast<double>(r.simulated_ms) / 3'600'000.0;
  j["converged_after_ms"] = r.converged_after_ms;
  j["sales_acked"] = r.sales_acked;
  j["sales_lost_with_disk"] = r.sales_lost_with_disk;
  j["conflicts"] = r.conflicts;
  j["seconds"] = r.seconds;
  return j.dump();
}

std::string to_text(const multi_result& r, const options& base) {
  std::string s = "deterministic simulation, faults " + faults_to_string(base.faults) + planted(base) + ": " +
                  std::to_string(r.seeds) + " seeds from " + std::to_string(base.seed) + ", " +
                  std::to_string(r.failed) + " failed\n";
  s += "  simulated " + fixed(r.simulated_hours, 1) + " h, " + std::to_string(r.events) + " events, " +
       std::to_string(r.faults_injected) + " faults injected, " + std::to_string(r.sales_acked) +
       " sales acknowledged (" + std::to_string(r.sales_lost_with_disk) + " lost with a terminal's disk)\n";
  s += "  wall time " + fixed(r.seconds, 1) + " s\n";
  for (const auto& f : r.failures) {
    options o = base;
    o.seed = f.seed;
    s += "FAILED seed " + std::to_string(f.seed) + ": " + replay_command(o) + "\n";
    for (const auto& v : f.violations) s += "  " + v + "\n";
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::string to_text(const seed_result& r, const options& opts) {
  options o = opts;
  o.seed = r.seed;
  std::string s = "seed " + std::to_string(r.seed) + " (faults " + faults_to_string(opts.faults) +
                  planted(opts) + "): " + (r.ok ? "ok" : "FAILED") + "\n";
  s += "  simulated " + fixed(static_cast<double>(r.simulated_ms) / 3'600'000.0, 2) + " h, " +
       std::to_string(r.events) + " events, " + std::to_string(r.faults_injected) + " faults injected, " +
       "converged " +
       (r.converged_after_ms >= 0 ? fixed(static_cast<double>(r.converged_after_ms) / 1000.0, 1) + " s after the last fault"
                                  : std::string("never")) +
       "\n";
  s += "  " + std::to_string(r.sales_acked) + " sales acknowledged, " + std::to_string(r.sales_lost_with_disk) +
       " lost with a terminal's disk, " + std::to_string(r.conflicts) + " conflict entries\n";
  s += "  trace hash " + hex64(r.trace_hash);
  for (const auto& v : r.violations) s += "\n  " + v;
  if (!r.ok) s += "\n  replay: " + replay_command(o);
  return s;
}

} // namespace possync::sim::dst
