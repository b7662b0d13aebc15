#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "slabtrace/commands.hpp"
#include <fmt/format.h>

#include "slabtrace/error.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>

namespace slabtrace::commands {

namespace {
std::atomic<bool> g_stop{false};
// Written by the handler, whichever thread it runs on, so that wait_for()
// sleeps in poll() until the signal or its deadline instead of waking 20
// times a second to look (serve's main thread on an idle node).
int g_stop_pipe[2] = {-1, -1};
extern "C" void on_stop_signal(int) {
  g_stop.store(true);
  if (g_stop_pipe[1] >= 0) {
    int saved = errno;
    ssize_t ignored = ::write(g_stop_pipe[1], "x", 1);  // full pipe: a wake-up is already pending
    (void)ignored;
    errno = saved;
  }
}
}  // namespace

void install_stop_handlers() {
  if (g_stop_pipe[0] < 0 && ::pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_stop_pipe[0] = g_stop_pipe[1] = -1;
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
  using Clock = std::chrono::steady_clock;
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (!stop_requested()) {
    const auto now = Clock::now();
    if (seconds > 0 && now >= until) return true;
    if (g_stop_pipe[0] < 0) {  // no handlers installed: look now and then
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    // Rounded up, so that the deadline has passed when poll returns on time.
    int timeout_ms = -1;
    if (seconds > 0) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
      timeout_ms = int(std::min<decltype(left)>(left, 60'000));
    }
    pollfd p{g_stop_pipe[0], POLLIN, 0};
    ::poll(&p, 1, timeout_ms);  // EINTR or a wake-up: the loop looks again
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

// --btf must name a file libbpf can read BTF from: raw BTF (magic 0xeB9F, as
// /sys/kernel/btf/vmlinux) or an ELF file (a vmlinux with a .BTF section).
// Whether a 64-bit little-endian ELF file has a section named .BTF (other
// ELF flavours are left to libbpf).
static bool elf_has_btf_section(std::ifstream& in) {
  auto read_at = [&](std::uint64_t offset, void* out, std::size_t n) {
    in.clear();
    in.seekg(std::streamoff(offset));
    in.read(static_cast<char*>(out), std::streamsize(n));
    return std::size_t(in.gcount()) == n;
  };
  unsigned char ident[6] = {};
  if (!read_at(0, ident, sizeof ident) || ident[4] != 2 || ident[5] != 1) return true;  // not ELF64 LE: libbpf decides
  std::uint64_t shoff = 0;
  std::uint16_t shentsize = 0, shnum = 0, shstrndx = 0;
  if (!read_at(0x28, &shoff, 8) || !read_at(0x3a, &shentsize, 2) || !read_at(0x3c, &shnum, 2) || !read_at(0x3e, &shstrndx, 2))
    return false;
  if (shentsize < 0x28 || shstrndx >= shnum) return false;
  std::uint64_t names_offset = 0;
  if (!read_at(shoff + std::uint64_t(shstrndx) * shentsize + 0x18, &names_offset, 8)) return false;
  for (std::uint16_t i = 0; i < shnum; ++i) {
    std::uint32_t name = 0;
    char text[5] = {};
    if (!read_at(shoff + std::uint64_t(i) * shentsize, &name, 4) || !read_at(names_offset + name, text, sizeof text)) continue;
    if (std::string(text, 5) == std::string(".BTF\0", 5)) return true;
  }
  return false;
}

static void check_btf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(fmt::format("--btf {}: cannot open it: {}", path, std::strerror(errno)));
  unsigned char magic[4] = {};
  in.read(reinterpret_cast<char*>(magic), sizeof magic);
  const bool raw_btf = in.gcount() >= 2 && ((magic[0] == 0x9f && magic[1] == 0xeb) || (magic[0] == 0xeb && magic[1] == 0x9f));
  const bool elf = in.gcount() == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
  if (elf && !elf_has_btf_section(in)) {
    throw UserError(fmt::format("--btf {} is an ELF file without a .BTF section: not BTF (a vmlinux built with "
                                "CONFIG_DEBUG_INFO_BTF has one; so does /sys/kernel/btf/vmlinux, raw)",
                                path));
  }
  if (!raw_btf && !elf)
    throw UserError(fmt::format("--btf {} is not BTF: neither raw BTF (magic 0xeB9F, like /sys/kernel/btf/vmlinux) "
                                "nor an ELF vmlinux with a .BTF section",
                                path));
}

SessionOptions session_options(const CommonOptions& c, std::size_t top) {
  if (!c.btf_path.empty()) check_btf_file(c.btf_path);
  SessionOptions o;
  o.tracer.attach_mode = c.attach_mode;
  o.tracer.irq_context = c.irq_context;
  o.tracer.queue_ties = c.queue_ties;
  o.tracer.skb_one_slot = c.skb_slots == 1;
  o.tracer.sample_shift = power_of_two_shift(c.sample, "--sample");
  o.tracer.stack_shift = c.no_stacks ? ST_STACK_NONE : power_of_two_shift(c.stack_sample, "--stack-sample");
  // Per second in the option, per ST_STACK_WINDOW_NS (0.1 s) in the BPF side.
  if (o.tracer.stack_shift != ST_STACK_NONE && o.tracer.stack_shift != ST_STACK_ALL && c.stack_budget)
    o.tracer.stack_budget = std::max<std::uint32_t>(1, std::uint32_t(std::uint64_t(c.stack_budget) * ST_STACK_WINDOW_NS / 1000000000ull));
  o.measure_cost = c.measure_cost;
  o.kubelet_logs = {c.pods_dir, c.containers_dir};
  o.tracer.max_objects = c.max_objects;
  o.tracer.max_buckets = c.max_buckets;
  o.tracer.btf_path = c.btf_path;
  o.tracer.verbose = c.verbose;
  o.caches = c.caches;
  o.cgroup_filter = c.cgroup;
  o.min_age_s = c.min_age_s;
  o.top = top;
  return o;
}

}  // namespace slabtrace::commands
