#include "console.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "possync/core/ids.hpp"
#include "store_view.hpp"

namespace possync::tools {

namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

std::string ok() {
  return "ok";
}
std::string ok(const json& j) {
  return "ok " + j.dump();
}
std::string err(const error& e) {
  return std::string("err ") + to_string(e.code) + ": " + e.message;
}
std::string usage(const std::string& what) {
  return "err usage: " + what;
}
std::string timeout(const std::string& what) {
  return "err timeout: " + what;
}

std::optional<double> parse_seconds(const std::string& text) {
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used != text.size() || !(v >= 0) || v > 86400) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

const char* const help_lines[] = {
    "help",
    "status",
    "product ID NAME PRICE [BARCODE]",
    "price ID PRICE",
    "rename ID NAME",
    "catalogue N [STOCK [BRANCH]]",
    "stock ID QTY [BRANCH]",
    "sell PRODUCT QTY",
    "sell-n N",
    "count COLLECTION",
    "get-stock BRANCH ID",
    "get-product ID",
    "digest [COLLECTION ...]",
    "wait-synced SECONDS",
    "wait-count COLLECTION N SECONDS",
    "wait-product ID FIELD VALUE SECONDS",
    "offline",
    "online",
    "sync",
    "resync",
    "device TENANT:BRANCH:NODEHEX:ROLE[:NAME]",
    "conflicts",
    "use NAME",
    "nodes",
    "quit",
};

std::string field_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

} // namespace

result<std::vector<std::string>> split_words(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
      ++i;
    if (i >= line.size()) break;
    std::string word;
    if (line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\' && i < line.size()) {
          word += line[i++];
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          word += c;
        }
      }
      if (!closed) return error(errc::invalid_argument, "unterminated quote");
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
        word += line[i++];
    }
    out.push_back(std::move(word));
  }
  return out;
}

namespace {

json status_object(const node::node_status& s) {
  uint64_t total = 0;
  for (auto p : s.pending)
    total += p;
  json j = {{"node", core::node_id_to_string(s.node)},
            {"role", storage::to_string(s.role)},
            {"tenant", s.tenant},
            {"branch", s.branch},
            {"online", s.online},
            {"upstream", s.upstream},
            {"caught_up", s.caught_up},
            {"pending", s.pending},
            {"pending_total", total},
            {"last_sync_ms", s.last_sync_ms},
            {"lag_records", s.lag_records},
            {"skew_ms", s.skew_ms},
            {"downstream_sessions", s.downstream_sessions},
            {"uplink_restarts", s.uplink_restarts},
            {"last_error", s.last_error},
            {"rejected", s.rejected},
            {"last_rejection", s.last_rejection},
            {"port", s.port}};
  return j;
}

int64_t wall_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

std::string status_json(const node::node_status& s) {
  return status_object(s).dump();
}

console::console(std::vector<target> nodes) : nodes_(std::move(nodes)), started_ms_(wall_now_ms()) {
  sale_seed_ = static_cast<uint64_t>(clock_type::now().time_since_epoch().count());
  for (auto& t : nodes_) {
    sale_seed_ ^= t.node->store().node();
    subscriptions_.push_back(t.node->subscribe([this](const std::vector<storage::change>&) {
      std::lock_guard<std::mutex> lock(mu_);
      ++changes_;
      cv_.notify_all();
    }));
  }
}

console::~console() {
  for (size_t i = 0; i < nodes_.size(); ++i)
    nodes_[i].node->unsubscribe(subscriptions_[i]);
}

template <class Pred> bool console::wait_for(Pred pred, double seconds) {
  auto deadline = clock_type::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen = changes_;
    }
    if (pred()) return true;
    auto now = clock_type::now();
    if (now >= deadline || (stop_ && stop_->load())) return false;
    // Woken by a commit; status-only conditions (acks, caught-up) are polled.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(100)),
                   [&] { return changes_ != seen; });
    lock.unlock();
    // Let a burst of commits settle before re-evaluating an expensive predicate.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string console::execute(const std::string& line) {
  auto words = split_words(line);
  if (!words) return usage(words.err().message);
  if (words->empty() || (*words)[0][0] == '#') return "";
  return dispatch(*words);
}

