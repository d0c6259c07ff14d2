// W10: memory per idle connected terminal session (see workload_idle.hpp).
//
// How it measures. The fleet is brought up and synced once, then every uplink is cut
// and restored once to warm caches (block cache, memtable, gRPC channels' first use).
// Then: uplinks cut, settle, heap measured (base); uplinks restored, every terminal
// online and caught up, settle, heap measured (connected); uplinks cut again, settle,
// heap measured (base2, to show drift). bytes per session = (connected - mean(base,
// base2)) / sessions. Heap = glibc mallinfo2 in-use bytes (uordblks + hblkhd), the
// median of several samples; RSS is reported next to it for reference.
//
// inproc: HQ, branch and terminals in this process: the delta holds both ends of each
// session (terminal uplink, branch downlink, link buffers).
// grpc: HQ and branch run in a child process forked before any thread starts; the
// terminals here dial its gRPC port. The child's delta is the accepting side alone
// (downlink session actor, its machine, the gRPC server stream and its buffers); this
// process's delta is the terminal side. The accepting side is what TARGETS.md's
// "idle connected terminal session on a branch or HQ" names.

#include "workload_idle.hpp"
#include "temp_dir.hpp"

#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "possync/node/inproc.hpp"
#include "possync/node/node.hpp"
#include "possync/sim/pos_fixture.hpp"
#include "possync/sim/workload_local.hpp"
#include "possync/storage/store.hpp"

namespace possync::sim {

namespace {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;
using namespace std::chrono_literals;

const std::string tenant = "idle";
const std::string branch = "b001";
constexpr core::node_id hq_id = 0x4800000000000001ULL;
constexpr core::node_id branch_id = 0xB000000000000001ULL;
constexpr core::node_id first_terminal_id = 0x7000000000000001ULL;
constexpr int64_t initial_stock = 1'000'000'000;
constexpr double target_bytes = 64.0 * 1024;

double secs_between(time_point a, time_point b) { return std::chrono::duration<double>(b - a).count(); }
double ms_between(time_point a, time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

// -- memory ------------------------------------------------------------------------

/// Heap in use and resident set, bytes.
struct mem_sample {
  double heap = 0;
  double rss = 0;
};

double rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) : 0;
}

} // namespace
} // namespace possync::sim

// jemalloc's control interface when possync is linked with it (tools/CMakeLists.txt);
// null under glibc malloc.
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen)
    __attribute__((weak));

namespace possync::sim {
namespace {

// Bytes the program holds on the heap: jemalloc's stats.allocated (after an epoch
// refresh) when it is the allocator, else glibc's mallinfo2 in-use bytes.
double heap_bytes() {
  if (mallctl) {
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);
    size_t allocated = 0;
    len = sizeof allocated;
    if (mallctl("stats.allocated", &allocated, &len, nullptr, 0) == 0) return static_cast<double>(allocated);
  }
  struct mallinfo2 m = ::mallinfo2();
  return static_cast<double>(m.uordblks) + static_cast<double>(m.hblkhd);
}

// Waits `settle`, then the median of 5 samples 200 ms apart (idle sessions still tick:
// the median keeps a timer's transient allocations out). malloc_trim (glibc) or an
// arena purge (jemalloc) first, so that RSS shows what is held rather than what the
// allocator kept.
mem_sample settle_and_measure(std::chrono::milliseconds settle) {
  std::this_thread::sleep_for(settle);
  ::malloc_trim(0);
  if (mallctl) mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);  // every arena (MALLCTL_ARENAS_ALL)
  std::vector<double> heap, rss;
  for (int i = 0; i < 5; ++i) {
    if (i) std::this_thread::sleep_for(200ms);
    heap.push_back(heap_bytes());
    rss.push_back(rss_bytes());
  }
  std::sort(heap.begin(), heap.end());
  std::sort(rss.begin(), rss.end());
  return {heap[2], rss[2]};
}

