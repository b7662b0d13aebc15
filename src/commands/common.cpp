#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "slabtrace/commands.hpp"
#include <fmt/format.h>

#include "slabtrace/error.hpp"

namespace slabtrace::commands {

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A reader that goes away (stream | head) ends us through EPIPE, not a signal.
  signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() { return g_stop.load(); }

bool wait_for(double seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!stop_requested()) {
    if (seconds > 0 && std::chrono::steady_clock::now() >= until) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

namespace {

// Address-hash sampling halves the set per step, so rates are powers of two.
std::uint32_t power_of_two_shift(std::uint32_t n, const char* option) {
  if (n == 0 || (n & (n - 1)) != 0)
    throw UserError(fmt::format("{} must be a power of two (1, 2, 4, ... 65536): address-hash sampling halves the set per step", option));
  std::uint32_t shift = 0;
  while ((1u << shift) < n) ++shift;
  if (shift > 16) throw UserError(fmt::format("{} above 65536 leaves too few objects to estimate from", option));
  return shift;
}

}  // namespace

SessionOptions session_options(const CommonOptions& c, std::size_t top) {
  SessionOptions o;
  o.tracer.attach_mode = bpf::parse_attach_mode(c.attach_mode);
  o.tracer.irq_context = c.irq_context;
  o.tracer.sample_shift = power_of_two_shift(c.sample, "--sample");
  o.tracer.stack_shift = c.no_stacks ? ST_STACK_NONE : power_of_two_shift(c.stack_sample, "--stack-sample");
  o.measure_cost = c.measure_cost;
  o.kubelet_logs = {c.pods_dir, c.containers_dir};
  o.tracer.max_objects = c.max_objects;
  o.tracer.btf_path = c.btf_path;
  o.tracer.verbose = c.verbose;
  o.caches = c.caches;
  o.cgroup_filter = c.cgroup;
  o.min_age_s = c.min_age_s;
  o.top = top;
  return o;
}

}  // namespace slabtrace::commands
