#pragma once
// The workloads `possync sim --workload NAME` knows. Later issues add W1-W7, W9, W10.

#include <string>
#include <vector>

namespace possync::sim {

/// One runnable workload.
struct workload_info {
  std::string name;        ///< value of --workload
  std::string description; ///< one line
};

/// Every workload this build can run, in TARGETS.md order.
const std::vector<workload_info>& known_workloads();

} // namespace possync::sim
