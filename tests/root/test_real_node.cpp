// Real nodes (issue 10): a leak already in place when slabtrace starts, packets
// that came up the NIC receive path (a TAP in NAPI mode, in a network
// namespace the tool makes), a capture tool on such a device, a socket shared
// after fork, and a reader that keeps up. Each scenario has its own cgroups
// and netns; /proc/slabinfo and sock_diag (ss -m) are the ground truth.
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iterator>
#include <regex>
#include <sstream>

#include <bpf/btf.h>

#include "root_helpers.hpp"
#include "slabtrace/census_iter.hpp"
#include "slabtrace/unique_fd.hpp"

using namespace roottest;
using nlohmann::json;
using slabtrace::UniqueFd;

namespace {

std::string tap_bin() { return std::string(SLABTRACE_TOOLS) + "/st_tap"; }

// Starts a tool and waits for its "ready ..." line (kept in `ready`).
std::unique_ptr<Child> start_ready(std::vector<std::string> args, std::string* ready = nullptr) {
  auto child = std::make_unique<Child>(std::move(args));
  auto line = child->read_line(30);
  INFO(child->err());
  REQUIRE(line);
  REQUIRE(line->rfind("ready", 0) == 0);
  if (ready) *ready = *line;
  return child;
}

// The number after "ready " (a port, a count).
std::uint64_t ready_number(const std::string& ready) { return std::stoull(ready.substr(6)); }

// The inode of this process's network namespace.
std::uint64_t own_netns() {
  struct stat st {};
  return ::stat("/proc/self/ns/net", &st) == 0 ? std::uint64_t(st.st_ino) : 0;
}

// The socket inodes a process holds, from /proc/PID/fd.
std::vector<std::uint64_t> sockets_of(pid_t pid) {
  std::vector<std::uint64_t> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) out.push_back(std::stoull(target.substr(8)));
  }
  return out;
}

// r (rmem_alloc) of the socket with `inode`, from `ss -m` (sock_diag).
std::uint64_t ss_rmem(std::uint64_t inode) {
  Child ss({"/usr/bin/ss", "-Hanmue"});
  REQUIRE(ss.finish(10) == 0);
  std::istringstream lines(ss.out());
  std::string line, block;
  // ss prints skmem on the line after the socket (or the same one): join them.
  std::string all;
  while (std::getline(lines, line)) all += line + (line.find("skmem:") != std::string::npos ? "\n" : " ");
  std::istringstream sockets(all);
  std::regex rmem("skmem:\\(r([0-9]+),");
  while (std::getline(sockets, block)) {
    if (block.find("ino:" + std::to_string(inode) + " ") == std::string::npos) continue;
    std::smatch m;
    if (std::regex_search(block, m, rmem)) return std::stoull(m[1]);
  }
  FAIL("ss -m does not list socket inode " << inode);
  return 0;
}

// The drops column of `port`'s line in /proc/PID/net/udp (PID's namespace).
std::uint64_t udp_drops(pid_t pid, int port) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/net/udp");
  std::string line;
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::vector<std::string> fields{std::istream_iterator<std::string>(f), {}};
    if (fields.size() > 12 && fields[1].size() > 5 && fields[1].compare(fields[1].size() - 5, 5, want) == 0)
      return std::stoull(fields.back());
  }
  FAIL("no udp socket on port " << port << " in /proc/" << pid << "/net/udp");
  return 0;
}

const json* holder_of(const json& holders, std::uint64_t inode) { return find_by(holders, "socket_inode", inode); }

bool owned_by(const json& holder, pid_t pid, const std::string& cgroup) {
  for (const auto& o : holder["owners"])
    if (o["pid"] == pid && o["cgroup_path"] == cgroup) return true;
  return false;
}

const json& cache_of(const json& report, const std::string& name) {
  const json* c = find_by(report["caches"], "name", name);
  INFO(report["caches"].dump(1));
  REQUIRE(c);
  return *c;
}

bool within(double value, double truth, double tolerance) {
  return truth > 0 && std::abs(value - truth) <= tolerance * truth;
}

