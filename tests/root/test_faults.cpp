// Faults and load that must not lose data or wedge slabtrace (issue 14): a
// full disk, signals, SIGKILL, two instances, an over-full live table, things
// that vanish while they are being resolved, and hostile HTTP clients of serve.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <sstream>

#include "root_helpers.hpp"

using namespace roottest;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Every program and link bpftool lists, as "prog 12 st_kmem_alloc" lines.
std::vector<std::string> bpftool_objects(const char* kind) {
  auto [rc, out] = shell(std::string("/usr/sbin/bpftool ") + kind + " show --json");
  REQUIRE(rc == 0);
  std::vector<std::string> ids;
  for (const auto& o : json::parse(out)) {
    std::string name = o.value("name", "");
    ids.push_back(std::string(kind) + " " + std::to_string(o.value("id", 0)) + " " + name +
                  (o.contains("prog_id") ? " prog " + std::to_string(o["prog_id"].get<int>()) : ""));
  }
  return ids;
}

// Lines of stderr other than the info lines before tracing begins (one per
// thing this kernel cannot give, e.g. no cache pointer before 6.1, and the
// "tracing for" line itself).
std::size_t lines_after_start(const std::string& s) {
  std::istringstream in(s);
  std::string line;
  std::size_t n = 0;
  bool started = false;
  while (std::getline(in, line)) {
    if (!started && line.rfind("slabtrace: info: ", 0) == 0) {
      started = line.find("tracing for") != std::string::npos;
      continue;
    }
    ++n;
  }
  return n;
}

// A 1 MiB tmpfs mounted for one test, unmounted after it.
class SmallTmpfs {
 public:
  SmallTmpfs() : dir_("/tmp/slabtrace-test-tmpfs-" + std::to_string(getpid())) {
    std::filesystem::create_directories(dir_);
    REQUIRE(mount("slabtrace-test", dir_.c_str(), "tmpfs", 0, "size=1m") == 0);
  }
  ~SmallTmpfs() {
    umount2(dir_.c_str(), MNT_DETACH);
    rmdir(dir_.c_str());
  }
  // Fills the file system but for about `leave` bytes.
  void fill(std::size_t leave) {
    std::ofstream f(dir_ + "/filler", std::ios::binary);
    std::string block(4096, 'x');
    while (f.write(block.data(), std::streamsize(block.size())) && f.flush()) {
    }
    f.close();
    std::filesystem::resize_file(dir_ + "/filler", std::filesystem::file_size(dir_ + "/filler") - leave);
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// A number from /proc/PID/status ("Threads:", "VmRSS:" in KiB), -1 if it has none.
long status_field(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  return -1;
}
int thread_count(pid_t pid) { return int(status_field(pid, "Threads:")); }

// serve's threads over 2 s, fewest and most: each interval's socket census
// runs one short-lived thread of its own (setns moves only the calling
// thread), so a single reading can catch it.
std::pair<int, int> thread_range(pid_t pid) {
  int fewest = thread_count(pid), most = fewest;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int n = thread_count(pid);
    fewest = std::min(fewest, n);
    most = std::max(most, n);
  }
  return {fewest, most};
}
long rss_kib(pid_t pid) { return status_field(pid, "VmRSS:"); }

// A raw TCP connection to 127.0.0.1:port (-1 if refused).
int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(std::uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One request on a fresh connection: the whole reply (until the server closes
// or Content-Length is met), or "" after `timeout_s`.
std::string http_get(int port, const std::string& path, double timeout_s = 5) {
  int fd = connect_to(port);
  if (fd < 0) return "";
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string got;
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      got.clear();
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, int(left)) <= 0) continue;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, std::size_t(n));
  }
  close(fd);
  return got;
}

const json* cgroup_in(const json& report, const std::string& path) { return find_by(report["cgroups"], "path", path); }

std::uint64_t outstanding_in(const json* cg, const char* cache) {
  if (!cg || !(*cg)["by_cache"].contains(cache)) return 0;
  return (*cg)["by_cache"][cache].get<std::uint64_t>();
}

}  // namespace

