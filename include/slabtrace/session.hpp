#pragma once
// A tracing session: the tracer plus everything needed to name what it sees
// (kernel symbols, cgroup paths, merged-cache aliases, /proc/slabinfo at start).
// Commands build one, wait, and ask it for snapshots or the final report.
#include <chrono>
#include <map>
#include <cstdint>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "slabtrace/aggregate.hpp"
#include "slabtrace/census.hpp"
#include "slabtrace/cgroups.hpp"
#include "slabtrace/k8s_names.hpp"
#include "slabtrace/model.hpp"
#include "slabtrace/procfs.hpp"
#include "slabtrace/slab_aliases.hpp"
#include "slabtrace/symbols.hpp"
#include "slabtrace/tracer.hpp"

namespace slabtrace {

struct SessionOptions {
  bpf::TracerOptions tracer;
  std::vector<std::string> caches;  // --cache (repeatable); empty = all
  std::string cgroup_filter;        // --cgroup PATH: that subtree only
  double min_age_s = 0;             // --min-age: only objects at least this old
  std::size_t top = 10;             // stacks in the report
  bool measure_cost = true;         // kernel bpf_stats on a 10% duty cycle
  k8s::LogDirs kubelet_logs;        // pod and container names
};

class CostSampler;

class Session {
 public:
  explicit Session(SessionOptions options);
  ~Session();

  model::Snapshot snapshot();
  // Keeps the bucket counters and the kernel's slab counts of this moment for
  // the report's trends (cheap: no walk over the live set).
  void mark_interval();
  // snapshot() for commands that run for days (serve, stream, top): the same
  // one read of the tracer's buckets first gives back those of cgroups that
  // are gone, with nothing outstanding, for new (cache, cgroup) pairs. A
  // bucket is retired when it was so on two calls in a row.
  model::Snapshot snapshot_recycling();
  std::uint64_t retired_buckets() const { return retired_total_; }
  // Buckets in use at the last snapshot (before filters: what fills the table).
  std::size_t buckets_in_use() const { return buckets_in_use_; }
  // Reads the whole live set once; call at the end of a recording.
  model::Report report();

  double elapsed_s() const;
  std::uint64_t scale() const { return std::uint64_t(1) << options_.tracer.sample_shift; }
  // Tracked objects each stack sample stands for (1 when every object has one).
  std::uint64_t stack_scale() const {
    auto shift = options_.tracer.stack_shift;
    return shift == ST_STACK_NONE ? 1 : std::uint64_t(1) << shift;
  }
  std::string cgroup_path(std::uint64_t cgroup_id);
  bool cgroup_selected(std::uint64_t cgroup_id);
  // Pod, namespace and container of a cgroup path, where the node's kubelet
  // logs name them (empty fields otherwise).
  k8s::Workload workload_of(const std::string& cgroup_path);
  const SessionOptions& options() const { return options_; }
  bpf::Tracer& tracer() { return *tracer_; }
  const symbols::KernelSymbols& symbols() const { return symbols_; }
  // The socket census now (every namespace), owners named the session's way,
  // with exact skb counts where the BPF socket iterators loaded.
  census::Census take_census();
  // Those iterators for another census (serve's while it traces); empty
  // where they did not load. Valid while the session lives.
  sockets::SkbCounter skb_counter() const;
  // The one taken before the tracer attached: what predates the run.
  const census::Census& census_at_start() const { return census_start_; }

 private:
  class NodeView;
  void prime_skb_head_cache();
  bool cache_selected(const std::string& name) const;
  model::Snapshot snapshot_of(const std::vector<bpf::BucketSnapshot>& buckets);
  // Retires the buckets of `buckets` that may be (see snapshot_recycling);
  // returns their indexes.
  std::vector<std::uint32_t> recycle(const std::vector<bpf::BucketSnapshot>& buckets);
  std::vector<std::string> symbolize(const std::vector<std::uint64_t>& addrs, bool with_offsets) const;

  SessionOptions options_;
  symbols::KernelSymbols symbols_;
  std::optional<cgroups::CgroupResolver> cgroups_;
  slab::CacheAliases aliases_;
  procfs::Slabinfo slabinfo_start_;
  std::vector<model::IntervalPoint> intervals_;
  std::map<std::uint64_t, model::CgroupMemory> memory_start_;  // memory.stat where cgroup v2 has it
  std::unique_ptr<bpf::Tracer> tracer_;
  std::chrono::steady_clock::time_point started_;
  std::unordered_map<std::uint64_t, std::string> path_cache_;
  std::set<std::pair<std::uint32_t, std::uint64_t>> dead_buckets_;  // (index, cgroup) dead on the last call
  std::uint64_t retired_total_ = 0;
  std::size_t buckets_in_use_ = 0;
  k8s::PodNames pod_names_;
  census::OwnerResolver owners_;
  std::unique_ptr<census::SkbIterators> skb_iterators_;
  census::Census census_start_;
  std::unique_ptr<CostSampler> cost_sampler_;  // declared last: stops before the tracer goes
};

}  // namespace slabtrace