std::string console::dispatch(const std::vector<std::string>& w) {
  node::node& n = *nodes_[current_].node;
  storage::node_store& store = n.store();
  const auto& cfg = n.config();
  const std::string& tenant = cfg.tenant;
  const std::string& branch = cfg.branch;
  const std::string& cmd = w[0];
  auto args = w.size() - 1;
  auto scopes = [&]() { return known_scopes(store, tenant, branch); };

  if (cmd == "help") {
    json j = json::array();
    for (const char* h : help_lines)
      j.push_back(h);
    return ok(json{{"commands", j}});
  }
  if (cmd == "status") {
    auto st = n.status();
    auto j = status_object(st);
    // What a POS screen shows; HQ has no upstream to be online with.
    if (st.role != storage::node_role::hq)
      j["summary"] =
          describe(node::sync_status_of(st, wall_now_ms(), terminal_config{}.stale_after_ms, started_ms_));
    return ok(j);
  }
  if (cmd == "quit" || cmd == "exit") {
    done_ = true;
    return ok();
  }
  if (cmd == "nodes") {
    json names = json::array();
    for (const auto& t : nodes_)
      names.push_back(t.name);
    return ok(json{{"nodes", names}, {"current", nodes_[current_].name}});
  }
  if (cmd == "use") {
    if (args != 1) return usage("use NAME");
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].name == w[1]) {
        current_ = i;
        return ok(json{{"node", w[1]}});
      }
    return err(error(errc::not_found, "no node '" + w[1] + "' (see `nodes`)"));
  }
  if (cmd == "product") {
    if (args != 3 && args != 4) return usage("product ID NAME PRICE [BARCODE]");
    auto price = parse_int(w[3]);
    if (!price || *price < 0)
      return usage("PRICE must be a non-negative integer (minor units), got '" + w[3] + "'");
    sim::product_spec p;
    p.id = w[1];
    p.sku = w[1];
    p.name = w[2];
    p.price = *price;
    p.cost = *price * 8 / 10;
    p.unit = "pcs";
    if (args == 4) p.barcode = w[4];
    if (auto e = put_product(store, tenant, p)) return err(e);
    return ok(json{{"id", p.id}});
  }
  if (cmd == "price" || cmd == "rename") {
    if (args != 2) return usage(cmd == "price" ? "price ID PRICE" : "rename ID NAME");
    if (auto e = edit_product(store, tenant, w[1], cmd == "price" ? "price" : "name", w[2])) return err(e);
    auto p = product_json(store, tenant, w[1]);
    if (!p) return err(p.err());
    return ok(p->value_or(json::object()));
  }
  if (cmd == "catalogue" || cmd == "catalog") {
    if (args < 1 || args > 3) return usage("catalogue N [STOCK [BRANCH]]");
    auto count = parse_int(w[1]);
    if (!count || *count < 1 || *count > 1000000) return usage("N must be 1..1000000, got '" + w[1] + "'");
    int64_t stock_milli = 0;
    if (args >= 2) {
      auto q = parse_quantity(w[2]);
      if (!q) return usage("STOCK must be a quantity, got '" + w[2] + "'");
      stock_milli = *q;
    }
    std::string in_branch = args == 3 ? w[3] : branch;
    if (stock_milli != 0 && in_branch.empty())
      return err(error(errc::failed_precondition, "this node has no branch: give BRANCH"));
    auto specs = numbered_catalog(static_cast<size_t>(*count));
    if (auto e = sim::load_catalog(store, tenant, in_branch, specs, stock_milli, 500)) return err(e);
    return ok(json{{"products", *count}});
  }
  if (cmd == "stock") {
    if (args != 2 && args != 3) return usage("stock ID QTY [BRANCH]");
    auto q = parse_quantity(w[2].size() > 1 && w[2][0] == '-' ? w[2].substr(1) : w[2]);
    if (!q) return usage("QTY must be a quantity, got '" + w[2] + "'");
    int64_t delta = w[2][0] == '-' ? -*q : *q;
    std::string in_branch = args == 3 ? w[3] : branch;
    if (in_branch.empty())
      return err(error(errc::failed_precondition, "this node has no branch: give BRANCH"));
    auto res = store.write({storage::counter_op{sim::stock_key(tenant, in_branch, w[1]), delta}});
    if (!res) return err(res.err());
    auto level = store.stock_level(tenant, in_branch, w[1]);
    if (!level) return err(level.err());
    return ok(json{{"branch", in_branch}, {"id", w[1]}, {"stock_milli", *level}});
  }
  if (cmd == "sell") {
    if (args != 2) return usage("sell PRODUCT QTY");
    auto q = parse_quantity(w[2]);
    if (!q || *q <= 0) return usage("QTY must be a positive quantity, got '" + w[2] + "'");
    auto made = sell_product(store, tenant, branch, core::node_id_to_string(store.node()), w[1], *q);
    if (!made) return err(made.err());
    return ok(json{{"sale", made->id}, {"total", made->total}});
  }
  if (cmd == "sell-n") {
    if (args != 1) return usage("sell-n N");
    auto count = parse_int(w[1]);
    if (!count || *count < 0 || *count > 10000000) return usage("N must be 0..10000000, got '" + w[1] + "'");
    auto catalog = stored_catalog(store, tenant);
    if (!catalog) return err(catalog.err());
    sim::rng r(sale_seed_++);
    std::vector<sale_made> made;
    auto st = sell_random(store, tenant, branch, core::node_id_to_string(store.node()), *catalog, r,
                          static_cast<size_t>(*count), made);
    if (st) return err(error(st.code, st.message + " (" + std::to_string(made.size()) + " recorded)"));
    int64_t total = 0;
    std::map<std::string, int64_t> sold;
    for (const auto& m : made) {
      total += m.total;
      for (const auto& l : m.lines)
        sold[l.product_id] += l.quantity;
    }
    return ok(json{{"sales", made.size()}, {"total", total}, {"sold", sold}});
  }
  if (cmd == "count") {
    if (args != 1) return usage("count COLLECTION");
    auto s = scopes();
    if (!s) return err(s.err());
    auto c = count_records(store, *s, w[1]);
    if (!c) return err(c.err());
    return ok(json{{"collection", w[1]}, {"count", *c}});
  }
  if (cmd == "get-stock") {
    if (args != 2) return usage("get-stock BRANCH ID");
    auto level = store.stock_level(tenant, w[1], w[2]);
    if (!level) return err(level.err());
    return ok(json{{"branch", w[1]}, {"id", w[2]}, {"stock_milli", *level}});
  }
  if (cmd == "get-product") {
    if (args != 1) return usage("get-product ID");
    auto p = product_json(store, tenant, w[1]);
    if (!p) return err(p.err());
    if (!p->has_value()) return err(error(errc::not_found, "product '" + w[1] + "' not found"));
    return ok(**p);
  }
  if (cmd == "digest") {
    auto s = scopes();
    if (!s) return err(s.err());
    std::set<std::string> only(w.begin() + 1, w.end());
    for (const auto& c : only)
      if (!store.registry().find(c))
        return err(error(errc::invalid_argument, "unknown collection '" + c + "'"));
    auto d = digest(store, *s, only);
    if (!d) return err(d.err());
    return ok(digest_json(*d));
  }
  if (cmd == "wait-synced") {
    if (args != 1) return usage("wait-synced SECONDS");
    auto secs = parse_seconds(w[1]);
    if (!secs) return usage("SECONDS must be a number 0..86400, got '" + w[1] + "'");
    bool has_upstream = !cfg.upstreams.empty() || cfg.connect;
    node::node_status last;
    bool done = wait_for(
        [&] {
          last = n.status();
          for (auto p : last.pending)
            if (p != 0) return false;
          // The outbox itself too: the counters are a cache of it.
          auto empty = outbox_empty(store);
          if (!empty || !*empty) return false;
          return !has_upstream || (last.online && last.caught_up);
        },
        *secs);
    if (!done) return timeout("not synced after " + w[1] + " s: " + status_json(last));
    return "ok " + status_json(last);
  }
  if (cmd == "wait-count") {
    if (args != 3) return usage("wait-count COLLECTION N SECONDS");
    auto want = parse_int(w[2]);
    auto secs = parse_seconds(w[3]);
    if (!want || *want < 0) return usage("N must be a non-negative integer, got '" + w[2] + "'");
    if (!secs) return usage("SECONDS must be a number 0..86400, got '" + w[3] + "'");
    if (!store.registry().find(w[1]))
      return err(error(errc::invalid_argument, "unknown collection '" + w[1] + "'"));
    uint64_t have = 0;
    error failure;
    bool done = wait_for(
        [&] {
          auto s = scopes();
          if (!s) {
            failure = s.err();
            return true;
          }
          auto c = count_records(store, *s, w[1]);
          if (!c) {
            failure = c.err();
            return true;
          }
          have = *c;
          return have >= static_cast<uint64_t>(*want);
        },
        *secs);
    if (failure) return err(failure);
    if (!done)
      return timeout(std::to_string(have) + " " + w[1] + " records after " + w[3] + " s, waited for " + w[2]);
    return ok(json{{"collection", w[1]}, {"count", have}});
  }
  if (cmd == "wait-product") {
    if (args != 4) return usage("wait-product ID FIELD VALUE SECONDS");
    auto secs = parse_seconds(w[4]);
    if (!secs) return usage("SECONDS must be a number 0..86400, got '" + w[4] + "'");
    json last;
    error failure;
    bool done = wait_for(
        [&] {
          auto p = product_json(store, tenant, w[1]);
          if (!p) {
            failure = p.err();
            return true;
          }
          if (!p->has_value()) return false;
          last = **p;
          return last.contains(w[2]) && field_text(last[w[2]]) == w[3];
        },
        *secs);
    if (failure) return err(failure);
    if (!done)
      return timeout("product " + w[1] + " " + w[2] + " is not '" + w[3] + "' after " + w[4] +
                     " s: " + (last.is_null() ? std::string("absent") : last.dump()));
    return ok(last);
  }
  if (cmd == "offline" || cmd == "online") {
    if (args != 0) return usage(cmd);
    n.set_uplink_enabled(cmd == "online");
    return ok();
  }
  if (cmd == "sync") {
    n.sync_now();
    return ok();
  }
  if (cmd == "resync") {
    if (auto e = n.full_resync()) return err(e);
    return ok();
  }
  if (cmd == "device") {
    if (args != 1) return usage("device TENANT:BRANCH:NODEHEX:ROLE[:NAME]");
    auto d = parse_device(w[1]);
    if (!d) return err(d.err());
    if (auto e = n.register_device(*d)) return err(e);
    return ok(json{{"device", core::node_id_to_string(d->node)}});
  }
  if (cmd == "conflicts") {
    auto c = store.conflicts(true, 1000);
    if (!c) return err(c.err());
    json list = json::array();
    for (const auto& e : *c)
      list.push_back(
          {{"key", e.key.to_string()}, {"policy", e.policy}, {"rule", e.rule}, {"resolved", e.resolved}});
    return ok(json{{"conflicts", list}});
  }
  return usage("unknown command '" + cmd + "' (try help)");
}

