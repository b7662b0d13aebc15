// The socket inventory: /proc/net tables, socket owners from /proc/PID/fd, and
// the merge with the kernel's sock_diag accounting (sock_diag.cpp).
#include "slabtrace/sockets.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "slabtrace/procfs.hpp"
#include "slabtrace/unique_fd.hpp"
// The line reader every kernel-text parser uses, so errors read the same.
#include "../procfs/text_parsing.hpp"

namespace slabtrace::sockets {

namespace {

using procfs::detail::LineReader;
using procfs::detail::split_fields;

// Reads a /proc/net table: a header line, then one socket per line.
class TableReader {
 public:
  TableReader(std::istream& in, std::string_view source, std::string_view first_column)
      : lines_(in, std::string(source)) {
    if (!lines_.next(line_)) lines_.fail_input("empty, expected a header");
    for (auto field : split_fields(line_)) header_.emplace_back(field);
    if (header_.empty() || header_[0] != first_column)
      lines_.fail(fmt::format("expected a header starting with '{}'", first_column));
  }

  // The inet tables differ in their last columns (udp and raw have "drops").
  bool has_column(std::string_view name) const {
    return std::find(header_.begin(), header_.end(), name) != header_.end();
  }

  // Moves to the next non-blank line, which must have at least `min_fields`
  // fields; false at the end.
  bool next(std::size_t min_fields) {
    while (lines_.next(line_)) {
      fields_ = split_fields(line_);
      if (fields_.empty()) continue;
      if (fields_.size() < min_fields)
        lines_.fail(fmt::format("expected at least {} fields, got {}", min_fields, fields_.size()));
      return true;
    }
    return false;
  }

  std::size_t field_count() const { return fields_.size(); }
  std::string_view field(std::size_t i) const { return fields_[i]; }
  // The line from the start of field i on (a unix path may contain spaces).
  std::string_view rest_from(std::size_t i) const {
    return std::string_view(line_).substr(static_cast<std::size_t>(fields_[i].data() - line_.data()));
  }
  template <typename T>
  T hex(std::string_view text, std::string_view what) const { return lines_.number<T>(text, what, 16); }
  template <typename T>
  T hex(std::size_t i, std::string_view what) const { return hex<T>(fields_[i], what); }
  template <typename T>
  T dec(std::size_t i, std::string_view what) const { return lines_.number<T>(fields_[i], what); }
  [[noreturn]] void fail(std::string_view what) const { lines_.fail(what); }

