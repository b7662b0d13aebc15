// The kernel's own accounting of socket queues, from sock_diag netlink, in
// every network namespace. /proc/net says how many bytes a udp or packet socket
// holds; only sock_diag says it for unix sockets (whose queued skbs are charged
// to the sender) and gives rcvbuf and drops for all of them.
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/netlink_diag.h>
#include <linux/packet_diag.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "slabtrace/sockets.hpp"
#include "slabtrace/unique_fd.hpp"

namespace slabtrace::sockets {

namespace {

using Fd = UniqueFd;

constexpr std::uint8_t kTcpListen = 10;  // TCP_LISTEN: unix listeners report it too

// Warnings repeat across namespaces (a family missing from the kernel is
// missing everywhere): say each once, with how often it happened.
class Warnings {
 public:
  void add(std::string message) { ++counts_[std::move(message)]; }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const auto& [message, count] : counts_)
      out.push_back(count == 1 ? message : fmt::format("{} (in {} network namespaces)", message, count));
    return out;
  }

 private:
  std::map<std::string, int> counts_;
};

// ---------------------------------------------------------------------------
// Netlink plumbing

// SK_MEMINFO_* from an attribute payload; older kernels send fewer values.
std::array<std::uint32_t, SK_MEMINFO_VARS> meminfo_from(const void* payload, std::size_t length) {
  std::array<std::uint32_t, SK_MEMINFO_VARS> values{};
  std::memcpy(values.data(), payload, std::min(length, sizeof values));
  return values;
}

void apply_meminfo(const std::array<std::uint32_t, SK_MEMINFO_VARS>& meminfo, QueueAccounting& socket) {
  socket.rmem_alloc_bytes = meminfo[SK_MEMINFO_RMEM_ALLOC];
  socket.rcvbuf_bytes = meminfo[SK_MEMINFO_RCVBUF];
  socket.wmem_alloc_bytes = meminfo[SK_MEMINFO_WMEM_ALLOC];
  socket.drops = meminfo[SK_MEMINFO_DROPS];
  socket.backlog_bytes = meminfo[SK_MEMINFO_BACKLOG];
  socket.write_queue_bytes = meminfo[SK_MEMINFO_WMEM_QUEUED];
}

// Calls on_attribute(type, payload, length) for each attribute after the
// family's fixed reply header.
template <typename OnAttribute>
void for_each_attribute(const nlmsghdr* message, std::size_t reply_header, OnAttribute on_attribute) {
  const char* at = static_cast<const char*>(NLMSG_DATA(message)) + NLMSG_ALIGN(reply_header);
  const char* end = reinterpret_cast<const char*>(message) + message->nlmsg_len;
  while (at + NLA_HDRLEN <= end) {
    nlattr attribute;
    std::memcpy(&attribute, at, sizeof attribute);
    if (attribute.nla_len < NLA_HDRLEN || at + attribute.nla_len > end) break;
    on_attribute(attribute.nla_type & NLA_TYPE_MASK, at + NLA_HDRLEN, attribute.nla_len - NLA_HDRLEN);
    at += NLA_ALIGN(attribute.nla_len);
  }
}

// The errno of a netlink status: 0 or a negated errno from the kernel. Any
// other value (positive, or beyond the errno range: INT_MIN cannot even be
// negated) is a malformed reply and said as EPROTO.
int errno_of_status(int status) {
  if (status == 0) return 0;
  if (status < 0 && status >= -4095) return -status;
  return EPROTO;
}

template <typename T>
T payload_as(const void* payload, std::size_t length) {
  T value{};
  std::memcpy(&value, payload, std::min(length, sizeof value));
  return value;
}

