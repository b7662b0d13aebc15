#pragma once
// Helpers for tests that load the real BPF programs against real kernel
// activity: child processes with pipes, cgroups the test creates (and removes),
// and running slabtrace itself.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
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

// A child process with its stdin, stdout and stderr on pipes.
class Child {
 public:
  explicit Child(std::vector<std::string> argv) {
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
      execv(args[0], args.data());
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
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  pid_t pid_ = -1;
  bool exited_ = false;
  int stdin_ = -1, stdout_ = -1, stderr_ = -1;
  std::string out_buf_, err_buf_, stderr_seen_;
};

inline std::string cgroup2_mount() {
  std::ifstream in("/proc/self/mountinfo");
  auto mount = slabtrace::procfs::find_cgroup2_mount(slabtrace::procfs::parse_mountinfo(in));
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
  ~TestCgroup() {
    // Members must have exited; a few retries cover the kernel's lazy teardown.
    for (int i = 0; i < 50 && rmdir(abs_.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string& path() const { return rel_; }  // relative to the mount, as slabtrace reports it
  const std::string& dir() const { return abs_; }

 private:
  std::string rel_, abs_;
};

// slabtrace started in the background; returns once its programs are attached.
inline std::unique_ptr<Child> start_slabtrace(std::vector<std::string> args) {
  args.insert(args.begin(), slabtrace_bin());
  auto child = std::make_unique<Child>(args);
  bool ready = child->wait_stderr_for("tracing", 60);
  INFO(child->err());
  REQUIRE(ready);
  return child;
}

inline nlohmann::json finish_json(Child& child) {
  int rc = child.finish();
  INFO("stderr: " << child.err());
  REQUIRE(rc == 0);
  return nlohmann::json::parse(child.out());
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
  REQUIRE(sender.finish(60) == 0);
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

inline const nlohmann::json* find_by(const nlohmann::json& arr, const std::string& key, const nlohmann::json& value) {
  for (const auto& item : arr)
    if (item.contains(key) && item[key] == value) return &item;
  return nullptr;
}

}  // namespace roottest
