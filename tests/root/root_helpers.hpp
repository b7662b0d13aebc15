#pragma once
// Helpers for tests that load the real BPF programs against real kernel
// activity: child processes with pipes, cgroups the test creates (and removes),
// and running slabtrace itself.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "slabtrace/procfs.hpp"

namespace roottest {

inline bool is_root() { return geteuid() == 0; }

// Catch2 v2 has no SKIP: say why and leave the test.
#define REQUIRE_ROOT_OR_SKIP()                                   \
  do {                                                           \
    if (!roottest::is_root()) {                                  \
      WARN("skipped: needs root to load BPF programs");          \
      return;                                                    \
    }                                                            \
  } while (0)

inline std::string slabtrace_bin() { return SLABTRACE_BIN; }
inline std::string workload_bin() { return std::string(SLABTRACE_TOOLS) + "/st_workload"; }

// A child process with its stdin, stdout and stderr on pipes; `env` holds
// NAME=value entries that replace or add to this process's environment.
class Child {
 public:
  explicit Child(std::vector<std::string> argv, const std::vector<std::string>& env = {}) {
    std::vector<std::string> environment = env;
    for (char** e = environ; *e; ++e) {
      std::string_view entry(*e);
      auto same_name = [&](const std::string& o) { return o.substr(0, o.find('=')) == entry.substr(0, entry.find('=')); };
      if (std::none_of(env.begin(), env.end(), same_name)) environment.emplace_back(entry);
    }
    std::vector<char*> envp;
    for (auto& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);
    int in[2], out[2], err[2];
    REQUIRE(pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(pipe2(out, O_CLOEXEC) == 0);
    REQUIRE(pipe2(err, O_CLOEXEC) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execve(args[0], args.data(), envp.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    stderr_ = err[0];
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      wait();
    }
    for (int fd : {stdin_, stdout_, stderr_})
      if (fd >= 0) close(fd);
  }

  pid_t pid() const { return pid_; }

  // False once the process has exited (it is reaped then; finish() still
  // returns its status): lets a wait for something it should do end early.
  bool running() {
    if (exited_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
    exited_ = true;
    status_ = status;
    return false;
  }

  // Next line of stdout (or stderr), waiting up to `timeout`.
  std::optional<std::string> read_line(double timeout_s = 30, bool from_stderr = false) {
    std::string& buf = from_stderr ? err_buf_ : out_buf_;
    int fd = from_stderr ? stderr_ : stdout_;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
      auto nl = buf.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, int(left.count())) <= 0) continue;
      char chunk[4096];
      ssize_t n = read(fd, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buf.append(chunk, std::size_t(n));
    }
  }
  // Waits for a stderr line containing `text`.
  bool wait_stderr_for(const std::string& text, double timeout_s = 30) {
    while (auto line = read_line(timeout_s, true)) {
      stderr_seen_ += *line + "\n";
      if (line->find(text) != std::string::npos) return true;
    }
    return false;
  }
  void write_stdin(const std::string& text) {
    REQUIRE(stdin_ >= 0);
    REQUIRE(::write(stdin_, text.data(), text.size()) == ssize_t(text.size()));
  }
  void close_stdin() {
    if (stdin_ >= 0) close(stdin_);
    stdin_ = -1;
  }
  void signal(int sig) { kill(pid_, sig); }
  // Reads everything left on stdout and stderr, then reaps the child.
  int finish(double timeout_s = 120) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
      pollfd p[2] = {{stdout_, POLLIN, 0}, {stderr_, POLLIN, 0}};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        kill(pid_, SIGKILL);
        break;
      }
      if (poll(p, 2, int(left.count())) <= 0) continue;
      bool open = false;
      for (int i = 0; i < 2; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP))) {
          open = open || p[i].fd >= 0;
          continue;
        }
        char chunk[65536];
        ssize_t n = read(p[i].fd, chunk, sizeof chunk);
        if (n > 0) {
          (i == 0 ? out_buf_ : err_buf_).append(chunk, std::size_t(n));
          open = true;
        }
      }
      if (!open) break;
    }
    return wait();
  }
  const std::string& out() const { return out_buf_; }
  std::string err() const { return stderr_seen_ + err_buf_; }

 private:
  int wait() {
    int status = status_;
    if (!exited_) waitpid(pid_, &status, 0);
    exited_ = true;
    status_ = status;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  int stdin_ = -1, stdout_ = -1, stderr_ = -1;
  std::string out_buf_, err_buf_, stderr_seen_;
};

