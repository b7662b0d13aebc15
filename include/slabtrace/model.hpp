#pragma once
// The model's types and arithmetic: what the BPF maps say, turned into caches,
// cgroups, stacks and sk_buff holders with names a person recognises (the
// Report; aggregate.hpp builds it). No I/O here, so every piece can be tested
// with made-up snapshots.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "slabtrace/bpf_shared.h"
#include "slabtrace/census.hpp"
#include "slabtrace/cgroups.hpp"
#include "slabtrace/k8s_names.hpp"
#include "slabtrace/procfs.hpp"

namespace slabtrace::model {

// ---- cache names ------------------------------------------------------------

// "kmalloc-1k", "kmalloc-cg-192", "kmalloc-rcl-8k", "dma-kmalloc-64".
std::string kmalloc_name(std::uint32_t kind, std::uint32_t size);
// The cache a bucket counts, as the kernel names it.
std::string cache_name(std::uint64_t cache_key, const char* bpf_name);
// For --cache filters on kmalloc caches: "kmalloc-cg-1k" -> its bucket key.
std::optional<std::uint64_t> kmalloc_key(const std::string& name);
bool is_skb_head_cache(const std::string& name);

// ---- counters -----------------------------------------------------------------

struct Counts {
  std::uint64_t allocs = 0;
  std::uint64_t alloc_bytes = 0;
  std::uint64_t tracked = 0;
  std::uint64_t tracked_bytes = 0;
  std::array<std::uint64_t, ST_END_REASONS> ended{};
  std::uint64_t ended_bytes = 0;

