// POS load workloads (pos, lanes = W6, scale = W7; idle = W10 in workload_idle.cpp).
#include "possync/sim/workload_pos.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace possync::sim {

const std::vector<std::string>& pos_workload_names() {
  static const std::vector<std::string> names{"pos", "lanes", "scale", "idle"};
  return names;
}

bool is_pos_workload(const std::string& name) {
  const auto& n = pos_workload_names();
  return std::find(n.begin(), n.end(), name) != n.end();
}

result<pos_report> run_pos(const pos_options& opts) {
  return error(errc::unimplemented, "workload '" + opts.workload + "' is not built yet");
}

std::string to_json(const pos_report&) { return "{}"; }
std::string to_text(const pos_report& r) { return "workload " + r.opts.workload; }

} // namespace possync::sim
