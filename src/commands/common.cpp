#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "slabtrace/commands.hpp"
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

SessionOptions session_options(const CommonOptions& c, std::size_t top) {
  SessionOptions o;
  o.tracer.attach_mode = bpf::parse_attach_mode(c.attach_mode);
  if (c.sample == 0 || (c.sample & (c.sample - 1)) != 0)
    throw UserError("--sample must be a power of two (1, 2, 4, ... 65536): address-hash sampling halves the set per step");
  std::uint32_t shift = 0;
  while ((1u << shift) < c.sample) ++shift;
  if (shift > 16) throw UserError("--sample above 65536 leaves too few objects to estimate from");
  o.tracer.sample_shift = shift;
  o.tracer.capture_stacks = !c.no_stacks;
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