// Output (stdout and stderr) and exit status of a shell command.
inline std::pair<int, std::string> shell(const std::string& command) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Polls `ready` every `poll_ms` until it holds or `timeout_s` passes (then asks once more).
template <typename Fn>
bool eventually(double timeout_s, Fn&& ready, int poll_ms = 200) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
  return ready();
}

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Removes a directory (a cgroup) whose members must have exited; a few retries
// cover the kernel's lazy teardown.
inline void rmdir_retrying(const std::string& dir, int pause_ms = 100) {
  for (int i = 0; i < 50 && rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
}

// The ids a process holds open of one kind of BPF object, from its fds'
// fdinfo: key "prog_id:" or "link_id:". Ascending, each once; empty when the
// process is gone.
inline std::vector<std::uint64_t> bpf_ids_of(pid_t pid, const std::string& key) {
  std::vector<std::uint64_t> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo", ec)) {
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);)
      if (line.rfind(key, 0) == 0) ids.push_back(std::stoull(line.substr(key.size())));
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

// Binds a TCP socket to a loopback port the kernel picks; returns the port.
inline int bind_loopback_port(int fd) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A TCP port on loopback nobody listens on right now.
inline int free_loopback_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  int port = bind_loopback_port(fd);
  close(fd);
  return port;
}

inline std::string cgroup2_mount() {
  auto mount = slabtrace::procfs::own_cgroup2_mount();
  REQUIRE(mount.has_value());
  return *mount;
}

// A cgroup-v2 directory created for one test and removed after it. Only
// processes the test started are ever moved into it (they move themselves).
class TestCgroup {
 public:
  explicit TestCgroup(const std::string& name)
      : rel_("/slabtrace-test-" + std::to_string(getpid()) + "-" + name), abs_(cgroup2_mount() + rel_) {
    std::filesystem::create_directory(abs_);
  }
  ~TestCgroup() { rmdir_retrying(abs_); }
  const std::string& path() const { return rel_; }  // relative to the mount, as slabtrace reports it
  const std::string& dir() const { return abs_; }

 private:
  std::string rel_, abs_;
};

// slabtrace started in the background; returns once its programs are attached
// (the verifier takes minutes for them in an emulated guest).
inline std::unique_ptr<Child> start_slabtrace(std::vector<std::string> args) {
  args.insert(args.begin(), slabtrace_bin());
  auto child = std::make_unique<Child>(args);
  bool ready = child->wait_stderr_for("tracing", 300);
  INFO(child->err());
  REQUIRE(ready);
  return child;
}

inline nlohmann::json finish_json(Child& child) {
  int rc = child.finish(600);
  INFO("stderr: " << child.err());
  REQUIRE(rc == 0);
  return nlohmann::json::parse(child.out());
}

// A --duration for runs that stop_json() ends: longer than any test.
inline const std::string kUntilStopped = "3600";

// Ends a tracer started with --duration kUntilStopped once the test's work is done
// (Ctrl-C: it writes its report), so a slow machine gets the same run.
inline nlohmann::json stop_json(Child& child) {
  child.signal(SIGINT);
  return finish_json(child);
}

// SLABTRACE_TEST_SCALE (default 1): the share of this machine's throughput a
// test may count on. Only throughput targets scale (a churn rate, a message
// count a run must reach); every ratio and bound stays as it is.
inline double test_scale() {
  const char* s = std::getenv("SLABTRACE_TEST_SCALE");
  double v = s ? std::atof(s) : 1.0;
  return v > 0 && v <= 1 ? v : 1.0;
}
inline std::uint64_t scaled(std::uint64_t n) { return std::max<std::uint64_t>(1, std::uint64_t(double(n) * test_scale())); }

// Tracefs format of an event, "" when the kernel has no such event.
inline std::string event_format(const std::string& event) {
  for (const char* root : {"/sys/kernel/tracing/events/", "/sys/kernel/debug/tracing/events/"}) {
    std::ifstream in(root + event + "/format");
    if (in) return std::string(std::istreambuf_iterator<char>(in), {});
  }
  return "";
}
inline bool event_has_field(const std::string& event, const std::string& field) {
  auto fmt = event_format(event);
  for (const char* end : {";", "["})
    if (fmt.find(" " + field + end) != std::string::npos) return true;
  return false;
}