TEST_CASE("faults: --output on a full file system is one clear error and a non-zero exit", "[root][faults][output]") {
  REQUIRE_ROOT_OR_SKIP();
  SmallTmpfs fs;
  for (std::size_t leave : {std::size_t(0), std::size_t(2048)}) {  // full, and too little room for the report
    fs.fill(leave);
    const std::string report = fs.dir() + "/report.json";
    Child rec({slabtrace_bin(), "record", "--duration", "1", "--format", "json", "--output", report});
    int rc = rec.finish(60);
    INFO("room left " << leave << ": " << rec.err());
    CHECK(rc == 4);
    CHECK(rec.err().find("cannot write " + report + ": No space left on device") != std::string::npos);
    CHECK(lines_after_start(rec.err()) <= 2);  // the error (after "tracing..." and the kernel's limits)
    CHECK_FALSE(std::filesystem::exists(report));  // no empty or cut report left to be mistaken for one
    std::filesystem::remove(fs.dir() + "/filler");
  }
  // --svg the same way, and stdout on a full device.
  fs.fill(0);
  Child svg({slabtrace_bin(), "record", "--duration", "1", "--svg", fs.dir() + "/flame.svg", "--output", "/dev/null"});
  CHECK(svg.finish(60) == 4);
  CHECK(svg.err().find("flame.svg: No space left on device") != std::string::npos);
  // (A subshell, so that only stdout goes to the full device: stderr comes back.)
  for (const char* command : {" record --duration 1", " stacks --duration 1", " check --duration 1",
                              " doctor --swap-window 0"}) {
    auto [rc, said] = shell("(" + slabtrace_bin() + command + " > /dev/full)");
    INFO(command << ": " << said);
    CHECK(rc == 4);
    CHECK(said.find("cannot write stdout: No space left on device") != std::string::npos);
  }
  auto [rc, said] = shell("(" + slabtrace_bin() + " stream --interval 0.5 --duration 3 > /dev/full)");
  INFO(said);
  CHECK(rc == 4);
  CHECK(said.find("cannot write stdout: No space left on device") != std::string::npos);
}

TEST_CASE("faults: SIGTERM and SIGINT still write the report, SIGKILL leaves nothing attached", "[root][faults][signals]") {
  REQUIRE_ROOT_OR_SKIP();
  TestCgroup sender_cg("sender"), holder_cg("holder");
  UdpHolder holder(holder_cg);
  for (int sig : {SIGTERM, SIGINT}) {
    auto tracer = start_slabtrace({"record", "--duration", "600", "--format", "json"});
    udp_send(sender_cg, holder.port, 2000);
    tracer->signal(sig);
    json report = finish_json(*tracer);
    INFO(strsignal(sig));
    CHECK(report["schema"] == "slabtrace.report/v1");
    CHECK(outstanding_in(cgroup_in(report, sender_cg.path()), "skbuff_head_cache") >= 1900);
  }
  holder.exit();

  auto tracer = start_slabtrace({"record", "--duration", "600", "--format", "json"});
  auto progs = bpf_ids_of(tracer->pid(), "prog_id:");
  auto links = bpf_ids_of(tracer->pid(), "link_id:");
  CHECK(progs.size() >= 8);
  tracer->signal(SIGKILL);
  CHECK(tracer->finish(30) == 128 + SIGKILL);
  CHECK(tracer->out().empty());
  // Nothing of it stays in the kernel: its programs, links and their
  // attachments go with its last fd (freed after an RCU grace period).
  std::vector<std::string> left;
  bool gone = eventually(10, [&] {
    left.clear();
    for (const auto& o : bpftool_objects("prog"))
      for (auto id : progs)
        if (o.rfind("prog " + std::to_string(id) + " ", 0) == 0) left.push_back(o);
    for (const auto& o : bpftool_objects("link"))
      for (auto id : links)
        if (o.rfind("link " + std::to_string(id) + " ", 0) == 0) left.push_back(o);
    return left.empty();
  }, 100);
  INFO("still loaded: " << fmt::format("{}", fmt::join(left, ", ")));
  CHECK(gone);
  std::cout << fmt::format("faults: SIGKILL: exit {}, {} programs and {} links of it, none left\n", 128 + SIGKILL,
                           progs.size(), links.size());
}

TEST_CASE("faults: two instances at once both report the leak right", "[root][faults][instances]") {
  REQUIRE_ROOT_OR_SKIP();
  TestCgroup sender_cg("sender"), holder_cg("holder");
  UdpHolder holder(holder_cg);
  // Both run until the leak is sent, however long the second takes to start
  // (seconds in an emulated guest): a fixed --duration of the first could end
  // before the second is up.
  auto first = start_slabtrace({"record", "--duration", kUntilStopped, "--format", "json"});
  auto second = start_slabtrace({"record", "--duration", kUntilStopped, "--format", "json", "--sample", "4"});
  udp_send(sender_cg, holder.port, 10000);
  json a = stop_json(*first);
  json b = stop_json(*second);
  holder.exit();
  std::uint64_t exact = outstanding_in(cgroup_in(a, sender_cg.path()), "skbuff_head_cache");
  std::uint64_t sampled = outstanding_in(cgroup_in(b, sender_cg.path()), "skbuff_head_cache");
  INFO("exact " << exact << ", sampled 1 in 4 " << sampled);
  std::cout << fmt::format("faults: two instances, 10,000 leaked: {} exact, {} at 1 in 4\n", exact, sampled);
  CHECK(exact >= 9900);
  CHECK(exact <= 10100);
  CHECK(sampled >= 8500);  // 1 in 4 of 10,000: the 95 % bound is well inside 15 %
  CHECK(sampled <= 11500);
  for (const json* r : {&a, &b}) {
    const json* h = find_by((*r)["skb"]["holders"], "pid", holder.child->pid());
    CHECK(h);
  }
}