// One socket of a dump reply, by family. Unix queued_bytes need every sender
// (attribute_unix_queues); the others are the socket's own rmem_alloc.
void parse_unix(const nlmsghdr* message, std::uint64_t netns, std::vector<QueueAccounting>& out) {
  auto reply = payload_as<unix_diag_msg>(NLMSG_DATA(message), sizeof(unix_diag_msg));
  QueueAccounting socket(SocketId{reply.udiag_ino, netns, "unix", unix_protocol(reply.udiag_type)});
  socket.listening = reply.udiag_state == kTcpListen;
  for_each_attribute(message, sizeof reply, [&](int type, const void* payload, std::size_t length) {
    if (type == UNIX_DIAG_PEER) socket.peer_inode = payload_as<std::uint32_t>(payload, length);
    if (type == UNIX_DIAG_RQLEN) socket.unix_rqueue = payload_as<unix_diag_rqlen>(payload, length).udiag_rqueue;
    if (type == UNIX_DIAG_MEMINFO) apply_meminfo(meminfo_from(payload, length), socket);
  });
  out.push_back(std::move(socket));
}

std::string inet_protocol(std::uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_UDP: return "udp";
    case IPPROTO_UDPLITE: return "udplite";
    case IPPROTO_TCP: return "tcp";
    default: return fmt::format("ip{}", protocol);
  }
}

void parse_inet(const nlmsghdr* message, const DiagQuery& query, std::uint64_t netns,
                std::vector<QueueAccounting>& out) {
  auto reply = payload_as<inet_diag_msg>(NLMSG_DATA(message), sizeof(inet_diag_msg));
  if (reply.idiag_inode == 0) return;  // TIME_WAIT and request sockets hold no queue
  QueueAccounting socket(SocketId{reply.idiag_inode, netns, reply.idiag_family == AF_INET6 ? "inet6" : "inet",
                                  inet_protocol(query.protocol)});
  for_each_attribute(message, sizeof reply, [&](int type, const void* payload, std::size_t length) {
    if (type == INET_DIAG_SKMEMINFO) apply_meminfo(meminfo_from(payload, length), socket);
  });
  socket.queued_bytes = socket.rmem_alloc_bytes;
  socket.listening = reply.idiag_state == kTcpListen;
  out.push_back(std::move(socket));
}

// Packet and netlink replies say no more than who the socket is and its
// meminfo: the socket's own rmem_alloc is its queue.
void parse_meminfo_reply(const nlmsghdr* message, std::size_t reply_header, int meminfo_attribute, SocketId id,
                         std::vector<QueueAccounting>& out) {
  QueueAccounting socket(std::move(id));
  for_each_attribute(message, reply_header, [&](int type, const void* payload, std::size_t length) {
    if (type == meminfo_attribute) apply_meminfo(meminfo_from(payload, length), socket);
  });
  socket.queued_bytes = socket.rmem_alloc_bytes;
  out.push_back(std::move(socket));
}

void parse_packet(const nlmsghdr* message, std::uint64_t netns, std::vector<QueueAccounting>& out) {
  auto reply = payload_as<packet_diag_msg>(NLMSG_DATA(message), sizeof(packet_diag_msg));
  parse_meminfo_reply(message, sizeof reply, PACKET_DIAG_MEMINFO,
                      SocketId{reply.pdiag_ino, netns, "packet", packet_protocol(reply.pdiag_type)}, out);
}

void parse_netlink(const nlmsghdr* message, std::uint64_t netns, std::vector<QueueAccounting>& out) {
  auto reply = payload_as<netlink_diag_msg>(NLMSG_DATA(message), sizeof(netlink_diag_msg));
  parse_meminfo_reply(message, sizeof reply, NETLINK_DIAG_MEMINFO,
                      SocketId{reply.ndiag_ino, netns, "netlink", netlink_protocol(reply.ndiag_protocol)}, out);
  // The kernel's own sock_diag socket (port 0) is charged for the request it
  // is answering, ours: a skb being read, not one queued.
  if (reply.ndiag_protocol == NETLINK_SOCK_DIAG && reply.ndiag_portid == 0) out.back().queued_bytes = 0;
}

std::size_t reply_size(std::uint8_t family) {
  switch (family) {
    case AF_UNIX: return sizeof(unix_diag_msg);
    case AF_PACKET: return sizeof(packet_diag_msg);
    case AF_NETLINK: return sizeof(netlink_diag_msg);
    default: return sizeof(inet_diag_msg);
  }
}

