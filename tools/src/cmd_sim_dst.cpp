// `possync sim --seeds N --faults all` / `--seed S --faults all --trace`.
#include <cstdio>

#include "commands.hpp"
#include "sim_cli.hpp"

namespace possync::tools {

int run_dst_cli(const sim_config&) {
  std::fprintf(stderr, "possync sim: the deterministic simulation is not built yet\n");
  return exit_failure;
}

} // namespace possync::tools
