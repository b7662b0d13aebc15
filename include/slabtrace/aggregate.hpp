#pragma once
// The report of a recording, built from data: what the tracer holds at the end
// of a run (a TraceSource), the counters taken during it, and what the node
// says about names and the kernel's own counts (a KernelView). aggregate() does
// no I/O of its own; tests hand it fakes made from fixtures.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "slabtrace/bpf_shared.h"
#include "slabtrace/census.hpp"
#include "slabtrace/k8s_names.hpp"
#include "slabtrace/model.hpp"
#include "slabtrace/procfs.hpp"
#include "slabtrace/sockets.hpp"
#include "slabtrace/tracer.hpp"

namespace slabtrace::model {

// The tracer's maps, read through the few questions a report asks of them.
class TraceSource {
 public:
  virtual ~TraceSource() = default;
  virtual void for_each_live(const std::function<void(const bpf::LiveObject&)>& fn) const = 0;
  virtual std::optional<bpf::LiveObject> find_live(std::uint64_t addr) const = 0;
  virtual std::vector<std::uint64_t> stack(std::int32_t stack_id) const = 0;  // innermost first
  virtual std::optional<st_sock> socket(std::uint64_t sk) const = 0;
  virtual std::vector<std::pair<std::uint32_t, std::uint64_t>> drops() const = 0;  // reason, count
  virtual std::vector<std::pair<st_drop_key, std::uint64_t>> drops_by_socket() const = 0;
  // skb heads adopted on a receive path, by device (none: an older tracer).
  virtual std::vector<std::pair<st_adopt_key, st_adopt_dev>> adopted() const { return {}; }
  virtual st_stats stats() const = 0;
  virtual std::vector<bpf::ProgramCost> program_costs() const = 0;
  virtual std::uint32_t live_capacity() const = 0;
};

// The node's names and counts, as the report needs them.
class KernelView {
 public:
  virtual ~KernelView() = default;
  virtual std::string cgroup_path(std::uint64_t cgroup_id) = 0;  // "/" for the root, "[softirq]"
  virtual std::optional<std::uint64_t> cgroup_id_of(const std::string& cgroup_path) = 0;
  virtual k8s::Workload workload_of(const std::string& cgroup_path) = 0;
  // The name /proc/slabinfo lists a cache under, and the caches merged with it.
  virtual std::string slabinfo_name(const std::string& cache) = 0;
  virtual std::vector<std::string> aliases_of(const std::string& cache) = 0;
  // SLAB_RECLAIM_ACCOUNT (/sys/kernel/slab/NAME/reclaim_account): the kernel
  // frees these under memory pressure.
  virtual bool reclaimable(const std::string& slabinfo_name) = 0;
  // Symbol names ("udp_sendmsg", or with offsets "udp_sendmsg+0x2a5").
  virtual std::vector<std::string> symbolize(const std::vector<std::uint64_t>& addrs, bool with_offsets) = 0;
  // The socket census at the end of the run (census.hpp): every socket queue
  // on the node, owners resolved; taken once, the first time it is asked for.
  virtual const census::Census& socket_census() = 0;
  // The census taken before the tracer attached (nullptr: none was).
  virtual const census::Census* socket_census_at_start() { return nullptr; }
  // Resolves the processes holding a socket (census owners_by_inode) the same
  // way the census does.
  virtual std::vector<census::Owner> resolve_owners(const std::vector<sockets::Owner>& processes) = 0;
  // SKB_DROP_REASON_* names by value (BTF), without the prefix.
  virtual const std::map<std::uint32_t, std::string>& drop_reasons() = 0;
};

// Per-cgroup slab memory as the kernel's memory controller counts it
// (cgroup v2 memory.stat), where it is available.
struct CgroupMemory {
  std::uint64_t slab_reclaimable = 0;
  std::uint64_t slab_unreclaimable = 0;
  std::uint64_t sock = 0;
};
// Parses memory.stat (pure).
CgroupMemory parse_memory_stat(std::istream& in);

// Counters taken while the run goes on: per bucket what is outstanding
// (unscaled, from the bucket counters: no walk over the live set), and the
// kernel's active count per slabinfo cache.
struct IntervalPoint {
  double elapsed_s = 0;
  std::map<std::uint32_t, std::uint64_t> outstanding;  // bucket index -> objects
  std::map<std::string, std::uint64_t> slab_active;    // slabinfo name -> active objects
};

// Everything about a run that is data rather than a question to ask.
struct RunSnapshot : RunInfo {
  std::vector<std::string> kernel_limits;  // what this kernel could not give, one line each
  double min_age_s = 0;
  std::size_t top = 10;
  std::vector<std::string> cache_filter;  // --cache: slabinfo-only caches are shown only if selected
  Snapshot counters;                      // the buckets at the end, named and filtered
  std::vector<IntervalPoint> intervals;   // during the run, oldest first
  procfs::Slabinfo slabinfo_start;
  std::optional<procfs::Slabinfo> slabinfo_end;  // nullopt: unreadable at the end
  std::string slabinfo_end_error;
  std::map<std::uint64_t, CgroupMemory> memory_start, memory_end;  // by cgroup id
};

Report aggregate(const RunSnapshot& run, const TraceSource& trace, KernelView& kernel);

// A drop reason's name, or "reason N" when the kernel's BTF does not name it.
std::string drop_reason_name(const std::map<std::uint32_t, std::string>& names, std::uint32_t reason);

// Previous snapshot -> rates, for commands that report every interval.
class RateTracker {
 public:
  explicit RateTracker(std::uint64_t scale) : scale_(scale) {}
  // Rates since the last call (since the start on the first), and keeps `now`.
  Rates next(Snapshot now);
  const Snapshot* previous() const { return previous_ ? &*previous_ : nullptr; }

 private:
  std::uint64_t scale_;
  std::optional<Snapshot> previous_;
};

}  // namespace slabtrace::model

namespace slabtrace {

// Trims the frames that belong to tracing itself (BPF, tracepoint glue) from
// the innermost end of a symbolized stack.
std::vector<std::string> trim_tracing_frames(std::vector<std::string> frames);
// A head's stack as its data buffer's: from its __alloc_skb frame out (the
// frames inside are the head cache's allocator, not the data's).
std::vector<std::string> from_skb_alloc(std::vector<std::string> frames);
// The protocol-level function that caused an skb allocation ("udp_sendmsg").
std::string skb_origin(const std::vector<std::string>& frames);
std::string socket_family_name(std::uint16_t family);
std::string socket_protocol_name(std::uint16_t family, std::uint16_t type, std::uint16_t protocol);

}  // namespace slabtrace