// Sends one SOCK_DIAG_BY_FAMILY dump request and parses the answer into
// `out`. Returns 0, or the errno that ended the dump.
template <typename Request>
int dump(int netlink, const Request& request, const DiagQuery& query, std::uint64_t netns,
         std::vector<QueueAccounting>& out) {
  struct {
    nlmsghdr header;
    Request body;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.header.nlmsg_seq = 1;
  message.body = request;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(netlink, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
    return errno;

  // Large enough for any dump batch the kernel builds (it fills up to 32 KiB).
  std::vector<char> buffer(64 * 1024);
  while (true) {
    ssize_t received = ::recv(netlink, buffer.data(), buffer.size(), 0);
    if (received < 0 && errno == EINTR) continue;
    if (received < 0) return errno;
    if (received == 0) return 0;
    DiagDumpEnd end = parse_diag_dump(std::string_view(buffer.data(), std::size_t(received)), query, netns, out);
    if (end.done) return end.error;
  }
}

// ---------------------------------------------------------------------------
// Families

int query_unix(int netlink, std::uint64_t netns, std::vector<QueueAccounting>& out) {
  unix_diag_req request{};
  request.sdiag_family = AF_UNIX;
  request.udiag_states = ~0u;
  request.udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_MEMINFO;
  return dump(netlink, request, {AF_UNIX, 0}, netns, out);
}

int query_inet(int netlink, std::uint8_t family, std::uint8_t protocol, std::uint64_t netns,
               std::vector<QueueAccounting>& out) {
  inet_diag_req_v2 request{};
  request.sdiag_family = family;
  request.sdiag_protocol = protocol;
  request.idiag_ext = 1 << (INET_DIAG_SKMEMINFO - 1);
  request.idiag_states = ~0u;
  return dump(netlink, request, {family, protocol}, netns, out);
}

int query_packet(int netlink, std::uint64_t netns, std::vector<QueueAccounting>& out) {
  packet_diag_req request{};
  request.sdiag_family = AF_PACKET;
  request.pdiag_show = PACKET_SHOW_MEMINFO;
  return dump(netlink, request, {AF_PACKET, 0}, netns, out);
}

int query_netlink(int netlink, std::uint64_t netns, std::vector<QueueAccounting>& out) {
  netlink_diag_req request{};
  request.sdiag_family = AF_NETLINK;
  request.sdiag_protocol = NDIAG_PROTO_ALL;
  request.ndiag_show = NDIAG_SHOW_MEMINFO;
  return dump(netlink, request, {AF_NETLINK, 0}, netns, out);
}

std::uint64_t inode_of(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// What the calling thread's namespace has hashed, per protocol (sockstat's
// names: "TCP", "UDP6"); empty where the files cannot be read.
std::unordered_map<std::string, std::uint64_t> hashed_sockets() {
  std::unordered_map<std::string, std::uint64_t> inuse;
  for (const char* file : {"/proc/thread-self/net/sockstat", "/proc/thread-self/net/sockstat6"}) {
    Fd in(::open(file, O_RDONLY | O_CLOEXEC));
    if (!in) continue;
    char buffer[1024];
    ssize_t n = ::read(in.get(), buffer, sizeof buffer);
    if (n > 0) inuse.merge(parse_sockstat_inuse(std::string_view(buffer, std::size_t(n))));
  }
  return inuse;
}

// Every family in the namespace the calling thread is in. A family the kernel
// lacks (diag module not built) or refuses is skipped with a warning.
void query_families(std::uint64_t netns, std::vector<QueueAccounting>& out, Warnings& warnings) {
  Fd netlink(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!netlink) {
    warnings.add(fmt::format("sock_diag netlink socket: {}", std::strerror(errno)));
    return;
  }
  // A kernel that never answers must not hang the scan.
  timeval timeout{5, 0};
  ::setsockopt(netlink.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

  const int fd = netlink.get();
  const std::size_t first = out.size();
  // An inet dump walks every bucket of the protocol's hash table, which is
  // sized by the node's memory and shared by all namespaces (TCP's: 262,144
  // buckets here, half of a watching serve's CPU time for the two TCP dumps).
  // A protocol with nothing hashed in this namespace has nothing a dump could
  // list: sockets leave the hash only as they close (or a UDP disconnect),
  // and the dump finds no others either. Unknown counts are dumped.
  const auto inuse = hashed_sockets();
  auto inet = [&](const char* name, std::uint8_t family, std::uint8_t protocol) {
    auto it = inuse.find(name);
    return it != inuse.end() && it->second == 0 ? 0 : query_inet(fd, family, protocol, netns, out);
  };
  const std::pair<const char*, int> results[] = {
      {"unix", query_unix(fd, netns, out)},
      {"udp", inet("UDP", AF_INET, IPPROTO_UDP)},
      {"udp6", inet("UDP6", AF_INET6, IPPROTO_UDP)},
      {"udplite", inet("UDPLITE", AF_INET, IPPROTO_UDPLITE)},
      {"udplite6", inet("UDPLITE6", AF_INET6, IPPROTO_UDPLITE)},
      {"tcp", inet("TCP", AF_INET, IPPROTO_TCP)},
      {"tcp6", inet("TCP6", AF_INET6, IPPROTO_TCP)},
      {"packet", query_packet(fd, netns, out)},
      {"netlink", query_netlink(fd, netns, out)},
  };
  // Our own query socket holds the replies as they come: not a census subject.
  const std::uint64_t self = inode_of(fd);
  out.erase(std::remove_if(out.begin() + std::ptrdiff_t(first), out.end(),
                           [&](const QueueAccounting& s) { return s.family == "netlink" && s.inode == self; }),
            out.end());
  for (const auto& [family, error] : results)
    if (error != 0) warnings.add(fmt::format("sock_diag {}: {}; its queue accounting is skipped", family, std::strerror(error)));
}

// The first entry point that still leads into `ns` (a PID may have been reused
// by a process elsewhere since the /proc scan).
Fd open_netns(const NetnsHandle& ns) {
  for (const auto& path : ns.ns_paths) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd && inode_of(fd.get()) == ns.inode) return fd;
  }
  return {};
}

// Runs on its own thread: setns() then moves only this thread.
void query_namespaces(const std::vector<NetnsHandle>& namespaces, const SkbCounter& count_skbs,
                      std::vector<QueueAccounting>& out, std::vector<SkbCountScan>& counts, Warnings& warnings) {
  std::uint64_t current = 0;
  if (Fd self(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)); self) current = inode_of(self.get());

  for (const auto& ns : namespaces) {
    if (ns.inode != current) {
      Fd target = open_netns(ns);
      if (!target) {
        warnings.add("a network namespace could not be opened (its processes exited, or not root)");
        continue;
      }
      if (::setns(target.get(), CLONE_NEWNET) != 0) {
        warnings.add(fmt::format("cannot enter other network namespaces: {} (needs CAP_SYS_ADMIN); "
                                 "their queue accounting is skipped",
                                 std::strerror(errno)));
        continue;
      }
      current = ns.inode;
    }
    query_families(ns.inode, out, warnings);
    // After sock_diag: a socket it listed that the iterator does not had
    // nothing queued by then.
    if (count_skbs) {
      counts.push_back(count_skbs(ns.inode));
      for (auto& w : counts.back().warnings) warnings.add(std::move(w));
    }
  }
}

// The truesize the kernel charges for one unix datagram of `length` bytes,
// measured by sending one over a private socketpair; cached per length.
std::uint64_t measured_datagram_truesize(std::uint64_t length) {
  static std::mutex mutex;
  static std::map<std::uint64_t, std::uint64_t> cache;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(length); it != cache.end()) return it->second;

  std::uint64_t truesize = 0;
  int pair[2];
  constexpr std::uint64_t kLargestDatagram = 1 << 20;  // beyond any default sndbuf
  if (length <= kLargestDatagram && ::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) == 0) {
    Fd sender(pair[0]), receiver(pair[1]);
    std::vector<char> datagram(length);
    if (::send(sender.get(), datagram.data(), length, MSG_DONTWAIT) == static_cast<ssize_t>(length)) {
      std::array<std::uint32_t, SK_MEMINFO_VARS> meminfo{};
      socklen_t size = sizeof meminfo;
      if (::getsockopt(sender.get(), SOL_SOCKET, SO_MEMINFO, meminfo.data(), &size) == 0)
        truesize = meminfo[SK_MEMINFO_WMEM_ALLOC];
    }
  }
  cache.emplace(length, truesize);
  return truesize;
}

}  // namespace