// Records while st_tap sends: started, told to send, and stopped (SIGINT)
// once the datagrams are in; the report is the one record prints on stop.
json record_tap(Child& tap, long* wait_read = nullptr) {
  auto tracer = start_slabtrace({"record", "--duration", "300", "--format", "json"});
  const auto started = std::chrono::steady_clock::now();
  tap.write_stdin("\n");
  auto sent = tap.read_line(600);  // a slow emulated guest takes minutes
  INFO(tap.err());
  REQUIRE(sent);
  REQUIRE(sent->rfind("sent ", 0) == 0);
  // A queue is called a leak once its oldest skb has sat for half the run
  // (and a second): wait that long after the last datagram, however slow
  // the machine was to send them.
  const double sending_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::this_thread::sleep_for(std::chrono::duration<double>(std::max(1.0, sending_s) + 0.5));
  if (wait_read) {
    auto read = tap.read_line(300);
    REQUIRE(read);
    REQUIRE(read->rfind("read ", 0) == 0);
    *wait_read = std::stol(read->substr(5));
  }
  tracer->signal(SIGINT);
  return finish_json(*tracer);
}

// The figures behind each scenario, for the log (and the README's table).
void print_figures(const char* scenario, const json& report) {
  const json* heads = find_by(report["caches"], "name", "skbuff_head_cache");
  std::printf("figures %s: skbuff_head_cache slabinfo %+lld, cache table %llu, sk_buff section %llu, adopted %llu\n",
              scenario, heads && !(*heads)["slabinfo"].is_null() ? (*heads)["slabinfo"]["delta"].get<long long>() : 0LL,
              heads ? (*heads)["outstanding"].get<unsigned long long>() : 0ULL,
              report["skb"]["outstanding_heads"].get<unsigned long long>(),
              report["skb"]["adopted_heads"].get<unsigned long long>());
}

// A TAP scenario (tests/tools/st_tap.c) in a cgroup of its own, recorded
// while it sends; the report's figures printed against slabinfo.
struct TapRun {
  TestCgroup cg;
  std::unique_ptr<Child> tap;
  json report;
  TapRun(const std::string& scenario, std::vector<std::string> tap_args, long* wait_read = nullptr) : cg(scenario) {
    settle_slabinfo();
    std::vector<std::string> args = {tap_bin(), "--cgroup", cg.dir()};
    args.insert(args.end(), tap_args.begin(), tap_args.end());
    tap = start_ready(std::move(args));
    report = record_tap(*tap, wait_read);
    print_figures(scenario.c_str(), report);
  }
  ~TapRun() {
    tap->close_stdin();
    tap->finish(20);
  }
  // The outstanding heads slabinfo saw, after checking that the cache table
  // and the sk_buff section count them too (within 5 %).
  double heads_agree() const {
    const json& heads = cache_of(report, "skbuff_head_cache");
    INFO(heads.dump());
    const double delta = heads["slabinfo"]["delta"].get<double>();
    CHECK(delta >= 28500);
    CHECK(within(heads["outstanding"].get<double>(), delta, 0.05));
    CHECK(within(report["skb"]["outstanding_heads"].get<double>(), delta, 0.05));
    return delta;
  }
  const json& holder() const {
    const json* h = find_by(report["skb"]["holders"], "pid", tap->pid());
    INFO(report["skb"].dump(1));
    REQUIRE(h);
    return *h;
  }
};

std::string verdicts_of(const json& report) {
  std::string all;
  for (const auto& v : report["verdicts"]) all += v.get<std::string>() + "\n";
  return all;
}

}  // namespace

