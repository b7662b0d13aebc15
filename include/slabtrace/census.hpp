#pragma once
// The socket census: every socket on the node that holds queued sk_buffs right
// now, whatever the tracer saw, with the kernel's own byte counts and every
// process that holds it. One module names a socket's holders (owners, their
// cgroups and pods, the one a verdict blames) and one describes a socket, for
// record, serve, top, stream and doctor alike.
//
//   auto owners = census::OwnerResolver::for_node(cgroup2_mount, &pod_names);
//   census::Census now = census::take_census(owners);       // all namespaces
//   for (const auto& s : now.sockets)                         // largest first
//     fmt::print("{}: {}\n", census::describe(census::label_of(s), now.home_netns), s.queued_bytes());
//
// Without root only the caller's own processes and network namespace are seen;
// census.warnings says so. Exact skb counts need the BPF socket iterators
// (census_iter.hpp, root): ScanOptions::count_skbs.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "slabtrace/k8s_names.hpp"
#include "slabtrace/sockets.hpp"

namespace slabtrace::census {

// A process that has the socket open, with the names every report gives it.
struct Owner {
  int pid = 0;
  int ppid = 0;
  std::string comm;
  std::uint64_t cgroup_id = 0;  // cgroup v2 id (the directory's inode), 0 if unknown
  std::string cgroup_path;      // relative to the cgroup2 mount, "/" for the root
  k8s::Workload workload;       // pod, namespace, container from the kubelet's logs
};

// Names the processes behind a socket. The owner's cgroup is the process's own
// (its /proc/PID/cgroup), never the socket's creation cgroup: a socket made by
// a supervisor and handed to a worker is the worker's now.
class OwnerResolver {
 public:
  using CgroupIdOf = std::function<std::optional<std::uint64_t>(const std::string& cgroup_path)>;
  using WorkloadOf = std::function<k8s::Workload(const std::string& cgroup_path)>;
  // Without lookups: cgroup ids stay 0 and no pod is named.
  OwnerResolver() = default;
  OwnerResolver(CgroupIdOf cgroup_id_of, WorkloadOf workload_of);
  // The node's: ids from the cgroup2 mount (empty: none), names from the
  // kubelet's logs (`pod_names` may be null; it must outlive the resolver).
  static OwnerResolver for_node(const std::string& cgroup2_mount, k8s::PodNames* pod_names);

  Owner resolve(const sockets::Owner& process);
  std::vector<Owner> resolve(const std::vector<sockets::Owner>& processes);

 private:
  CgroupIdOf cgroup_id_of_;
  WorkloadOf workload_of_;
  std::unordered_map<std::string, std::uint64_t> cgroup_ids_;  // found ones only: a new cgroup is retried
};

// The owner a verdict blames, as an index into `owners` (0 when empty). A
// socket shared after fork is held by a parent that passed it on and a child
// that was meant to read it: an owner whose descendant (by ppid chain among
// the owners) also holds the socket is passed over for that descendant. Among
// the rest, an owner in a cgroup other than the root is preferred (the
// container, not the host agent that inherited an fd), then the highest pid
// (the most recently started). Pure.
std::size_t blamed_owner(const std::vector<Owner>& owners);

// A socket holding queued sk_buffs.
struct QueuedSocket : sockets::SocketId {
  std::string local;   // "127.0.0.1:5353", a unix path, "ifindex 2"; may be empty
  std::string remote;
  // The kernel's accounting (truesize bytes): receive queue (rmem_alloc; for
  // unix what its senders' wmem_alloc say), backlog, write queue.
  std::uint64_t receive_queue_bytes = 0;
  std::uint64_t backlog_bytes = 0;
  std::uint64_t write_queue_bytes = 0;
  bool kernel_accounting = false;  // false: /proc/net figures only
  // Where the kernel lets it be known (unix listeners exactly, unix datagram
  // sockets estimated from the first datagram's size).
  std::optional<std::uint64_t> queued_skbs;
  bool queued_skbs_estimated = false;
  std::uint64_t drops = 0;
  std::vector<Owner> owners;  // every process with a descriptor to it, by pid
  std::size_t blamed = 0;     // index into owners (see blamed_owner)

