#pragma once
// The BPF side as user space sees it: open, configure, load and attach the
// programs; read the maps; detach on destruction. Owns the generated skeleton.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "slabtrace/bpf_shared.h"

struct slabtrace_bpf;  // generated skeleton (build/bpf/slabtrace.skel.h)
struct bpf_link;

namespace slabtrace::bpf {

// Throws UserError unless we may load BPF programs: check it before anything
// else, so a user without root hears that first.
void require_privileges();

// How the allocation events are traced: tp_btf (typed arguments), raw_tp
// (untyped: where the verifier refuses tp_btf's void * arguments) or classic
// tracepoints; auto probes the kernel at start-up, in that order.
enum class AttachMode { Auto, TpBtf, RawTp, Tracepoint };
std::string to_string(AttachMode mode);
AttachMode parse_attach_mode(const std::string& text);  // throws UserError

// How allocations in interrupt context are recognised: Programs count
// softirq/irq entries and exits (two program runs per softirq, ~60 ns each);
// PreemptCount reads the CPU's preempt count on every allocation (x86 6.15+:
// one direct load where the kernel has bpf_rdonly_cast, else a probe_read).
// Auto: PreemptCount where this kernel's layout allows it (checked at
// start-up, and by the BPF side on each CPU), else Programs.
enum class IrqContext { Auto, Programs, PreemptCount };
std::string to_string(IrqContext how);
IrqContext parse_irq_context(const std::string& text);  // throws UserError

// How a queued sk_buff is tied to the socket that holds it: Walk runs BPF
// socket iterators over every receive queue when user space asks (before each
// report or refresh; 5.17+, not the legacy object); Events ties each packet as
// it is queued (sock:sk_data_ready, 6.3+, one program run and a table search
// per received packet). Auto: Walk where it loads, else Events.
enum class QueueTies { Auto, Walk, Events };
std::string to_string(QueueTies how);
QueueTies parse_queue_ties(const std::string& text);  // throws UserError

struct AddrRange {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
};

struct TracerOptions {
  AttachMode attach_mode = AttachMode::Auto;
  std::uint32_t sample_shift = 0;        // track 1 in 2^shift addresses
  std::uint32_t stack_shift = 0;         // stacks for 1 in 2^shift tracked objects; ST_STACK_NONE: none
  // Captures per CPU per ST_STACK_WINDOW_NS at that rate, then 2^ST_STACK_THROTTLE_SHIFT times
  // fewer for the rest of the window; 0: no limit.
  std::uint32_t stack_budget = 0;
  std::uint32_t max_objects = 1u << 20;  // objects the live table has room for
  std::uint32_t max_buckets = ST_MAX_BUCKETS;  // (cache, cgroup) pairs at once, <= ST_MAX_BUCKETS
  std::string btf_path;                  // custom vmlinux BTF, for kernels without /sys/kernel/btf
  // --cache filters: names (kmem caches) and kmalloc keys (see bpf_shared.h).
  std::vector<std::string> cache_names;
  std::vector<std::uint64_t> cache_keys;
  std::vector<AddrRange> skb_alloc_ranges;  // __alloc_skb, kmalloc_reserve
  // kmalloc_reserve is no function (a macro before 6.3): the data buffer's
  // call site is __alloc_skb's caller, found from the head's stack.
  bool skb_data_site_is_caller = false;
  AddrRange skb_clone_range;
  std::vector<AddrRange> ignore_ranges;  // allocation sites never traced (the BPF map allocator)
  IrqContext irq_context = IrqContext::Auto;
  QueueTies queue_ties = QueueTies::Auto;
  // One live-table slot per sk_buff from __alloc_skb (head and data), where
  // the kmem_cache_free event carries the cache; else two.
  bool skb_one_slot = true;
  // Addresses of the kernel's page_offset_base and vmemmap_base (kallsyms;
  // 0: not listed): let the BPF side find an object's cache from its slab
  // page where the allocation event carries no cache pointer (before 6.1).
  std::uint64_t page_offset_base_addr = 0;
  std::uint64_t vmemmap_base_addr = 0;
  bool verbose = false;
};

// One bucket (cache x cgroup) with its counters summed over CPUs.
struct BucketSnapshot {
  std::uint32_t index = 0;
  st_bucket info{};
  st_counters counters{};
};

// A live object, unpacked from its table slot.
struct LiveObject {
  std::uint64_t addr = 0;
  std::uint32_t bucket = 0;
  std::int32_t stack_id = -1;  // -1: no stack
  bool stack_throttled = false;  // drawn at the throttled rate: stands for 2^ST_STACK_THROTTLE_SHIFT more
  std::uint32_t flags = 0;     // ST_OBJ_SKB_*
  std::uint32_t alloc_tick = 0;  // jiffies, low 32 bits
  std::uint64_t age_ms = 0;       // at the time of the walk
  std::uint64_t link = 0;
};

// A whole sk_buff's slot (ST_OBJ_SKB_BOTH: head and data in one, under the
// data's address) is two objects: its head, in the head cache's bucket
// (head_bucket is st_head_bucket_of's entry, bucket + 1; 0: none known), tied
// to the socket holding it, and its data buffer, whose link is the slot's
// own address, where find_live finds the head again.
struct WholeSkb {
  LiveObject head;
  LiveObject data;
};
WholeSkb split_whole_skb(const LiveObject& both, std::uint32_t head_bucket);

struct ProgramCost {
  std::string name;
  std::uint64_t run_count = 0;
  std::uint64_t run_time_ns = 0;
};

class Tracer {
 public:
  // Loads and attaches; throws UserError with one line the user can act on.
  explicit Tracer(const TracerOptions& options);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  AttachMode attach_mode() const { return mode_; }
  IrqContext irq_context() const { return irq_context_; }
  // One line each for what this kernel could not give (probed at start-up),
  // e.g. caches named by size only; empty when nothing is missing.
  const std::vector<std::string>& limitations() const { return limitations_; }
  std::uint64_t start_ns() const { return start_ns_; }  // CLOCK_MONOTONIC at start
  const std::vector<std::string>& missing_optional() const { return missing_optional_; }
  // Whether queued skbs are tied to their socket by walking the queues
  // (tie_queues), not per packet.
  bool walks_queues() const { return !walker_links_.empty(); }
  // Walks every socket queue of the calling thread's network namespace
  // (whole_node: and the packet sockets of every process, found through
  // their files, once per census): each tracked head in one is tied to its
  // socket, and each socket's queued count set. Call before reading the
  // table or sockets(). Returns a warning line per walker that could not run.
  std::vector<std::string> tie_queues(bool whole_node) const;