 private:
  LineReader lines_;
  std::string line_;
  std::vector<std::string> header_;
  std::vector<std::string_view> fields_;
};

// "0100007F:AF71" -> ("127.0.0.1", 44913). The kernel prints each 32-bit word of
// the (network order) address as a native integer, so copying the parsed words
// back into memory restores the network-order bytes.
std::pair<std::string, std::uint16_t> inet_endpoint(const TableReader& table, std::size_t i) {
  std::string_view text = table.field(i);
  auto colon = text.find(':');
  std::string_view hex_address = text.substr(0, colon);
  if (colon == std::string_view::npos || (hex_address.size() != 8 && hex_address.size() != 32))
    table.fail(fmt::format("bad address '{}'", text));

  std::array<std::uint32_t, 4> words{};
  for (std::size_t w = 0; w < hex_address.size() / 8; ++w)
    words[w] = table.hex<std::uint32_t>(hex_address.substr(w * 8, 8), "address");
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(hex_address.size() == 8 ? AF_INET : AF_INET6, words.data(), buffer, sizeof buffer);
  return {buffer, table.hex<std::uint16_t>(text.substr(colon + 1), "port")};
}

// "00000000:00004600" -> (0, 0x4600)
std::pair<std::uint64_t, std::uint64_t> queue_pair(const TableReader& table, std::size_t i) {
  std::string_view text = table.field(i);
  auto colon = text.find(':');
  if (colon == std::string_view::npos) table.fail(fmt::format("bad tx_queue:rx_queue '{}'", text));
  return {table.hex<std::uint64_t>(text.substr(0, colon), "tx_queue"),
          table.hex<std::uint64_t>(text.substr(colon + 1), "rx_queue")};
}

}  // namespace

// ---------------------------------------------------------------------------
// Parsers

std::vector<InetSocketLine> parse_proc_net_inet(std::istream& in, std::string_view source) {
  // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer [drops]
  enum { kLocal = 1, kRemote, kState, kQueues, kUid = 7, kInode = 9, kRef, kPointer, kDrops };
  TableReader table(in, source, "sl");
  // tcp has timer and congestion columns where udp and raw have drops.
  const bool has_drops = table.has_column("drops");
  std::vector<InetSocketLine> lines;
  while (table.next(has_drops ? kDrops + 1 : kPointer + 1)) {
    InetSocketLine s;
    std::tie(s.local_address, s.local_port) = inet_endpoint(table, kLocal);
    std::tie(s.remote_address, s.remote_port) = inet_endpoint(table, kRemote);
    s.state = table.hex<std::uint8_t>(kState, "st");
    std::tie(s.tx_queue, s.rx_queue) = queue_pair(table, kQueues);
    s.uid = table.dec<std::uint32_t>(kUid, "uid");
    s.inode = table.dec<std::uint64_t>(kInode, "inode");
    s.refcount = table.dec<std::uint32_t>(kRef, "ref");
    if (has_drops) s.drops = table.dec<std::uint64_t>(kDrops, "drops");
    lines.push_back(std::move(s));
  }
  return lines;
}

std::vector<UnixSocketLine> parse_proc_net_unix(std::istream& in, std::string_view source) {
  // Num RefCount Protocol Flags Type St Inode [Path]
  enum { kRefCount = 1, kFlags = 3, kType, kState, kInode, kPath };
  TableReader table(in, source, "Num");
  std::vector<UnixSocketLine> lines;
  while (table.next(kInode + 1)) {
    UnixSocketLine s;
    s.refcount = table.hex<std::uint32_t>(kRefCount, "RefCount");
    s.flags = table.hex<std::uint32_t>(kFlags, "Flags");
    s.type = table.hex<std::uint16_t>(kType, "Type");
    s.state = table.hex<std::uint8_t>(kState, "St");
    s.inode = table.dec<std::uint64_t>(kInode, "Inode");
    if (table.field_count() > kPath) {
      std::string_view path = table.rest_from(kPath);
      if (path.back() == '\r') path.remove_suffix(1);
      s.path = std::string(path);
    }
    lines.push_back(std::move(s));
  }
  return lines;
}

std::vector<PacketSocketLine> parse_proc_net_packet(std::istream& in, std::string_view source) {
  // sk RefCnt Type Proto Iface R Rmem User Inode
  enum { kRefCnt = 1, kType, kProto, kIface, kRunning, kRmem, kUser, kInode };
  TableReader table(in, source, "sk");
  std::vector<PacketSocketLine> lines;
  while (table.next(kInode + 1)) {
    PacketSocketLine s;
    s.refcount = table.dec<std::uint32_t>(kRefCnt, "RefCnt");
    s.type = table.dec<std::uint16_t>(kType, "Type");
    s.protocol = table.hex<std::uint16_t>(kProto, "Proto");
    s.ifindex = table.dec<std::int32_t>(kIface, "Iface");
    s.running = table.dec<int>(kRunning, "R") != 0;
    s.rmem = table.dec<std::uint64_t>(kRmem, "Rmem");
    s.uid = table.dec<std::uint32_t>(kUser, "User");
    s.inode = table.dec<std::uint64_t>(kInode, "Inode");
    lines.push_back(s);
  }
  return lines;
}

std::unordered_map<std::string, std::uint64_t> parse_sockstat_inuse(std::string_view text) {
  std::unordered_map<std::string, std::uint64_t> inuse;
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    auto fields = procfs::detail::split_fields(line);
    if (fields.size() < 3 || fields[0].size() < 2 || fields[0].back() != ':') continue;
    for (std::size_t i = 1; i + 1 < fields.size(); i += 2) {
      if (fields[i] != "inuse") continue;
      std::uint64_t n = 0;
      auto [ptr, ec] = std::from_chars(fields[i + 1].data(), fields[i + 1].data() + fields[i + 1].size(), n);
      if (ec == std::errc() && ptr == fields[i + 1].data() + fields[i + 1].size())
        inuse[std::string(fields[0].substr(0, fields[0].size() - 1))] = n;
    }
  }
  return inuse;
}

