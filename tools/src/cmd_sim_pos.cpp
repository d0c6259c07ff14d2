// `possync sim --workload pos|lanes|scale|idle`: POS load with many terminals.
#include <cstdio>

#include "commands.hpp"
#include "sim_cli.hpp"

namespace possync::tools {

int run_pos_cli(const sim_config&) {
  std::fprintf(stderr, "possync sim: the POS load workloads are not built yet\n");
  return exit_failure;
}

} // namespace possync::tools