// A holder's skbs are counted by walking its queues: socket iterators at each
// report (bpf_loop, 5.17+), or per packet at sock:sk_data_ready (6.3+). On
// older kernels the socket census finds the holder (pid, cgroup, netns) with
// the kernel's queued bytes, but counts no skbs: the count is then skipped,
// with the reason, and the kernel's bytes must show the queue instead.
// The walk needs bpf_loop, as the tracer's loader decides (legacy object
// without it): asked of the kernel, never of its version.
inline bool kernel_has_bpf_loop() {
  static const bool has = [] {
    std::ifstream in("/proc/kallsyms");
    std::string line;
    while (std::getline(in, line))
      if (line.size() > 11 && line.compare(line.size() - 11, 11, " T bpf_loop") == 0) return true;
    return false;
  }();
  return has;
}
inline bool kernel_counts_held_skbs() { return kernel_has_bpf_loop() || !event_format("sock/sk_data_ready").empty(); }
inline void check_held_skbs(const nlohmann::json& holder, double at_least) {
  if (kernel_counts_held_skbs()) {
    CHECK(holder["queued_skbs"].get<double>() >= at_least);
    return;
  }
  CHECK(holder["kernel_queued_bytes"].is_number());
  CHECK(holder.value("kernel_queued_bytes", 0.0) > 0);
  std::printf("skipped: the holder's skb count (>= %.0f): no queue walk before 5.17; census bytes %s\n", at_least,
              holder["kernel_queued_bytes"].dump().c_str());
}

// A burst leak's verdict needs the age of the queue that holds it, which the
// queue walk (5.17+) measures; the census alone gives bytes.
inline bool kernel_dates_queues(const char* what) {
  if (kernel_counts_held_skbs()) return true;
  std::printf("skipped: %s: a burst's verdict needs the queue's age, from the queue walk (5.17+)\n", what);
  return false;
}

// Waits until the receive queue of the loopback UDP socket on `port` stops
// growing (loopback delivers in softirq after send() returns; /proc/net/udp
// is the kernel's own count): what a test then reads has all arrived.
// pid: read the table of that process's network namespace (0: ours).
inline std::uint64_t udp_rx_queue(int port, pid_t pid = 0) {
  std::ifstream in(pid ? "/proc/" + std::to_string(pid) + "/net/udp" : std::string("/proc/net/udp"));
  std::string line;
  std::getline(in, line);
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, st, queues;
    f >> sl >> local >> remote >> st >> queues;
    if (local.size() > 5 && local.compare(local.size() - 5, 5, want) == 0)
      return std::stoull(queues.substr(queues.find(':') + 1), nullptr, 16);
  }
  return 0;
}
inline void wait_udp_queue_settled(int port, pid_t pid = 0, double timeout_s = 60) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  std::uint64_t last = udp_rx_queue(port, pid);
  for (int still = 0; still < 3 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::uint64_t now = udp_rx_queue(port, pid);
    still = now == last ? still + 1 : 0;
    last = now;
  }
}

