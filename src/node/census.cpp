// The socket census (census.hpp): the inventory's sockets that hold anything,
// their owners named once, largest first.
#include "slabtrace/census.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "slabtrace/census_iter.hpp"
#include "slabtrace/cgroups.hpp"
#include "slabtrace/procfs.hpp"

namespace slabtrace::census {

OwnerResolver::OwnerResolver(CgroupIdOf cgroup_id_of, WorkloadOf workload_of)
    : cgroup_id_of_(std::move(cgroup_id_of)), workload_of_(std::move(workload_of)) {}

OwnerResolver OwnerResolver::for_node(const std::string& cgroup2_mount, k8s::PodNames* pod_names) {
  CgroupIdOf ids;
  if (!cgroup2_mount.empty())
    ids = [cgroup2_mount](const std::string& path) {
      return cgroups::cgroup_id_of(path == "/" ? cgroup2_mount : cgroup2_mount + path);
    };
  WorkloadOf workloads;
  if (pod_names)
    workloads = [pod_names](const std::string& path) { return pod_names->lookup(cgroups::parse_container(path)); };
  return OwnerResolver(std::move(ids), std::move(workloads));
}

Owner OwnerResolver::resolve(const sockets::Owner& process) {
  Owner owner;
  owner.pid = process.pid;
  owner.ppid = process.ppid;
  owner.comm = process.comm;
  // A v1-only host has no "0::" line: the process sits in no v2 cgroup we can name.
  owner.cgroup_path = process.cgroup.empty() ? "/" : process.cgroup;
  if (cgroup_id_of_) {
    if (auto it = cgroup_ids_.find(owner.cgroup_path); it != cgroup_ids_.end()) {
      owner.cgroup_id = it->second;
    } else if (auto id = cgroup_id_of_(owner.cgroup_path)) {
      owner.cgroup_id = *id;
      cgroup_ids_.emplace(owner.cgroup_path, *id);
    }
  }
  if (workload_of_) owner.workload = workload_of_(owner.cgroup_path);
  return owner;
}

std::vector<Owner> OwnerResolver::resolve(const std::vector<sockets::Owner>& processes) {
  std::vector<Owner> owners;
  owners.reserve(processes.size());
  for (const auto& p : processes) owners.push_back(resolve(p));
  return owners;
}

std::size_t blamed_owner(const std::vector<Owner>& owners) {
  if (owners.size() <= 1) return 0;
  std::unordered_map<int, int> parent_of;
  for (const auto& o : owners) parent_of[o.pid] = o.ppid;
  // Owners that are an ancestor of another owner passed the descriptor on.
  std::unordered_set<int> ancestors;
  for (const auto& o : owners) {
    int up = o.ppid;
    for (std::size_t depth = 0; up > 0 && depth < owners.size(); ++depth) {
      auto it = parent_of.find(up);
      if (it == parent_of.end()) break;
      ancestors.insert(up);
      up = it->second;
    }
  }
  std::size_t best = owners.size();
  auto better = [&](const Owner& a, const Owner& b) {
    const bool a_container = a.cgroup_path != "/", b_container = b.cgroup_path != "/";
    if (a_container != b_container) return a_container;
    return a.pid > b.pid;
  };
  for (std::size_t i = 0; i < owners.size(); ++i) {
    if (ancestors.count(owners[i].pid)) continue;
    if (best == owners.size() || better(owners[i], owners[best])) best = i;
  }
  return best == owners.size() ? 0 : best;  // a pid cycle (pid reuse): keep the first
}

const QueuedSocket* Census::find(std::uint64_t inode) const {
  for (const auto& s : sockets)
    if (s.inode == inode) return &s;
  return nullptr;
}

Census build_census(const std::vector<sockets::SocketInfo>& sockets, OwnerResolver& owners) {
  Census census;
  census.sockets_seen = sockets.size();
  for (const auto& s : sockets) {
    QueuedSocket q;
    static_cast<sockets::SocketId&>(q) = s;
    if (s.accounting) {
      q.kernel_accounting = true;
      q.receive_queue_bytes = s.accounting->queued_bytes;
      q.backlog_bytes = s.accounting->backlog_bytes;
      q.write_queue_bytes = s.accounting->write_queue_bytes;
      q.queued_skbs = s.accounting->queued_skbs;
      q.queued_skbs_estimated = s.accounting->queued_skbs_estimated;
    } else {
      // tcp rx_queue is unread payload, not truesize: better than nothing.
      q.receive_queue_bytes = s.rx_queue_bytes;
    }
    if (!s.owners.empty()) census.owners_by_inode[s.inode] = s.owners;
    if (!s.holds_anything()) {
      // Without sock_diag a unix socket's queue is unknown, not empty.
      if (q.kernel_accounting || s.family != "unix") census.empty_sockets.insert(s.inode);
      continue;
    }
    q.local = s.local;
    q.remote = s.remote;
    q.drops = s.drops;
    q.owners = owners.resolve(s.owners);
    q.blamed = blamed_owner(q.owners);
    census.queued_bytes += q.queued_bytes();
    census.sockets.push_back(std::move(q));
  }
  std::stable_sort(census.sockets.begin(), census.sockets.end(), [](const QueuedSocket& a, const QueuedSocket& b) {
    return a.queued_bytes() > b.queued_bytes();
  });
  return census;
}

Census take_census(OwnerResolver& owners, const sockets::ScanOptions& options) {
  auto started = std::chrono::steady_clock::now();
  auto inventory = sockets::SocketInventory::scan(options);
  Census census = build_census(inventory.sockets(), owners);
  census.namespaces = inventory.namespaces().size();
  census.home_netns = inventory.own_netns();
  census.warnings = inventory.warnings();
  census.took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return census;
}

NodeCensus::NodeCensus(k8s::LogDirs kubelet_logs, bool exact_skb_counts)
    : pod_names_(std::make_unique<k8s::PodNames>(std::move(kubelet_logs))) {
  if (exact_skb_counts) iterators_ = SkbIterators::load();
  // No mount (or an unreadable mountinfo): no cgroup ids, names still come from the paths.
  owners_ = OwnerResolver::for_node(procfs::own_cgroup2_mount().value_or(""), pod_names_.get());
}

NodeCensus::~NodeCensus() = default;

Census NodeCensus::take(const sockets::ScanOptions& options) {
  if (!iterators_ || options.count_skbs) return take_census(owners_, options);
  sockets::ScanOptions counted = options;
  counted.count_skbs = iterators_->counter();
  return take_census(owners_, counted);
}

SocketLabel label_of(const QueuedSocket& socket) {
  SocketLabel label;
  label.family = socket.family;
  label.protocol = socket.protocol;
  label.inode = socket.inode;
  label.netns = socket.netns;
  if (const Owner* o = socket.blamed_owner()) label.owner = *o;
  label.other_owners = socket.owners.empty() ? 0 : socket.owners.size() - 1;
  return label;
}

std::string kind_of(const std::string& family, const std::string& protocol) {
  const bool v6 = family == "inet6";
  if (protocol == "udp") return v6 ? "UDPv6" : "UDP";
  if (protocol == "udplite") return v6 ? "UDP-Lite v6" : "UDP-Lite";
  if (protocol == "tcp") return v6 ? "TCPv6" : "TCP";
  if (protocol == "raw") return v6 ? "raw IPv6" : "raw IP";
  if (protocol == "unix-dgram") return "unix datagram";
  if (protocol == "unix-stream") return "unix stream";
  if (protocol == "unix-seqpacket") return "unix seqpacket";
  if (protocol == "packet-raw") return "AF_PACKET raw";
  if (protocol == "packet-dgram") return "AF_PACKET dgram";
  if (!protocol.empty()) return protocol;
  return family.empty() ? "" : family;
}

std::string describe(const SocketLabel& socket, std::uint64_t home_netns) {
  std::string kind = kind_of(socket.family, socket.protocol);
  std::string text = kind.empty() ? fmt::format("socket inode {}", socket.inode)
                                  : fmt::format("{} socket inode {}", kind, socket.inode);
  if (socket.owner) {
    const Owner& o = *socket.owner;
    text += fmt::format(" of pid {} ({})", o.pid, o.comm);
    if (socket.other_owners) text += fmt::format(" and {} more", socket.other_owners);
    if (!o.cgroup_path.empty()) text += " in cgroup " + o.cgroup_path;
    if (o.workload.known()) {
      text += fmt::format(" (pod {}/{}", o.workload.pod_namespace, o.workload.pod);
      if (!o.workload.container.empty()) text += ", container " + o.workload.container;
      text += ")";
    }
  } else {
    text += " held by no process";
  }
  if (socket.netns != 0 && socket.netns != home_netns) text += fmt::format(", netns {}", socket.netns);
  return text;
}

std::uint64_t queued_before_start(std::uint64_t start_bytes, std::uint64_t end_bytes, std::uint64_t traced_bytes) {
  std::uint64_t untraced = end_bytes > traced_bytes ? end_bytes - traced_bytes : 0;
  return std::min(start_bytes, untraced);
}

}  // namespace slabtrace::census