TEST_CASE("a UDP leak older than the run: holder with every owner, kernel bytes as ss -m says, doctor names it",
          "[root][real][census]") {
  REQUIRE_ROOT_OR_SKIP();
  TestCgroup holder_cg("old-holder"), sender_cg("old-sender");
  UdpHolder holder(holder_cg);
  udp_send(sender_cg, holder.port, 50000);
  auto inodes = sockets_of(holder.child->pid());
  REQUIRE(inodes.size() == 1);
  const std::uint64_t inode = inodes[0];
  const std::uint64_t truth = ss_rmem(inode);
  CHECK(udp_drops(holder.child->pid(), holder.port) == 0);  // the whole leak is queued

  auto tracer = start_slabtrace({"record", "--duration", "1", "--format", "json"});
  json report = finish_json(*tracer);
  const json* h = holder_of(report["skb"]["holders"], inode);
  INFO(report["skb"].dump(1));
  REQUIRE(h);
  CHECK((*h)["pid"] == holder.child->pid());
  CHECK((*h)["cgroup_path"] == holder_cg.path());
  CHECK(owned_by(*h, holder.child->pid(), holder_cg.path()));
  CHECK((*h)["protocol"] == "udp");
  std::printf("figures old-udp: ss -m r %llu, kernel_queued_bytes %llu, queued_before_start_bytes %llu\n",
              (unsigned long long)truth, (*h)["kernel_queued_bytes"].get<unsigned long long>(),
              (*h)["queued_before_start_bytes"].get<unsigned long long>());
  CHECK(within((*h)["kernel_queued_bytes"].get<double>(), double(truth), 0.05));
  CHECK(within((*h)["queued_before_start_bytes"].get<double>(), double(truth), 0.05));
  // The BPF socket iterator counts the skbs themselves: all that arrived.
  const std::uint64_t queued = 50000 - udp_drops(holder.child->pid(), holder.port);
  std::printf("figures old-udp: kernel_queued_skbs %s, datagrams queued %llu\n", (*h)["kernel_queued_skbs"].dump().c_str(),
              (unsigned long long)queued);
  CHECK((*h)["kernel_queued_skbs"] == queued);
  CHECK((*h)["kernel_queued_skbs_estimated"] == false);
  CHECK((*h)["queued_skbs"] == 0);  // none of it was allocated while we traced
  CHECK(verdicts_of(report).find("queued before slabtrace started") != std::string::npos);
  CHECK(verdicts_of(report).find("socket inode " + std::to_string(inode)) != std::string::npos);

  Child doctor({slabtrace_bin(), "doctor", "--format", "json"});
  doctor.finish(60);  // exit code is the verdict's severity
  json d = json::parse(doctor.out());
  INFO(d["sockets"].dump(1));
  const json* dh = holder_of(d["sockets"]["holders"], inode);
  REQUIRE(dh);
  CHECK((*dh)["pid"] == holder.child->pid());
  CHECK(owned_by(*dh, holder.child->pid(), holder_cg.path()));
  CHECK(within((*dh)["kernel_queued_bytes"].get<double>(), double(truth), 0.05));
  CHECK((*dh)["kernel_queued_skbs"] == queued);
  holder.exit();
}

