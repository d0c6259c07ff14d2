#include "possync/sim/workloads.hpp"

namespace possync::sim {

const std::vector<workload_info>& known_workloads() {
  static const std::vector<workload_info> list = {
      {"full-sync", "W1: full sync of the catalogue into an empty durable terminal"},
      {"incremental", "W2: changes made at HQ while a terminal was offline, applied on reconnect"},
      {"offline-backlog", "W3: sales recorded offline on a terminal, uploaded on reconnect until durable at HQ"},
      {"push", "W4: HQ product changes pushed through a branch to live terminals, one at a time"},
      {"many-terminals", "W5: many terminals selling at once until HQ durably holds every sale"},
      {"lanes", "W6: a terminal's sale latency to HQ while a 20,000-product download and a 5 MB report upload are in flight"},
      {"scale", "W7: thousands of terminals in many branches selling at a rate, plus product changes at HQ"},
      {"local", "W8: durable sale commits, lookups and name search on one terminal store"},
      {"restart", "W9: an HQ process holding 1,000,000 records SIGKILLed mid-traffic: time until it serves sessions again"},
      {"idle", "W10: memory per idle connected terminal session"},
      {"pos", "POS traffic of every kind (sales, returns, edits, overrides, stocktakes, reports, terminals offline)"},
  };
  return list;
}

} // namespace possync::sim
