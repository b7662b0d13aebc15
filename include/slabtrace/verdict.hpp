#pragma once
// What a report says first: findings (structured) and verdicts (their text).
// A cache grew only by what the kernel's own count says; young objects on a
// cache that did not grow are turnover; a leak is objects that keep rising
// across the run's intervals and stay alive while the kernel's count rises
// with them. Pure: built from the Report alone.
#include <string>
#include <vector>

#include "slabtrace/model.hpp"

namespace slabtrace::model {

// Below this much, nothing is called growth, a leak or turnover: a few
// hundred KiB of young objects are in flight on any node.
constexpr std::uint64_t kBytesThatMatter = 1024 * 1024;

// How one (cache, cgroup) bucket behaved over the run.
enum class TrendShape {
  small,            // below kBytesThatMatter
  rising_and_aging, // rose through most intervals; what was outstanding mid-run is still live
  held,             // rose, then stopped; still live
  turnover,         // young: what was outstanding mid-run has been freed and replaced
  partly_aged,      // rose, and some of it aged: lifetimes about as long as the run
  unknown,          // too few intervals to tell
};
struct TrendReading {
  TrendShape shape = TrendShape::unknown;
  std::uint64_t objects = 0;  // outstanding at the end
  std::uint64_t bytes = 0;
  double per_s = 0;            // while it rose
  double held_s = 0;           // how long it rose
  double rose_until_s = 0;     // when it last rose
  std::int64_t kernel_delta = 0;   // slabinfo active, start to end
  bool kernel_rose_with_it = false;
};
TrendReading read_trend(const Trend& t);

std::vector<Finding> find_findings(const Report& report);
// Fills report.findings and report.verdicts (their texts, same order).
void add_verdicts(Report& report);

}  // namespace slabtrace::model