// Threads of this process (a fork is only safe with one).
size_t thread_count() {
  std::error_code ec;
  size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

// Every session is a socket at each end over gRPC: lift the soft descriptor limit.
void raise_fd_limit() {
  struct rlimit r {};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

// -- nodes -------------------------------------------------------------------------

template <class Pred>
bool poll_until(time_point deadline, Pred pred, std::chrono::microseconds every = 2ms) {
  for (;;) {
    if (pred()) return true;
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

// Nodes on one runtime, stopped downstream first.
class fleet {
public:
  explicit fleet(std::shared_ptr<node::runtime> rt) : rt_(std::move(rt)) {}
  fleet(const fleet&) = delete;
  fleet& operator=(const fleet&) = delete;
  ~fleet() {
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it)
      (*it)->stop();
    while (!nodes_.empty())
      nodes_.pop_back();
  }
  result<node::node*> start(node::node_config c) {
    std::string what = std::string(storage::to_string(c.role)) + " " + core::node_id_to_string(c.node_id);
    auto n = node::node::start(std::move(c), rt_);
    if (!n) {
      auto e = std::move(n).err();
      e.message = "starting " + what + ": " + e.message;
      return e;
    }
    nodes_.push_back(std::move(n).value());
    return nodes_.back().get();
  }

private:
  std::shared_ptr<node::runtime> rt_;
  std::vector<std::unique_ptr<node::node>> nodes_;
};

node::node_config config_of(storage::node_role role, core::node_id id) {
  node::node_config c;
  c.role = role;
  c.tenant = tenant;
  c.branch = role == storage::node_role::hq ? "" : branch;
  c.node_id = id;
  c.backoff.initial_ms = 20;
  c.backoff.max_ms = 500;
  c.uplink_thread = role != storage::node_role::terminal;  // 1,000 terminals: no thread each
  return c;
}

// Dial `up` over an in-process link.
void attach_inproc(node::node_config& c, node::node& up, const std::string& name) {
  c.upstreams = {"inproc:" + core::node_id_to_string(up.status().node)};
  node::node* target = &up;
  c.connect = [target, name](const std::string&) -> std::unique_ptr<actors::link> {
    auto pair = node::inproc_pair(name, "upstream");
    target->accept(std::move(pair.second));
    return std::move(pair.first);
  };
}

bool ready(node::node& n) {
  auto s = n.status();
  return s.online && s.caught_up;
}

// HQ (registering the branch and `terminals` terminals, holding `products` products)
// and the branch under it, synced. The branch listens on 127.0.0.1:0 with `listen`.
result<node::node*> start_upstream(fleet& f, const pos_options& o, const std::string& root, bool listen,
                                   time_point deadline) {
  std::vector<node::device> devices;
  node::device b;
  b.tenant = tenant;
  b.branch = branch;
  b.node = branch_id;
  b.role = storage::node_role::branch;
  b.name = "branch server";
  devices.push_back(b);
  for (size_t i = 0; i < o.terminals; ++i) {
    node::device d = b;
    d.node = first_terminal_id + i;
    d.role = storage::node_role::terminal;
    d.name = "register " + std::to_string(i + 1);
    devices.push_back(d);
  }
  auto hc = config_of(storage::node_role::hq, hq_id);
  if (o.in_memory) hc.in_memory = true;
  else hc.dir = root + "/hq";
  hc.devices = std::move(devices);
  auto hq = f.start(std::move(hc));
  if (!hq) return hq;
  auto catalog = generate_catalog(o.products, o.seed);
  if (auto st = load_catalog((*hq)->store(), tenant, branch, catalog, initial_stock, 1000)) return st;

  auto bc = config_of(storage::node_role::branch, branch_id);
  if (o.in_memory) bc.in_memory = true;
  else bc.dir = root + "/branch";
  if (listen) bc.listen = "127.0.0.1:0";
  attach_inproc(bc, **hq, "branch");
  auto br = f.start(std::move(bc));
  if (!br) return br;
  if (!poll_until(deadline, [&] { return ready(**br); }))
    return error(errc::deadline_exceeded, "setup: the branch did not finish its first sync");
  return br;
}

// -- the accepting side in a child process (grpc) ------------------------------------

// Lines over pipes: parent -> child one command byte ('s' sessions, 'm' measure,
// 'q' quit); child -> parent "port P", "sessions N", "mem HEAP RSS", "err TEXT".
bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// One line from `fd` (without '\n'); nullopt on EOF, error or `deadline`.
std::optional<std::string> read_line(int fd, time_point deadline) {
  std::string line;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    if (left <= 0) return std::nullopt;
    struct pollfd p {fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return std::nullopt;
    if (r == 0) continue;
    char c = 0;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    line += c;
  }
}

[[noreturn]] void child_main(int cmd_fd, int reply_fd, const pos_options& o, const std::string& root,
                             std::chrono::milliseconds settle) {
  int code = 0;
  try {
    raise_fd_limit();
    node::runtime::options ro;
    ro.threads = o.threads;
    auto rt = node::runtime::create(ro);
    {
      fleet f(rt);
      auto deadline = clock_type::now() + std::chrono::milliseconds(o.timeout_ms);
      auto br = start_upstream(f, o, root, true, deadline);
      if (!br) {
        write_all(reply_fd, "err " + br.err().to_string() + "\n");
        code = 1;
      } else {
        write_all(reply_fd, "port " + std::to_string((*br)->port()) + "\n");
        for (;;) {
          char c = 0;
          ssize_t n = ::read(cmd_fd, &c, 1);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0 || c == 'q') break;
          if (c == 's') {
            write_all(reply_fd, "sessions " + std::to_string((*br)->status().downstream_sessions) + "\n");
          } else if (c == 'm') {
            auto m = settle_and_measure(settle);
            char line[128];
            std::snprintf(line, sizeof line, "mem %.0f %.0f %u\n", m.heap, m.rss,
                          (*br)->status().downstream_sessions);
            write_all(reply_fd, line);
          }
        }
      }
    }
    rt.reset();
  } catch (const std::exception& e) {
    write_all(reply_fd, std::string("err child: ") + e.what() + "\n");
    code = 2;
  } catch (...) {
    code = 2;
  }
  ::_exit(code);
}

// The parent's handle on the child; ends it (by pid) when destroyed.
class child_branch {
public:
  child_branch() = default;
  child_branch(const child_branch&) = delete;
  child_branch& operator=(const child_branch&) = delete;
  ~child_branch() { finish(); }

  /// Forks; the child runs HQ and the branch. Must be called with one thread.
  status spawn(const pos_options& o, const std::string& root, std::chrono::milliseconds settle) {
    int to_child[2], from_child[2];
    if (::pipe(to_child) != 0) return error(errc::internal, std::string("pipe: ") + std::strerror(errno));
    if (::pipe(from_child) != 0) {
      ::close(to_child[0]);
      ::close(to_child[1]);
      return error(errc::internal, std::string("pipe: ") + std::strerror(errno));
    }
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return error(errc::internal, std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      child_main(to_child[0], from_child[1], o, root, settle);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    pid_ = pid;
    cmd_ = to_child[1];
    reply_ = from_child[0];
    return {};
  }

  /// The branch's gRPC port once it is synced.
  result<uint16_t> port(time_point deadline) {
    auto l = reply(deadline);
    if (!l) return std::move(l).err();
    return static_cast<uint16_t>(std::stoul(l->substr(5)));
  }
  /// Downstream sessions at the branch.
  result<size_t> sessions(time_point deadline) {
    if (!write_all(cmd_, "s")) return error(errc::unavailable, "the branch process is gone");
    auto l = reply(deadline);
    if (!l) return std::move(l).err();
    return static_cast<size_t>(std::stoull(l->substr(9)));
  }
  /// Starts a measurement there (settle, then samples); collect() reads it.
  bool measure() { return write_all(cmd_, "m"); }
  result<std::pair<mem_sample, size_t>> collect(time_point deadline) {
    auto l = reply(deadline);
    if (!l) return std::move(l).err();
    mem_sample m;
    unsigned sessions = 0;
    if (std::sscanf(l->c_str(), "mem %lf %lf %u", &m.heap, &m.rss, &sessions) != 3)
      return error(errc::internal, "branch process: unexpected reply '" + *l + "'");
    return std::make_pair(m, static_cast<size_t>(sessions));
  }

  /// Asks the child to stop its nodes and waits (bounded); kills it if it hangs.
  void finish() {
    if (pid_ <= 0) return;
    write_all(cmd_, "q");
    ::close(cmd_);
    auto deadline = clock_type::now() + 20s;
    int st = 0;
    while (::waitpid(pid_, &st, WNOHANG) == 0) {
      if (clock_type::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    ::close(reply_);
    pid_ = -1;
  }

private:
  // The next reply line; "err ..." and a silent child become errors.
  result<std::string> reply(time_point deadline) {
    auto l = read_line(reply_, deadline);
    if (!l) return error(errc::unavailable, "the branch process did not answer");
    if (l->rfind("err ", 0) == 0) return error(errc::unavailable, "branch process: " + l->substr(4));
    return *l;
  }

  pid_t pid_ = -1;
  int cmd_ = -1, reply_ = -1;
};

// -- the run -----------------------------------------------------------------------

// Samples the terminals for the report's series until stopped.
class sampler {
public:
  sampler(const std::vector<node::node*>& terms, node::node* br, time_point t0, std::chrono::milliseconds every)
      : thread_([this, &terms, br, t0, every] {
          while (!stop_.load()) {
            series_point p;
            p.t_s = secs_between(t0, clock_type::now());
            for (auto* t : terms) {
              auto s = t->status();
              if (s.online) ++p.online_terminals;
              for (size_t l = 0; l < 4 && l < s.pending.size(); ++l)
                p.pending[l] += s.pending[l];
            }
            if (br)
              for (size_t l = 0; l < 4; ++l)
                p.pending[l] += br->status().pending[l];
            p.rss_mb = rss_bytes() / (1024.0 * 1024.0);
            {
              std::lock_guard<std::mutex> g(mu_);
              points_.push_back(p);
            }
            std::unique_lock<std::mutex> l(wake_mu_);
            wake_.wait_for(l, every, [&] { return stop_.load(); });
          }
        }) {}
  sampler(const sampler&) = delete;
  sampler& operator=(const sampler&) = delete;
  ~sampler() { finish(); }
  std::vector<series_point> finish() {
    {
      std::lock_guard<std::mutex> l(wake_mu_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> g(mu_);
    return points_;
  }

private:
  std::atomic<bool> stop_{false};
  std::mutex mu_, wake_mu_;
  std::condition_variable wake_;
  std::vector<series_point> points_;
  std::thread thread_;
};

std::string mb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", bytes / (1024.0 * 1024.0));
  return buf;
}
std::string fixed(double v, int decimals = 0) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void fail(pos_report& rep, const std::string& why) {
  rep.converged = false;
  if (rep.failure.empty()) rep.failure = why;
}

result<pos_report> run(pos_report rep, const std::string& root) {
  const auto& o = rep.opts;
  const bool grpc = o.transport == sync_transport::grpc;
  const auto settle = std::chrono::milliseconds(1500);
  const auto begin = clock_type::now();
  auto deadline = [&] { return clock_type::now() + std::chrono::milliseconds(o.timeout_ms); };

  // The accepting side: a child process (grpc) or this one (inproc). The fork comes
  // before this process starts any thread.
  child_branch child;
  uint16_t port = 0;
  if (grpc) {
    if (thread_count() != 1)
      return error(errc::failed_precondition,
                   "idle over gRPC forks a branch process and must start before any other thread "
                   "(run it as `possync sim --workload idle`, or use --transport inproc)");
    if (auto st = child.spawn(o, root, settle)) return st;
    auto p = child.port(deadline());
    if (!p) return std::move(p).err();
    port = *p;
    raise_fd_limit();
  }

  node::runtime::options ro;
  ro.threads = o.threads;
  auto rt = node::runtime::create(ro);
  fleet f(rt);
  node::node* br = nullptr;
  if (!grpc) {
    auto b = start_upstream(f, o, root, false, deadline());
    if (!b) return std::move(b).err();
    br = *b;
  }

  storage::db_options dbo;
  if (o.in_memory) dbo.in_memory = true;
  dbo.path = root + "/terminals";
  auto db = storage::database::open(dbo);
  if (!db) return std::move(db).err();
  std::vector<node::node*> terms;
  terms.reserve(o.terminals);
  for (size_t i = 0; i < o.terminals; ++i) {
    auto c = config_of(storage::node_role::terminal, first_terminal_id + i);
    c.db = *db;
    c.space = static_cast<uint32_t>(i + 1);
    if (grpc) c.upstreams = {"127.0.0.1:" + std::to_string(port)};
    else attach_inproc(c, *br, "terminal-" + std::to_string(i + 1));
    auto t = f.start(std::move(c));
    if (!t) return std::move(t).err();
    terms.push_back(*t);
  }

  auto branch_sessions = [&]() -> size_t {
    if (!grpc) return br->status().downstream_sessions;
    auto s = child.sessions(deadline());
    return s ? *s : static_cast<size_t>(-1);
  };
  auto all_ready = [&](time_point until) {
    return poll_until(until, [&] {
      for (auto* t : terms)
        if (!ready(*t)) return false;
      return branch_sessions() == terms.size();
    }, 5ms);
  };
  auto all_offline = [&](time_point until) {
    return poll_until(until, [&] {
      for (auto* t : terms)
        if (t->status().online) return false;
      return branch_sessions() == 0;
    }, 5ms);
  };
  auto set_uplinks = [&](bool on) {
    for (auto* t : terms)
      t->set_uplink_enabled(on);
  };
  // Measures here and at the child together (both settle the same time).
  struct both {
    mem_sample here, there;
    bool ok = true;
  };
  auto measure = [&]() {
    both m;
    if (grpc) m.ok = child.measure();
    m.here = settle_and_measure(settle);
    if (grpc && m.ok) {
      auto r = child.collect(deadline());
      if (r) m.there = r->first;
      else m.ok = false;
    }
    return m;
  };

  sampler samples(terms, br, begin, std::chrono::milliseconds(std::max<int64_t>(50, o.sample_ms)));

  // First sync, then one cut-and-restore cycle to warm caches.
  if (!all_ready(deadline()))
    return error(errc::deadline_exceeded, "setup: not every terminal finished its first sync");
  set_uplinks(false);
  if (!all_offline(deadline())) return error(errc::deadline_exceeded, "setup: sessions stayed up after the cut");
  set_uplinks(true);
  if (!all_ready(deadline())) return error(errc::deadline_exceeded, "setup: terminals did not come back");
  set_uplinks(false);
  if (!all_offline(deadline())) return error(errc::deadline_exceeded, "setup: sessions stayed up after the cut");
  rep.setup_seconds = secs_between(begin, clock_type::now());

  auto base = measure();

  // The measured reconnect: per terminal, the time until it is online and caught up.
  std::vector<double> reconnect_ms(terms.size(), -1);
  auto t0 = clock_type::now();
  set_uplinks(true);
  size_t up = 0;
  poll_until(deadline(), [&] {
    auto now = clock_type::now();
    for (size_t i = 0; i < terms.size(); ++i)
      if (reconnect_ms[i] < 0 && ready(*terms[i])) {
        reconnect_ms[i] = ms_between(t0, now);
        ++up;
      }
    return up == terms.size();
  }, 2ms);
  bool sessions_ok = poll_until(deadline(), [&] { return branch_sessions() == terms.size(); }, 5ms);
  rep.seconds = secs_between(t0, clock_type::now());
  rep.expected = terms.size();
  rep.seen = up;
  rep.converged = true;
  if (up != terms.size())
    fail(rep, std::to_string(terms.size() - up) + " terminals did not come online");
  else if (!sessions_ok)
    fail(rep, "the branch holds " + std::to_string(branch_sessions()) + " sessions, not " +
                  std::to_string(terms.size()));

  auto conn = measure();
  size_t online_at_measure = 0;
  for (auto* t : terms)
    if (t->status().online) ++online_at_measure;
  const size_t sessions_at_measure = branch_sessions();
  if (online_at_measure != terms.size() || sessions_at_measure != terms.size())
    fail(rep, "sessions dropped while measuring (" + std::to_string(online_at_measure) + " online, " +
                  std::to_string(sessions_at_measure) + " at the branch)");

  set_uplinks(false);
  if (!all_offline(deadline())) fail(rep, "sessions stayed up after the last cut");
  auto base2 = measure();
  if (!base.ok || !conn.ok || !base2.ok) fail(rep, "the branch process did not report its memory");
  auto series = samples.finish();

  // Figures.
  const double n = static_cast<double>(terms.size());
  auto per = [&](double b1, double c, double b2) { return (c - (b1 + b2) / 2) / n; };
  const double here_per = per(base.here.heap, conn.here.heap, base2.here.heap);
  const double there_per = per(base.there.heap, conn.there.heap, base2.there.heap);
  auto& d = rep.details;
  d["sessions"] = n;
  d["target_bytes"] = target_bytes;
  d["reconnect_seconds"] = rep.seconds;
  if (grpc) {
    d["bytes_per_session_accepting"] = there_per;
    d["bytes_per_session_terminal"] = here_per;
    d["bytes_per_session_both_ends"] = there_per + here_per;
    d["bytes_per_session"] = there_per;
    d["rss_delta_mb"] = (conn.there.rss - (base.there.rss + base2.there.rss) / 2) / (1024.0 * 1024.0);
    d["rss_delta_mb_terminal_side"] = (conn.here.rss - (base.here.rss + base2.here.rss) / 2) / (1024.0 * 1024.0);
    d["drift_bytes_per_session"] = (base2.there.heap - base.there.heap) / n;
    d["branch_heap_base_mb"] = base.there.heap / (1024.0 * 1024.0);
  } else {
    d["bytes_per_session_both_ends"] = here_per;
    d["bytes_per_session"] = here_per;
    d["rss_delta_mb"] = (conn.here.rss - (base.here.rss + base2.here.rss) / 2) / (1024.0 * 1024.0);
    d["drift_bytes_per_session"] = (base2.here.heap - base.here.heap) / n;
  }
  d["heap_base_mb"] = base.here.heap / (1024.0 * 1024.0);
  d["within_target"] = d["bytes_per_session"] <= target_bytes ? 1 : 0;
  std::vector<double> lat;
  for (double v : reconnect_ms)
    if (v >= 0) lat.push_back(v);
  if (!lat.empty()) {
    d["reconnect_p50_ms"] = percentile(lat, 50);
    d["reconnect_p99_ms"] = percentile(lat, 99);
  }

  // The report's record.
  auto& r = rep.record;
  const char* transport = grpc ? "grpc" : "inproc";
  r.title = "possync sim --workload idle: memory per idle session (W10)";
  r.command = "possync sim --workload idle --terminals " + std::to_string(terms.size()) + " --transport " +
              transport + (o.in_memory ? " --in-memory" : "") + " --seed " + std::to_string(o.seed);
  r.parameters = {{"terminals (sessions)", std::to_string(terms.size())},
                  {"transport", grpc ? "gRPC on 127.0.0.1 (branch and HQ in a child process)"
                                     : "in-process links (one process)"},
                  {"stores", o.in_memory ? "RocksDB in-memory environment" : "RocksDB in a temporary directory"},
                  {"products", std::to_string(o.products)},
                  {"settle before each measurement", "1.5 s, then the median of 5 samples 200 ms apart"},
                  {"seed", std::to_string(o.seed)}};
  auto kb = [](double b) { return fixed(b / 1024.0, 1) + " KB"; };
  r.results = {{"compared with the target (64 KB)",
                std::string(grpc ? "accepting side" : "both ends (an upper bound of the accepting side)") + ": " +
                    kb(d["bytes_per_session"]) + (d["bytes_per_session"] <= target_bytes ? " (met)" : " (MISSED)")},
               {"bytes per session, both ends", fixed(d["bytes_per_session_both_ends"]) + " B"},
               {"heap drift between the two cut phases, per session", fixed(d["drift_bytes_per_session"]) + " B"},
               {"RSS delta of the accepting process", fixed(d["rss_delta_mb"], 1) + " MB"},
               {"sessions online when measured", std::to_string(online_at_measure) + " / " +
                                                      std::to_string(terms.size())},
               {"converged", rep.converged ? "yes" : "no: " + rep.failure},
               {"reconnect of all terminals", fixed(rep.seconds, 2) + " s"}};
  if (grpc) {
    r.results["bytes per session, accepting side (branch process)"] = fixed(there_per) + " B";
    r.results["bytes per session, terminal side (this process)"] = fixed(here_per) + " B";
    r.results["heap of the branch process: cut / connected"] = mb(base.there.heap) + " / " + mb(conn.there.heap) + " MB";
  }
  r.results["heap of this process: cut / connected / cut again"] =
      mb(base.here.heap) + " / " + mb(conn.here.heap) + " / " + mb(base2.here.heap) + " MB";
  latency_samples rl;
  rl.name = "uplink restored -> online and caught up";
  rl.ms = std::move(lat);
  r.latencies.push_back(std::move(rl));
  r.series = std::move(series);
  return rep;
}

} // namespace

result<pos_report> run_idle(const pos_options& opts) {
  pos_report rep;
  rep.opts = opts;
  auto& o = rep.opts;
  o.workload = "idle";
  if (o.terminals == 0) o.terminals = 1000;
  if (o.products == 0) o.products = 200;
  if (o.timeout_ms <= 0) return error(errc::invalid_argument, "--timeout-ms must be positive");
  if (!o.hq.empty())
    return error(errc::invalid_argument, "idle measures a branch it runs itself: --hq does not apply");
  auto dir = temp_dir::make(o.dir, "possync-idle");
  if (!dir) return std::move(dir).err();
  if (o.keep_dir) dir->keep();
  auto out = run(std::move(rep), dir->path());
  if (out) {
    out->peak_rss_mb = peak_rss_mb();
    if (o.keep_dir) out->opts.dir = dir->path();
  }
  return out;
}

} // namespace possync::sim