  std::uint64_t ended_total() const;
  std::uint64_t outstanding() const;  // tracked - ended, never below zero
  std::uint64_t outstanding_bytes() const;
  Counts& operator+=(const Counts& other);
  // Every object of a bucket has its size: the BPF side counts ended objects
  // only, and ended bytes are those times the bucket's object size. With
  // --sample N the BPF side counts allocations of sampled addresses only:
  // alloc_scale (N) turns them into estimates of all.
  static Counts from(const st_counters& c, std::uint32_t object_size, std::uint64_t alloc_scale = 1);
};

// Where an allocation is charged: a cgroup, or interrupt context.
std::string cgroup_label(std::uint64_t cgroup_id, const std::optional<std::string>& path);
bool is_interrupt_cgroup(std::uint64_t cgroup_id);
// Does a cgroup path fall under a --cgroup filter (the path itself or below)?
bool cgroup_matches(const std::string& path, const std::string& filter);

// One (cache, cgroup) bucket with names resolved.
struct Bucket {
  std::uint32_t index = 0;
  std::string cache;
  std::uint64_t cgroup_id = 0;
  std::uint32_t object_size = 0;
  bool ignored = false;
  Counts counts;
};

// Counters at one moment, for rates between two of them.
struct Snapshot {
  double elapsed_s = 0;  // since the tracer started
  std::vector<Bucket> buckets;
};

// Per-cgroup (and per cache within it) outstanding and growth between two
// snapshots: the stream/top/serve view. Scaled by the sample rate.
struct CacheRate {
  std::uint64_t outstanding = 0;
  std::uint64_t outstanding_bytes = 0;
  std::uint64_t allocs = 0;  // in the interval
  double growth_per_s = 0;
  double allocs_per_s = 0;
};
struct GroupRate {
  std::string key;  // cache name, or cgroup id as text
  std::uint64_t cgroup_id = 0;
  CacheRate total;
  std::map<std::string, CacheRate> by_cache;
  bool active = false;  // anything allocated or ended in the interval
};
struct Rates {
  double interval_s = 0;
  std::vector<GroupRate> cgroups;
  std::vector<GroupRate> caches;
};
Rates compute_rates(const Snapshot* before, const Snapshot& after, std::uint64_t scale);

// Half-width of the 95 % interval of a count estimated from `sampled` objects
// kept at 1 in `rate`: each object is in the sample with probability 1/rate,
// independently (address hashing), so the estimate sampled * rate has
// variance sampled * rate * (rate - 1). 0 when nothing was sampled away.
std::uint64_t error95(std::uint64_t sampled, std::uint64_t rate);

// ---- the report of a recording ---------------------------------------------

struct SlabinfoDelta {
  std::uint64_t active_start = 0;
  std::uint64_t active_end = 0;
  std::int64_t delta = 0;
};

struct CacheReport {
  std::string name;
  std::string slabinfo_name;
  std::vector<std::string> aliases;  // other caches merged into the same slab cache
  std::uint32_t object_size = 0;
  std::uint64_t allocs = 0;
  std::uint64_t frees = 0;
  std::uint64_t outstanding = 0;
  std::uint64_t outstanding_bytes = 0;
  std::uint64_t outstanding_error = 0;  // 95 % half-width when sampled, else 0
  std::array<std::uint64_t, ST_END_REASONS> ended_by{};  // scaled
  std::optional<SlabinfoDelta> slabinfo;
  bool reclaimable = false;  // SLAB_RECLAIM_ACCOUNT: freed by the kernel under pressure
};

struct CgroupReport {
  std::uint64_t id = 0;
  std::string path;  // relative to the cgroup2 mount, "[softirq]" for interrupts
  cgroups::ContainerInfo container;
  k8s::Workload workload;  // pod, namespace, container names from the kubelet's logs
  std::uint64_t outstanding = 0;
  std::uint64_t outstanding_bytes = 0;
  std::uint64_t outstanding_error = 0;  // 95 % half-width when sampled, else 0
  std::map<std::string, std::uint64_t> by_cache;
  // The memory controller's own slab count for this cgroup (memory.stat),
  // bytes at start and end, where the node has one.
  std::optional<std::int64_t> memory_slab_unreclaimable_delta;
};

struct StackReport {
  std::string cache;
  std::uint64_t cgroup_id = 0;
  std::string cgroup_path;
  std::int32_t stack_id = -1;
  std::uint64_t outstanding = 0;
  std::uint64_t outstanding_bytes = 0;
  std::uint64_t outstanding_error = 0;  // 95 % half-width (object and stack sampling), else 0
  double oldest_age_s = 0;
  std::vector<std::string> frames;               // innermost first, no offsets
  std::vector<std::string> frames_with_offsets;  // "udp_sendmsg+0x2a5"
  // "skb_head": sk_buff data buffers, whose stack is the one captured at
  // their head's allocation, shown from __alloc_skb out; else empty.
  std::string stack_of;
};

struct SkbHolder {
  std::uint64_t sk = 0;
  std::uint64_t socket_inode = 0;
  std::uint64_t netns = 0;
  std::string family;
  std::string protocol;
  std::uint64_t socket_cgroup_id = 0;  // cgroup that created the socket
  std::optional<std::uint32_t> pid;
  std::string comm;
  std::uint64_t cgroup_id = 0;  // of the owning process
  std::string cgroup_path;
  k8s::Workload workload;
  // What the tracer saw queued on it (allocated while it ran, still live).
  std::uint64_t queued_skbs = 0;
  std::uint64_t queued_bytes = 0;
  // The socket census at the end (the kernel's own accounting, whoever
  // allocated the skbs): receive queue + backlog + write queue.
  std::optional<std::uint64_t> kernel_queued_skbs;
  bool kernel_queued_skbs_estimated = false;
  std::optional<std::uint64_t> kernel_queued_bytes;
  std::uint64_t receive_queue_bytes = 0;
  std::uint64_t backlog_bytes = 0;
  std::uint64_t write_queue_bytes = 0;
  // Queued before the census at the start of the run and still there
  // (census::queued_before_start); absent when no start census was taken.
  std::optional<std::uint64_t> queued_before_start_bytes;
  std::vector<census::Owner> owners;  // every process holding it; pid/comm/cgroup above name the blamed one
  double oldest_queued_age_s = 0;     // the oldest tracked skb head on its queue
};

// The census of every socket queue at the end of the run, in sum.
struct SocketCensusSummary {
  std::size_t sockets_seen = 0;
  std::size_t sockets_queued = 0;  // holding anything
  std::size_t namespaces = 0;
  std::uint64_t home_netns = 0;  // slabtrace's own: descriptions name only the others
  std::uint64_t queued_bytes = 0;
  std::uint64_t queued_before_start_bytes = 0;  // over the listed holders
  double took_s = 0;
  std::vector<std::string> warnings;
};

struct SkbAllocator {
  std::uint64_t cgroup_id = 0;
  std::string cgroup_path;
  std::string via;  // the protocol function on the stack: "udp_sendmsg"
  std::uint64_t heads = 0;
};

struct SkbDataCache {
  std::string cache;                 // "kmalloc-1k"
  std::uint64_t data_buffers = 0;    // outstanding skb data buffers in it
  std::uint64_t with_live_head = 0;  // of which their head is outstanding too
};

// Drops of one reason meant for (or sent by) one socket.
struct SkbDrop {
  std::string reason;
  std::uint64_t count = 0;
  std::uint64_t socket_inode = 0;  // 0: no socket known
  std::uint64_t cgroup_id = 0;
  std::string cgroup_path;
  std::optional<std::uint32_t> pid;
  std::string comm;
};

// skb heads adopted on one device's receive path (bpf/napi.bpf.h).
struct SkbAdoption {
  std::string device;  // its name, "ifindex N" if unnamed
  std::uint32_t ifindex = 0;
  std::uint64_t netns = 0;
  std::uint64_t heads = 0;  // adopted during the run (scaled)
};

struct SkbReport {
  std::uint64_t outstanding_heads = 0;
  // Of outstanding_heads, those adopted when first seen on a receive path
  // rather than seen allocated (NAPI skb cache); counted in the cache table too.
  std::uint64_t adopted_heads = 0;
  std::vector<SkbAdoption> adopted_by_device;
  std::uint64_t outstanding_data = 0;
  std::uint64_t outstanding_bytes = 0;  // heads + data
  std::vector<SkbHolder> holders;
  std::optional<SocketCensusSummary> census;
  std::vector<SkbAllocator> allocators;
  std::vector<SkbDataCache> data_caches;
  std::vector<std::pair<std::string, std::uint64_t>> drops;  // reason, count
  std::vector<SkbDrop> drops_by_socket;                       // largest first
};

struct Lost {
  std::uint64_t map_full = 0;
  std::uint64_t stack_errors = 0;
  std::uint64_t missed_frees = 0;
  std::uint64_t buckets_full = 0;
  std::uint64_t busy = 0;
  std::uint64_t socks_full = 0;
  std::uint64_t context_unknown = 0;  // allocations whose interrupt context could not be read: blamed on the task
  std::uint64_t not_adopted = 0;      // NAPI-cache heads seen before any head allocation named their cache