DiagDumpEnd parse_diag_dump(std::string_view bytes, const DiagQuery& query, std::uint64_t netns,
                            std::vector<QueueAccounting>& out) {
  // Messages are copied out one by one: a recv() buffer carries no alignment
  // promise for this parser's callers (fixtures are read into strings).
  std::vector<std::uint32_t> aligned;
  std::size_t at = 0;
  while (at + NLMSG_HDRLEN <= bytes.size()) {
    nlmsghdr header;
    std::memcpy(&header, bytes.data() + at, sizeof header);
    if (header.nlmsg_len < NLMSG_HDRLEN || at + header.nlmsg_len > bytes.size()) break;
    aligned.assign((header.nlmsg_len + 3) / 4, 0);
    std::memcpy(aligned.data(), bytes.data() + at, header.nlmsg_len);
    const auto* message = reinterpret_cast<const nlmsghdr*>(aligned.data());
    at += NLMSG_ALIGN(header.nlmsg_len);

    if (header.nlmsg_type == NLMSG_DONE) {
      // A dump that failed half-way says so in NLMSG_DONE's payload.
      int status = header.nlmsg_len >= NLMSG_LENGTH(sizeof(int)) ? payload_as<int>(NLMSG_DATA(message), sizeof(int)) : 0;
      return {true, status > 0 ? 0 : errno_of_status(status)};
    }
    if (header.nlmsg_type == NLMSG_ERROR) {
      auto error = payload_as<nlmsgerr>(NLMSG_DATA(message), header.nlmsg_len - NLMSG_HDRLEN);
      return {true, errno_of_status(error.error)};
    }
    if (header.nlmsg_type != SOCK_DIAG_BY_FAMILY || header.nlmsg_len < NLMSG_LENGTH(reply_size(query.family))) continue;
    switch (query.family) {
      case AF_UNIX: parse_unix(message, netns, out); break;
      case AF_PACKET: parse_packet(message, netns, out); break;
      case AF_NETLINK: parse_netlink(message, netns, out); break;
      default: parse_inet(message, query, netns, out); break;
    }
  }
  return {};
}