std::string unix_protocol(unsigned sock_type) {
  switch (sock_type) {
    case SOCK_STREAM: return "unix-stream";
    case SOCK_DGRAM: return "unix-dgram";
    case SOCK_SEQPACKET: return "unix-seqpacket";
    default: return fmt::format("unix-type{}", sock_type);
  }
}

std::string packet_protocol(unsigned sock_type) {
  switch (sock_type) {
    case SOCK_RAW: return "packet-raw";
    case SOCK_DGRAM: return "packet-dgram";
    default: return fmt::format("packet-type{}", sock_type);
  }
}

// ---------------------------------------------------------------------------
// Owners

namespace {

std::optional<std::string> read_link_at(int dir_fd, const char* name) {
  char buffer[256];
  ssize_t n = ::readlinkat(dir_fd, name, buffer, sizeof buffer);
  if (n <= 0 || static_cast<std::size_t>(n) == sizeof buffer) return std::nullopt;
  return std::string(buffer, static_cast<std::size_t>(n));
}

// The number in "socket:[12345]" / "net:[4026531833]"; 0 if `link` is not of
// that kind.
std::uint64_t bracketed_inode(std::string_view link, std::string_view kind) {
  if (link.size() < kind.size() + 3 || link.substr(0, kind.size()) != kind ||
      link.substr(kind.size(), 2) != ":[" || link.back() != ']')
    return 0;
  std::string_view digits = link.substr(kind.size() + 2, link.size() - kind.size() - 3);
  std::uint64_t inode = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), inode);
  return ec == std::errc() && end == digits.data() + digits.size() ? inode : 0;
}

std::optional<std::string> read_file_at(int dir_fd, const char* name) {
  UniqueFd file(::openat(dir_fd, name, O_RDONLY | O_CLOEXEC));
  if (!file) return std::nullopt;
  std::string content;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(file.get(), buffer, sizeof buffer)) > 0) content.append(buffer, static_cast<std::size_t>(n));
  if (n < 0) return std::nullopt;
  return content;
}

std::string cgroup2_path_of(int pid_fd) {
  auto content = read_file_at(pid_fd, "cgroup");
  if (!content) return {};
  std::istringstream in(*content);
  try {
    return procfs::cgroup2_path(procfs::parse_proc_cgroup(in)).value_or("");
  } catch (const ParseError&) {
    return {};
  }
}

}  // namespace

int parent_pid_of(std::string_view stat) {
  // "PID (comm) STATE PPID ...": comm may hold spaces and parentheses, so
  // count from the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string_view::npos) return 0;
  auto fields = procfs::detail::split_fields(stat.substr(close + 1));
  if (fields.size() < 2) return 0;
  int ppid = 0;
  auto [end, ec] = std::from_chars(fields[1].data(), fields[1].data() + fields[1].size(), ppid);
  return ec == std::errc() && end == fields[1].data() + fields[1].size() ? ppid : 0;
}

