#pragma once
// Prometheus text exposition (format 0.0.4) of what slabtrace measures: pure,
// from figures already gathered to the text a scrape returns. `slabtrace serve`
// fills a Metrics every interval; tests build one by hand.
//
// Cardinality stays bounded whatever the node runs: only the top N cgroups by
// outstanding bytes (and the top N sk_buff holders by queued bytes) get series
// of their own; the rest are summed under cgroup="other" (socket_inode="other").
// A cgroup that moves into or out of the top N makes the "other" counters step
// down once, which rate() reads as a counter reset.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slabtrace/nodemem.hpp"

namespace slabtrace::prometheus {

inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr const char* kOther = "other";

// Who a series is about. Empty fields are left out of the label set.
struct CgroupLabels {
  std::string cgroup;  // path relative to the cgroup2 mount, as in every slabtrace output
  std::string container_id;
  std::string pod_uid;
  std::string pod_namespace;  // label "namespace"
  std::string pod;
  std::string container;
};

// One cache within one cgroup, scaled to whole-population estimates.
struct CacheFigures {
  std::uint64_t outstanding_objects = 0;  // allocated since start, still live
  std::uint64_t outstanding_bytes = 0;
  double growth_objects_per_s = 0;        // over the last interval
  std::uint64_t allocations = 0;          // since slabtrace started
  std::uint64_t frees = 0;                // of objects allocated since start
};

struct CgroupFigures {
  CgroupLabels labels;
  std::map<std::string, CacheFigures> by_cache;

  std::uint64_t outstanding_bytes() const;
};

// What names a socket in a series, the same for the tracer's holders and the
// census's queues: inode, netns, protocol and the owner a verdict blames.
struct SocketIdentity {
  std::uint64_t socket_inode = 0;
  std::uint64_t netns = 0;
  std::string protocol;              // "udp", "unix-dgram", "packet-raw", ...
  std::optional<std::uint32_t> pid;  // the owner a verdict blames (census::blamed_owner); none if no process holds it
  std::string comm;
  CgroupLabels owner;                // the blamed owner's cgroup and pod; cgroup "other": the folded rest
};

// A socket whose receive queue holds sk_buffs slabtrace saw queued.
struct SkbHolderFigures : SocketIdentity {
  std::uint64_t queued_objects = 0;
  std::uint64_t queued_bytes = 0;  // truesize
};

// A socket queue from the census: every socket holding sk_buffs now, whoever
// allocated them (no BPF needed; also while serve only watches).
struct SocketQueueFigures : SocketIdentity {
  std::uint64_t owners = 0;          // processes holding it
  std::uint64_t receive_queue_bytes = 0;
  std::uint64_t backlog_bytes = 0;
  std::uint64_t write_queue_bytes = 0;

  std::uint64_t queued_bytes() const { return receive_queue_bytes + backlog_bytes + write_queue_bytes; }
};

struct SocketCensusFigures {
  std::vector<SocketQueueFigures> sockets;  // every socket holding anything
  std::uint64_t queued_bytes = 0;
  double seconds = 0;  // how long the census took
};

struct ProgramRuns {
  std::string program;  // BPF program name, "st_btf_kmem_cache_alloc"
  std::uint64_t runs = 0;
  std::uint64_t run_time_ns = 0;
};

// slabtrace's own health: how far to trust the figures, and what it costs.
struct Health {
  std::string version;
  std::string kernel;
  std::string attach_mode;
  std::uint64_t sample_rate = 1;
  std::map<std::string, std::uint64_t> lost;  // reason -> events ("map_full", ...)
  std::uint64_t live_map_entries = 0;
  std::uint64_t live_map_capacity = 0;
  std::uint64_t buckets = 0;           // (cache, cgroup) pairs counted now
  std::uint64_t bucket_capacity = 0;   // --max-buckets
  std::uint64_t buckets_retired = 0;   // given back when their cgroup was gone
  std::vector<ProgramRuns> programs;
  double refresh_seconds = 0;        // how long gathering these figures took
  double refreshed_unix_seconds = 0;  // when it finished
};

struct Metrics {
  std::vector<CgroupFigures> cgroups;
  std::vector<SkbHolderFigures> skb_holders;
  std::optional<SocketCensusFigures> socket_census;
  Health health;
  node::Meminfo node_memory;  // /proc/meminfo; only the fields in node_memory_fields() are exported
};

struct Limits {
  std::size_t top_cgroups = 20;
  std::size_t top_skb_holders = 20;
  std::size_t top_socket_queues = 20;
};

// The /proc/meminfo fields exported as slabtrace_node_memory_bytes{field=...}.
const std::vector<std::string_view>& node_memory_fields();

// The top `n` cgroups by outstanding bytes, then one cgroup="other" summing the
// rest (absent when nothing is left over).
std::vector<CgroupFigures> keep_top_cgroups(std::vector<CgroupFigures> cgroups, std::size_t n);
// The same for sk_buff holders, by queued bytes.
std::vector<SkbHolderFigures> keep_top_holders(std::vector<SkbHolderFigures> holders, std::size_t n);

// The same for census socket queues, by queued bytes.
std::vector<SocketQueueFigures> keep_top_socket_queues(std::vector<SocketQueueFigures> sockets, std::size_t n);

// The whole exposition: HELP and TYPE for every family, families contiguous.
std::string render(const Metrics& metrics, const Limits& limits = {});

// Label values escape backslash, double quote and newline; HELP text escapes
// backslash and newline.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view text);

}  // namespace slabtrace::prometheus
