#pragma once
// Parsers for the node-wide memory files an SRE reads by hand when a node is
// dying: /proc/meminfo, /proc/pressure/memory, /proc/vmstat, /proc/loadavg and
// /sys/devices/system/cpu/online. Each parser takes an std::istream and names
// `source` in its errors ("meminfo line 3: ..."); the read_* helpers open the
// real file and pass its path as the source.
#include <cstdint>
#include <istream>
#include <map>
#include <string>
#include <string_view>

#include "slabtrace/error.hpp"

namespace slabtrace::node {

// /proc/meminfo: name -> bytes for "kB" lines, name -> plain count for lines
// without a unit (HugePages_Total, HugePages_Free, ...).
using Meminfo = std::map<std::string, std::uint64_t, std::less<>>;
Meminfo parse_meminfo(std::istream& in, std::string_view source = "meminfo");
Meminfo read_meminfo(const std::string& path = "/proc/meminfo");
// The value of a field, or 0 when this kernel does not report it.
std::uint64_t field_or_zero(const Meminfo& meminfo, std::string_view name);

// One line of a PSI file: the share of wall time (percent) in which tasks were
// stalled on the resource, over 10 s, 60 s and 300 s, and the total stall time.
struct PressureLine {
  double avg10 = 0;
  double avg60 = 0;
  double avg300 = 0;
  std::uint64_t total_us = 0;
};
// "some": at least one task stalled; "full": every non-idle task stalled at once.
struct Pressure {
  PressureLine some;
  PressureLine full;
};
Pressure parse_pressure(std::istream& in, std::string_view source = "pressure");
Pressure read_pressure(const std::string& path = "/proc/pressure/memory");

// /proc/vmstat: name -> event or page count.
using Vmstat = std::map<std::string, std::uint64_t, std::less<>>;
Vmstat parse_vmstat(std::istream& in, std::string_view source = "vmstat");
Vmstat read_vmstat(const std::string& path = "/proc/vmstat");

// Pages moved to and from swap (vmstat pswpin / pswpout). Kernels built without
// swap have no such lines: both are then 0.
struct SwapCounters {
  std::uint64_t pages_in = 0;
  std::uint64_t pages_out = 0;
};
SwapCounters swap_counters(const Vmstat& vmstat);

// /proc/loadavg: "34.12 33.87 31.40 3/512 12345".
struct LoadAverage {
  double avg1 = 0;
  double avg5 = 0;
  double avg15 = 0;
  std::uint32_t runnable = 0;  // tasks running or ready to run now
  std::uint32_t tasks = 0;     // kernel scheduling entities in total
  std::uint64_t last_pid = 0;
};
LoadAverage parse_loadavg(std::istream& in, std::string_view source = "loadavg");
LoadAverage read_loadavg(const std::string& path = "/proc/loadavg");

// A kernel CPU list ("0-1", "0,2-5,8"), as in /sys/devices/system/cpu/online:
// how many CPUs it names.
unsigned parse_cpu_count(std::istream& in, std::string_view source = "cpu list");
unsigned read_cpu_count(const std::string& path = "/sys/devices/system/cpu/online");

}  // namespace slabtrace::node
