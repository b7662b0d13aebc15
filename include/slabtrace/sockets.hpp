#pragma once
// The socket inventory: from a socket as the BPF side sees it (socket inode, and
// the inode of its network namespace) to the processes that own it, their
// cgroups, and the kernel's own accounting of what sits in its receive queue.
// Covers every network namespace on the node: containers have their own.
//
// Usage (the model, once per report interval or when a verdict needs a holder):
//
//   auto inventory = sockets::SocketInventory::scan({});
//   if (const sockets::SocketInfo* sock = inventory.find(inode)) {
//     std::uint64_t held = sock->queued_bytes();  // cross-check with BPF counts
//   }
//   // unix skbs carry their sender in skb->sk; the holder is its peer:
//   const sockets::SocketInfo* holder = inventory.unix_receiver_of(sender_inode);
//   for (const auto& warning : inventory.warnings()) ...  // say once what is missing
//
// Socket inode numbers come from one kernel-wide pseudo filesystem (sockfs), so
// they are unique across network namespaces: the inode alone finds a socket.
#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "slabtrace/error.hpp"

namespace slabtrace::sockets {

// ---------------------------------------------------------------------------
// /proc/net parsers. Each names `source` in its errors ("udp line 3: ...").

// One line of /proc/net/{udp,udp6,tcp,tcp6,raw,raw6}: the inet tables share a
// layout up to the socket pointer; udp and raw add a drops column.
struct InetSocketLine {
  std::string local_address;   // "127.0.0.1", "::1"
  std::uint16_t local_port = 0;
  std::string remote_address;
  std::uint16_t remote_port = 0;
  std::uint8_t state = 0;      // TCP_* numbering, also for udp (7 = unconnected)
  std::uint64_t tx_queue = 0;
  // udp/raw: bytes (truesize) charged to the receive queue; tcp: unread payload
  // bytes, or the accept backlog of a listener.
  std::uint64_t rx_queue = 0;
  std::uint32_t uid = 0;
  std::uint64_t inode = 0;     // 0 for TIME_WAIT and request sockets
  std::uint32_t refcount = 0;
  std::uint64_t drops = 0;     // 0 where the table has no drops column (tcp)
};
std::vector<InetSocketLine> parse_proc_net_inet(std::istream& in, std::string_view source = "udp");

// One line of /proc/net/unix.
struct UnixSocketLine {
  std::uint32_t refcount = 0;
  std::uint32_t flags = 0;     // 0x10000 (__SO_ACCEPTCON): listening
  std::uint16_t type = 0;      // SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5
  std::uint8_t state = 0;      // SS_UNCONNECTED 1, SS_CONNECTING 2, SS_CONNECTED 3
  std::uint64_t inode = 0;
  std::string path;            // "" if unbound; abstract names start with '@'
};
std::vector<UnixSocketLine> parse_proc_net_unix(std::istream& in, std::string_view source = "unix");

// One line of /proc/net/packet.
struct PacketSocketLine {
  std::uint32_t refcount = 0;
  std::uint16_t type = 0;      // SOCK_RAW 3 (link-layer header kept), SOCK_DGRAM 2
  std::uint16_t protocol = 0;  // ethertype in host order: 0x0003 ETH_P_ALL, 0x0800 IP
  std::int32_t ifindex = 0;    // 0: bound to every interface
  bool running = false;
  std::uint64_t rmem = 0;      // bytes (truesize) charged to the receive queue
  std::uint32_t uid = 0;
  std::uint64_t inode = 0;
};
std::vector<PacketSocketLine> parse_proc_net_packet(std::istream& in, std::string_view source = "packet");

// The sockets each protocol has hashed in a namespace, from the text of its
// /proc/net/sockstat or sockstat6: "TCP: inuse 3 orphan 0 ..." -> {"TCP", 3}.
// Lines without an inuse figure are left out; nothing throws.
std::unordered_map<std::string, std::uint64_t> parse_sockstat_inuse(std::string_view text);

// Protocol names shared by the inventory and the sock_diag side.
std::string unix_protocol(unsigned sock_type);    // 1 -> "unix-stream", 2 -> "unix-dgram", 5 -> "unix-seqpacket"
std::string packet_protocol(unsigned sock_type);  // 3 -> "packet-raw", 2 -> "packet-dgram"

// ---------------------------------------------------------------------------
// Owners: processes holding a descriptor to the socket.

struct Owner {
  int pid = 0;
  std::string comm;
  std::uint64_t netns = 0;   // the process's network namespace (may differ from the socket's)
  std::string cgroup;        // cgroup-v2 path ("0::" line of /proc/PID/cgroup), "" on v1-only hosts
  int ppid = 0;              // its parent, 0 if unknown
};
using OwnerMap = std::unordered_map<std::uint64_t /*socket inode*/, std::vector<Owner>>;

// Reads every /proc/PID/fd once. Processes that exit or are unreadable during
// the scan are skipped; nothing throws. A process appears once per socket even
// when it holds several descriptors to it.
OwnerMap scan_socket_owners(const std::string& proc_root = "/proc");

// A process's descriptor to a socket: /proc/PID/fd/FD.
struct Descriptor {
  int pid = 0;
  int fd = -1;
};

// Socket owners remembered from one walk of every /proc/PID/fd to the next,
// for a command that takes a census every few seconds (serve while it
// watches): the walk reads a link per descriptor on the node, and was most of
// an idle serve's own CPU time. Only the descriptors are remembered; what an
// owner is called (comm, cgroup, parent, netns) is read afresh each time it is
// asked for, through the process's /proc directory, after checking that the
// remembered descriptor still points at the socket, so an owner that exited,
// closed it, or whose pid was reused is never reported.
class OwnerCache {
 public:
  // A process can come to hold a socket already known (fork, SCM_RIGHTS)
  // without any sign in the census: every walk older than this is redone
  // when an owner is asked for.
  explicit OwnerCache(double rewalk_after_s = 60) : rewalk_after_s_(rewalk_after_s) {}