  std::vector<BucketSnapshot> buckets() const;
  // Gives buckets back for new (cache, cgroup) pairs: their counters are
  // zeroed and their pair forgotten. Only for buckets that can never count
  // again (a cgroup that is gone) and hold nothing outstanding; the caller
  // decides (Session::snapshot_recycling). Returns the indexes retired.
  std::vector<std::uint32_t> retire_buckets(const std::vector<std::uint32_t>& indexes);
  std::uint32_t bucket_capacity() const { return bucket_limit_; }
  st_stats stats() const;
  // Calls fn for every live object, read from the mmap-ed table (or, in the
  // legacy object for old kernels, walked from the hash map in batches).
  void for_each_live(const std::function<void(const LiveObject&)>& fn) const;
  // The live object at an address, searched as the BPF side does.
  std::optional<LiveObject> find_live(std::uint64_t addr) const;
  std::vector<std::uint64_t> stack(std::int32_t stack_id) const;  // innermost first
  // Sockets that had skbs queued, with how many tracked heads they hold now.
  std::vector<std::pair<std::uint64_t, st_sock>> sockets() const;
  // Turns the kernel's per-program run-time statistics on or off (they cost
  // every BPF program on the node a clock read per run).
  void measure_cost(bool on);
  std::optional<st_sock> socket(std::uint64_t sk) const;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> drops() const;  // reason, count
  std::vector<std::pair<st_drop_key, std::uint64_t>> drops_by_socket() const;
  // skb heads adopted on a receive path (NAPI skb cache), by device.
  std::vector<std::pair<st_adopt_key, st_adopt_dev>> adopted() const;
  std::vector<ProgramCost> program_costs() const;
  // Objects the live table is sized for (half its slots).
  std::uint32_t live_capacity() const;
  std::vector<std::uint32_t> program_ids() const;

 private:
  // has_event: per entry of the loader's program table, whether the kernel has its event;
  // kmalloc_gfp: the gfp bits of kmalloc-cg-, kmalloc-rcl- and dma-kmalloc- (0: no such caches).
  void open_and_load(const TracerOptions& options, AttachMode mode, const std::vector<bool>& has_event,
                     const std::array<std::uint64_t, 3>& kmalloc_gfp);
  void reset();
  int sum_percpu(int map_fd, std::uint32_t key, void* out, std::size_t value_size) const;

  struct SkelDeleter {
    void operator()(::slabtrace_bpf* skel) const;
  };
  std::unique_ptr<::slabtrace_bpf, SkelDeleter> skel_;
  std::vector<::bpf_link*> links_;  // destroyed before the skeleton
  AttachMode mode_ = AttachMode::Auto;
  IrqContext irq_context_ = IrqContext::Programs;
  std::optional<long long> preempt_count_from_rq_;  // where the BTF allows the preempt-count method
  bool rdonly_cast_ = false;                         // the kernel has bpf_rdonly_cast (main object only)
  // The object built for kernels without bpf_loop / atomic compare-and-swap:
  // its live set is a hash map (st_live_hash), its bucket numbers per CPU.
  bool legacy_ = false;
  std::uint32_t bucket_limit_ = ST_MAX_BUCKETS;
  bool task_btf_ = false;     // bpf_get_current_task_btf (5.11)
  unsigned walkers_ = 0;      // queue walkers to load (loader.cpp's kTieWalkers bits)
  struct WalkerLink {
    std::string name;
    ::bpf_link* link;  // owned by links_
    bool per_netns;
  };
  std::vector<WalkerLink> walker_links_;
  int alloc_cache_arg_ = -1;  // kmem_cache_alloc's struct kmem_cache * argument, -1: none
  int free_cache_arg_ = -1;   // kmem_cache_free's, -1: none
  bool skb_one_slot_ = false;  // one live-table slot per sk_buff (ST_OBJ_SKB_BOTH)
  std::uint32_t head_bucket_of(std::uint32_t bucket) const;
  LiveObject head_view(const LiveObject& both) const;
  LiveObject as_found(const LiveObject& o) const;
  std::vector<std::string> limitations_;
  std::uint64_t start_ns_ = 0;
  // jiffies and CLOCK_MONOTONIC read together by the st_clock program.
  struct Clock {
    std::uint64_t jiffies = 0, ns = 0;
  };
  Clock read_clock() const;
  std::uint32_t hz() const;
  Clock clock_at_start_;
  mutable std::uint32_t hz_ = 0;
  int stats_fd_ = -1;  // BPF_ENABLE_STATS: run-time stats while we hold it
  // The live-object table, mapped read-only (BPF_F_MMAPABLE array).
  const st_slot* live_slots_ = nullptr;
  std::size_t live_slot_count_ = 0;
  std::size_t live_map_bytes_ = 0;
  int ncpus_ = 1;
  std::vector<std::string> missing_optional_;
};

}  // namespace slabtrace::bpf