// Waits until something listens on loopback TCP `port` (/proc/net/tcp).
inline bool wait_tcp_listening(int port, double timeout_s = 60) {
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in("/proc/net/tcp");
    std::string line, sl, local, remote, st;
    std::getline(in, line);
    while (in >> sl >> local >> remote >> st) {
      if (st == "0A" && local.size() > 5 && local.compare(local.size() - 5, 5, want) == 0) return true;
      std::getline(in, line);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// A process holding an unread UDP socket, in a cgroup; returns its port.
struct UdpHolder {
  std::unique_ptr<Child> child;
  int port = 0;
  explicit UdpHolder(const TestCgroup& cg) {
    child = std::make_unique<Child>(std::vector<std::string>{workload_bin(), "udp-hold", "--cgroup", cg.dir()});
    auto line = child->read_line(10);
    REQUIRE(line);
    REQUIRE(line->rfind("ready ", 0) == 0);
    port = std::stoi(line->substr(6));
  }
  void exit() {
    child->close_stdin();
    child->finish(10);
  }
};

inline void udp_send(const TestCgroup& cg, int port, long count, int size = 200) {
  Child sender({workload_bin(), "udp-send", "--cgroup", cg.dir(), "--port", std::to_string(port), "--count",
                std::to_string(count), "--size", std::to_string(size)});
  REQUIRE(sender.finish(300) == 0);
}

// A `record` run (JSON report) while `count` datagrams go from `sender` into the
// unread socket on `port`; stopped once that socket's queue has settled.
inline nlohmann::json record_udp_leak(const TestCgroup& sender, int port, long count,
                                      const std::vector<std::string>& record_args = {}) {
  std::vector<std::string> args = {"record", "--duration", kUntilStopped, "--format", "json"};
  args.insert(args.end(), record_args.begin(), record_args.end());
  auto tracer = start_slabtrace(args);
  udp_send(sender, port, count);
  wait_udp_queue_settled(port);
  return stop_json(*tracer);
}

// Lets frees from earlier tests reach /proc/slabinfo: per-CPU caches (sheaves
// on 6.18) keep freed objects counted as active until they are flushed.
inline void settle_slabinfo() {
  for (const char* cache : {"skbuff_head_cache", "kmalloc-1k", "kmalloc-cg-1k", "skbuff_small_head"}) {
    std::ofstream shrink(std::string("/sys/kernel/slab/") + cache + "/shrink");
    if (shrink) shrink << "1\n";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
}

// The caches in which the kernel files the
// data buffers of a leak of `count` unread 200-byte messages, with their
// /proc/slabinfo growth, largest first. Asked of the kernel because it varies:
// kmalloc-1k, skbuff_small_head (6.3+, when the buffer fits its object size),
// kmalloc-cg-1k for accounted buffers (5.14+; before, accounted objects share
// kmalloc-1k), or the name of a cache it was merged with.
// kind: "udp" (unread UDP socket), "unix" (unread unix datagram socketpair),
// "packet" (unread AF_PACKET capture on lo of datagrams to a closed port).
inline std::vector<std::pair<std::string, std::int64_t>> leak_data_caches(const std::string& kind, long count = 10000) {
  static std::map<std::string, std::vector<std::pair<std::string, std::int64_t>>> known;
  auto it = known.find(kind);
  if (it != known.end()) return it->second;
  settle_slabinfo();
  auto before = slabtrace::procfs::read_slabinfo();
  decltype(before) after;
  {
    TestCgroup cg("probe-" + kind);
    if (kind == "udp") {
      UdpHolder holder(cg);
      udp_send(cg, holder.port, count);
      wait_udp_queue_settled(holder.port);
      after = slabtrace::procfs::read_slabinfo();
      holder.exit();
    } else {
      std::vector<std::string> argv{workload_bin(), kind == "unix" ? "unix-leak" : "packet-hold", "--cgroup", cg.dir()};
      if (kind == "unix") argv.insert(argv.end(), {"--count", std::to_string(count)});
      Child leaker(argv);
      REQUIRE(leaker.read_line(60));
      if (kind == "packet") {
        udp_send(cg, 9, count);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
      after = slabtrace::procfs::read_slabinfo();
      leaker.close_stdin();
      leaker.finish(60);
    }
  }
  // Only caches skb data can live in: whatever else the machine does at the
  // same time (file I/O, builds) moves other caches too.
  auto data_cache = [](const std::string& name) { return name.rfind("kmalloc-", 0) == 0 || name == "skbuff_small_head"; };
  std::vector<std::pair<std::string, std::int64_t>> grew;
  for (const auto& a : after) {
    if (!data_cache(a.name)) continue;
    const auto* b = slabtrace::procfs::find_cache(before, a.name);
    std::int64_t delta = std::int64_t(a.active_objs) - std::int64_t(b ? b->active_objs : 0);
    if (delta >= count * 4 / 10) grew.emplace_back(a.name, delta);
  }
  std::sort(grew.begin(), grew.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
  std::string said;
  for (const auto& [name, delta] : grew) said += " " + name + " +" + std::to_string(delta);
  INFO("a " << kind << " leak of " << count << " messages grew:" << said);
  REQUIRE(!grew.empty());
  REQUIRE(grew[0].second >= count * 9 / 10);
  std::printf("kernel: a %s leak's data buffers land in%s\n", kind.c_str(), said.c_str());
  return known[kind] = grew;
}
inline std::string leak_data_cache(const std::string& kind) { return leak_data_caches(kind)[0].first; }

// Waits until /proc/slabinfo counts at most `at_most` active objects in
// `cache`: frees of a closed socket's queue come after an RCU grace period,
// and per-CPU caches hold freed objects until they are flushed.
inline bool wait_slab_at_most(const std::string& cache, std::uint64_t at_most, double timeout_s = 60) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    std::ofstream(std::string("/sys/kernel/slab/") + cache + "/shrink") << "1\n";
    auto info = slabtrace::procfs::read_slabinfo();
    const auto* c = slabtrace::procfs::find_cache(info, cache);
    if (!c || c->active_objs <= at_most) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}
inline std::uint64_t slab_active(const std::string& cache) {
  auto info = slabtrace::procfs::read_slabinfo();
  const auto* c = slabtrace::procfs::find_cache(info, cache);
  return c ? c->active_objs : 0;
}

inline const nlohmann::json* find_by(const nlohmann::json& arr, const std::string& key, const nlohmann::json& value) {
  for (const auto& item : arr)
    if (item.contains(key) && item[key] == value) return &item;
  return nullptr;
}

}  // namespace roottest
