#pragma once
// `slabtrace doctor`: the by-hand diagnosis of a node that runs out of memory
// (memory PSI, the /proc/meminfo breakdown, the largest slab caches and the
// sk_buff leak signature, swap activity, load against CPUs) in one run, without
// root or BPF. Each red flag carries the figure that raised it and the command
// to run next.
//
// The CLI builds DoctorInputs, calls run_doctor, prints with write_doctor_text or
// doctor_json, and exits with exit_code. Unreadable required files throw
// UserError, malformed ones ParseError.
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "slabtrace/census.hpp"
#include "slabtrace/nodemem.hpp"
#include "slabtrace/procfs.hpp"

namespace slabtrace::doctor {

// Where to read each file. /proc/pressure/memory and /proc/slabinfo may be
// missing or unreadable (kernel without PSI, not root): the doctor then says it
// skipped that check instead of failing.
struct DoctorInputs {
  std::string meminfo = "/proc/meminfo";
  std::string pressure = "/proc/pressure/memory";
  std::string vmstat = "/proc/vmstat";
  std::string loadavg = "/proc/loadavg";
  std::string slabinfo = "/proc/slabinfo";
  std::string cpus_online = "/sys/devices/system/cpu/online";
  // vmstat is read twice this far apart to see whether the node swaps right now.
  // Zero skips the measurement (tests, or a quick look).
  std::chrono::milliseconds swap_window{1000};
  std::size_t top_caches = 10;
  // The socket census (who holds queued sk_buffs) reads processes under this
  // /proc; empty skips it (fixture directories have no processes).
  std::string proc_root = "/proc";
  std::size_t top_sockets = 5;

  // Every path under another root: "/host" for a debug pod that mounts the
  // node's / there, or a fixture directory laid out as proc/... and sys/...
  static DoctorInputs under(const std::string& root);
};

// Swap traffic since boot and, when measured, during the window.
struct SwapActivity {
  node::SwapCounters since_boot;
  double window_s = 0;  // 0: not measured
  node::SwapCounters during_window;

  bool measured() const { return window_s > 0; }
  double pages_in_per_s() const;
  double pages_out_per_s() const;
};

// Everything the doctor reads, parsed. diagnose() judges it without I/O, so tests
// can build one by hand.
struct NodeSnapshot {
  node::Meminfo meminfo;
  std::optional<node::Pressure> memory_pressure;
  std::optional<procfs::Slabinfo> slabinfo;
  SwapActivity swap;
  node::LoadAverage load;
  unsigned cpus = 1;
  std::optional<census::Census> sockets;  // absent when not taken
  // Checks that could not run, and why
  // ("slab caches: cannot open /proc/slabinfo: Permission denied").
  std::vector<std::string> skipped;
};
NodeSnapshot read_node(const DoctorInputs& inputs);

// The values are the exit codes of `slabtrace doctor`.
enum class Severity { healthy = 0, warning = 1, critical = 2 };
const char* to_string(Severity severity);

struct RedFlag {
  // Stable id for scripts: skb_leak_signature, socket_queues, sunreclaim, memory_pressure_full,
  // memory_pressure_some, mem_available, swap_activity, swap_used, load, overcommit.
  std::string check;
  Severity severity = Severity::warning;
  std::string title;   // what is wrong, in a few words
  std::string figure;  // the number that raised it, and the limit it crossed
  std::string next;    // the command to run next
};

// The /proc/meminfo lines an SRE reads, in bytes.
struct MemoryBreakdown {
  std::uint64_t total = 0;         // MemTotal
  std::uint64_t free = 0;          // MemFree
  std::uint64_t available = 0;     // MemAvailable
  std::uint64_t anon = 0;          // AnonPages: what the containers use
  std::uint64_t page_cache = 0;    // Buffers + Cached
  std::uint64_t sreclaimable = 0;  // slab the kernel can shrink
  std::uint64_t sunreclaim = 0;    // slab only its owner can free
  std::uint64_t kernel_stack = 0;
  std::uint64_t page_tables = 0;
  std::uint64_t swap_total = 0;
  std::uint64_t swap_free = 0;
  std::uint64_t committed_as = 0;  // memory promised to all processes
  std::uint64_t commit_limit = 0;

  std::uint64_t swap_used() const { return swap_total - swap_free; }
};
// Throws ParseError when MemTotal or MemAvailable is missing.
MemoryBreakdown memory_breakdown(const node::Meminfo& meminfo);

// A slab cache by the memory its slabs hold (num_objs * object_size).
struct CacheUsage {
  std::string name;
  std::uint64_t active_objects = 0;
  std::uint32_t object_size = 0;
  std::uint64_t bytes = 0;
};

// One sk_buff = a head in skbuff_head_cache + a data buffer in kmalloc-1k (or
// kmalloc-cg-1k): packets that nobody frees make the two grow one for one.
struct SkbPair {
  std::uint64_t heads = 0;
  std::string data_cache;  // "kmalloc-1k" or "kmalloc-cg-1k"
  std::uint64_t data_buffers = 0;
  std::uint64_t bytes = 0;  // memory of both caches together
  bool leak_signature = false;
};

struct DoctorReport {
  Severity verdict = Severity::healthy;
  std::vector<RedFlag> flags;  // critical first, the likeliest cause first within a severity
  MemoryBreakdown memory;
  std::optional<node::Pressure> memory_pressure;
  std::vector<CacheUsage> top_caches;  // empty when /proc/slabinfo was not readable
  std::optional<SkbPair> skb;          // when slabinfo lists skbuff_head_cache and a 1k kmalloc cache
  // The socket census: the largest queues (top_sockets of them) and the sum.
  std::optional<census::Census> sockets;
  std::size_t sockets_queued = 0;  // sockets holding anything, before the cut to top_sockets
  SwapActivity swap;
  node::LoadAverage load;
  unsigned cpus = 1;
  std::vector<std::string> skipped;
};

DoctorReport diagnose(const NodeSnapshot& node, std::size_t top_caches = 10, std::size_t top_sockets = 5);
DoctorReport run_doctor(const DoctorInputs& inputs);

// Verdict line first, then the red flags with their next commands, then the
// figures section by section.
void write_doctor_text(const DoctorReport& report, std::ostream& out);
// Schema "slabtrace.doctor/v1"; byte counts in bytes, percentages as 0-100.
nlohmann::json doctor_json(const DoctorReport& report);
// 0 healthy, 1 warning, 2 critical.
int exit_code(const DoctorReport& report);

}  // namespace slabtrace::doctor