void console::run(int fd, FILE* out, const std::atomic<bool>& stop) {
  stop_ = &stop;
  bool prompt = ::isatty(fd) == 1;
  std::string buf;
  auto show_prompt = [&] {
    if (prompt) {
      std::fputs("possync> ", out);
      std::fflush(out);
    }
  };
  show_prompt();
  while (!stop.load() && !done_) {
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      std::string resp = execute(line);
      if (!resp.empty()) {
        std::fprintf(out, "%s\n", resp.c_str());
        std::fflush(out);
      }
      if (done_ || stop.load()) return;
      show_prompt();
    }
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char chunk[4096];
    ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) {
      // End of input: run a last unterminated line, then end.
      if (!buf.empty()) {
        std::string resp = execute(buf);
        if (!resp.empty()) std::fprintf(out, "%s\n", resp.c_str());
      }
      std::fflush(out);
      return;
    }
    buf.append(chunk, static_cast<size_t>(got));
  }
}

int console::run_script(const std::string& path, FILE* out, const std::atomic<bool>& stop) {
  stop_ = &stop;
  std::ifstream in(path);
  if (!in) return -1;
  int failed = 0;
  std::string line;
  while (!stop.load() && !done_ && std::getline(in, line)) {
    std::string resp = execute(line);
    if (resp.empty()) continue;
    std::fprintf(out, "> %s\n%s\n", line.c_str(), resp.c_str());
    std::fflush(out);
    if (resp.rfind("err", 0) == 0) ++failed;
  }
  return failed;
}

} // namespace possync::tools