  // The owners of each socket in `wanted` (which must be in `seen`, every
  // socket the census found now; sockets without owners are left out). Walks
  // every descriptor first when a wanted socket was not there at the last walk
  // (new, or its inode reused: a socket missing from `seen` is forgotten),
  // when one of its remembered holders no longer holds it, or when the last
  // walk is older than rewalk_after_s. A socket no process held at the last
  // walk stays without owners until then. Wanting nothing reads nothing.
  OwnerMap owners(const std::string& proc_root, const std::vector<std::uint64_t>& wanted,
                  const std::unordered_set<std::uint64_t>& seen, double now_s);

  std::size_t walks() const { return walks_; }

 private:
  void walk(const std::string& proc_root, const std::unordered_set<std::uint64_t>& seen, double now_s);

  double rewalk_after_s_;
  // Every socket seen since the last walk, with the descriptors that walk found
  // (none: no process held it then).
  std::unordered_map<std::uint64_t, std::vector<Descriptor>> known_;
  std::optional<double> walked_at_;
  std::size_t walks_ = 0;
};

// The parent pid from the text of /proc/PID/stat; 0 if it cannot be read.
int parent_pid_of(std::string_view stat);

// ---------------------------------------------------------------------------
// What names a socket in every view of it.

struct SocketId {
  std::uint64_t inode = 0;
  std::uint64_t netns = 0;  // the namespace the socket lives in
  std::string family;       // "inet", "inet6", "unix", "packet", "netlink"
  // "udp", "udplite", "tcp", "raw", "unix-stream", "unix-dgram",
  // "unix-seqpacket", "packet-raw", "packet-dgram", "netlink-route", ...
  std::string protocol;
};

// ---------------------------------------------------------------------------
// The kernel's queue accounting, from sock_diag netlink.

struct QueueAccounting : SocketId {
  QueueAccounting() = default;
  explicit QueueAccounting(SocketId id) : SocketId(std::move(id)) {}

