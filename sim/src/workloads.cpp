#include "possync/sim/workloads.hpp"

namespace possync::sim {

const std::vector<workload_info>& known_workloads() {
  static const std::vector<workload_info> list = {
      {"local", "W8: durable sale commits, lookups and name search on one terminal store"},
  };
  return list;
}

} // namespace possync::sim
