// One-line findings at the top of a report: what grew, who allocated it, who
// holds it, and how far to trust the numbers. Pure: built from the Report alone.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "slabtrace/human.hpp"
#include "slabtrace/model.hpp"
#include "slabtrace/verdict.hpp"

namespace slabtrace::model {

namespace {

// Below this many outstanding objects nothing is called a leak: a few thousand
// live objects are normal churn in flight.
constexpr std::uint64_t kLeakFloor = 1000;
// A socket queue older than the run is worth a verdict from this size on
// (a thousand 1 KiB datagrams).
constexpr std::uint64_t kOldQueueFloor = 1 << 20;

bool near_one_to_one(std::uint64_t a, std::uint64_t b) {
  if (a == 0 || b == 0) return false;
  double ratio = double(a) / double(b);
  return ratio > 0.9 && ratio < 1.1;
}

std::string who(const SkbHolder& h, const Report& r) {
  return census::describe(label_of(h), r.skb.census ? r.skb.census->home_netns : 0);
}

}  // namespace

std::string cache_growth_line(const Report& r) {
  // The two largest growers, with the sk_buff signature when they match 1:1.
  std::vector<const CacheReport*> growers;
  for (const auto& c : r.caches)
    if (c.outstanding >= kLeakFloor) growers.push_back(&c);
  if (growers.empty()) return {};
  std::sort(growers.begin(), growers.end(), [](auto* a, auto* b) { return a->outstanding > b->outstanding; });
  const CacheReport* a = growers[0];
  if (growers.size() >= 2 && near_one_to_one(a->outstanding, growers[1]->outstanding)) {
    const CacheReport* b = growers[1];
    bool skb_pair = is_skb_head_cache(a->name) || is_skb_head_cache(b->name);
    return fmt::format("{} and {} grew by {} and {} ({}){}", a->name, b->name, group_thousands(a->outstanding),
                       group_thousands(b->outstanding), human_bytes(a->outstanding_bytes + b->outstanding_bytes),
                       skb_pair ? " — 1:1, the sk_buff leak signature" : "");
  }
  return fmt::format("{} grew by {} objects ({})", a->name, group_thousands(a->outstanding),
                     human_bytes(a->outstanding_bytes));
}

std::string skb_leak_line(const Report& r) {
  const auto& skb = r.skb;
  if (skb.outstanding_heads < kLeakFloor) return {};
  std::string line = fmt::format("sk_buff leak: {} skbs ({} with data)", group_thousands(skb.outstanding_heads),
                                 human_bytes(skb.outstanding_bytes));
  if (!skb.allocators.empty()) {
    const auto& a = skb.allocators.front();
    std::uint64_t pct = skb.outstanding_heads ? a.heads * 100 / skb.outstanding_heads : 0;
    line += fmt::format(" allocated by cgroup {}", a.cgroup_path);
    if (!a.via.empty()) line += " via " + a.via;
    if (pct < 95) line += fmt::format(" ({}%)", pct);
  }
  if (!skb.holders.empty()) {
    const auto& h = skb.holders.front();
    line += fmt::format("; held unread by {} ({} queued)", who(h, r), group_thousands(h.queued_skbs));
    if (h.queued_before_start_bytes.value_or(0) >= kOldQueueFloor)
      line += fmt::format(", besides {} queued before slabtrace started", human_bytes(*h.queued_before_start_bytes));
  } else {
    line += "; no socket queue holds them (not queued on a socket while we watched)";
  }
  if (r.duration_s > 0) line += fmt::format("; growing {}/s", group_thousands(std::uint64_t(double(skb.outstanding_heads) / r.duration_s)));
  return line;
}

std::string old_queue_line(const Report& r) {
  // A queue the census found at the start and still holds: named even when
  // nothing was allocated while we traced (the node was dying before).
  if (r.skb.outstanding_heads >= kLeakFloor) return {};  // skb_leak_line names it
  const SkbHolder* oldest = nullptr;
  for (const auto& h : r.skb.holders)
    if (h.queued_before_start_bytes.value_or(0) >= kOldQueueFloor &&
        (!oldest || *h.queued_before_start_bytes > *oldest->queued_before_start_bytes))
      oldest = &h;
  if (!oldest) return {};
  std::string line = fmt::format("sk_buff queue older than this run: {} queued before slabtrace started",
                                 human_bytes(*oldest->queued_before_start_bytes));
  if (oldest->kernel_queued_skbs)
    line += fmt::format(" ({}{} skbs now)", oldest->kernel_queued_skbs_estimated ? "~" : "",
                        group_thousands(*oldest->kernel_queued_skbs));
  line += fmt::format(", held unread by {}", who(*oldest, r));
  if (oldest->owners.size() > 1) {
    line += "; open in pids";
    for (std::size_t i = 0; i < oldest->owners.size() && i < 4; ++i)
      line += fmt::format("{} {} ({})", i ? "," : "", oldest->owners[i].pid, oldest->owners[i].comm);
    if (oldest->owners.size() > 4) line += fmt::format(" and {} more", oldest->owners.size() - 4);
  }
  return line;
}

std::string drop_line(const Report& r) {
  if (r.skb.drops_by_socket.empty()) return {};
  const auto& d = r.skb.drops_by_socket.front();
  if (d.count < kLeakFloor || !d.socket_inode) return {};
  std::string line = fmt::format("drop storm (dropped, not leaked): {} skbs dropped ({}) at socket inode {}",
                                 group_thousands(d.count), d.reason, d.socket_inode);
  if (d.pid) line += fmt::format(" of pid {} ({})", *d.pid, d.comm);
  if (!d.cgroup_path.empty()) line += " in cgroup " + d.cgroup_path;
  return line;
}

std::string top_cgroup_line(const Report& r) {
  std::uint64_t total = 0;
  for (const auto& g : r.cgroups) total += g.outstanding_bytes;
  if (r.cgroups.empty() || total == 0) return {};
  const auto& g = r.cgroups.front();
  if (g.outstanding < kLeakFloor) return {};
  std::string line = fmt::format("{}% of outstanding bytes ({}) allocated by {}", g.outstanding_bytes * 100 / total,
                                 human_bytes(g.outstanding_bytes), g.path);
  if (g.workload.known())
    line += fmt::format(" (pod {}/{}{})", g.workload.pod_namespace, g.workload.pod,
                        g.workload.container.empty() ? "" : ", container " + g.workload.container);
  else if (g.container.container_id)
    line += fmt::format(" (container {})", g.container.container_id->substr(0, 12));
  return line;
}

std::string slabinfo_line(const Report& r) {
  // Compare the largest grower against the kernel's own count.
  for (const auto& c : r.caches) {
    if (c.outstanding < kLeakFloor || !c.slabinfo || c.slabinfo->delta <= 0) continue;
    double ratio = double(c.outstanding) / double(c.slabinfo->delta);
    std::string verdict = std::abs(ratio - 1.0) <= 0.1 ? "agrees" : ratio < 1 ? "slabtrace counts fewer" : "slabtrace counts more";
    return fmt::format("/proc/slabinfo {}: {} active {:+} vs {} outstanding ({:.0f}%)", verdict, c.slabinfo_name,
                       c.slabinfo->delta, group_thousands(c.outstanding), ratio * 100.0);
  }
  return {};
}

std::string cost_line(const Report& r) {
  std::uint64_t events = 0;
  double ns = 0;
  for (const auto& c : r.costs) {
    events += c.events;
    ns += c.ns_per_event * double(c.events);
  }
  if (!events) return {};
  return fmt::format("slabtrace's own cost: {:.0f} ns per traced event (kernel bpf_stats over {} sampled events)",
                     ns / double(events), group_thousands(events));
}

void add_verdicts(Report& r) {
  for (auto line : {skb_leak_line(r), old_queue_line(r), drop_line(r), cache_growth_line(r), top_cgroup_line(r), slabinfo_line(r), cost_line(r)})
    if (!line.empty()) r.verdicts.push_back(line);
  if (r.verdicts.empty() || (r.verdicts.size() == 1 && !r.costs.empty()))
    r.verdicts.insert(r.verdicts.begin(), "no leak: nothing outstanding above " + group_thousands(kLeakFloor) + " objects");
}

}  // namespace slabtrace::model