  // The socket's own SK_MEMINFO_RMEM_ALLOC. Always 0 for unix sockets: the
  // kernel charges a queued unix skb to the socket that *sent* it.
  std::uint64_t rmem_alloc_bytes = 0;
  std::uint64_t rcvbuf_bytes = 0;
  // SK_MEMINFO_WMEM_ALLOC. For unix sockets: the truesize of what this socket
  // sent that its peers have not read yet.
  std::uint64_t wmem_alloc_bytes = 0;
  // Truesize of the skbs waiting in this socket's receive queue: rmem_alloc for
  // inet and packet; for unix, the wmem_alloc of every socket whose peer is this
  // one (exact for socketpairs and connected senders; a sender that uses
  // sendto() without connect(), or has closed, is not seen).
  std::uint64_t queued_bytes = 0;
  // Number of skbs queued (receive queue, backlog and write queue), where the
  // kernel lets us know it: from BPF socket iterators exactly for UDP, TCP,
  // unix (5.17+) and netlink sockets (merge_skb_counts); without them, unix
  // listeners (pending connections) exactly and unix datagram sockets
  // estimated (below). sock_diag exposes no count for inet or packet sockets,
  // and packet sockets have no iterator: unknown.
  std::optional<std::uint64_t> queued_skbs;
  // For unix datagram sockets the kernel reports only the length of the *first*
  // queued datagram (udiag_rqueue), not a count; queued_skbs is then
  // queued_bytes / (truesize of one datagram of that length, measured on this
  // kernel): exact when the queued datagrams have one size, as leaks usually do.
  bool queued_skbs_estimated = false;
  std::uint64_t drops = 0;           // SK_MEMINFO_DROPS
  // SK_MEMINFO_BACKLOG: skbs that arrived while a user held the socket lock,
  // not yet moved to the receive queue (tcp, udp under load).
  std::uint64_t backlog_bytes = 0;
  // SK_MEMINFO_WMEM_QUEUED: the write queue, skbs waiting to be sent or acked
  // (tcp); udp and unix keep none.
  std::uint64_t write_queue_bytes = 0;
  std::uint64_t peer_inode = 0;      // unix: the connected peer, 0 if none
  // unix: udiag_rqueue as the kernel reports it (first datagram length, unread
  // stream bytes, or pending connections of a listener).
  std::uint64_t unix_rqueue = 0;
  bool listening = false;
};

// A network namespace and the files through which it can be entered
// ("/proc/PID/ns/net" of processes inside it); the first that opens is used.
struct NetnsHandle {
  std::uint64_t inode = 0;
  std::vector<std::string> ns_paths;
};

// ---------------------------------------------------------------------------
// sock_diag replies, parsed without I/O: what a dump of one family says.

struct DiagQuery {
  std::uint8_t family = 0;    // AF_UNIX, AF_INET, AF_INET6, AF_PACKET, AF_NETLINK
  std::uint8_t protocol = 0;  // inet: IPPROTO_UDP, IPPROTO_UDPLITE, IPPROTO_TCP
};
struct DiagDumpEnd {
  bool done = false;  // NLMSG_DONE or NLMSG_ERROR seen
  int error = 0;      // errno the kernel ended the dump with, 0 if none
};
// Parses `bytes` (one or more recv() buffers of a SOCK_DIAG_BY_FAMILY dump,
// as the kernel sent them), appending one QueueAccounting per socket, in
// `netns`. Truncated or malformed messages end the parse: nothing throws.
// Unix queued_bytes are left to attribute_unix_queues.
DiagDumpEnd parse_diag_dump(std::string_view bytes, const DiagQuery& query, std::uint64_t netns,
                            std::vector<QueueAccounting>& out);
// The name of a netlink protocol: 0 -> "netlink-route", 15 -> "netlink-uevent".
std::string netlink_protocol(unsigned protocol);

// ---------------------------------------------------------------------------
// Exact sk_buff counts, from BPF socket iterators (census_iter.hpp): the
// kernel's own queue lengths (qlen), where sock_diag gives only bytes.

// The tables an iterator walks. UDP-Lite, raw and packet sockets have none.
enum class SkbCountKind : unsigned { Udp = 1, Tcp = 2, Unix = 4, Netlink = 8 };

// One socket with anything queued, as an iterator found it.
struct SkbCount {
  std::uint64_t inode = 0;
  std::uint64_t netns = 0;
  SkbCountKind kind = SkbCountKind::Udp;
  std::uint32_t receive = 0;  // receive queue (UDP: with its reader queue)
  std::uint32_t backlog = 0;
  std::uint32_t write = 0;
  // false: a lower bound only (TCP skbs awaiting an ack or out of order sit in
  // rbtrees without a count; a backlog longer than the iterator walks).
  bool exact = true;
  std::uint64_t total() const { return std::uint64_t(receive) + backlog + write; }
};

// What the iterators found in one namespace. A socket of a kind in `kinds`
// that is not listed had nothing queued when its table was walked.
struct SkbCountScan {
  std::uint64_t netns = 0;
  unsigned kinds = 0;  // SkbCountKind bits of the iterators that ran
  std::vector<SkbCount> sockets;
  std::vector<std::string> warnings;
  bool covers(SkbCountKind kind) const { return (kinds & unsigned(kind)) != 0; }
};

// Counts in the calling thread's network namespace (whose inode is `netns`).
using SkbCounter = std::function<SkbCountScan(std::uint64_t netns)>;

// The iterator kind that walks a socket of this family and protocol, if any.
std::optional<SkbCountKind> skb_count_kind(const SocketId& socket);

// Sets queued_skbs from the iterators' counts (after attribute_unix_queues):
// exact, not estimated, for every socket whose table was walked in its
// namespace; unknown where the count is only a lower bound. Sockets no
// iterator covers keep what sock_diag said. Pure.
void merge_skb_counts(std::vector<QueueAccounting>& sockets, const std::vector<SkbCountScan>& scans);

struct AccountingScan {
  std::vector<QueueAccounting> sockets;
  std::vector<std::string> warnings;  // one line per family or namespace that could not be read
};

// Queries unix, inet/inet6 (udp, tcp) and packet sockets in each namespace.
// Namespaces are entered from one dedicated thread, so the calling process
// stays where it is; entering another namespace needs CAP_SYS_ADMIN. Failures
// (not permitted, family not built into the kernel) become warnings; unix
// queued_bytes / queued_skbs are filled in across all the namespaces (a unix
// peer may live in another one). With `count_skbs`, it runs in each namespace
// after sock_diag and its counts are merged (merge_skb_counts).
AccountingScan query_queue_accounting(const std::vector<NetnsHandle>& namespaces,
                                      const SkbCounter& count_skbs = {});

// Fills unix queued_bytes / queued_skbs from the senders' wmem_alloc (see
// QueueAccounting). `datagram_truesize(len)` is the truesize of one datagram of
// `len` bytes, 0 if unknown. Pure: query_queue_accounting passes one that
// measures it on this kernel.
void attribute_unix_queues(std::vector<QueueAccounting>& sockets,
                           const std::function<std::uint64_t(std::uint64_t len)>& datagram_truesize);

// ---------------------------------------------------------------------------
// The inventory.

struct SocketInfo : SocketId {
  SocketInfo() = default;
  explicit SocketInfo(SocketId id) : SocketId(std::move(id)) {}

