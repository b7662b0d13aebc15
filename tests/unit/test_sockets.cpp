// The socket inventory: /proc/net parsers on tables copied from a real kernel
// (tests/fixtures/net, made by make_fixtures.py there), owners from a fake
// /proc tree, descriptions, unix queue attribution, and live sockets.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_set>

#include <catch2/catch.hpp>

#include "slabtrace/census.hpp"
#include "slabtrace/sockets.hpp"

using namespace slabtrace;
using namespace slabtrace::sockets;
namespace fs = std::filesystem;

namespace {

std::ifstream fixture(const std::string& name) {
  std::ifstream in(std::string(SLABTRACE_FIXTURES) + "/net/" + name);
  REQUIRE(in);
  return in;
}

template <typename Line>
const Line& by_inode(const std::vector<Line>& lines, std::uint64_t inode) {
  auto it = std::find_if(lines.begin(), lines.end(), [&](const Line& l) { return l.inode == inode; });
  REQUIRE(it != lines.end());
  return *it;
}

template <typename Parse>
std::string parse_error_of(Parse parse, const std::string& text) {
  std::istringstream in(text);
  try {
    parse(in);
  } catch (const ParseError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

// ---------------------------------------------------------------------------
// Parsers on real tables. Sockets behind them (fixtures/net/README): a UDP
// receiver with 14 unread 200-byte datagrams, a unix datagram socketpair with 5
// unread, an AF_PACKET socket on lo that saw that traffic both ways.

TEST_CASE("parse /proc/net/udp", "[unit]") {
  auto in = fixture("udp");
  auto lines = parse_proc_net_inet(in, "udp");
  REQUIRE(lines.size() == 2);

  const auto& receiver = by_inode(lines, 7931);
  CHECK(receiver.local_address == "127.0.0.1");
  CHECK(receiver.local_port == 44913);
  CHECK(receiver.remote_address == "0.0.0.0");
  CHECK(receiver.remote_port == 0);
  CHECK(receiver.state == 7);
  CHECK(receiver.tx_queue == 0);
  CHECK(receiver.rx_queue == 0x4600);  // 14 datagrams x 1,280 bytes truesize
  CHECK(receiver.uid == 0);
  CHECK(receiver.refcount == 2);
  CHECK(receiver.drops == 0);

  const auto& sender = by_inode(lines, 7932);
  CHECK(sender.local_port == 49763);
  CHECK(sender.remote_address == "127.0.0.1");
  CHECK(sender.remote_port == 44913);
  CHECK(sender.state == 1);
  CHECK(sender.rx_queue == 0);
}

TEST_CASE("parse /proc/net/udp6", "[unit]") {
  auto in = fixture("udp6");
  auto lines = parse_proc_net_inet(in, "udp6");
  REQUIRE(lines.size() == 2);
  const auto& receiver = by_inode(lines, 7933);
  CHECK(receiver.local_address == "::1");
  CHECK(receiver.local_port == 46930);
  CHECK(receiver.remote_address == "::");
  CHECK(receiver.rx_queue == 0x9C0);
  const auto& sender = by_inode(lines, 7934);
  CHECK(sender.remote_address == "::1");
  CHECK(sender.remote_port == 46930);
}

TEST_CASE("parse /proc/net/tcp, tcp6 and raw", "[unit]") {
  auto tcp_in = fixture("tcp");
  auto tcp = parse_proc_net_inet(tcp_in, "tcp");
  REQUIRE(tcp.size() == 4);
  const auto& listener = by_inode(tcp, 7935);
  CHECK(listener.state == 0x0A);
  CHECK(listener.local_port == 59163);
  const auto& unread = by_inode(tcp, 7937);  // the accepted end, 1,000 bytes not read
  CHECK(unread.state == 1);
  CHECK(unread.remote_port == 42348);
  CHECK(unread.rx_queue == 1000);
  CHECK(unread.refcount == 1);
  CHECK(unread.drops == 0);  // tcp has no drops column: "100 0 0 10 0" are timers

  auto tcp6_in = fixture("tcp6");
  CHECK(parse_proc_net_inet(tcp6_in, "tcp6").empty());

  auto raw_in = fixture("raw");
  auto raw = parse_proc_net_inet(raw_in, "raw");
  REQUIRE(raw.size() == 1);
  CHECK(raw[0].inode == 8889);
  CHECK(raw[0].local_port == 1);  // IPPROTO_ICMP in the port column
  CHECK(raw[0].state == 7);
}

TEST_CASE("parse /proc/net/unix", "[unit]") {
  auto in = fixture("unix");
  auto lines = parse_proc_net_unix(in);
  REQUIRE(lines.size() == 8);

  const auto& receiver = by_inode(lines, 7939);
  CHECK(receiver.type == 2);
  CHECK(receiver.state == 3);
  CHECK(receiver.refcount == 3);
  CHECK(receiver.flags == 0);
  CHECK(receiver.path.empty());

  const auto& listener = by_inode(lines, 7942);
  CHECK(listener.type == 1);
  CHECK(listener.state == 1);
  CHECK(listener.flags == 0x10000);
  CHECK(listener.path == "/tmp/slabtrace-fixture.sock");

  CHECK(by_inode(lines, 7943).path == "@slabtrace-abstract");
}

TEST_CASE("unix paths keep their spaces", "[unit]") {
  std::istringstream in(
      "Num       RefCount Protocol Flags    Type St Inode Path\n"
      "00000000d863aeb0: 00000002 00000000 00010000 0001 01  7942 /run/my app/sock et\n");
  auto lines = parse_proc_net_unix(in);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].path == "/run/my app/sock et");
}

TEST_CASE("parse /proc/net/packet", "[unit]") {
  auto in = fixture("packet");
  auto lines = parse_proc_net_packet(in);
  REQUIRE(lines.size() == 2);

  const auto& capture = by_inode(lines, 7944);  // SOCK_RAW, ETH_P_ALL, bound to lo
  CHECK(capture.refcount == 3);
  CHECK(capture.type == 3);
  CHECK(capture.protocol == 0x0003);
  CHECK(capture.ifindex == 1);
  CHECK(capture.running);
  CHECK(capture.rmem == 10240);  // 4 datagrams seen twice (out and in) x 1,280
  CHECK(capture.uid == 0);

  const auto& ip = by_inode(lines, 8888);
  CHECK(ip.type == 2);
  CHECK(ip.protocol == 0x0800);
  CHECK(ip.ifindex == 0);
  CHECK(ip.rmem == 5120);
}

TEST_CASE("malformed /proc/net tables throw ParseError naming file and line", "[unit]") {
  auto inet = [](std::istream& in) { parse_proc_net_inet(in, "udp"); };
  auto unix_table = [](std::istream& in) { parse_proc_net_unix(in); };
  auto packet = [](std::istream& in) { parse_proc_net_packet(in); };
  const std::string udp_header =
      "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
      "pointer drops\n";

  CHECK(parse_error_of(inet, "") == "udp: empty, expected a header");
  CHECK(parse_error_of(inet, "garbage here\n") == "udp line 1: expected a header starting with 'sl'");
  CHECK(parse_error_of(inet, udp_header + "  957: 0100007F:AF71 00000000:0000 07\n") ==
        "udp line 2: expected at least 13 fields, got 4");
  CHECK(parse_error_of(inet, udp_header +
                                 "  957: 0100007F:AF71 00000000:0000 07 00000000:00004600 00:00000000 00000000 0 0 "
                                 "7931 2 00000000c62f30eb 0\n"
                                 "  958: 0100007:AF71 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 "
                                 "7932 2 00000000c62f30eb 0\n") == "udp line 3: bad address '0100007:AF71'");
  CHECK(parse_error_of(inet, udp_header +
                                 "  957: 0100007F:AF71 00000000:0000 07 0000000000004600 00:00000000 00000000 0 0 "
                                 "7931 2 00000000c62f30eb 0\n") ==
        "udp line 2: bad tx_queue:rx_queue '0000000000004600'");
  CHECK(parse_error_of(inet, udp_header +
                                 "  957: 0100007F:AF71 00000000:0000 07 00000000:00004600 00:00000000 00000000 0 0 "
                                 "79x1 2 00000000c62f30eb 0\n") == "udp line 2: inode '79x1' is not a number");

  const std::string unix_header = "Num       RefCount Protocol Flags    Type St Inode Path\n";
  CHECK(parse_error_of(unix_table, unix_header + "000000009790fca0: 00000003 00000000 00000000 0001 03\n") ==
        "unix line 2: expected at least 7 fields, got 6");
  CHECK(parse_error_of(unix_table, unix_header + "000000009790fca0: 00000003 00000000 00000000 0001 0z 1670\n") ==
        "unix line 2: St '0z' is not a number");

  const std::string packet_header = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n";
  CHECK(parse_error_of(packet, packet_header + "000000009351fd55 3 3 0003 1 1 -10 0 7944\n") ==
        "packet line 2: Rmem '-10' is not a number");
  CHECK(parse_error_of(packet, "Num RefCount\n") == "packet line 1: expected a header starting with 'sk'");
}

// ---------------------------------------------------------------------------
// Owners and the inventory on a fake /proc tree

namespace {

// A /proc look-alike: PID/fd/N symlinks to "socket:[inode]", comm, cgroup,
// ns/net, and net/<table> copied from the fixtures.
class FakeProc {
 public:
  FakeProc() : root_(fs::temp_directory_path() / ("slabtrace-fakeproc-" + std::to_string(::getpid()))) {
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~FakeProc() { fs::remove_all(root_); }

  void process(int pid, const std::string& comm, const std::string& cgroup_file, std::uint64_t netns,
               const std::vector<std::string>& fd_targets) {
    fs::path dir = root_ / std::to_string(pid);
    fs::create_directories(dir / "fd");
    fs::create_directories(dir / "ns");
    std::ofstream(dir / "comm") << comm << "\n";
    std::ofstream(dir / "cgroup") << cgroup_file;
    fs::create_symlink("net:[" + std::to_string(netns) + "]", dir / "ns" / "net");
    for (std::size_t fd = 0; fd < fd_targets.size(); ++fd)
      fs::create_symlink(fd_targets[fd], dir / "fd" / std::to_string(fd));
  }
  void net_tables(int pid, const std::vector<std::string>& tables) {
    fs::path net = root_ / std::to_string(pid) / "net";
    fs::create_directories(net);
    for (const auto& table : tables) fs::copy_file(std::string(SLABTRACE_FIXTURES) + "/net/" + table, net / table);
  }
  fs::path path(const std::string& relative = "") const { return root_ / relative; }
  std::string root() const { return root_.string(); }

 private:
  fs::path root_;
};

constexpr std::uint64_t kHostNetns = 4026531840;
constexpr std::uint64_t kPodNetns = 4026532201;

void populate(FakeProc& proc) {
  proc.process(100, "leaky", "1:name=systemd:/\n0::/kubepods/besteffort/pod1/abc\n", kHostNetns,
               {"/dev/null", "socket:[7931]", "socket:[7931]", "pipe:[55]", "socket:[7939]"});
  proc.process(300, "other", "4:memory:/\n", kPodNetns, {"socket:[7931]", "anon_inode:[eventfd]"});
  // Exited between readdir and the read of its fd directory.
  fs::create_directories(proc.path("200"));
  std::ofstream(proc.path("200/comm")) << "gone\n";
  // Not a process.
  fs::create_directories(proc.path("sys/net"));
}

}  // namespace

TEST_CASE("scan_socket_owners reads every fd once per process", "[unit]") {
  FakeProc proc;
  populate(proc);
  OwnerMap owners = scan_socket_owners(proc.root());

  REQUIRE(owners.size() == 2);
  const auto& udp = owners.at(7931);
  REQUIRE(udp.size() == 2);  // pid 100 holds two descriptors to it: listed once
  CHECK(udp[0].pid == 100);
  CHECK(udp[0].comm == "leaky");
  CHECK(udp[0].netns == kHostNetns);
  CHECK(udp[0].cgroup == "/kubepods/besteffort/pod1/abc");
  CHECK(udp[1].pid == 300);
  CHECK(udp[1].comm == "other");
  CHECK(udp[1].netns == kPodNetns);
  CHECK(udp[1].cgroup.empty());  // no "0::" line (cgroup v1 only)
  CHECK(owners.at(7939).size() == 1);
}

TEST_CASE("scan_socket_owners tolerates a missing /proc", "[unit]") {
  CHECK(scan_socket_owners("/nonexistent/proc").empty());
}

TEST_CASE("SocketInventory assembles tables, owners and namespaces", "[unit]") {
  FakeProc proc;
  populate(proc);
  proc.net_tables(100, {"udp", "udp6", "tcp", "unix", "packet"});
  // The other namespace's process shows a broken table: a warning, not a failure.
  fs::create_directories(proc.path("300/net"));
  std::ofstream(proc.path("300/net/udp")) << "not a table\n";

  ScanOptions options;
  options.proc_root = proc.root();
  options.kernel_accounting = false;
  auto inventory = SocketInventory::scan(options);

  REQUIRE(inventory.namespaces().size() == 2);
  CHECK(inventory.namespaces()[0].inode == kHostNetns);
  CHECK(inventory.namespaces()[0].pids == std::vector<int>{100});
  std::string warnings;
  for (const auto& warning : inventory.warnings()) warnings += warning + "\n";
  INFO(warnings);
  REQUIRE(inventory.warnings().size() == 1);
  CHECK(inventory.warnings()[0] == "netns 4026532201: udp line 1: expected a header starting with 'sl'");

  const SocketInfo* udp = inventory.find(7931);
  REQUIRE(udp);
  CHECK(udp->family == "inet");
  CHECK(udp->protocol == "udp");
  CHECK(udp->netns == kHostNetns);
  CHECK(udp->local == "127.0.0.1:44913");
  CHECK(udp->remote.empty());
  CHECK(udp->rx_queue_bytes == 0x4600);
  CHECK(udp->queued_bytes() == 0x4600);  // no sock_diag: the /proc/net figure
  CHECK_FALSE(udp->queued_skbs());
  REQUIRE(udp->owners.size() == 2);
  CHECK(udp->owners[0].pid == 100);

  const SocketInfo* udp6 = inventory.find(7934);
  REQUIRE(udp6);
  CHECK(udp6->family == "inet6");
  CHECK(udp6->local == "[::1]:34516");
  CHECK(udp6->remote == "[::1]:46930");

  const SocketInfo* unix_receiver = inventory.find(7939);
  REQUIRE(unix_receiver);
  CHECK(unix_receiver->protocol == "unix-dgram");
  CHECK(unix_receiver->owners.at(0).comm == "leaky");
  CHECK(inventory.find(7942)->local == "/tmp/slabtrace-fixture.sock");

  const SocketInfo* capture = inventory.find(7944);
  REQUIRE(capture);
  CHECK(capture->protocol == "packet-raw");
  CHECK(capture->local == "ifindex 1");
  CHECK(capture->rx_queue_bytes == 10240);
  CHECK(capture->owners.empty());

  CHECK(inventory.find(1) == nullptr);
}

// ---------------------------------------------------------------------------
// The owner cache: walks only when what it remembers cannot be vouched for

namespace {

std::string pids_of(const OwnerMap& owners, std::uint64_t inode) {
  auto it = owners.find(inode);
  if (it == owners.end()) return "none";
  std::string text;
  for (const auto& o : it->second) text += (text.empty() ? "" : ",") + std::to_string(o.pid) + ":" + o.comm;
  return text;
}

// Points PID's descriptor FD somewhere else (a closed and reopened fd, or a
// reused pid whose new process has other files).
void repoint(const FakeProc& proc, int pid, int fd, const std::string& target) {
  fs::path link = proc.path(std::to_string(pid) + "/fd/" + std::to_string(fd));
  fs::remove(link);
  if (!target.empty()) fs::create_symlink(target, link);
}

}  // namespace

TEST_CASE("OwnerCache walks once, then checks the remembered descriptors", "[unit]") {
  FakeProc proc;
  populate(proc);
  OwnerCache cache(60);
  const std::unordered_set<std::uint64_t> seen = {7931, 7939, 7944};

  OwnerMap owners = cache.owners(proc.root(), {7931}, seen, 0);
  CHECK(cache.walks() == 1);
  CHECK(pids_of(owners, 7931) == "100:leaky,300:other");
  CHECK(owners.count(7939) == 0);  // not asked for
  REQUIRE(owners.at(7931).size() == 2);
  CHECK(owners.at(7931)[0].cgroup == "/kubepods/besteffort/pod1/abc");
  CHECK(owners.at(7931)[0].netns == kHostNetns);
  CHECK(owners.at(7931)[1].netns == kPodNetns);

  SECTION("names are read afresh, without a walk") {
    std::ofstream(proc.path("100/comm")) << "renamed\n";
    owners = cache.owners(proc.root(), {7931, 7939}, seen, 10);
    CHECK(cache.walks() == 1);
    CHECK(pids_of(owners, 7931) == "100:renamed,300:other");
    CHECK(pids_of(owners, 7939) == "100:renamed");
  }
  SECTION("wanting nothing reads nothing, however old the walk") {
    CHECK(cache.owners(proc.root(), {}, seen, 1000).empty());
    CHECK(cache.walks() == 1);
  }
  SECTION("a holder that closed it: walk, and the new holder is found") {
    repoint(proc, 300, 0, "");
    proc.process(400, "heir", "0::/heir\n", kHostNetns, {"socket:[7931]"});
    owners = cache.owners(proc.root(), {7931}, seen, 10);
    CHECK(cache.walks() == 2);
    CHECK(pids_of(owners, 7931) == "100:leaky,400:heir");
  }
  SECTION("a pid reused by a process whose descriptor is another file: walk") {
    // pid 300 also held it by fd 0 only; its new process has fd 0 on a pipe.
    repoint(proc, 300, 0, "pipe:[99]");
    owners = cache.owners(proc.root(), {7931}, seen, 10);
    CHECK(cache.walks() == 2);
    CHECK(pids_of(owners, 7931) == "100:leaky");
  }
  SECTION("a holder that exited: walk") {
    fs::remove_all(proc.path("300"));
    owners = cache.owners(proc.root(), {7931}, seen, 10);
    CHECK(cache.walks() == 2);
    CHECK(pids_of(owners, 7931) == "100:leaky");
  }
  SECTION("a socket that was not there at the walk: walk") {
    proc.process(500, "newcomer", "0::/new\n", kHostNetns, {"socket:[8000]"});
    auto now_seen = seen;
    now_seen.insert(8000);
    owners = cache.owners(proc.root(), {8000}, now_seen, 10);
    CHECK(cache.walks() == 2);
    CHECK(pids_of(owners, 8000) == "500:newcomer");
  }
  SECTION("an inode gone from one census is forgotten: its return is a new socket") {
    cache.owners(proc.root(), {7931}, {7931, 7944}, 10);  // 7939 closed
    // A socket with the same inode number, shared by another process now: the
    // remembered holder alone would still check out.
    proc.process(600, "reuser", "0::/reuse\n", kHostNetns, {"socket:[7939]"});
    owners = cache.owners(proc.root(), {7939}, seen, 20);
    CHECK(cache.walks() == 2);
    CHECK(pids_of(owners, 7939) == "100:leaky,600:reuser");
  }
}

TEST_CASE("OwnerCache keeps a socket without holders until the walk is old", "[unit]") {
  FakeProc proc;
  populate(proc);
  OwnerCache cache(60);
  const std::unordered_set<std::uint64_t> seen = {7931, 7944};
  // 7944 (the capture socket) is held by no process.
  CHECK(cache.owners(proc.root(), {7944}, seen, 0).empty());
  CHECK(cache.owners(proc.root(), {7944}, seen, 30).empty());
  CHECK(cache.walks() == 1);
  // Received over a unix socket since, say: only a walk can see that.
  proc.process(700, "receiver", "0::/r\n", kHostNetns, {"socket:[7944]"});
  CHECK(pids_of(cache.owners(proc.root(), {7944}, seen, 59), 7944) == "none");
  CHECK(pids_of(cache.owners(proc.root(), {7944}, seen, 60), 7944) == "700:receiver");
  CHECK(cache.walks() == 2);
}

TEST_CASE("SocketInventory with an owner cache names the owners of queued sockets only", "[unit]") {
  FakeProc proc;
  populate(proc);
  proc.net_tables(100, {"udp", "udp6", "tcp", "unix", "packet"});
  ScanOptions options;
  options.proc_root = proc.root();
  options.kernel_accounting = false;
  OwnerCache cache;
  options.owner_cache = &cache;

  auto inventory = SocketInventory::scan(options);
  CHECK(cache.walks() == 1);
  REQUIRE(inventory.namespaces().size() == 2);  // still from every process's ns/net
  CHECK(inventory.namespaces()[0].pids == std::vector<int>{100});
  CHECK(inventory.namespaces()[1].pids == std::vector<int>{300});
  const SocketInfo* udp = inventory.find(7931);
  REQUIRE(udp);
  REQUIRE(udp->holds_anything());  // rx_queue 0x4600
  REQUIRE(udp->owners.size() == 2);
  CHECK(udp->owners[0].comm == "leaky");
  const SocketInfo* unix_receiver = inventory.find(7939);
  REQUIRE(unix_receiver);
  CHECK_FALSE(unix_receiver->holds_anything());  // no sock_diag: its queue is unknown
  CHECK(unix_receiver->owners.empty());

  // The same again: nothing changed, nothing walked.
  inventory = SocketInventory::scan(options);
  CHECK(cache.walks() == 1);
  CHECK(inventory.find(7931)->owners.size() == 2);

  // The same owners as a scan that walks every descriptor.
  options.owner_cache = nullptr;
  auto walked = SocketInventory::scan(options);
  CHECK(walked.find(7931)->owners.size() == 2);
  CHECK(walked.find(7939)->owners.size() == 1);
}

// ---------------------------------------------------------------------------
// Unix queue attribution (pure)

TEST_CASE("unix queues are charged to their senders", "[unit]") {
  auto unix_socket = [](std::uint64_t inode, const char* protocol, std::uint64_t peer, std::uint64_t wmem,
                        std::uint64_t rqueue) {
    QueueAccounting a;
    a.inode = inode;
    a.family = "unix";
    a.protocol = protocol;
    a.peer_inode = peer;
    a.wmem_alloc_bytes = wmem;
    a.unix_rqueue = rqueue;
    return a;
  };
  std::vector<QueueAccounting> sockets = {
      // socketpair: 1 sent five 300-byte datagrams that 2 has not read
      unix_socket(1, "unix-dgram", 2, 5 * 1280, 0),
      unix_socket(2, "unix-dgram", 1, 0, 300),
      // a syslog-like receiver with two connected clients
      unix_socket(10, "unix-dgram", 0, 0, 100),
      unix_socket(11, "unix-dgram", 10, 2 * 768, 0),
      unix_socket(12, "unix-dgram", 10, 768, 0),
      // datagrams from senders we cannot see (sendto() without connect)
      unix_socket(20, "unix-dgram", 0, 0, 64),
      // a listener with three connections waiting for accept()
      unix_socket(30, "unix-stream", 0, 0, 3),
      // a stream with 400 unread bytes
      unix_socket(40, "unix-stream", 41, 1280, 0),
      unix_socket(41, "unix-stream", 40, 0, 400),
  };
  sockets[6].listening = true;
  QueueAccounting udp;
  udp.inode = 50;
  udp.family = "inet";
  udp.protocol = "udp";
  udp.queued_bytes = 4096;
  sockets.push_back(udp);

  attribute_unix_queues(sockets, [](std::uint64_t length) -> std::uint64_t {
    return length == 300 ? 1280 : length == 100 ? 768 : 0;
  });

  CHECK(sockets[0].queued_bytes == 0);
  CHECK(sockets[0].queued_skbs == 0u);
  CHECK(sockets[1].queued_bytes == 6400);
  CHECK(sockets[1].queued_skbs == 5u);
  CHECK(sockets[1].queued_skbs_estimated);
  CHECK(sockets[2].queued_bytes == 3 * 768);
  CHECK(sockets[2].queued_skbs == 3u);
  CHECK_FALSE(sockets[5].queued_skbs);  // something is queued, but not how much
  CHECK(sockets[6].queued_skbs == 3u);
  CHECK_FALSE(sockets[6].queued_skbs_estimated);
  CHECK(sockets[8].queued_bytes == 1280);
  CHECK_FALSE(sockets[8].queued_skbs);  // streams coalesce: no count
  CHECK(sockets[9].queued_bytes == 4096);  // not unix: untouched
}

// ---------------------------------------------------------------------------
// Live sockets (root: sock_diag in other namespaces, unshare)

namespace {

struct ScopedFd {
  int fd = -1;
  explicit ScopedFd(int f) : fd(f) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd >= 0) ::close(fd);
  }
};

std::uint64_t inode_of(int fd) {
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  return st.st_ino;
}

std::uint64_t netns_of(const char* path) {
  struct stat st {};
  REQUIRE(::stat(path, &st) == 0);
  return st.st_ino;
}

std::string own_comm() {
  std::ifstream in("/proc/self/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

bool owned_by(const SocketInfo& s, int pid) {
  return std::any_of(s.owners.begin(), s.owners.end(), [&](const Owner& o) { return o.pid == pid; });
}

// A UDP socket bound to loopback: `sender` connected to `receiver`.
void udp_pair(ScopedFd& receiver, ScopedFd& sender) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(::bind(receiver.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::getsockname(receiver.fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  REQUIRE(::connect(sender.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
}

// The forked child of the netns section: new network namespace, loopback up,
// a UDP socket that sends three datagrams to itself; reports its socket inode
// and netns inode, then waits until the parent closes `hold`. Only system
// calls: the parent may have had threads.
[[noreturn]] void netns_child(int report, int hold) {
  if (::unshare(CLONE_NEWNET) != 0) ::_exit(10);
  int control = ::socket(AF_INET, SOCK_DGRAM, 0);
  ifreq lo{};
  std::strncpy(lo.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(control, SIOCGIFFLAGS, &lo) != 0) ::_exit(11);
  lo.ifr_flags |= IFF_UP;
  if (::ioctl(control, SIOCSIFFLAGS, &lo) != 0) ::_exit(12);

  int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(udp, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) ::_exit(13);
  ::getsockname(udp, reinterpret_cast<sockaddr*>(&address), &length);
  char datagram[200] = {};
  for (int i = 0; i < 3; ++i)
    if (::sendto(udp, datagram, sizeof datagram, 0, reinterpret_cast<sockaddr*>(&address), length) < 0) ::_exit(14);

  struct stat socket_stat {}, netns_stat {};
  ::fstat(udp, &socket_stat);
  ::stat("/proc/self/ns/net", &netns_stat);
  std::uint64_t inodes[2] = {socket_stat.st_ino, netns_stat.st_ino};
  if (::write(report, inodes, sizeof inodes) != sizeof inodes) ::_exit(15);
  char byte;
  while (::read(hold, &byte, 1) > 0) {
  }
  ::_exit(0);
}

// Closes the child's hold pipe and reaps it, however the section ends.
struct Child {
  pid_t pid = -1;
  int hold = -1;
  ~Child() {
    if (hold >= 0) ::close(hold);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
  }
};

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

// Ten datagrams nobody reads: /proc/net and sock_diag both see the bytes, and
// this process owns the receiver.
void unread_udp_receiver() {
  const std::uint64_t own_netns = netns_of("/proc/self/ns/net");
  ScopedFd receiver(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ScopedFd sender(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  udp_pair(receiver, sender);
  char datagram[200] = {};
  for (int i = 0; i < 10; ++i) REQUIRE(::send(sender.fd, datagram, sizeof datagram, 0) == sizeof datagram);

  auto inventory = SocketInventory::scan({});
  INFO(joined(inventory.warnings()));
  const SocketInfo* s = inventory.find(inode_of(receiver.fd));
  REQUIRE(s);
  CHECK(s->family == "inet");
  CHECK(s->protocol == "udp");
  CHECK(s->netns == own_netns);
  CHECK(inventory.own_netns() == own_netns);
  REQUIRE(owned_by(*s, ::getpid()));
  const Owner& me = *std::find_if(s->owners.begin(), s->owners.end(),
                                  [](const Owner& o) { return o.pid == ::getpid(); });
  CHECK(me.comm == own_comm());
  CHECK(me.netns == own_netns);
  CHECK(s->rx_queue_bytes > 0);
  REQUIRE(s->accounting);
  CHECK(s->accounting->rmem_alloc_bytes > 0);
  CHECK(s->accounting->rmem_alloc_bytes == s->queued_bytes());
  CHECK(s->accounting->rcvbuf_bytes > 0);
}

// Five unread datagrams on a socketpair: counted although the kernel charges
// them to the sender and reports only the first one's length.
void unread_unix_socketpair() {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) == 0);
  ScopedFd sender(pair[0]), receiver(pair[1]);
  char datagram[300] = {};
  for (int i = 0; i < 5; ++i) REQUIRE(::send(sender.fd, datagram, sizeof datagram, 0) == sizeof datagram);

  auto inventory = SocketInventory::scan({});
  INFO(joined(inventory.warnings()));
  const SocketInfo* s = inventory.find(inode_of(receiver.fd));
  REQUIRE(s);
  CHECK(s->protocol == "unix-dgram");
  CHECK(owned_by(*s, ::getpid()));
  REQUIRE(s->accounting);
  CHECK(s->accounting->queued_skbs == 5u);
  CHECK(s->accounting->queued_bytes > 5 * sizeof datagram);
  CHECK(s->accounting->rmem_alloc_bytes == 0);  // charged to the sender
  // The BPF side sees the sender on these skbs; the inventory names the holder.
  CHECK(inventory.unix_receiver_of(inode_of(sender.fd)) == s);
}

// A forked child unshares its network namespace and keeps three datagrams
// unread there: found with that namespace, read by entering it.
void socket_in_own_netns() {
  const std::uint64_t own_netns = netns_of("/proc/self/ns/net");
  int report[2], hold[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(hold, O_CLOEXEC) == 0);
  Child child;
  child.pid = ::fork();
  REQUIRE(child.pid >= 0);
  if (child.pid == 0) {
    ::close(report[0]);
    ::close(hold[1]);
    netns_child(report[1], hold[0]);
  }
  ::close(report[1]);
  ::close(hold[0]);
  child.hold = hold[1];
  ScopedFd from_child(report[0]);

  std::uint64_t inodes[2] = {};
  REQUIRE(::read(from_child.fd, inodes, sizeof inodes) == sizeof inodes);
  const std::uint64_t socket_inode = inodes[0], child_netns = inodes[1];
  REQUIRE(child_netns != own_netns);

  auto inventory = SocketInventory::scan({});
  INFO(joined(inventory.warnings()));
  const SocketInfo* s = inventory.find(socket_inode);
  REQUIRE(s);
  CHECK(s->netns == child_netns);
  CHECK(s->protocol == "udp");
  REQUIRE(owned_by(*s, child.pid));
  CHECK(s->owners.front().netns == child_netns);
  CHECK(s->rx_queue_bytes > 0);
  REQUIRE(s->accounting);  // read by entering the namespace
  CHECK(s->accounting->rmem_alloc_bytes > 0);
  CHECK(std::any_of(inventory.namespaces().begin(), inventory.namespaces().end(),
                    [&](const NetnsInfo& ns) { return ns.inode == child_netns; }));
  CHECK(census::describe({s->family, s->protocol, s->inode, s->netns, std::nullopt, 0}, own_netns)
            .find(", netns " + std::to_string(child_netns)) != std::string::npos);
  // The scan entered the namespace on a thread of its own: we are still home.
  CHECK(netns_of("/proc/thread-self/ns/net") == own_netns);
}

}  // namespace

TEST_CASE("SocketInventory finds live sockets with their owners and kernel accounting", "[unit][live]") {
  // Catch finds a section only when a run reaches it: a section that returned
  // from the test case early would hide the ones after it. So each checks.
  auto as_root = [](void (*check)()) {
    if (::geteuid() == 0)
      check();
    else
      WARN("skipped: needs root");
  };
  SECTION("an unread UDP receiver") { as_root(unread_udp_receiver); }
  SECTION("an unread unix datagram socketpair") { as_root(unread_unix_socketpair); }
  SECTION("a socket in a network namespace of its own") { as_root(socket_in_own_netns); }
}

TEST_CASE("parse_sockstat_inuse reads what each protocol has hashed", "[unit]") {
  // /proc/net/sockstat and sockstat6 of Linux 6.18, one after the other.
  auto inuse = parse_sockstat_inuse(
      "sockets: used 9\n"
      "TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 452\n"
      "UDP: inuse 0 mem 0\n"
      "UDPLITE: inuse 0\n"
      "RAW: inuse 0\n"
      "FRAG: inuse 0 memory 0\n"
      "TCP6: inuse 12\n"
      "UDP6: inuse 3");
  CHECK(inuse.at("TCP") == 1);
  CHECK(inuse.at("UDP") == 0);
  CHECK(inuse.at("UDPLITE") == 0);
  CHECK(inuse.at("TCP6") == 12);
  CHECK(inuse.at("UDP6") == 3);  // no newline at the end
  CHECK(inuse.count("sockets") == 0);  // "used", not "inuse"
  // Garbage is left out, not guessed at: an unknown count is dumped.
  inuse = parse_sockstat_inuse("TCP: inuse x1\nUDP inuse 4\n: inuse 2\nTCP6: inuse\n\n");
  CHECK(inuse.empty());
}
