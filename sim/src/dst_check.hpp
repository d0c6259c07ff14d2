#pragma once
// The invariant checker's full report (private to sim/): check_invariants
// (dst_world.hpp) returns only its violations; run_seed also wants the figures.

#include <cstdint>
#include <string>
#include <vector>

#include "dst_world.hpp"

namespace possync::sim::dst {

/// What the checker found after one run.
struct check_report {
  std::vector<std::string> violations;  ///< one line each: invariant, node, key, figures
  uint64_t sales_lost_with_disk = 0;    ///< acked sales absent at HQ, unsent when their disk was lost
  uint64_t lost_stock_movements = 0;    ///< stock counter entries of lost identities that differ from
                                        ///< what their acked sales/changes imply (allowed, counted)
  uint64_t conflicts = 0;               ///< conflict entries in every node's table
  uint64_t sales_at_hq = 0;             ///< sale records HQ holds
};

/// Every invariant of check_invariants, with the figures.
check_report check_world(const world& w);

} // namespace possync::sim::dst