namespace {

bool is_pid(const char* name) {
  if (*name == '\0') return false;
  for (; *name; ++name)
    if (*name < '0' || *name > '9') return false;
  return true;
}

std::uint64_t netns_at(int pid_fd) {
  auto link = read_link_at(pid_fd, "ns/net");
  return link ? bracketed_inode(*link, "net") : 0;
}

// What names a process, read through its /proc directory.
Owner read_owner(int pid_fd, int pid, std::uint64_t netns) {
  Owner owner;
  owner.pid = pid;
  owner.netns = netns;
  if (auto comm = read_file_at(pid_fd, "comm")) {
    owner.comm = std::move(*comm);
    if (!owner.comm.empty() && owner.comm.back() == '\n') owner.comm.pop_back();
  }
  owner.cgroup = cgroup2_path_of(pid_fd);
  if (auto stat = read_file_at(pid_fd, "stat")) owner.ppid = parent_pid_of(*stat);
  return owner;
}

// A socket a process holds, through one of its descriptors.
struct HeldSocket {
  std::uint64_t inode = 0;
  int fd = -1;
};

// One pass over /proc: which processes sit in which network namespace (any of
// them lets us read that namespace's /proc/net and enter it), and, when asked
// for, the sockets each one holds.
struct ProcessWalk {
  std::map<std::uint64_t, std::vector<int>> netns_pids;
  std::size_t unreadable = 0;  // processes whose namespace or descriptors we may not read (not root)
};

// Calls `holds(pid, pid_fd, netns, sockets)` for every process holding a socket
// (each once, by its lowest descriptor), unless `holds` is empty: then no
// descriptor is read.
using HoldsSockets = std::function<void(int pid, int pid_fd, std::uint64_t netns, const std::vector<HeldSocket>&)>;

ProcessWalk walk_processes(const std::string& proc_root, const HoldsSockets& holds) {
  ProcessWalk walk;
  UniqueDir proc = UniqueDir::open(proc_root.c_str());
  if (!proc) return walk;

  std::vector<HeldSocket> sockets;  // of one process, reused to spare allocations
  while (dirent* entry = proc.next()) {
    if (!is_pid(entry->d_name)) continue;
    const int pid = std::atoi(entry->d_name);
    if (!holds) {
      // Namespaces only: one link per process, without opening its directory.
      errno = 0;
      auto link = read_link_at(proc.fd(), fmt::format("{}/ns/net", entry->d_name).c_str());
      if (std::uint64_t netns = link ? bracketed_inode(*link, "net") : 0) walk.netns_pids[netns].push_back(pid);
      else if (errno == EACCES) ++walk.unreadable;
      continue;
    }
    // Every failure below means the process exited or is not ours to read:
    // skip it (or the part that failed) and go on.
    UniqueDir pid_dir = UniqueDir::open_at(proc.fd(), entry->d_name);
    if (!pid_dir) continue;
    const int pid_fd = pid_dir.fd();
    const std::uint64_t netns = netns_at(pid_fd);
    if (netns != 0) walk.netns_pids[netns].push_back(pid);

    sockets.clear();
    UniqueDir fds = UniqueDir::open_at(pid_fd, "fd");
    if (!fds) {
      if (errno == EACCES) ++walk.unreadable;
      continue;
    }
    while (dirent* fd_entry = fds.next()) {
      if (fd_entry->d_name[0] == '.') continue;
      auto link = read_link_at(fds.fd(), fd_entry->d_name);
      if (!link) continue;
      if (std::uint64_t inode = bracketed_inode(*link, "socket")) sockets.push_back({inode, std::atoi(fd_entry->d_name)});
    }
    if (sockets.empty()) continue;
    std::sort(sockets.begin(), sockets.end(), [](const HeldSocket& a, const HeldSocket& b) {
      return a.inode != b.inode ? a.inode < b.inode : a.fd < b.fd;
    });
    sockets.erase(std::unique(sockets.begin(), sockets.end(),
                              [](const HeldSocket& a, const HeldSocket& b) { return a.inode == b.inode; }),
                  sockets.end());
    holds(pid, pid_fd, netns, sockets);
  }
  for (auto& [netns, pids] : walk.netns_pids) std::sort(pids.begin(), pids.end());
  return walk;
}

void sort_by_pid(OwnerMap& owners) {
  for (auto& [inode, list] : owners)
    std::sort(list.begin(), list.end(), [](const Owner& a, const Owner& b) { return a.pid < b.pid; });
}

// Every socket's owners, and the namespaces, in one pass.
struct ProcessScan {
  OwnerMap owners;
  ProcessWalk walk;
};

ProcessScan scan_processes(const std::string& proc_root) {
  ProcessScan scan;
  scan.walk = walk_processes(proc_root, [&](int pid, int pid_fd, std::uint64_t netns, const std::vector<HeldSocket>& held) {
    // Read the process's identity only once it is known to hold a socket.
    const Owner owner = read_owner(pid_fd, pid, netns);
    for (const auto& socket : held) scan.owners[socket.inode].push_back(owner);
  });
  sort_by_pid(scan.owners);
  return scan;
}

// The owner behind `held`, if that descriptor still points at socket `inode`.
// The process's directory is opened first and read through, so a pid reused
// after the check cannot lend its name.
std::optional<Owner> still_held(const std::string& proc_root, const Descriptor& held, std::uint64_t inode) {
  UniqueFd pid_dir(::open(fmt::format("{}/{}", proc_root, held.pid).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!pid_dir) return std::nullopt;
  auto link = read_link_at(pid_dir.get(), fmt::format("fd/{}", held.fd).c_str());
  if (!link || bracketed_inode(*link, "socket") != inode) return std::nullopt;
  return read_owner(pid_dir.get(), held.pid, netns_at(pid_dir.get()));
}

}  // namespace

OwnerMap scan_socket_owners(const std::string& proc_root) {
  return scan_processes(proc_root).owners;
}

void OwnerCache::walk(const std::string& proc_root, const std::unordered_set<std::uint64_t>& seen, double now_s) {
  known_.clear();
  // Sockets the census did not see (opened since, or of a family it does not
  // list) are left out: should one turn up queued, it is new to the cache.
  for (std::uint64_t inode : seen) known_[inode];
  walk_processes(proc_root, [&](int pid, int, std::uint64_t, const std::vector<HeldSocket>& held) {
    for (const auto& socket : held)
      if (auto it = known_.find(socket.inode); it != known_.end()) it->second.push_back({pid, socket.fd});
  });
  walked_at_ = now_s;
  ++walks_;
}

OwnerMap OwnerCache::owners(const std::string& proc_root, const std::vector<std::uint64_t>& wanted,
                            const std::unordered_set<std::uint64_t>& seen, double now_s) {
  // A socket that was gone for one census may come back as another socket
  // with the same inode number (sockfs numbers wrap): forget it.
  for (auto it = known_.begin(); it != known_.end();) it = seen.count(it->first) ? std::next(it) : known_.erase(it);
  OwnerMap owners;
  if (wanted.empty()) return owners;

  // The owners of every wanted socket from what the cache holds; false at the
  // first socket it cannot vouch for.
  auto resolve = [&](bool after_walk) {
    owners.clear();
    for (std::uint64_t inode : wanted) {
      auto it = known_.find(inode);
      if (it == known_.end()) return false;
      for (const Descriptor& held : it->second) {
        if (auto owner = still_held(proc_root, held, inode)) owners[inode].push_back(std::move(*owner));
        // Just walked: the process exited or closed it since, which a walk
        // now would only confirm.
        else if (!after_walk) return false;
      }
    }
    return true;
  };
  const bool fresh = walked_at_ && now_s - *walked_at_ < rewalk_after_s_;
  if (!fresh || !resolve(false)) {
    walk(proc_root, seen, now_s);
    resolve(true);
  }
  sort_by_pid(owners);
  return owners;
}

// ---------------------------------------------------------------------------
// Inventory

std::uint64_t SocketInfo::queued_bytes() const {
  return accounting ? accounting->queued_bytes : rx_queue_bytes;
}

std::optional<std::uint64_t> SocketInfo::queued_skbs() const {
  return accounting ? accounting->queued_skbs : std::nullopt;
}

bool SocketInfo::holds_anything() const {
  if (!accounting) return rx_queue_bytes > 0;
  return accounting->queued_bytes + accounting->backlog_bytes + accounting->write_queue_bytes > 0;
}

namespace {

std::string endpoint(const std::string& address, std::uint16_t port) {
  return address.find(':') == std::string::npos ? fmt::format("{}:{}", address, port)
                                                : fmt::format("[{}]:{}", address, port);
}

bool unspecified(const std::string& address, std::uint16_t port) {
  return port == 0 && (address == "0.0.0.0" || address == "::");
}

void add_inet_table(std::istream& in, const std::string& table, std::uint64_t netns, std::vector<SocketInfo>& out) {
  const bool v6 = table.back() == '6';
  const std::string protocol = v6 ? table.substr(0, table.size() - 1) : table;
  for (auto& line : parse_proc_net_inet(in, table)) {
    if (line.inode == 0) continue;  // TIME_WAIT and request sockets: no socket file, no queue
    SocketInfo s(SocketId{line.inode, netns, v6 ? "inet6" : "inet", protocol});
    s.local = endpoint(line.local_address, line.local_port);
    if (!unspecified(line.remote_address, line.remote_port))
      s.remote = endpoint(line.remote_address, line.remote_port);
    s.rx_queue_bytes = line.rx_queue;
    s.drops = line.drops;
    out.push_back(std::move(s));
  }
}

void add_unix_table(std::istream& in, std::uint64_t netns, std::vector<SocketInfo>& out) {
  for (auto& line : parse_proc_net_unix(in)) {
    SocketInfo s(SocketId{line.inode, netns, "unix", unix_protocol(line.type)});
    s.local = std::move(line.path);
    out.push_back(std::move(s));
  }
}

void add_packet_table(std::istream& in, std::uint64_t netns, std::vector<SocketInfo>& out) {
  for (auto& line : parse_proc_net_packet(in)) {
    SocketInfo s(SocketId{line.inode, netns, "packet", packet_protocol(line.type)});
    s.local = line.ifindex == 0 ? "any interface" : fmt::format("ifindex {}", line.ifindex);
    s.rx_queue_bytes = line.rmem;
    out.push_back(std::move(s));
  }
}

std::uint64_t netns_of_pid(const std::string& proc_root, const std::string& pid) {
  char buffer[64];
  std::string path = proc_root + "/" + pid + "/ns/net";
  ssize_t n = ::readlink(path.c_str(), buffer, sizeof buffer);
  return n > 0 ? bracketed_inode(std::string_view(buffer, static_cast<std::size_t>(n)), "net") : 0;
}

// /proc/PID/net/<table> shows the namespace of PID: open it through the first
// process that is still in `ns` (processes come and go while we read).
std::ifstream open_net_table(const std::string& proc_root, const NetnsInfo& ns, const std::string& table) {
  for (int pid : ns.pids) {
    std::string pid_text = std::to_string(pid);
    if (netns_of_pid(proc_root, pid_text) != ns.inode) continue;
    std::ifstream in(proc_root + "/" + pid_text + "/net/" + table);
    if (in.is_open()) return in;
  }
  return {};
}

void read_net_tables(const std::string& proc_root, const NetnsInfo& ns, std::vector<SocketInfo>& out,
                     std::vector<std::string>& warnings) {
  // A missing table is a family this kernel or namespace lacks (no IPv6, no
  // AF_PACKET module): nothing to report. tcp is left to sock_diag: each read of
  // /proc/net/tcp walks the whole established hash (milliseconds per read, on an
  // idle machine), and TCP queues coalesce into few skbs anyway.
  for (const char* table : {"udp", "udp6", "udplite", "udplite6", "raw", "raw6", "unix", "packet"}) {
    std::ifstream in = open_net_table(proc_root, ns, table);
    if (!in.is_open()) continue;
    try {
      std::string name = table;
      if (name == "unix") add_unix_table(in, ns.inode, out);
      else if (name == "packet") add_packet_table(in, ns.inode, out);
      else add_inet_table(in, name, ns.inode, out);
    } catch (const ParseError& e) {
      warnings.push_back(fmt::format("netns {}: {}", ns.inode, e.what()));
    }
  }
}

std::vector<NetnsHandle> entry_points(const std::string& proc_root, const std::vector<NetnsInfo>& namespaces) {
  // A few candidates per namespace in case the first process exits.
  constexpr std::size_t kCandidates = 4;
  std::vector<NetnsHandle> handles;
  for (const auto& ns : namespaces) {
    NetnsHandle handle{ns.inode, {}};
    for (std::size_t i = 0; i < ns.pids.size() && i < kCandidates; ++i)
      handle.ns_paths.push_back(fmt::format("{}/{}/ns/net", proc_root, ns.pids[i]));
    handles.push_back(std::move(handle));
  }
  return handles;
}

}  // namespace

SocketInventory SocketInventory::scan(const ScanOptions& options) {
  SocketInventory inventory;
  try {
    // With a cache, the owners wait until the census knows which sockets
    // hold anything; the namespaces cost one link per process.
    ProcessScan processes;
    if (options.owner_cache) processes.walk = walk_processes(options.proc_root, {});
    else processes = scan_processes(options.proc_root);
    inventory.own_netns_ = netns_of_pid(options.proc_root, "self");
    if (processes.walk.netns_pids.empty())
      inventory.warnings_.push_back(fmt::format("no process readable under {}", options.proc_root));
    if (processes.walk.unreadable > 0)
      inventory.warnings_.push_back(fmt::format(
          "{} processes not readable (needs root): their sockets have no owner, their namespaces are missing",
          processes.walk.unreadable));

    for (auto& [netns, pids] : processes.walk.netns_pids)
      if (options.all_namespaces || netns == inventory.own_netns_)
        inventory.namespaces_.push_back({netns, std::move(pids)});

    for (const auto& ns : inventory.namespaces_)
      read_net_tables(options.proc_root, ns, inventory.sockets_, inventory.warnings_);
    for (std::size_t i = 0; i < inventory.sockets_.size(); ++i)
      inventory.by_inode_.emplace(inventory.sockets_[i].inode, i);

    if (options.kernel_accounting) {
      AccountingScan accounting = query_queue_accounting(entry_points(options.proc_root, inventory.namespaces_),
                                                         options.count_skbs);
      for (auto& warning : accounting.warnings) inventory.warnings_.push_back(std::move(warning));
      for (auto& record : accounting.sockets) {
        auto [it, added] = inventory.by_inode_.emplace(record.inode, inventory.sockets_.size());
        if (added) {
          // tcp, or opened after its /proc/net table was read.
          inventory.sockets_.emplace_back(SocketId(record));
        }
        SocketInfo& s = inventory.sockets_[it->second];
        // Both count sk_drops, read a moment apart; only sock_diag has it for unix and packet.
        s.drops = std::max(s.drops, record.drops);
        s.accounting = std::move(record);
      }
    }

    if (options.owner_cache) {
      std::vector<std::uint64_t> wanted;
      std::unordered_set<std::uint64_t> seen;
      seen.reserve(inventory.sockets_.size());
      for (const auto& s : inventory.sockets_) {
        seen.insert(s.inode);
        if (s.holds_anything()) wanted.push_back(s.inode);
      }
      const double now_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
      processes.owners = options.owner_cache->owners(options.proc_root, wanted, seen, now_s);
    }
    for (auto& s : inventory.sockets_) {
      auto owners = processes.owners.find(s.inode);
      if (owners != processes.owners.end()) s.owners = owners->second;
    }
  } catch (const std::exception& e) {
    // Only resource exhaustion gets here; keep what was gathered.
    inventory.warnings_.push_back(fmt::format("socket scan incomplete: {}", e.what()));
  }
  for (const auto& warning : inventory.warnings_) spdlog::debug("sockets: {}", warning);
  return inventory;
}

const SocketInfo* SocketInventory::find(std::uint64_t inode) const {
  auto it = by_inode_.find(inode);
  return it == by_inode_.end() ? nullptr : &sockets_[it->second];
}

const SocketInfo* SocketInventory::unix_receiver_of(std::uint64_t sender_inode) const {
  const SocketInfo* sender = find(sender_inode);
  if (!sender || sender->family != "unix" || !sender->accounting || sender->accounting->peer_inode == 0)
    return nullptr;
  return find(sender->accounting->peer_inode);
}

}  // namespace slabtrace::sockets