TEST_CASE("socket iterators count queued skbs exactly: UDP and unix datagrams in their own netns, packet: unknown",
          "[root][real][census][iter]") {
  REQUIRE_ROOT_OR_SKIP();
  std::string why_not;
  auto iterators = slabtrace::census::SkbIterators::load(&why_not);
  INFO(why_not);
  REQUIRE(iterators);  // 5.9+ with BTF: every kernel slabtrace supports
  const bool unix_iter = iterators->kinds() & unsigned(slabtrace::sockets::SkbCountKind::Unix);
  iterators.reset();  // doctor loads its own
  TestCgroup cg("iter-counts");
  const long n = 20000;

  std::string ready;
  auto udp = start_ready({workload_bin(), "udp-hold", "--cgroup", cg.dir(), "--new-netns"}, &ready);
  const int port = int(ready_number(ready));
  Child sender({workload_bin(), "udp-send", "--cgroup", cg.dir(), "--join-netns", std::to_string(udp->pid()),
                "--port", std::to_string(port), "--count", std::to_string(n)});
  REQUIRE(sender.finish(300) == 0);
  wait_udp_queue_settled(port, udp->pid());
  const std::uint64_t udp_queued = std::uint64_t(n) - udp_drops(udp->pid(), port);
  auto unix_leak = start_ready({workload_bin(), "unix-leak", "--cgroup", cg.dir(), "--new-netns", "--count",
                                std::to_string(n)}, &ready);
  const std::uint64_t unix_sent = ready_number(ready);
  auto packet = start_ready({workload_bin(), "packet-hold", "--cgroup", cg.dir(), "--new-netns"});
  Child traffic({workload_bin(), "udp-send", "--cgroup", cg.dir(), "--join-netns", std::to_string(packet->pid()),
                 "--port", "9", "--count", "100"});
  REQUIRE(traffic.finish(60) == 0);

  // TCP, from this process: 10 segments unread at the accepted end (the
  // kernel may coalesce them into fewer skbs, never into more).
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t addr_len = sizeof addr;
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener.get(), 1) == 0);
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &addr_len) == 0);
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(accepted);
  int one = 1;
  ::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> segment(1000, 't');
  for (int i = 0; i < 10; ++i) REQUIRE(::send(client.get(), segment.data(), segment.size(), 0) == 1000);
  for (int unread = 0, tries = 0; unread < 10000 && tries < 600; ++tries) {
    ::ioctl(accepted.get(), FIONREAD, &unread);
    if (unread < 10000) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  struct stat accepted_st {};
  REQUIRE(::fstat(accepted.get(), &accepted_st) == 0);

  Child doctor({slabtrace_bin(), "doctor", "--format", "json"});
  doctor.finish(60);
  json d = json::parse(doctor.out());
  const json& holders = d["sockets"]["holders"];
  INFO(holders.dump(1));
  auto holder_of_pid = [&](pid_t pid, const std::string& protocol) -> const json& {
    const json* found = nullptr;
    for (const auto& h : holders)
      if (h["pid"] == pid && h["protocol"] == protocol) found = &h;
    INFO("no " << protocol << " holder of pid " << pid);
    REQUIRE(found);
    return *found;
  };
  const json& u = holder_of_pid(udp->pid(), "udp");
  const json& x = holder_of_pid(unix_leak->pid(), "unix-dgram");
  const json& p = holder_of_pid(packet->pid(), "packet-raw");
  std::printf("figures iter: udp %llu queued, kernel_queued_skbs %s; unix %llu sent, kernel_queued_skbs %s%s; "
              "packet kernel_queued_skbs %s, %s bytes\n",
              (unsigned long long)udp_queued, u["kernel_queued_skbs"].dump().c_str(), (unsigned long long)unix_sent,
              x["kernel_queued_skbs"].dump().c_str(), unix_iter ? "" : " (estimated: no iter/unix)",
              p["kernel_queued_skbs"].dump().c_str(), p["kernel_queued_bytes"].dump().c_str());
  CHECK(udp_queued > std::uint64_t(n) * 9 / 10);
  CHECK(u["kernel_queued_skbs"] == udp_queued);
  CHECK(u["kernel_queued_skbs_estimated"] == false);
  CHECK(u["netns"] != own_netns());  // found in the namespace the holder made
  CHECK(x["kernel_queued_skbs"] == unix_sent);
  CHECK(x["kernel_queued_skbs_estimated"] == !unix_iter);  // before 5.17: sock_diag's estimate
  const json* t = holder_of(holders, accepted_st.st_ino);
  REQUIRE(t);
  std::printf("figures iter: tcp 10 segments unread, kernel_queued_skbs %s, kernel_queued_bytes %s\n",
              (*t)["kernel_queued_skbs"].dump().c_str(), (*t)["kernel_queued_bytes"].dump().c_str());
  REQUIRE((*t)["kernel_queued_skbs"].is_number());
  CHECK((*t)["kernel_queued_skbs"].get<int>() >= 1);
  CHECK((*t)["kernel_queued_skbs"].get<int>() <= 10);
  CHECK(p["kernel_queued_bytes"].get<std::uint64_t>() > 0);
  CHECK(p["kernel_queued_skbs"].is_null());  // no iterator for packet sockets: unknown, not 0
  for (auto* c : {udp.get(), unix_leak.get(), packet.get()}) {
    c->close_stdin();
    c->finish(20);
  }
}

TEST_CASE("TAP in NAPI mode (no frags) into an unread UDP socket: heads as slabinfo says, holder, verdict",
          "[root][real][tap]") {
  REQUIRE_ROOT_OR_SKIP();
  TapRun run("tap-napi", {"--count", "30000"});
  run.heads_agree();
  const json& h = run.holder();
  CHECK(h["protocol"] == "udp");
  CHECK(h["cgroup_path"] == run.cg.path());
  check_held_skbs(h, 28500);
  if (kernel_dates_queues("the verdict")) {
    const std::string verdicts = verdicts_of(run.report);
    CHECK(verdicts.find("sk_buff leak") != std::string::npos);
    CHECK(verdicts.find("via tun_get_user") != std::string::npos);
  }
}

