// `possync sim --seeds N --faults all` / `--seed S --faults all --trace`.
//
// Many seeds: progress on stderr about every 10%, then the totals (or --json) on
// stdout with every failing seed and the command that replays it; exit 1 if any
// failed. One seed (--seed without --seeds): with --trace the event trace on stdout,
// then the verdict; stdout is byte-identical for the same seed and build (the wall
// time goes to stderr); exit 1 if an invariant failed.

#include <algorithm>
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "sim_cli.hpp"
#include "possync/sim/dst.hpp"

namespace possync::tools {

namespace {

int run_many(const sim_config& cfg, sim::dst::options base) {
  sim::dst::multi_options mo;
  base.seed = cfg.seed && cfg.seed->count() > 0 ? cfg.local.seed : 1;
  mo.base = base;
  mo.count = cfg.seeds;
  mo.threads = cfg.dst_threads;
  const uint64_t step = std::max<uint64_t>(1, cfg.seeds / 10);
  uint64_t done = 0, failed = 0;
  mo.on_seed = [&](const sim::dst::seed_result& r) {
    ++done;
    if (!r.ok) {
      ++failed;
      sim::dst::options o = base;
      o.seed = r.seed;
      std::fprintf(stderr, "possync sim: seed %llu FAILED (%zu violations): %s\n",
                   static_cast<unsigned long long>(r.seed), r.violations.size(),
                   sim::dst::replay_command(o).c_str());
      for (size_t i = 0; i < r.violations.size() && i < 5; ++i)
        std::fprintf(stderr, "  %s\n", r.violations[i].c_str());
    }
    if (done % step == 0 || done == cfg.seeds)
      std::fprintf(stderr, "possync sim: %llu/%llu seeds, %llu failed\n", static_cast<unsigned long long>(done),
                   static_cast<unsigned long long>(cfg.seeds), static_cast<unsigned long long>(failed));
  };
  auto res = sim::dst::run_seeds(mo);
  if (!res) {
    std::fprintf(stderr, "possync sim: %s\n", res.err().to_string().c_str());
    return exit_failure;
  }
  std::printf("%s\n", cfg.json ? sim::dst::to_json(*res, base).c_str() : sim::dst::to_text(*res, base).c_str());
  return res->failed == 0 ? exit_ok : exit_failure;
}

int run_one(const sim_config& cfg, sim::dst::options o) {
  o.seed = cfg.local.seed;
  o.trace = cfg.trace;
  auto r = sim::dst::run_seed(o);
  if (!r) {
    std::fprintf(stderr, "possync sim: seed %llu could not start: %s\n", static_cast<unsigned long long>(o.seed),
                 r.err().to_string().c_str());
    return exit_failure;
  }
  if (cfg.trace) std::fwrite(r->trace.data(), 1, r->trace.size(), stdout);
  if (!r->trace.empty() && r->trace.back() != '\n') std::fputc('\n', stdout);
  if (cfg.json) {
    std::printf("%s\n", sim::dst::to_json(*r, o).c_str());
  } else {
    std::printf("%s\n", sim::dst::to_text(*r, o).c_str());
    std::fprintf(stderr, "possync sim: seed %llu took %.2f s of wall time\n",
                 static_cast<unsigned long long>(o.seed), r->seconds);
  }
  std::fflush(stdout);
  return r->ok ? exit_ok : exit_failure;
}

} // namespace

int run_dst_cli(const sim_config& cfg) {
  sim::dst::options o;
  const std::string faults = cfg.faults.empty() ? "all" : cfg.faults;
  auto mask = sim::dst::parse_faults(faults);
  if (!mask) {
    std::fprintf(stderr, "possync sim: --%s\n", mask.err().message.c_str());
    return exit_usage;
  }
  o.faults = *mask;
  if (!cfg.sabotage.empty()) {
    auto broken = sim::dst::parse_sabotage(cfg.sabotage);
    if (!broken) {
      std::fprintf(stderr, "possync sim: --%s\n", broken.err().message.c_str());
      return exit_usage;
    }
    o.broken = *broken;
  }
  if (cfg.seeds > 0) {
    if (cfg.trace) {
      std::fprintf(stderr, "possync sim: --trace prints one seed's trace: use --seed S without --seeds\n");
      return exit_usage;
    }
    return run_many(cfg, o);
  }
  return run_one(cfg, o);
}

} // namespace possync::tools
