#pragma once
// serve's watch-before-trace mode. On a healthy node serve reads only what the
// kernel counts anyway (/proc/slabinfo, per-cgroup memory.stat) and attaches
// the tracer when a cache or a cgroup grows past a threshold within a window;
// it detaches when growth over the window falls below half the threshold
// (hysteresis), so a leak that stops leaves the node untraced again.
//
// GrowthDetector and WatchMachine are pure (readings in, decisions out) and
// unit-tested; read_node() and render_watch() are the I/O and the exposition.
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "slabtrace/procfs.hpp"
#include "slabtrace/slab_aliases.hpp"

namespace slabtrace::watch {

enum class Kind { Cache, Cgroup };
std::string to_string(Kind kind);

// One reading of the node's own counters, in bytes.
struct Reading {
  double t_s = 0;                                  // monotonic seconds
  std::map<std::string, std::uint64_t> caches;     // slabinfo name -> active objects x object size
  std::map<std::string, std::uint64_t> cgroups;    // cgroup path -> slab_unreclaimable + sock
  // Caches whose objects the kernel reclaims under pressure (dentries, inodes):
  // exported, never a reason to trace.
  std::set<std::string> reclaimable;
};

struct Growth {
  Kind kind = Kind::Cache;
  std::string name;
  std::uint64_t bytes = 0;   // now
  std::uint64_t grown = 0;   // now minus the lowest reading within the window
};

// Keeps the readings of the last window and says what grew over it.
class GrowthDetector {
 public:
  explicit GrowthDetector(double window_s) : window_s_(window_s) {}
  void add(Reading reading);
  // Caches (non-reclaimable) and cgroups (not the root) that grew by at least
  // `bytes` within the window, largest growth first.
  std::vector<Growth> grown_by(std::uint64_t bytes) const;
  // Growth of every cache and cgroup of the latest reading (for the metrics).
  std::vector<Growth> all() const;
  const Reading* latest() const { return readings_.empty() ? nullptr : &readings_.back(); }
  double window_s() const { return window_s_; }

 private:
  std::uint64_t grown(Kind kind, const std::string& name, std::uint64_t now) const;
  double window_s_;
  std::deque<Reading> readings_;
};

enum class State { Watching, Tracing };
std::string to_string(State state);

struct WatchOptions {
  std::uint64_t threshold_bytes = 32ull << 20;  // --watch-threshold (MiB)
  double window_s = 300;                         // --watch-window
  bool always_trace = false;                     // --trace always
  double retry_s = 60;                           // after an attach failed
};

// What serve should do after a reading.
struct Decision {
  enum class Action { None, Attach, Retarget, Detach } action = Action::None;
  // Caches to trace (empty: all), when attaching or retargeting.
  std::vector<std::string> caches;
};

// The states and the reasons for them. Times are monotonic seconds; the
// caller turns them into wall-clock time for the metrics.
class WatchMachine {
 public:
  WatchMachine(WatchOptions options, slab::CacheAliases aliases);

  Decision step(const Reading& reading);
  // serve reports whether the attach it was told to do worked.
  void attached(double t_s);
  void attach_failed(double t_s, const std::string& error);

  State state() const { return state_; }
  double since_s() const { return since_s_; }
  const std::string& reason() const { return reason_; }
  const std::vector<std::string>& traced_caches() const { return traced_caches_; }
  std::uint64_t transitions_to_tracing() const { return to_tracing_; }
  const GrowthDetector& detector() const { return detector_; }
  const WatchOptions& options() const { return options_; }

  // The caches to trace for these growths: only the growing ones where that
  // is safe and cheaper; all (empty) when a cgroup grew (its growth may be in
  // any cache) or when an sk_buff cache did (a head is ended by its data
  // buffer's free, so the data caches must be traced with it).
  std::vector<std::string> caches_to_trace(const std::vector<Growth>& growing) const;

 private:
  std::string describe(const std::vector<Growth>& growing) const;

  WatchOptions options_;
  slab::CacheAliases aliases_;
  GrowthDetector detector_;
  State state_ = State::Watching;
  double since_s_ = 0;
  std::string reason_ = "starting";
  std::vector<std::string> traced_caches_;  // empty: all
  std::vector<std::string> pending_caches_;
  std::string pending_reason_;
  std::optional<double> retry_after_s_;
  std::uint64_t to_tracing_ = 0;
};

// Where read_node() reads from; tests point it at fixture trees.
struct NodeSources {
  std::string slabinfo = "/proc/slabinfo";
  std::string sys_slab = "/sys/kernel/slab";
  std::optional<std::string> cgroup2_mount;  // none: no per-cgroup figures
  int cgroup_depth = 3;                      // kubepods.slice/<qos>/<pod>
};

// Reads the node's counters. Keeps which caches are reclaimable between calls
// (/sys/kernel/slab/NAME/reclaim_account is read once per cache).
class NodeReader {
 public:
  explicit NodeReader(NodeSources sources);
  Reading read(double t_s);
  // True when the cgroup2 hierarchy has the memory controller (per-cgroup
  // memory.stat files exist below the root).
  bool cgroup_memory() const { return cgroup_memory_; }

 private:
  bool is_reclaimable(const std::string& cache);
  void read_cgroups(const std::string& dir, const std::string& rel, int depth, Reading& out) const;

  NodeSources sources_;
  bool cgroup_memory_ = false;
  std::map<std::string, bool> reclaimable_;
};

// The watch families of the exposition: state, reason, thresholds, and the
// node's slab caches and cgroups with their growth over the window.
struct WatchPage {
  std::size_t top_caches = 30;   // by bytes; growing caches always have a series
  std::size_t top_cgroups = 20;
  double since_unix_s = 0;
};
std::string render_watch(const WatchMachine& machine, const WatchPage& page);

}  // namespace slabtrace::watch