// How this kernel's NAPI receive path builds a small skb (napi_get_frags ->
// napi_alloc_skb), asked of the kernel:
// - allocated: no per-CPU NAPI head cache (napi_skb_cache_get, 5.12, "skbuff:
//   allow to use NAPI cache from __napi_alloc_skb()"): every head is a
//   kmem_cache_alloc, seen like any other, and nothing is adopted;
// - unseen: the head from that cache, its data in a 1 KiB page fragment
//   (napi_alloc_cache.page_small: dbae2b062824 "net: skb: introduce and use a
//   single page frag cache", 6.1, until its revert in 6.14): neither is a traced
//   slab allocation, so nothing proves the head is of this run and no traced
//   free ends it; the census counts such skbs in the socket's queue;
// - adopted: the head from the cache, its data kmalloc'ed (traced): adopted.
enum class NapiHeads { allocated, unseen, adopted };
NapiHeads napi_heads() {
  bool cache = false;
  std::ifstream kallsyms("/proc/kallsyms");
  for (std::string addr, type, name; kallsyms >> addr >> type >> name;) {
    std::getline(kallsyms, addr);  // a module's [name]
    if (name == "napi_skb_cache_get") cache = true;
  }
  if (!cache) return NapiHeads::allocated;
  btf* vmlinux = btf__load_vmlinux_btf();
  REQUIRE(vmlinux);
  bool page_small = false;
  int id = btf__find_by_name_kind(vmlinux, "napi_alloc_cache", BTF_KIND_STRUCT);
  if (id > 0) {
    const btf_type* t = btf__type_by_id(vmlinux, id);
    const btf_member* m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++m)
      if (std::string(btf__name_by_offset(vmlinux, m->name_off)) == "page_small") page_small = true;
  }
  btf__free(vmlinux);
  return page_small ? NapiHeads::unseen : NapiHeads::adopted;
}

TEST_CASE("TAP in NAPI frags mode into an unread UDP socket: heads from the NAPI cache are adopted and counted",
          "[root][real][tap]") {
  REQUIRE_ROOT_OR_SKIP();
  const NapiHeads kind = napi_heads();
  TapRun run("tap-frags", {"--frags", "--count", "30000"});
  const json& h = run.holder();
  CHECK(h["protocol"] == "udp");
  const double adopted = run.report["skb"]["adopted_heads"].get<double>();
  if (kind == NapiHeads::unseen) {
    // Not seen, and said so; the census still counts every one in the queue.
    std::printf("skipped: NAPI heads against slabinfo and their adoption: this kernel keeps small NAPI heads' data in "
                "page fragments (napi_alloc_cache.page_small), not slab objects; adopted %.0f\n", adopted);
    CHECK(h["kernel_queued_skbs"].get<double>() >= 28500);
    CHECK(run.report["notes"].dump().find("page fragments") != std::string::npos);
  } else {
    run.heads_agree();
    if (kind == NapiHeads::adopted) {
      CHECK(adopted >= 28500);  // not seen allocated: adopted
    } else {
      std::printf("skipped: adoption: no NAPI head cache (napi_skb_cache_get, 5.12) on this kernel, every head is "
                  "allocated; adopted %.0f\n", adopted);
      CHECK(adopted <= 1500);  // seen allocated: never adopted again
    }
    check_held_skbs(h, 28500);
  }
  if (kind == NapiHeads::unseen)
    std::printf("skipped: the verdict: a burst's verdict needs the queue's age, and none of its skbs was seen\n");
  else if (kernel_dates_queues("the verdict"))
    CHECK(verdicts_of(run.report).find("sk_buff leak") != std::string::npos);
}

