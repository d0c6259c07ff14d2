#include "possync/sim/workloads.hpp"

namespace possync::sim {

const std::vector<workload_info>& known_workloads() {
  static const std::vector<workload_info> list = {
      {"full-sync", "W1: full sync of the catalogue into an empty durable terminal"},
      {"incremental", "W2: changes made at HQ while a terminal was offline, applied on reconnect"},
      {"offline-backlog", "W3: sales recorded offline on a terminal, uploaded on reconnect until durable at HQ"},
      {"push", "W4: HQ product changes pushed through a branch to live terminals, one at a time"},
      {"many-terminals", "W5: many terminals selling at once until HQ durably holds every sale"},
      {"local", "W8: durable sale commits, lookups and name search on one terminal store"},
  };
  return list;
}

} // namespace possync::sim