  std::uint64_t queued_bytes() const { return receive_queue_bytes + backlog_bytes + write_queue_bytes; }
  const Owner* blamed_owner() const { return owners.empty() ? nullptr : &owners[blamed]; }
};

struct Census {
  std::vector<QueuedSocket> sockets;  // every socket holding anything, largest first
  std::size_t sockets_seen = 0;       // of every kind, queue or not
  std::size_t namespaces = 0;
  std::uint64_t home_netns = 0;       // the scanning process's
  std::uint64_t queued_bytes = 0;     // over all sockets
  double took_s = 0;
  std::vector<std::string> warnings;  // what could not be read, one line each
  // Sockets seen with nothing queued (kernel accounting read): a socket the
  // tracer saw skbs queued on that is here has been read since.
  std::unordered_set<std::uint64_t> empty_sockets;
  // The processes holding each socket seen, queue or not (unresolved: drops
  // name the owner of a socket that holds nothing); only those of the sockets
  // holding anything when the scan had an owner cache (ScanOptions).
  sockets::OwnerMap owners_by_inode;

  const QueuedSocket* find(std::uint64_t inode) const;
};

// From an inventory's sockets. Pure apart from the resolver's cgroup lookups.
Census build_census(const std::vector<sockets::SocketInfo>& sockets, OwnerResolver& owners);
// Scans the node (every network namespace unless options say otherwise).
Census take_census(OwnerResolver& owners, const sockets::ScanOptions& options = {});

class SkbIterators;  // census_iter.hpp

// The census for a command without a tracing session (serve while it only
// watches, doctor): finds the cgroup2 mount, names pods from the kubelet's logs.
class NodeCensus {
 public:
  // With `exact_skb_counts`, loads the BPF socket iterators (census_iter.hpp)
  // for as long as it lives; where they cannot load (not root), the census
  // has sock_diag's bytes only.
  explicit NodeCensus(k8s::LogDirs kubelet_logs = {}, bool exact_skb_counts = false);
  ~NodeCensus();
  // Counts skbs with the iterators when options.count_skbs is empty.
  Census take(const sockets::ScanOptions& options = {});
  // Resolves owners (of a socket that holds nothing, say) the same way.
  std::vector<Owner> resolve(const std::vector<sockets::Owner>& processes) { return owners_.resolve(processes); }

 private:
  std::unique_ptr<k8s::PodNames> pod_names_;  // the resolver points to it
  OwnerResolver owners_;
  std::unique_ptr<SkbIterators> iterators_;
};

// What names a socket in a line of text, whoever built it.
struct SocketLabel {
  std::string family;
  std::string protocol;
  std::uint64_t inode = 0;
  std::uint64_t netns = 0;
  std::optional<Owner> owner;     // the one blamed
  std::size_t other_owners = 0;   // how many more hold it
};
SocketLabel label_of(const QueuedSocket& socket);
// "UDP socket inode 18884 of pid 4242 (leaky) and 1 more in cgroup
// /kubepods/... (pod default/web), netns 4026532288"; the netns is named
// unless it is `home_netns`. Pure.
std::string describe(const SocketLabel& socket, std::uint64_t home_netns = 0);
// "UDP", "unix datagram", "AF_PACKET raw", "netlink-uevent"...
std::string kind_of(const std::string& family, const std::string& protocol);

// Queued before the first census and still there at the last: what a queue
// held at the start, less what it lost since, less what the tracer saw queued
// while it ran (a queue is first in, first out). Pure.
std::uint64_t queued_before_start(std::uint64_t start_bytes, std::uint64_t end_bytes, std::uint64_t traced_bytes);

}  // namespace slabtrace::census