std::string netlink_protocol(unsigned protocol) {
  switch (protocol) {
    case NETLINK_ROUTE: return "netlink-route";
    case NETLINK_SOCK_DIAG: return "netlink-sock-diag";
    case NETLINK_NFLOG: return "netlink-nflog";
    case NETLINK_XFRM: return "netlink-xfrm";
    case NETLINK_SELINUX: return "netlink-selinux";
    case NETLINK_AUDIT: return "netlink-audit";
    case NETLINK_NETFILTER: return "netlink-netfilter";
    case NETLINK_KOBJECT_UEVENT: return "netlink-uevent";
    case NETLINK_GENERIC: return "netlink-generic";
    case NETLINK_CONNECTOR: return "netlink-connector";
    default: return fmt::format("netlink-{}", protocol);
  }
}

void attribute_unix_queues(std::vector<QueueAccounting>& sockets,
                           const std::function<std::uint64_t(std::uint64_t len)>& datagram_truesize) {
  // A queued unix skb is charged to the socket that sent it, and a connected
  // sender sends only to its peer: what a socket's senders hold is its queue.
  std::unordered_map<std::uint64_t, std::uint64_t> held_for;  // receiver inode -> bytes
  for (const auto& s : sockets)
    if (s.family == "unix" && s.peer_inode != 0) held_for[s.peer_inode] += s.wmem_alloc_bytes;

  for (auto& s : sockets) {
    if (s.family != "unix") continue;
    auto held = held_for.find(s.inode);
    s.queued_bytes = held == held_for.end() ? 0 : held->second;
    s.queued_skbs.reset();
    s.queued_skbs_estimated = false;
    if (s.listening) {
      s.queued_skbs = s.unix_rqueue;  // one skb per connection waiting for accept()
    } else if (s.protocol == "unix-dgram") {
      // unix_rqueue is the length of the first queued datagram (0: none, or an
      // empty one). Bytes without senders we can see leave the count unknown.
      if (s.queued_bytes == 0 && s.unix_rqueue == 0) {
        s.queued_skbs = 0;
      } else if (std::uint64_t one = s.queued_bytes ? datagram_truesize(s.unix_rqueue) : 0; one > 0) {
        s.queued_skbs = (s.queued_bytes + one / 2) / one;  // rounded: mixed sizes are an estimate anyway
        s.queued_skbs_estimated = true;
      }
    }
  }
}

