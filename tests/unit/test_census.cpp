// The socket census: sock_diag replies parsed from dumps captured on a real
// kernel (tests/fixtures/net/diag-*.bin, made by make_diag_fixtures.py there,
// which lists the sockets in diag-sockets.txt), owners and the one a verdict
// blames, descriptions, and what predates a run.
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

#include "fake_run.hpp"
#include "slabtrace/aggregate.hpp"
#include "slabtrace/census.hpp"
#include "slabtrace/census_iter.h"
#include "slabtrace/census_iter.hpp"
#include "slabtrace/model.hpp"
#include "slabtrace/sockets.hpp"
#include "slabtrace/verdict.hpp"

using namespace slabtrace;
using namespace slabtrace::sockets;

namespace {

constexpr std::uint64_t kNetns = 4026532288;

std::string fixture_bytes(const std::string& name) {
  std::ifstream in(std::string(SLABTRACE_FIXTURES) + "/net/" + name, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<QueueAccounting> parse_fixture(const std::string& name, DiagQuery query) {
  std::vector<QueueAccounting> out;
  DiagDumpEnd end = parse_diag_dump(fixture_bytes(name), query, kNetns, out);
  CHECK(end.done);
  CHECK(end.error == 0);
  return out;
}

const QueueAccounting& by_inode(const std::vector<QueueAccounting>& sockets, std::uint64_t inode) {
  auto it = std::find_if(sockets.begin(), sockets.end(), [&](const QueueAccounting& s) { return s.inode == inode; });
  REQUIRE(it != sockets.end());
  return *it;
}

census::Owner owner(int pid, int ppid, std::string comm, std::string cgroup) {
  census::Owner o;
  o.pid = pid;
  o.ppid = ppid;
  o.comm = std::move(comm);
  o.cgroup_path = std::move(cgroup);
  return o;
}

}  // namespace

// ---------------------------------------------------------------------------
// sock_diag dumps from Linux 6.18 (values: diag-sockets.txt)

TEST_CASE("sock_diag inet dumps: receive queue truesize per socket, udp, udp6, udplite and tcp", "[unit][census]") {
  auto udp = parse_fixture("diag-udp.bin", {AF_INET, IPPROTO_UDP});
  REQUIRE(udp.size() == 2);
  const auto& receiver = by_inode(udp, 105219);
  CHECK(receiver.family == "inet");
  CHECK(receiver.protocol == "udp");
  CHECK(receiver.netns == kNetns);
  CHECK(receiver.rmem_alloc_bytes == 33280);  // 26 datagrams of 200 B, 1280 B truesize each
  CHECK(receiver.queued_bytes == 33280);
  CHECK(receiver.rcvbuf_bytes == 212992);
  CHECK(receiver.backlog_bytes == 0);
  CHECK(by_inode(udp, 105220).queued_bytes == 0);

  auto udp6 = parse_fixture("diag-udp6.bin", {AF_INET6, IPPROTO_UDP});
  CHECK(by_inode(udp6, 105221).family == "inet6");
  CHECK(by_inode(udp6, 105221).queued_bytes == 2496);

  auto lite = parse_fixture("diag-udplite.bin", {AF_INET, IPPROTO_UDPLITE});
  CHECK(by_inode(lite, 105223).protocol == "udplite");
  CHECK(by_inode(lite, 105223).queued_bytes == 5120);

  auto tcp = parse_fixture("diag-tcp.bin", {AF_INET, IPPROTO_TCP});
  REQUIRE(tcp.size() == 3);
  CHECK(by_inode(tcp, 105225).listening);
  CHECK(by_inode(tcp, 105227).queued_bytes == 1832);
  CHECK(by_inode(tcp, 105227).write_queue_bytes == 0);
  CHECK_FALSE(by_inode(tcp, 105227).listening);
}

TEST_CASE("sock_diag unix dump: peers, first datagram length and the sender's charge", "[unit][census]") {
  auto unix_sockets = parse_fixture("diag-unix.bin", {AF_UNIX, 0});
  REQUIRE(unix_sockets.size() == 4);
  const auto& sender = by_inode(unix_sockets, 105228);
  const auto& receiver = by_inode(unix_sockets, 105229);
  CHECK(sender.protocol == "unix-dgram");
  CHECK(sender.peer_inode == 105229);
  CHECK(sender.wmem_alloc_bytes == 6400);
  CHECK(receiver.peer_inode == 105228);
  CHECK(receiver.unix_rqueue == 300);  // the first queued datagram's length
  CHECK(receiver.rmem_alloc_bytes == 0);
  CHECK(by_inode(unix_sockets, 105231).protocol == "unix-stream");
  CHECK(by_inode(unix_sockets, 105231).unix_rqueue == 400);

  attribute_unix_queues(unix_sockets, [](std::uint64_t length) -> std::uint64_t { return length == 300 ? 1280 : 0; });
  CHECK(by_inode(unix_sockets, 105229).queued_bytes == 6400);
  CHECK(by_inode(unix_sockets, 105229).queued_skbs == 5u);
  CHECK(by_inode(unix_sockets, 105231).queued_bytes == 1280);
}

TEST_CASE("sock_diag packet and netlink dumps", "[unit][census]") {
  auto packet = parse_fixture("diag-packet.bin", {AF_PACKET, 0});
  REQUIRE(packet.size() == 1);
  CHECK(packet[0].inode == 105232);
  CHECK(packet[0].protocol == "packet-raw");
  CHECK(packet[0].queued_bytes == 15360);  // 12 clones

  auto netlink = parse_fixture("diag-netlink.bin", {AF_NETLINK, 0});
  CHECK(netlink.size() == 11);  // the kernel's own and ours
  const auto& route = by_inode(netlink, 105233);
  CHECK(route.family == "netlink");
  CHECK(route.protocol == "netlink-route");
  CHECK(route.queued_bytes == 1664);  // two address notifications
  // The kernel's sock_diag socket holds the dump request it answers, not a queue.
  const auto& diag = by_inode(netlink, 105210);
  CHECK(diag.protocol == "netlink-sock-diag");
  CHECK(diag.rmem_alloc_bytes > 0);
  CHECK(diag.queued_bytes == 0);
}

namespace {

// A record as bpf/census_iter.bpf.c writes it (the contract struct, byte for byte).
std::string iter_record(std::uint64_t inode, std::uint32_t kind, std::uint32_t receive, std::uint32_t backlog = 0,
                        std::uint32_t write = 0, std::uint32_t flags = 0, std::uint64_t netns = kNetns) {
  st_iter_socket rec{};
  rec.inode = inode;
  rec.netns = netns;
  rec.kind = kind;
  rec.flags = flags;
  rec.receive_skbs = receive;
  rec.backlog_skbs = backlog;
  rec.write_skbs = write;
  return std::string(reinterpret_cast<const char*>(&rec), sizeof rec);
}

// Every family of the Linux 6.18 dumps, unix queues attributed as the scan does.
std::vector<QueueAccounting> all_fixture_sockets() {
  std::vector<QueueAccounting> all;
  struct Dump {
    const char* file;
    int family;
    int protocol;
  };
  for (auto [file, family, protocol] : {Dump{"diag-udp.bin", AF_INET, IPPROTO_UDP}, Dump{"diag-udp6.bin", AF_INET6, IPPROTO_UDP},
                                        Dump{"diag-udplite.bin", AF_INET, IPPROTO_UDPLITE}, Dump{"diag-tcp.bin", AF_INET, IPPROTO_TCP},
                                        Dump{"diag-unix.bin", AF_UNIX, 0}, Dump{"diag-packet.bin", AF_PACKET, 0},
                                        Dump{"diag-netlink.bin", AF_NETLINK, 0}}) {
    auto part = parse_fixture(file, {std::uint8_t(family), std::uint8_t(protocol)});
    all.insert(all.end(), part.begin(), part.end());
  }
  attribute_unix_queues(all, [](std::uint64_t length) -> std::uint64_t { return length == 300 ? 1280 : 0; });
  return all;
}

}  // namespace

TEST_CASE("socket iterator records: parsed back to back, a partial or foreign record is dropped", "[unit][census]") {
  std::string bytes = iter_record(105219, ST_ITER_UDP, 26) + iter_record(105227, ST_ITER_TCP, 1, 2, 3, ST_ITER_INEXACT) +
                      iter_record(105229, ST_ITER_UNIX, 5) + iter_record(1, 99, 7) + iter_record(105233, ST_ITER_NETLINK, 2);
  auto counts = census::parse_iter_records(bytes + bytes.substr(0, 17));
  REQUIRE(counts.size() == 4);  // the kind-99 record and the 17 trailing bytes are not counts
  CHECK(counts[0].inode == 105219);
  CHECK(counts[0].netns == kNetns);
  CHECK(counts[0].kind == SkbCountKind::Udp);
  CHECK(counts[0].total() == 26);
  CHECK(counts[0].exact);
  CHECK(counts[1].kind == SkbCountKind::Tcp);
  CHECK(counts[1].receive == 1);
  CHECK(counts[1].backlog == 2);
  CHECK(counts[1].write == 3);
  CHECK(counts[1].total() == 6);
  CHECK_FALSE(counts[1].exact);
  CHECK(counts[2].kind == SkbCountKind::Unix);
  CHECK(counts[3].kind == SkbCountKind::Netlink);
  CHECK(census::parse_iter_records("").empty());
  CHECK(census::parse_iter_records(bytes.substr(0, sizeof(st_iter_socket) - 1)).empty());
}

TEST_CASE("exact skb counts from the socket iterators merge into sock_diag's accounting", "[unit][census]") {
  // What the iterators found in the fixture's namespace (diag-sockets.txt):
  // udp4 26 queued, udp6 3, tcp 1 unread skb, unix dgram 5, unix stream 1,
  // netlink 2; the listener and senders hold nothing and are not written.
  std::string bytes = iter_record(105219, ST_ITER_UDP, 26) + iter_record(105221, ST_ITER_UDP, 3) +
                      iter_record(105227, ST_ITER_TCP, 1) + iter_record(105229, ST_ITER_UNIX, 5) +
                      iter_record(105231, ST_ITER_UNIX, 1) + iter_record(105233, ST_ITER_NETLINK, 2);
  SkbCountScan scan;
  scan.netns = kNetns;
  scan.kinds = unsigned(SkbCountKind::Udp) | unsigned(SkbCountKind::Tcp) | unsigned(SkbCountKind::Unix) |
               unsigned(SkbCountKind::Netlink);
  scan.sockets = census::parse_iter_records(bytes);

  SECTION("every iterated family: exact counts, 0 for sockets with nothing queued") {
    auto all = all_fixture_sockets();
    CHECK(by_inode(all, 105229).queued_skbs_estimated);  // sock_diag alone: estimated from the first datagram
    merge_skb_counts(all, {scan});
    CHECK(by_inode(all, 105219).queued_skbs == 26u);
    CHECK_FALSE(by_inode(all, 105219).queued_skbs_estimated);
    CHECK(by_inode(all, 105219).queued_bytes == 33280);  // bytes stay sock_diag's
    CHECK(by_inode(all, 105220).queued_skbs == 0u);       // the sender: walked, nothing queued
    CHECK(by_inode(all, 105221).queued_skbs == 3u);
    CHECK(by_inode(all, 105227).queued_skbs == 1u);
    CHECK(by_inode(all, 105225).queued_skbs == 0u);       // the listener
    CHECK(by_inode(all, 105229).queued_skbs == 5u);
    CHECK_FALSE(by_inode(all, 105229).queued_skbs_estimated);
    CHECK(by_inode(all, 105231).queued_skbs == 1u);       // a stream: sock_diag had no count at all
    CHECK(by_inode(all, 105233).queued_skbs == 2u);
    // No iterator walks UDP-Lite or packet sockets: unknown, not 0.
    CHECK_FALSE(by_inode(all, 105223).queued_skbs);
    CHECK_FALSE(by_inode(all, 105232).queued_skbs);
  }
  SECTION("a kernel without iter/unix (before 5.17): unix keeps sock_diag's estimate") {
    scan.kinds &= ~unsigned(SkbCountKind::Unix);
    auto all = all_fixture_sockets();
    merge_skb_counts(all, {scan});
    CHECK(by_inode(all, 105219).queued_skbs == 26u);
    CHECK(by_inode(all, 105229).queued_skbs == 5u);
    CHECK(by_inode(all, 105229).queued_skbs_estimated);
    CHECK_FALSE(by_inode(all, 105231).queued_skbs);
  }
  SECTION("a lower bound is no count; another namespace's scan counts nothing here") {
    scan.sockets = census::parse_iter_records(iter_record(105227, ST_ITER_TCP, 1, 0, 0, ST_ITER_INEXACT) +
                                              iter_record(105219, ST_ITER_UDP, 26, 0, 0, 0, kNetns + 1));
    auto all = all_fixture_sockets();
    merge_skb_counts(all, {scan});
    CHECK_FALSE(by_inode(all, 105227).queued_skbs);  // unacked or out-of-order skbs: not counted
    CHECK_FALSE(by_inode(all, 105219).queued_skbs);  // a record of another netns under this inode
    scan.netns = kNetns + 1;
    auto other = all_fixture_sockets();
    merge_skb_counts(other, {scan});
    CHECK_FALSE(by_inode(other, 105219).queued_skbs);  // this namespace was not walked
    CHECK(by_inode(other, 105229).queued_skbs_estimated);
  }
}

TEST_CASE("sock_diag dumps cut short, errors and garbage end the parse without a crash", "[unit][census]") {
  std::string udp = fixture_bytes("diag-udp.bin");
  std::vector<QueueAccounting> out;
  // Every prefix: whole messages are parsed, a torn one is left alone.
  for (std::size_t n = 0; n < udp.size(); ++n) {
    out.clear();
    DiagDumpEnd end = parse_diag_dump(std::string_view(udp).substr(0, n), {AF_INET, IPPROTO_UDP}, kNetns, out);
    CHECK_FALSE(end.done);
    CHECK(out.size() <= 2);
  }
  out.clear();
  CHECK(parse_diag_dump(std::string(100, '\xff'), {AF_INET, IPPROTO_UDP}, kNetns, out).done == false);
  CHECK(out.empty());

  // NLMSG_ERROR carries a negative errno; NLMSG_DONE of a failed dump too.
  struct {
    nlmsghdr header;
    nlmsgerr error;
  } error{};
  error.header.nlmsg_len = sizeof error;
  error.header.nlmsg_type = NLMSG_ERROR;
  error.error.error = -ENOENT;
  std::string bytes(reinterpret_cast<const char*>(&error), sizeof error);
  DiagDumpEnd end = parse_diag_dump(bytes, {AF_PACKET, 0}, kNetns, out);
  CHECK(end.done);
  CHECK(end.error == ENOENT);
  // An error or status that is no errno (fuzz: INT_MIN cannot be negated) is EPROTO.
  for (int status : {std::numeric_limits<int>::min(), -5000, 7}) {
    error.error.error = status;
    bytes.assign(reinterpret_cast<const char*>(&error), sizeof error);
    CHECK(parse_diag_dump(bytes, {AF_PACKET, 0}, kNetns, out).error == EPROTO);
  }

  // A reply message too short for its family is skipped, the rest still read.
  nlmsghdr tiny{};
  tiny.nlmsg_len = NLMSG_HDRLEN + 4;
  tiny.nlmsg_type = 20;  // SOCK_DIAG_BY_FAMILY
  std::string short_then_real(reinterpret_cast<const char*>(&tiny), NLMSG_HDRLEN);
  short_then_real += std::string(4, '\0');
  short_then_real += udp;
  out.clear();
  end = parse_diag_dump(short_then_real, {AF_INET, IPPROTO_UDP}, kNetns, out);
  CHECK(end.done);
  CHECK(out.size() == 2);
}

TEST_CASE("the parent pid from /proc/PID/stat, whatever the comm holds", "[unit][census]") {
  CHECK(parent_pid_of("4242 (leaky) S 4200 4242 4200 0 -1 4194560 135 0 0 0") == 4200);
  CHECK(parent_pid_of("77 (a (b) c) R 1 77 77 0") == 1);
  CHECK(parent_pid_of("77 (broken") == 0);
  CHECK(parent_pid_of("") == 0);
  CHECK(parent_pid_of("77 (x) S notanumber") == 0);
}

// ---------------------------------------------------------------------------
// Owners and blame

TEST_CASE("the owner blamed for a fork-shared socket is the child that should read it", "[unit][census]") {
  using census::blamed_owner;
  CHECK(blamed_owner({}) == 0);
  CHECK(blamed_owner({owner(10, 1, "solo", "/a")}) == 0);
  // supervisor 100 forked worker 200, which forked 300: the innermost holds it
  std::vector<census::Owner> chain = {owner(100, 1, "supervisor", "/sup"), owner(200, 100, "worker", "/work"),
                                      owner(300, 200, "reader", "/work")};
  CHECK(blamed_owner(chain) == 2);
  std::reverse(chain.begin(), chain.end());
  CHECK(blamed_owner(chain) == 0);
  // unrelated holders: a container process over a host agent in the root cgroup
  CHECK(blamed_owner({owner(900, 1, "container", "/kubepods/pod1/c"), owner(950, 1, "agent", "/")}) == 0);
  // both in containers: the most recently started
  CHECK(blamed_owner({owner(400, 1, "a", "/x"), owner(500, 1, "b", "/y")}) == 1);
  // a parent and its child in the root cgroup beside an unrelated container process
  CHECK(blamed_owner({owner(10, 1, "p", "/"), owner(11, 10, "c", "/"), owner(12, 1, "pod", "/k")}) == 2);
  // a ppid cycle (pid reuse) cannot loop
  CHECK(blamed_owner({owner(7, 8, "x", "/"), owner(8, 7, "y", "/")}) < 2);
}

TEST_CASE("build_census keeps sockets that hold anything, largest first, owners resolved", "[unit][census]") {
  auto socket = [](std::uint64_t inode, std::string protocol, std::uint64_t bytes) {
    SocketInfo s(SocketId{inode, kNetns, protocol.rfind("unix", 0) == 0 ? "unix" : "inet", protocol});
    QueueAccounting a(s);
    a.queued_bytes = bytes;
    s.accounting = a;
    return s;
  };
  std::vector<SocketInfo> sockets = {socket(1, "udp", 4096), socket(2, "udp", 0), socket(3, "unix-dgram", 64000),
                                     socket(4, "tcp", 100)};
  sockets[2].accounting->queued_skbs = 50;
  sockets[2].accounting->queued_skbs_estimated = true;
  sockets[2].owners = {{100, "parent", kNetns, "/p", 1}, {200, "child", kNetns, "/c", 100}};
  sockets[3].accounting->write_queue_bytes = 9000;
  sockets[3].accounting->backlog_bytes = 1000;
  SocketInfo proc_only(SocketId{5, kNetns, "inet", "raw"});
  proc_only.rx_queue_bytes = 768;
  sockets.push_back(proc_only);

  census::OwnerResolver resolver;  // no cgroup mount: ids stay 0
  census::Census c = census::build_census(sockets, resolver);
  CHECK(c.sockets_seen == 5);
  REQUIRE(c.sockets.size() == 4);
  CHECK(c.sockets[0].inode == 3);
  CHECK(c.sockets[0].queued_skbs == 50u);
  REQUIRE(c.sockets[0].owners.size() == 2);
  CHECK(c.sockets[0].blamed_owner()->comm == "child");
  CHECK(c.sockets[0].blamed_owner()->cgroup_path == "/c");
  CHECK(c.sockets[1].inode == 4);
  CHECK(c.sockets[1].queued_bytes() == 10100);
  CHECK(c.sockets[2].inode == 1);
  CHECK(c.sockets[3].inode == 5);
  CHECK_FALSE(c.sockets[3].kernel_accounting);
  CHECK(c.queued_bytes == 64000 + 10100 + 4096 + 768);
  CHECK(c.find(2) == nullptr);
  CHECK(c.find(3) == &c.sockets[0]);
}

TEST_CASE("describe: one line for a socket, its blamed owner, cgroup, pod and netns", "[unit][census]") {
  census::SocketLabel s{"inet", "udp", 18884, kNetns, owner(4242, 1, "leaky", "/kubepods/besteffort/pod1/abc"), 0};
  CHECK(census::describe(s, kNetns) == "UDP socket inode 18884 of pid 4242 (leaky) in cgroup /kubepods/besteffort/pod1/abc");
  CHECK(census::describe(s, 1) ==
        "UDP socket inode 18884 of pid 4242 (leaky) in cgroup /kubepods/besteffort/pod1/abc, netns 4026532288");
  s.other_owners = 2;
  s.owner->workload.pod_namespace = "default";
  s.owner->workload.pod = "web";
  s.owner->workload.container = "app";
  CHECK(census::describe(s, kNetns) ==
        "UDP socket inode 18884 of pid 4242 (leaky) and 2 more in cgroup /kubepods/besteffort/pod1/abc "
        "(pod default/web, container app)");
  CHECK(census::describe({"packet", "packet-raw", 7944, 0, std::nullopt, 0}) ==
        "AF_PACKET raw socket inode 7944 held by no process");
  CHECK(census::describe({"unix", "unix-dgram", 7939, 0, owner(5102, 1, "python3", "/"), 0}) ==
        "unix datagram socket inode 7939 of pid 5102 (python3) in cgroup /");
  CHECK(census::kind_of("netlink", "netlink-uevent") == "netlink-uevent");
  CHECK(census::kind_of("inet6", "tcp") == "TCPv6");
  CHECK(census::kind_of("inet", "udplite") == "UDP-Lite");
}

TEST_CASE("queued before start: what the first census saw and the queue still holds", "[unit][census]") {
  using census::queued_before_start;
  CHECK(queued_before_start(64'000'000, 64'000'000, 0) == 64'000'000);  // untouched old leak
  CHECK(queued_before_start(64'000'000, 70'000'000, 6'000'000) == 64'000'000);  // grew by what we saw
  CHECK(queued_before_start(64'000'000, 40'000'000, 0) == 40'000'000);  // partly read since
  CHECK(queued_before_start(0, 30'000'000, 30'000'000) == 0);           // a leak of this run only
  CHECK(queued_before_start(1000, 500, 800) == 0);                      // old part read, new part queued
}

TEST_CASE("merge_census: traced holders get every owner, untraced queues are listed with what predates the run",
          "[unit][census]") {
  auto queued = [](std::uint64_t inode, std::uint64_t bytes, std::vector<sockets::Owner> owners) {
    SocketInfo s(SocketId{inode, kNetns, "inet", "udp"});
    QueueAccounting a(s);
    a.queued_bytes = bytes;
    s.accounting = a;
    s.owners = std::move(owners);
    return s;
  };
  census::OwnerResolver resolver([](const std::string& path) -> std::optional<std::uint64_t> {
    return path == "/child" ? 77 : path == "/parent" ? 66 : 1;
  }, nullptr);
  // At the start: an old leak of 64 MB on 10; 11 did not exist.
  census::Census start = census::build_census({queued(10, 64'000'000, {{5, "old", kNetns, "/", 1}})}, resolver);
  // At the end: 10 untouched; 11 holds what the tracer saw, open in parent and child; 12 was read.
  std::vector<SocketInfo> end_sockets = {
      queued(10, 64'000'000, {{5, "old", kNetns, "/", 1}}),
      queued(11, 38'400'000, {{100, "parent", kNetns, "/parent", 1}, {101, "child", kNetns, "/child", 100}}),
      queued(12, 0, {}), queued(13, 1000, {})};
  census::Census end = census::build_census(end_sockets, resolver);

  model::SkbReport skb;
  model::SkbHolder traced;
  traced.socket_inode = 11;
  traced.protocol = "udp";
  traced.queued_skbs = 30000;
  traced.queued_bytes = 38'400'000;
  skb.holders.push_back(traced);
  traced.socket_inode = 12;
  skb.holders.push_back(traced);
  std::vector<std::string> notes;
  model::merge_census(skb, end, &start, notes);

  REQUIRE(skb.holders.size() == 2);  // 12 was read, 13 is below the listing floor
  const auto& old = skb.holders[0];
  CHECK(old.socket_inode == 10);
  CHECK(old.queued_skbs == 0);
  CHECK(old.kernel_queued_bytes == std::optional<std::uint64_t>(64'000'000));
  CHECK(old.queued_before_start_bytes == std::optional<std::uint64_t>(64'000'000));
  CHECK(old.pid == std::optional<std::uint32_t>(5));
  const auto& shared = skb.holders[1];
  CHECK(shared.socket_inode == 11);
  REQUIRE(shared.owners.size() == 2);
  CHECK(shared.pid == std::optional<std::uint32_t>(101));  // the child, not the parent
  CHECK(shared.cgroup_id == 77);
  CHECK(shared.cgroup_path == "/child");
  CHECK(shared.queued_before_start_bytes == std::optional<std::uint64_t>(0));
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("socket inode 12 were read already") != std::string::npos);
  REQUIRE(skb.census);
  CHECK(skb.census->sockets_queued == 3);
  CHECK(skb.census->queued_before_start_bytes == 64'000'000);

  // The verdict names the old queue when nothing new was traced.
  model::Report report;
  report.skb = skb;
  model::add_verdicts(report);
  REQUIRE_FALSE(report.verdicts.empty());
  CHECK(report.verdicts[0].find("queued before slabtrace started") != std::string::npos);
  CHECK(report.verdicts[0].find("socket inode 10 of pid 5 (old)") != std::string::npos);
}

TEST_CASE("via: the innermost function that names the path, never an entry stub, allocator or skb helper",
          "[unit][census]") {
  // IFF_NAPI TAP written from user space (measured stack, Linux 6.18)
  CHECK(slabtrace::skb_origin({"kmem_cache_alloc_node_noprof", "__alloc_skb", "alloc_skb_with_frags",
                           "sock_alloc_send_pskb", "tun_get_user", "tun_chr_write_iter", "vfs_write", "ksys_write",
                           "do_syscall_64", "entry_SYSCALL_64_after_hwframe"}) == "tun_get_user");
  CHECK(slabtrace::skb_origin({"kmem_cache_alloc_noprof", "skb_clone", "packet_rcv", "__netif_receive_skb_core.constprop.0",
                           "__netif_receive_skb_list_core", "netif_receive_skb_list_internal", "napi_complete_done",
                           "tun_napi_poll", "__napi_poll", "net_rx_action", "handle_softirqs"}) == "packet_rcv");
  // nothing that names a protocol: the innermost real function, not the stub
  CHECK(slabtrace::skb_origin({"__kmalloc_node_track_caller_noprof", "kmalloc_reserve", "pskb_expand_head",
                           "netlink_trim", "netlink_unicast", "entry_SYSCALL_64_after_hwframe"}) == "netlink_trim");
  CHECK(slabtrace::skb_origin({"kmem_cache_alloc_noprof", "entry_SYSCALL_64_after_hwframe"}) == "?");
  CHECK(slabtrace::skb_origin({}) == "?");
}

TEST_CASE("heads adopted from the NAPI cache count in the cache table, the sk_buff section and the note",
          "[unit][census][adopt]") {
  model::RunSnapshot run;
  run.duration_s = 5;
  run.counters.buckets = {fakerun::bucket(0, "skbuff_head_cache", 30, 256, 3000, 0),
                          fakerun::bucket(1, "kmalloc-1k", 30, 1024, 3000, 0)};
  run.slabinfo_start = fakerun::fixture_slabinfo();
  run.slabinfo_end = run.slabinfo_start;
  fakerun::FakeTrace trace;
  fakerun::FakeKernel kernel;
  kernel.paths[30] = "/tap";
  // 2,000 adopted on sttap0 and queued on one socket, 1,000 seen allocated
  for (int i = 0; i < 3000; ++i) {
    trace.add_live(0, 1, 1, 1, -1, ST_OBJ_SKB_HEAD | (i < 2000 ? ST_OBJ_SKB_ADOPTED : 0), 0xBB);
    std::uint64_t head = trace.last_addr();
    trace.add_live(1, 1, 1, 1, -1, ST_OBJ_SKB_DATA, head);
  }
  st_adopt_key key{7, 4026532288u};
  st_adopt_dev dev{2000, {}};
  std::strcpy(dev.name, "sttap0");
  trace.adopted_devices = {{key, dev}};
  model::Report r = model::aggregate(run, trace, kernel);
  CHECK(r.skb.outstanding_heads == 3000);
  CHECK(r.skb.adopted_heads == 2000);
  const model::CacheReport* heads = nullptr;
  for (const auto& c : r.caches)
    if (c.name == "skbuff_head_cache") heads = &c;
  REQUIRE(heads);
  CHECK(heads->outstanding == 3000);  // one count per fact
  REQUIRE(r.skb.adopted_by_device.size() == 1);
  CHECK(r.skb.adopted_by_device[0].device == "sttap0");
  bool noted = false;
  for (const auto& n : r.notes) noted = noted || n.find("2,000 outstanding sk_buff heads were adopted") != std::string::npos;
  CHECK(noted);
}