TEST_CASE("faults: a live table at 2x and 10x its room is counted and reported, never a crash", "[root][faults][table]") {
  REQUIRE_ROOT_OR_SKIP();
  TestCgroup sender_cg("sender"), holder_cg("holder");
  for (int times : {2, 10}) {
    UdpHolder holder(holder_cg);
    // 1,024 objects of room; each datagram leaks two objects (head and data).
    const long room = 1024, datagrams = room * times / 2;
    auto tracer = start_slabtrace({"record", "--duration", "3", "--format", "json", "--max-objects", std::to_string(room)});
    udp_send(sender_cg, holder.port, datagrams);
    json report = finish_json(*tracer);
    holder.exit();
    INFO(times << "x: lost " << report["lost"].dump() << ", live " << report["live_objects"]);
    CHECK(report["live_capacity"] == room);
    // Two slots per object of room; a whole sk_buff (head and data) takes one.
    CHECK(report["live_objects"].get<std::uint64_t>() <= std::uint64_t(4 * room));
    // What found no slot is counted, and the bucket counters count every allocation.
    CHECK(report["lost"]["map_full"].get<std::uint64_t>() + report["live_objects"].get<std::uint64_t>() >=
          std::uint64_t(2 * datagrams));
    const json* cache = find_by(report["caches"], "name", "skbuff_head_cache");
    REQUIRE(cache);
    CHECK((*cache)["allocs"].get<std::uint64_t>() >= std::uint64_t(datagrams));
    // The report says what the numbers are worth.
    std::string notes = report["notes"].dump();
    if (report["lost"]["map_full"].get<std::uint64_t>() > 0) CHECK(notes.find("were not tracked") != std::string::npos);
    if (times == 10) CHECK(report["lost"]["map_full"].get<std::uint64_t>() > 0);
    std::cout << fmt::format("faults: live table at {}x its room ({} objects leaked): {} live, map_full {}, allocs {}\n", times,
                             2 * datagrams, report["live_objects"].get<std::uint64_t>(),
                             report["lost"]["map_full"].get<std::uint64_t>(), (*cache)["allocs"].get<std::uint64_t>());
  }
}

TEST_CASE("faults: cgroups, processes and network namespaces that vanish while being resolved", "[root][faults][vanish]") {
  REQUIRE_ROOT_OR_SKIP();
  // Two tracers that resolve all the time: stream every 0.2 s, and record,
  // which resolves every cgroup and walks /proc/*/fd and every netns at the end.
  auto stream = start_slabtrace({"stream", "--interval", "0.2", "--duration", "600"});
  auto rec = start_slabtrace({"record", "--duration", "600", "--format", "json"});
  // Churn: cgroups created, used and removed; processes that hold leaking
  // sockets in network namespaces of their own and exit.
  const std::string base = cgroup2_mount() + "/slabtrace-test-" + std::to_string(getpid()) + "-vanish";
  std::filesystem::create_directory(base);
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0};
  std::thread churn([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::string dir = base + "/c" + std::to_string(i);
      std::filesystem::create_directory(dir);
      {
        Child holder({workload_bin(), "udp-hold", "--cgroup", dir, "--new-netns"});
        Child unix_leak({workload_bin(), "unix-leak", "--cgroup", dir, "--count", "300"});
        Child sender({workload_bin(), "udp-send", "--cgroup", dir, "--port", "9", "--count", "200"});
        sender.finish(10);
        unix_leak.read_line(5);
        holder.read_line(5);
        unix_leak.close_stdin();
        holder.close_stdin();
        unix_leak.finish(10);
        holder.finish(10);
      }
      rmdir_retrying(dir, 20);
      rounds.fetch_add(1);
    }
  });
  // Stop the record while the churn goes on: its report resolves cgroups,
  // owners and namespaces as they disappear.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  rec->signal(SIGINT);
  int rec_rc = rec->finish(60);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stream->signal(SIGINT);
  int stream_rc = stream->finish(60);
  stop.store(true);
  churn.join();
  rmdir(base.c_str());

  INFO("record: " << rec->err() << "\nstream: " << stream->err());
  CHECK(rounds.load() >= 3);
  CHECK(rec_rc == 0);
  CHECK(stream_rc == 0);
  json report = json::parse(rec->out());
  CHECK(report["schema"] == "slabtrace.report/v1");
  // Removed cgroups still appear, by id; a path that can no longer be read is never made up.
  for (const auto& cg : report["cgroups"]) CHECK(cg.contains("id"));
  std::istringstream lines(stream->out());
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    // Per-cgroup lines, and the socket census's lines where sockets hold queues.
    std::string schema = json::parse(line)["schema"];
    CHECK((schema == "slabtrace.stream/v1" || schema == "slabtrace.sockets/v1"));
    n += schema == "slabtrace.stream/v1";
  }
  CHECK(n > 0);
  std::cout << fmt::format("faults: vanishing: {} rounds of cgroup+netns+process churn; record exit {} ({} cgroups), "
                           "stream exit {} ({} lines)\n",
                           rounds.load(), rec_rc, report["cgroups"].size(), stream_rc, n);
}