  // "127.0.0.1:5353", "[::1]:53", a unix path or "@abstract", "ifindex 2"; empty
  // for tcp, which comes from sock_diag only (see ScanOptions).
  std::string local;
  std::string remote;     // "" when not connected
  // From /proc/net: udp/raw rx_queue and packet Rmem are truesize bytes charged
  // to the receive queue; tcp rx_queue is unread payload; unix has none (0).
  std::uint64_t rx_queue_bytes = 0;
  std::uint64_t drops = 0;
  std::vector<Owner> owners;                  // empty: no process holds it (closed, kernel-held)
  std::optional<QueueAccounting> accounting;  // absent where sock_diag could not be read

  // Bytes held in the receive queue: the kernel's sock_diag figure where known,
  // else the /proc/net one.
  std::uint64_t queued_bytes() const;
  // Where the kernel lets it be known (see QueueAccounting::queued_skbs).
  std::optional<std::uint64_t> queued_skbs() const;
  // Anything in its receive, backlog or write queue by the kernel's
  // accounting, or its /proc/net figure where that was not read: the sockets
  // the census lists.
  bool holds_anything() const;
};

struct NetnsInfo {
  std::uint64_t inode = 0;
  std::vector<int> pids;   // processes in it, ascending
};

// The scan reads /proc/net/{udp,udp6,raw,raw6,unix,packet} of each namespace
// and, with kernel_accounting, sock_diag for unix, udp, tcp and packet. tcp is
// not read from /proc/net: every read of it walks the whole connection hash.
struct ScanOptions {
  std::string proc_root = "/proc";
  bool all_namespaces = true;     // false: only the caller's network namespace
  bool kernel_accounting = true;  // sock_diag queries (queued skbs, unix queues)
  // With kernel_accounting: exact skb counts (census_iter.hpp's BPF iterators,
  // root only). Empty: sock_diag's bytes, and its estimates for unix datagrams.
  SkbCounter count_skbs;
  // Set: owners only of the sockets that hold anything (holds_anything), from
  // the cache (which walks every descriptor only when it must); the other
  // sockets have none. Null: every socket's owners, from a walk of every
  // /proc/PID/fd. The cache must outlive the scan.
  OwnerCache* owner_cache = nullptr;
};

class SocketInventory {
 public:
  // Never throws for what it finds on the node: unreadable files, vanished
  // processes and unsupported families become warnings().
  static SocketInventory scan(const ScanOptions& options = {});

  const SocketInfo* find(std::uint64_t inode) const;
  // For unix sockets the BPF side sees the *sender* on a queued skb (skb->sk);
  // the holder is the sender's connected peer. Returns that peer, or nullptr.
  const SocketInfo* unix_receiver_of(std::uint64_t sender_inode) const;

  const std::vector<SocketInfo>& sockets() const { return sockets_; }
  const std::vector<NetnsInfo>& namespaces() const { return namespaces_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  std::uint64_t own_netns() const { return own_netns_; }  // the scanning process's

 private:
  std::vector<SocketInfo> sockets_;
  std::unordered_map<std::uint64_t, std::size_t> by_inode_;
  std::vector<NetnsInfo> namespaces_;
  std::vector<std::string> warnings_;
  std::uint64_t own_netns_ = 0;
};

// A socket is described for people by census::describe (census.hpp).

}  // namespace slabtrace::sockets