std::optional<SkbCountKind> skb_count_kind(const SocketId& socket) {
  if (socket.family == "unix") return SkbCountKind::Unix;
  if (socket.family == "netlink") return SkbCountKind::Netlink;
  if (socket.family == "inet" || socket.family == "inet6") {
    if (socket.protocol == "udp") return SkbCountKind::Udp;  // not UDP-Lite: its own table
    if (socket.protocol == "tcp") return SkbCountKind::Tcp;
  }
  return std::nullopt;
}

void merge_skb_counts(std::vector<QueueAccounting>& sockets, const std::vector<SkbCountScan>& scans) {
  std::unordered_map<std::uint64_t, const SkbCountScan*> scan_of;  // netns -> its scan
  std::unordered_map<std::uint64_t, const SkbCount*> count_of;      // socket inode -> its count
  for (const auto& scan : scans) {
    scan_of[scan.netns] = &scan;
    for (const auto& c : scan.sockets) count_of[c.inode] = &c;
  }
  for (auto& s : sockets) {
    auto kind = skb_count_kind(s);
    auto scan = scan_of.find(s.netns);
    if (!kind || scan == scan_of.end() || !scan->second->covers(*kind)) continue;
    auto count = count_of.find(s.inode);
    s.queued_skbs_estimated = false;
    if (count == count_of.end()) {
      s.queued_skbs = 0;
    } else if (count->second->netns != s.netns || count->second->kind != *kind) {
      s.queued_skbs.reset();  // an inode reused between the two reads: no count is better than another's
    } else if (count->second->exact) {
      s.queued_skbs = count->second->total();
    } else {
      s.queued_skbs.reset();
    }
  }
}

AccountingScan query_queue_accounting(const std::vector<NetnsHandle>& namespaces, const SkbCounter& count_skbs) {
  AccountingScan scan;
  Warnings warnings;
  try {
    std::vector<SkbCountScan> counts;
    // setns() moves only the calling thread: a thread of our own keeps the
    // rest of the process, and the caller's later sockets, where they are.
    std::thread worker([&]() noexcept {
      try {
        query_namespaces(namespaces, count_skbs, scan.sockets, counts, warnings);
      } catch (const std::exception& e) {
        warnings.add(fmt::format("sock_diag scan stopped: {}", e.what()));
      }
    });
    worker.join();
    attribute_unix_queues(scan.sockets, measured_datagram_truesize);
    merge_skb_counts(scan.sockets, counts);
  } catch (const std::exception& e) {
    warnings.add(fmt::format("sock_diag scan not run: {}", e.what()));
  }
  scan.warnings = warnings.lines();
  return scan;
}

}  // namespace slabtrace::sockets
