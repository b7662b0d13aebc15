// sk_buff holders: what the tracer saw queued on a socket, completed by the
// socket census (every owner, the kernel's own counts, what predates the run).
#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include "slabtrace/human.hpp"
#include "slabtrace/model.hpp"

namespace slabtrace::model {

namespace {

void apply_owners(SkbHolder& h, const census::QueuedSocket& s) {
  h.owners = s.owners;
  if (const census::Owner* o = s.blamed_owner()) {
    h.pid = std::uint32_t(o->pid);
    h.comm = o->comm;
    h.cgroup_id = o->cgroup_id;
    h.cgroup_path = o->cgroup_path;
    h.workload = o->workload;
  }
}

void apply_kernel_counts(SkbHolder& h, const census::QueuedSocket& s) {
  h.kernel_queued_bytes = s.queued_bytes();
  h.kernel_queued_skbs = s.queued_skbs;
  h.kernel_queued_skbs_estimated = s.queued_skbs_estimated;
  h.receive_queue_bytes = s.receive_queue_bytes;
  h.backlog_bytes = s.backlog_bytes;
  h.write_queue_bytes = s.write_queue_bytes;
}

}  // namespace

SkbHolder holder_from(const census::QueuedSocket& s) {
  SkbHolder h;
  h.socket_inode = s.inode;
  h.netns = s.netns;
  h.family = s.family;
  h.protocol = s.protocol;
  apply_owners(h, s);
  apply_kernel_counts(h, s);
  return h;
}

census::SocketLabel label_of(const SkbHolder& h) {
  census::SocketLabel label;
  label.family = h.family;
  label.protocol = h.protocol;
  label.inode = h.socket_inode;
  label.netns = h.netns;
  if (h.pid) {
    census::Owner o;
    o.pid = int(*h.pid);
    o.comm = h.comm;
    o.cgroup_id = h.cgroup_id;
    o.cgroup_path = h.cgroup_path;
    o.workload = h.workload;
    label.owner = o;
  }
  label.other_owners = h.owners.size() > 1 ? h.owners.size() - 1 : 0;
  return label;
}

std::uint64_t holder_bytes(const SkbHolder& h) { return std::max(h.kernel_queued_bytes.value_or(0), h.queued_bytes); }

void merge_census(SkbReport& skb, const census::Census& end, const census::Census* start,
                  std::vector<std::string>& notes, const CensusMerge& options) {
  std::unordered_map<std::uint64_t, std::uint64_t> start_bytes;
  if (start)
    for (const auto& s : start->sockets) start_bytes[s.inode] = s.queued_bytes();
  auto before = [&](const SkbHolder& h) -> std::optional<std::uint64_t> {
    if (!start) return std::nullopt;
    auto it = start_bytes.find(h.socket_inode);
    return census::queued_before_start(it == start_bytes.end() ? 0 : it->second, h.kernel_queued_bytes.value_or(0),
                                       h.queued_bytes);
  };

  std::vector<SkbHolder> holders;
  std::unordered_map<std::uint64_t, bool> listed;
  for (auto& h : skb.holders) {
    if (h.socket_inode && end.empty_sockets.count(h.socket_inode)) {
      // The socket's own accounting says its queue is empty: what we saw
      // queued has been read and waits only to be freed.
      notes.push_back(fmt::format("{} skbs seen on {} socket inode {} were read already (awaiting free)",
                                  group_thousands(h.queued_skbs), h.protocol, h.socket_inode));
      continue;
    }
    if (const census::QueuedSocket* s = h.socket_inode ? end.find(h.socket_inode) : nullptr) {
      apply_owners(h, *s);
      apply_kernel_counts(h, *s);
    }
    h.queued_before_start_bytes = before(h);
    if (h.socket_inode) listed[h.socket_inode] = true;
    holders.push_back(std::move(h));
  }
  std::size_t untraced = 0;
  for (const auto& s : end.sockets) {  // largest first
    if (listed.count(s.inode)) continue;
    if (s.queued_bytes() < options.min_untraced_bytes || untraced >= options.max_untraced) break;
    SkbHolder h = holder_from(s);
    h.queued_before_start_bytes = before(h);
    holders.push_back(std::move(h));
    ++untraced;
  }
  std::stable_sort(holders.begin(), holders.end(),
                   [](const SkbHolder& a, const SkbHolder& b) { return holder_bytes(a) > holder_bytes(b); });
  skb.holders = std::move(holders);

  SocketCensusSummary summary;
  summary.sockets_seen = end.sockets_seen;
  summary.sockets_queued = end.sockets.size();
  summary.namespaces = end.namespaces;
  summary.home_netns = end.home_netns;
  summary.queued_bytes = end.queued_bytes;
  summary.took_s = end.took_s;
  summary.warnings = end.warnings;
  for (const auto& h : skb.holders) summary.queued_before_start_bytes += h.queued_before_start_bytes.value_or(0);
  skb.census = std::move(summary);
}

}  // namespace slabtrace::model