  static Lost from(const st_stats& stats);
  // Every counter with the name the JSON report and the metrics give it.
  std::vector<std::pair<std::string, std::uint64_t>> named() const;
};

struct ProgramCost {
  std::string name;
  std::uint64_t events = 0;
  double ns_per_event = 0;
};

// One (cache, cgroup) bucket over the run: what it had outstanding at each
// interval, how much of it stayed alive, and the kernel's count of the cache.
struct Trend {
  std::string cache;
  std::string slabinfo_name;
  std::uint64_t cgroup_id = 0;
  std::string cgroup_path;
  std::uint32_t object_size = 0;
  std::vector<std::pair<double, std::uint64_t>> outstanding;  // (elapsed s, objects, scaled), from (0, 0)
  std::vector<std::pair<double, std::uint64_t>> kernel;       // (elapsed s, slabinfo active), start to end
  // Of the objects outstanding in the middle of the rise, the share still
  // live at the end (leaked objects age; turnover replaces them); < 0 unknown.
  double retained = -1;
  double mid_s = 0;  // when that middle was
  double oldest_age_s = 0;
  bool skb_heads = false;  // the bucket's live objects are sk_buff heads
  bool skb_data = false;   // ... or sk_buff data buffers
  std::string via;         // the protocol function of its sk_buff heads' stacks
  bool reclaimable = false;
};

enum class FindingKind { skb_leak, leak, too_short, drop_storm, growth, reclaimable_growth, turnover, trust, self_cost };
const char* to_string(FindingKind kind);

// One thing the report says, in the structured form scripts branch on; the
// prose verdicts are the texts of these.
struct Finding {
  FindingKind kind = FindingKind::trust;
  std::string cache;   // slabinfo name; empty when about no one cache
  std::string cgroup;  // path; empty when about no one cgroup
  std::uint64_t cgroup_id = 0;
  std::uint64_t objects = 0;
  std::uint64_t bytes = 0;
  double per_s = 0;          // growth rate while it held (0: not growing)
  double held_s = 0;         // how long that rate has held
  double needs_s = 0;        // too_short: the run it would take to tell
  std::string confidence;    // "high", "medium", "low"
  std::string text;
};

// What a run was: it comes in with the run's data (RunSnapshot) and goes out
// unchanged in its report.
struct RunInfo {
  std::string kernel;
  double duration_s = 0;
  std::uint64_t sample_rate = 1;
  std::uint64_t stack_sample_rate = 1;  // 0: no stacks
  std::uint64_t stack_budget = 0;       // captures per second per CPU at that rate; 0: no limit
  std::string attach_mode;
};

struct Report : RunInfo {
  std::vector<CacheReport> caches;
  std::vector<CgroupReport> cgroups;
  std::vector<StackReport> stacks;
  SkbReport skb;
  Lost lost;
  std::vector<ProgramCost> costs;
  std::uint64_t live_objects = 0;   // entries in the live map at the end (unscaled)
  std::uint64_t alloc_failures = 0;       // allocations the kernel's allocators returned NULL for (unscaled)
  std::uint64_t bpf_allocs_untraced = 0;  // the BPF map allocator's own refills, left out (unscaled)
  std::uint64_t stacks_throttled = 0;  // stacks drawn past the budget, at 1 in 16 of the rate (unscaled)
  std::uint64_t live_capacity = 0;
  std::vector<Trend> trends;          // buckets with something outstanding, largest first
  std::vector<Finding> findings;      // most important first, by bytes within a kind
  std::vector<std::string> verdicts;  // the findings' texts, in the same order
  std::vector<std::string> notes;     // caveats: missing tracepoints, sampling error
};

// ---- sk_buff holders and the socket census (holders.cpp) ---------------------

struct CensusMerge {
  // Sockets the tracer did not see are listed from this size on (smaller
  // ones count in SkbReport::census only), at most max_untraced of them.
  std::uint64_t min_untraced_bytes = 64 * 1024;
  std::size_t max_untraced = 20;
};
// Completes the holders the tracer found with the census at the end (every
// owner, the blamed one, the kernel's counts), adds the sockets holding queues
// it did not see, sorts largest first, and fills skb.census. With `start`,
// queued_before_start_bytes says what predates the run. Holders whose socket
// the census found empty were read since: they leave the list and a note says
// so in `notes`. Pure.
void merge_census(SkbReport& skb, const census::Census& end, const census::Census* start,
                  std::vector<std::string>& notes, const CensusMerge& options = {});
// A holder as a census socket names it (owners resolved, no traced counts).
SkbHolder holder_from(const census::QueuedSocket& socket);
// What names a holder in a line of text (census::describe).
census::SocketLabel label_of(const SkbHolder& holder);
// The bytes by which holders are ranked: the kernel's count when known, else
// what the tracer saw.
std::uint64_t holder_bytes(const SkbHolder& holder);

}  // namespace slabtrace::model
