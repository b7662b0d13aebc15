// Prometheus text exposition 0.0.4: one HELP and TYPE line per family, then its
// samples; label values escaped; base units (bytes, seconds); counters end in _total.
#include "slabtrace/prometheus.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

namespace slabtrace::prometheus {

std::uint64_t CgroupFigures::outstanding_bytes() const {
  return std::accumulate(by_cache.begin(), by_cache.end(), std::uint64_t{0},
                         [](std::uint64_t sum, const auto& c) { return sum + c.second.outstanding_bytes; });
}

const std::vector<std::string_view>& node_memory_fields() {
  // What an SRE reads first on a node that runs out of memory: how much is left,
  // how much the slab holds and how much of it cannot be reclaimed, and swap.
  static const std::vector<std::string_view> fields = {"MemTotal",     "MemFree",    "MemAvailable", "Slab",
                                                       "SReclaimable", "SUnreclaim", "KernelStack",  "PageTables",
                                                       "SwapTotal",    "SwapFree"};
  return fields;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

namespace {

// Sorts by `weight` (largest first, then by `name` so the output is stable),
// keeps the first n and folds the rest into one with `fold`.
template <typename T, typename Weight, typename Name, typename Fold>
std::vector<T> keep_top(std::vector<T> items, std::size_t n, Weight weight, Name name, Fold fold) {
  std::sort(items.begin(), items.end(), [&](const T& a, const T& b) {
    auto wa = weight(a), wb = weight(b);
    return wa != wb ? wa > wb : name(a) < name(b);
  });
  if (items.size() <= n) return items;
  T other = std::accumulate(items.begin() + std::ptrdiff_t(n), items.end(), T{}, fold);
  items.resize(n);
  items.push_back(std::move(other));
  return items;
}

}  // namespace

std::vector<CgroupFigures> keep_top_cgroups(std::vector<CgroupFigures> cgroups, std::size_t n) {
  return keep_top(
      std::move(cgroups), n, [](const CgroupFigures& g) { return g.outstanding_bytes(); },
      [](const CgroupFigures& g) { return g.labels.cgroup; },
      [](CgroupFigures sum, const CgroupFigures& g) {
        sum.labels = CgroupLabels{kOther, "", "", "", "", ""};
        for (const auto& [cache, f] : g.by_cache) {
          auto& s = sum.by_cache[cache];
          s.outstanding_objects += f.outstanding_objects;
          s.outstanding_bytes += f.outstanding_bytes;
          s.growth_objects_per_s += f.growth_objects_per_s;
          s.allocations += f.allocations;
          s.frees += f.frees;
        }
        return sum;
      });
}

std::vector<SkbHolderFigures> keep_top_holders(std::vector<SkbHolderFigures> holders, std::size_t n) {
  return keep_top(
      std::move(holders), n, [](const SkbHolderFigures& h) { return h.queued_bytes; },
      [](const SkbHolderFigures& h) { return h.socket_inode; },
      [](SkbHolderFigures sum, const SkbHolderFigures& h) {
        sum.owner.cgroup = kOther;
        sum.queued_objects += h.queued_objects;
        sum.queued_bytes += h.queued_bytes;
        return sum;
      });
}

std::vector<SocketQueueFigures> keep_top_socket_queues(std::vector<SocketQueueFigures> sockets, std::size_t n) {
  return keep_top(
      std::move(sockets), n, [](const SocketQueueFigures& s) { return s.queued_bytes(); },
      [](const SocketQueueFigures& s) { return s.socket_inode; },
      [](SocketQueueFigures sum, const SocketQueueFigures& s) {
        sum.owner.cgroup = kOther;
        sum.receive_queue_bytes += s.receive_queue_bytes;
        sum.backlog_bytes += s.backlog_bytes;
        sum.write_queue_bytes += s.write_queue_bytes;
        sum.owners += s.owners;
        return sum;
      });
}

namespace {

// `name="value",...` with empty values left out unless asked for.
class LabelSet {
 public:
  LabelSet& add(std::string_view name, std::string_view value, bool keep_empty = false) {
    if (value.empty() && !keep_empty) return *this;
    if (!text_.empty()) text_ += ',';
    text_ += fmt::format("{}=\"{}\"", name, escape_label_value(value));
    return *this;
  }
  LabelSet& add(const CgroupLabels& l) {
    return add("cgroup", l.cgroup, true)
        .add("container_id", l.container_id)
        .add("pod_uid", l.pod_uid)
        .add("namespace", l.pod_namespace)
        .add("pod", l.pod)
        .add("container", l.container);
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}
std::string format_value(std::uint64_t v) { return std::to_string(v); }

class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
    name_ = name;
  }
  template <typename V>
  void sample(const LabelSet& labels, V value) {
    if (labels.text().empty())
      out_ += fmt::format("{} {}\n", name_, format_value(value));
    else
      out_ += fmt::format("{}{{{}}} {}\n", name_, labels.text(), format_value(value));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
  std::string name_;
};

// One family over every (cgroup, cache) pair.
template <typename V>
void per_cgroup_cache(Exposition& out, const std::vector<CgroupFigures>& cgroups, std::string_view name,
                      std::string_view type, std::string_view help, V (*value)(const CacheFigures&)) {
  out.family(name, type, help);
  for (const auto& g : cgroups)
    for (const auto& [cache, f] : g.by_cache) out.sample(LabelSet().add("cache", cache, true).add(g.labels), value(f));
}

void write_cgroups(Exposition& out, const std::vector<CgroupFigures>& cgroups) {
  per_cgroup_cache<std::uint64_t>(
      out, cgroups, "slabtrace_outstanding_objects", "gauge",
      "Slab objects allocated since slabtrace started and still live, by cache and by the cgroup that allocated them.",
      [](const CacheFigures& f) { return f.outstanding_objects; });
  per_cgroup_cache<std::uint64_t>(out, cgroups, "slabtrace_outstanding_bytes", "gauge",
                                  "Bytes of the outstanding slab objects (object size, not slab pages).",
                                  [](const CacheFigures& f) { return f.outstanding_bytes; });
  per_cgroup_cache<double>(out, cgroups, "slabtrace_growth_objects_per_second", "gauge",
                           "Change of outstanding objects per second over the last interval.",
                           [](const CacheFigures& f) { return f.growth_objects_per_s; });
  per_cgroup_cache<std::uint64_t>(out, cgroups, "slabtrace_allocations_total", "counter",
                                  "Slab allocations seen since slabtrace started.",
                                  [](const CacheFigures& f) { return f.allocations; });
  per_cgroup_cache<std::uint64_t>(out, cgroups, "slabtrace_frees_total", "counter",
                                  "Objects allocated since slabtrace started that were freed since.",
                                  [](const CacheFigures& f) { return f.frees; });
}

// One label set for a socket, whichever family of series it is in.
LabelSet socket_labels(const SocketIdentity& s) {
  LabelSet l;
  if (s.owner.cgroup == kOther) return l.add("socket_inode", kOther).add("cgroup", kOther);
  l.add("socket_inode", std::to_string(s.socket_inode))
      .add("netns", s.netns ? std::to_string(s.netns) : "")
      .add("protocol", s.protocol)
      .add("pid", s.pid ? std::to_string(*s.pid) : "")
      .add("comm", s.comm);
  return l.add(s.owner);
}

void write_skb_holders(Exposition& out, const std::vector<SkbHolderFigures>& holders) {
  out.family("slabtrace_skb_queued_bytes", "gauge",
             "Truesize of the sk_buffs slabtrace saw queued on a socket that are still live, by socket.");
  for (const auto& h : holders) out.sample(socket_labels(h), h.queued_bytes);
  out.family("slabtrace_skb_queued_objects", "gauge", "sk_buffs slabtrace saw queued on a socket that are still live.");
  for (const auto& h : holders) out.sample(socket_labels(h), h.queued_objects);
}


void write_socket_census(Exposition& out, const SocketCensusFigures& census, std::size_t top) {
  out.family("slabtrace_socket_queues_bytes", "gauge",
             "Truesize of everything queued on the node's sockets now (sock_diag, every network namespace).");
  out.sample(LabelSet(), census.queued_bytes);
  out.family("slabtrace_socket_queues", "gauge", "Sockets holding queued sk_buffs now.");
  out.sample(LabelSet(), std::uint64_t(census.sockets.size()));
  auto sockets = keep_top_socket_queues(census.sockets, top);
  out.family("slabtrace_socket_queue_bytes", "gauge",
             "Truesize queued on a socket now, by queue (receive, backlog, write), whoever allocated it; the largest "
             "sockets by name, the rest as socket_inode=\"other\".");
  for (const auto& s : sockets)
    for (const auto& [queue, bytes] : {std::pair<const char*, std::uint64_t>{"receive", s.receive_queue_bytes},
                                       {"backlog", s.backlog_bytes}, {"write", s.write_queue_bytes}})
      if (bytes || std::string_view(queue) == "receive")
        out.sample(socket_labels(s).add("queue", queue, true), bytes);
  out.family("slabtrace_socket_queue_owners", "gauge", "Processes holding a descriptor to the socket.");
  for (const auto& s : sockets) out.sample(socket_labels(s), s.owners);
  out.family("slabtrace_socket_census_duration_seconds", "gauge", "Time taken by the socket census.");
  out.sample(LabelSet(), census.seconds);
}

void write_health(Exposition& out, const Health& h) {
  out.family("slabtrace_info", "gauge", "slabtrace's version, the kernel, and how the BPF programs are attached.");
  out.sample(LabelSet().add("version", h.version, true).add("kernel", h.kernel, true).add("attach_mode", h.attach_mode, true),
             std::uint64_t{1});
  out.family("slabtrace_sample_rate", "gauge", "One object address in this many is tracked; counts are scaled up.");
  out.sample(LabelSet(), h.sample_rate);
  out.family("slabtrace_lost_events_total", "counter",
             "Events slabtrace could not account for, by reason: outstanding figures are low by up to this much.");
  for (const auto& [reason, n] : h.lost) out.sample(LabelSet().add("reason", reason, true), n);
  out.family("slabtrace_live_map_entries", "gauge", "Tracked objects in the BPF live-object table.");
  out.sample(LabelSet(), h.live_map_entries);
  out.family("slabtrace_live_map_capacity", "gauge", "Objects the BPF live-object table has room for (--max-objects).");
  out.sample(LabelSet(), h.live_map_capacity);
  out.family("slabtrace_buckets", "gauge", "(cache, cgroup) pairs slabtrace counts now.");
  out.sample(LabelSet(), h.buckets);
  out.family("slabtrace_bucket_capacity", "gauge", "(cache, cgroup) pairs the BPF tables have room for (--max-buckets).");
  out.sample(LabelSet(), h.bucket_capacity);
  out.family("slabtrace_buckets_retired_total", "counter",
             "Buckets given back for new pairs because their cgroup was gone and nothing they counted was live.");
  out.sample(LabelSet(), h.buckets_retired);
  out.family("slabtrace_bpf_runs_total", "counter", "Runs of each BPF program (kernel bpf_stats).");
  for (const auto& p : h.programs) out.sample(LabelSet().add("program", p.program, true), p.runs);
  out.family("slabtrace_bpf_run_seconds_total", "counter", "Time spent in each BPF program (kernel bpf_stats).");
  for (const auto& p : h.programs)
    out.sample(LabelSet().add("program", p.program, true), double(p.run_time_ns) / 1e9);
  out.family("slabtrace_bpf_seconds_per_event", "gauge",
             "Average cost of one run of each BPF program since slabtrace started.");
  for (const auto& p : h.programs)
    if (p.runs) out.sample(LabelSet().add("program", p.program, true), double(p.run_time_ns) / double(p.runs) / 1e9);
  out.family("slabtrace_refresh_duration_seconds", "gauge", "Time taken to read the BPF maps and the node's files for these metrics.");
  out.sample(LabelSet(), h.refresh_seconds);
  out.family("slabtrace_last_refresh_timestamp_seconds", "gauge", "When these metrics were gathered (Unix time).");
  out.sample(LabelSet(), h.refreshed_unix_seconds);
}

void write_node_memory(Exposition& out, const node::Meminfo& meminfo) {
  out.family("slabtrace_node_memory_bytes", "gauge", "The node's /proc/meminfo, in bytes, by field.");
  for (auto field : node_memory_fields()) {
    auto it = meminfo.find(field);
    if (it != meminfo.end()) out.sample(LabelSet().add("field", field, true), it->second);
  }
}

}  // namespace

std::string render(const Metrics& m, const Limits& limits) {
  Exposition out;
  write_cgroups(out, keep_top_cgroups(m.cgroups, limits.top_cgroups));
  write_skb_holders(out, keep_top_holders(m.skb_holders, limits.top_skb_holders));
  if (m.socket_census) write_socket_census(out, *m.socket_census, limits.top_socket_queues);
  write_health(out, m.health);
  write_node_memory(out, m.node_memory);
  return out.take();
}

}  // namespace slabtrace::prometheus