TEST_CASE("AF_PACKET capture on a NAPI TAP: cache table, sk_buff section and verdict agree with slabinfo",
          "[root][real][tap][capture]") {
  REQUIRE_ROOT_OR_SKIP();
  // No UDP listener: the originals are dropped, the capture keeps its clones.
  TapRun run("tap-capture", {"--capture", "--no-udp", "--count", "30000"});
  const double delta = run.heads_agree();
  const double section = run.report["skb"]["outstanding_heads"].get<double>();
  const json& h = run.holder();
  CHECK(h["family"] == "packet");
  CHECK(h["kernel_queued_skbs"].is_null());  // no iterator walks packet sockets: unknown, not 0
  if (!kernel_dates_queues("the held count and the verdict")) {
    check_held_skbs(h, 0.95 * delta);
    return;
  }
  CHECK(within(h["queued_skbs"].get<double>(), delta, 0.05));
  // The verdict's count is the sk_buff section's, and its "via" names the path.
  const std::string verdicts = verdicts_of(run.report);
  INFO(verdicts);
  std::smatch m;
  REQUIRE(std::regex_search(verdicts, m, std::regex("sk_buff leak: ([0-9,]+) skbs")));
  std::string count = m[1];
  count.erase(std::remove(count.begin(), count.end(), ','), count.end());
  CHECK(std::stod(count) == section);
  REQUIRE(std::regex_search(verdicts, m, std::regex(" via ([A-Za-z0-9_.]+)")));
  const std::string via = m[1];
  CHECK((via == "packet_rcv" || via == "tun_get_user"));
  CHECK(via.rfind("entry_", 0) != 0);
}

TEST_CASE("unix datagram leak whose receiving socket is open in a parent and its child: both are owners, the child is blamed",
          "[root][real][census][fork]") {
  REQUIRE_ROOT_OR_SKIP();
  TestCgroup parent_cg("fork-parent"), child_cg("fork-child");
  auto tracer = start_slabtrace({"record", "--duration", "300", "--format", "json"});
  auto leak = start_ready({workload_bin(), "unix-fork-leak", "--cgroup", parent_cg.dir(), "--child-cgroup",
                           child_cg.dir(), "--count", "30000"});
  // "ready SENT CHILD_PID" was read by start_ready; the child pid is in /proc.
  pid_t child = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string text;
    if (!stat || !std::getline(stat, text)) continue;
    auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(text.substr(close + 2));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == leak->pid()) child = std::stoi(entry.path().filename().string());
  }
  REQUIRE(child > 0);
  tracer->signal(SIGINT);
  json report = finish_json(*tracer);
  INFO(report["skb"].dump(1));
  const json* h = nullptr;
  // The child's socket that holds the most: another unix socket it has open
  // (one inherited from this test process, say) may be listed with nothing.
  for (const auto& holder : report["skb"]["holders"])
    if (holder["protocol"] == "unix-dgram" && owned_by(holder, child, child_cg.path()) &&
        (!h || holder["queued_skbs"].get<std::uint64_t>() > (*h)["queued_skbs"].get<std::uint64_t>()))
      h = &holder;
  REQUIRE(h);
  CHECK(owned_by(*h, leak->pid(), parent_cg.path()));
  CHECK((*h)["owners"].size() == 2);
  std::printf("figures unix-fork: %zu owners, blamed pid %d (child %d, parent %d), queued_skbs %llu, kernel bytes %llu\n",
              (*h)["owners"].size(), (*h)["pid"].get<int>(), int(child), int(leak->pid()),
              (*h)["queued_skbs"].get<unsigned long long>(), (*h)["kernel_queued_bytes"].get<unsigned long long>());
  CHECK((*h)["pid"] == child);  // the one that should read
  CHECK((*h)["cgroup_path"] == child_cg.path());
  check_held_skbs(*h, 28500);
  const std::string verdicts = verdicts_of(report);
  CHECK(verdicts.find("of pid " + std::to_string(child)) != std::string::npos);
  leak->close_stdin();
  leak->finish(20);
}

TEST_CASE("NAPI TAP with a reader that drains 300,000 datagrams: nothing outstanding, no holder",
          "[root][real][tap]") {
  REQUIRE_ROOT_OR_SKIP();
  long read = 0;
  TapRun run("tap-read", {"--read", "--count", "300000"}, &read);
  std::printf("figures tap-read: %ld datagrams read\n", read);
  CHECK(read >= 285000);  // the reader drained what arrived (a TAP may drop a few under load)
  const json& heads = cache_of(run.report, "skbuff_head_cache");
  INFO(heads.dump());
  CHECK(heads["outstanding"].get<std::uint64_t>() < 1000);
  CHECK(run.report["skb"]["outstanding_heads"].get<std::uint64_t>() < 1000);
  CHECK(find_by(run.report["skb"]["holders"], "pid", run.tap->pid()) == nullptr);
  CHECK(verdicts_of(run.report).find("sk_buff leak") == std::string::npos);
}