TEST_CASE("faults: serve under 200 scrapers, slow, oversize and garbage clients keeps answering /healthz",
          "[root][faults][serve]") {
  REQUIRE_ROOT_OR_SKIP();
  const int port = free_loopback_port();
  // Under ASan (scripts/test-sanitize.sh) every freed block waits in a 256 MB
  // quarantine and counts in RSS: 200 scrapes put 35 MB there. The RSS bound is
  // on what serve holds, so its quarantine is 4 MB here.
  std::vector<std::string> env;
  if (const char* asan = std::getenv("ASAN_OPTIONS")) env.push_back(std::string("ASAN_OPTIONS=") + asan + ":quarantine_size_mb=4");
  Child serve({slabtrace_bin(), "serve", "--listen", "127.0.0.1:" + std::to_string(port), "--interval", "1"}, env);
  REQUIRE(eventually(60, [&] { return http_get(port, "/healthz", 1).find("200 OK") != std::string::npos; }, 100));
  const int threads = thread_range(serve.pid()).first;
  const long rss_before = rss_kib(serve.pid());

  std::vector<int> attackers;
  // Half a request line, the attack that blinded /healthz for 5 s, times 300.
  for (int i = 0; i < 300; ++i) {
    int fd = connect_to(port);
    if (fd >= 0 && send(fd, "GET /metr", 9, MSG_NOSIGNAL) == 9) attackers.push_back(fd);
  }
  // Oversize heads and garbage.
  for (int i = 0; i < 20; ++i) {
    int fd = connect_to(port);
    std::string big = "GET /" + std::string(100000, 'a');
    send(fd, big.data(), big.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    attackers.push_back(fd);
    fd = connect_to(port);
    send(fd, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, MSG_NOSIGNAL);  // a TLS hello
    attackers.push_back(fd);
  }
  std::vector<double> healthz_ms;
  // A slow client sends one byte a second while 200 scrapers hit /metrics at once.
  int slow = connect_to(port);
  const std::string slow_request = "GET /metrics HTTP/1.1\r\n\r\n";
  std::atomic<int> whole_pages{0};
  std::vector<std::thread> scrapers;
  for (int i = 0; i < 200; ++i)
    scrapers.emplace_back([&] {
      std::string page = http_get(port, "/metrics", 20);
      if (page.rfind("HTTP/1.1 200 OK", 0) == 0 && page.find("slabtrace_") != std::string::npos) whole_pages.fetch_add(1);
    });
  for (std::size_t i = 0; i < 5; ++i) {
    send(slow, &slow_request[i], 1, MSG_NOSIGNAL);
    auto t = Clock::now();
    bool ok = http_get(port, "/healthz", 5).find("200 OK") != std::string::npos;
    healthz_ms.push_back(ok ? std::chrono::duration<double, std::milli>(Clock::now() - t).count() : 1e9);
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  // Read while the attackers still hold their connections open.
  const auto [threads_under_load, threads_most] = thread_range(serve.pid());
  for (auto& t : scrapers) t.join();
  const long rss_under_load = rss_kib(serve.pid());
  for (int fd : attackers) close(fd);
  close(slow);

  double worst = *std::max_element(healthz_ms.begin(), healthz_ms.end());
  INFO("healthz worst " << worst << " ms; threads " << threads << " -> " << threads_under_load << ".." << threads_most
                        << "; RSS " << rss_before
                        << " -> " << rss_under_load << " KiB; whole pages " << whole_pages.load());
  CHECK(worst < 1000);
  CHECK(whole_pages.load() == 200);
  CHECK(threads_under_load == threads);                // no thread per client
  CHECK(threads_most <= threads + 1);                  // at most the census's own, for a moment
  CHECK(rss_under_load - rss_before < 32 * 1024);       // bounded buffers, shared pages
  std::cout << fmt::format("serve under attack: /healthz worst {:.1f} ms, {} of 200 concurrent scrapes whole, threads {} -> {}, "
                           "RSS {} -> {} KiB\n",
                           worst, whole_pages.load(), threads, threads_under_load, rss_before, rss_under_load);
  CHECK(http_get(port, "/metrics").find("200 OK") != std::string::npos);
  serve.signal(SIGTERM);
  CHECK(serve.finish(30) == 0);
}
