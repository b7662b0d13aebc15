// Accuracy against the kernel's own counts (issue 3): a healthy node must not
// look leaky, and real leaks must match /proc/slabinfo.
#include <fmt/format.h>

#include "accuracy_rows.hpp"
#include "root_helpers.hpp"

using namespace roottest;
using nlohmann::json;

namespace {

const json* cache(const json& report, const std::string& name) { return find_by(report["caches"], "name", name); }

std::uint64_t outstanding(const json& report, const std::string& name) {
  const json* c = cache(report, name);
  return c ? (*c)["outstanding"].get<std::uint64_t>() : 0;
}

std::uint64_t allocs(const json& report, const std::string& name) {
  const json* c = cache(report, name);
  return c ? (*c)["allocs"].get<std::uint64_t>() : 0;
}

std::int64_t slabinfo_delta(const json& report, const std::string& name) {
  const json* c = cache(report, name);
  if (!c || (*c)["slabinfo"].is_null()) return 0;
  return (*c)["slabinfo"]["delta"].get<std::int64_t>();
}

bool has_leak_verdict(const json& report) {
  for (const auto& v : report["verdicts"])
    if (v.get<std::string>().rfind("sk_buff leak:", 0) == 0) return true;
  return false;
}

// One row of the accuracy table per cache a leak test holds against slabinfo.
void leak_row(const std::string& workload, const json& report, const std::string& cache) {
  accuracy_row(workload, cache, outstanding(report, cache), allocs(report, cache), slabinfo_delta(report, cache),
               "within 5% of the slabinfo delta");
}

void check_within(std::uint64_t ours, std::int64_t kernel, double tolerance) {
  INFO("slabtrace " << ours << " vs /proc/slabinfo delta " << kernel);
  REQUIRE(kernel > 0);
  double ratio = double(ours) / double(kernel);
  CHECK(ratio >= 1.0 - tolerance);
  CHECK(ratio <= 1.0 + tolerance);
}

}  // namespace

TEST_CASE("healthy UDP churn is not reported as a leak", "[root][accuracy]") {
  REQUIRE_ROOT_OR_SKIP();
  TestCgroup cg("churn");
  // Stacks are not what is tested here; without them the churn reaches ~1 M skbs.
  auto tracer = start_slabtrace({"record", "--duration", kUntilStopped, "--format", "json", "--no-stacks"});
  // Until the churn has made its skbs, however slow the machine (an emulated
  // guest makes a few tenths of this machine's rate): ~5 s here.
  Child churn({workload_bin(), "udp-churn", "--cgroup", cg.dir(), "--seconds", "120", "--count",
               std::to_string(scaled(1000000))});
  REQUIRE(churn.finish(180) == 0);
  json report = stop_json(*tracer);

  std::uint64_t seen = allocs(report, "skbuff_head_cache");
  std::uint64_t left = outstanding(report, "skbuff_head_cache");
  INFO("allocated " << seen << ", outstanding " << left << "; workload: " << churn.out());
  accuracy_row("churn", "skbuff_head_cache", left, seen, slabinfo_delta(report, "skbuff_head_cache"),
               fmt::format(">={} allocs; <=1% of them and <=5000 left; no leak verdict", scaled(1000000)), churn.out());
  CHECK(seen >= scaled(1000000));  // issue 3: at least 1 M skbs (measured 1.9 M here)
  CHECK(double(left) <= 0.01 * double(seen));
  CHECK(left <= 5000);
  CHECK(!has_leak_verdict(report));
}

TEST_CASE("leak then release: nothing outstanding once the holder exits", "[root][accuracy]") {
  REQUIRE_ROOT_OR_SKIP();
  const std::string data_cache = leak_data_cache("udp");
  TestCgroup sender_cg("sender"), holder_cg("holder");
  auto tracer = start_slabtrace({"record", "--duration", kUntilStopped, "--format", "json"});
  {
    UdpHolder holder(holder_cg);
    udp_send(sender_cg, holder.port, 50000);
    wait_udp_queue_settled(holder.port);
    std::uint64_t queued = slab_active("skbuff_head_cache");
    holder.exit();
    CHECK(wait_slab_at_most("skbuff_head_cache", queued - 45000));
  }
  json report = stop_json(*tracer);
  for (const std::string& c : {std::string("skbuff_head_cache"), data_cache})
    accuracy_row("leak-release", c, outstanding(report, c), allocs(report, c), slabinfo_delta(report, c),
                 c == data_cache ? "<=500 of 50,000 (+2,000 node churn); no leak verdict" : "<=500 of 50,000; no leak verdict");
  CHECK(outstanding(report, "skbuff_head_cache") <= 500);
  CHECK(outstanding(report, data_cache) <= 500 + 2000);  // plus the node's own churn in that cache
  CHECK(!has_leak_verdict(report));
}

TEST_CASE("real leaks match the /proc/slabinfo delta within 5%", "[root][accuracy]") {
  REQUIRE_ROOT_OR_SKIP();
  SECTION("unread UDP socket") {
    const std::string data_cache = leak_data_cache("udp");
    settle_slabinfo();
    TestCgroup sender_cg("sender"), holder_cg("holder");
    UdpHolder holder(holder_cg);
    json report = record_udp_leak(sender_cg, holder.port, 50000);
    holder.exit();
    leak_row("leak-udp", report, "skbuff_head_cache");
    leak_row("leak-udp", report, data_cache);
    check_within(outstanding(report, "skbuff_head_cache"), slabinfo_delta(report, "skbuff_head_cache"), 0.05);
    check_within(outstanding(report, data_cache), slabinfo_delta(report, data_cache), 0.05);
  }
  SECTION("unread unix datagram socketpair") {
    const std::string data_cache = leak_data_cache("unix");
    settle_slabinfo();
    TestCgroup cg("unix");
    auto tracer = start_slabtrace({"record", "--duration", kUntilStopped, "--format", "json"});
    Child leaker({workload_bin(), "unix-leak", "--cgroup", cg.dir(), "--count", "50000"});
    REQUIRE(leaker.read_line(300));
    json report = stop_json(*tracer);
    leak_row("leak-unix", report, "skbuff_head_cache");
    leak_row("leak-unix", report, data_cache);
    check_within(outstanding(report, "skbuff_head_cache"), slabinfo_delta(report, "skbuff_head_cache"), 0.05);
    check_within(outstanding(report, data_cache), slabinfo_delta(report, data_cache), 0.05);
    leaker.close_stdin();
    leaker.finish(20);
  }
}

// Measured 88% once on a host where another packet capture and heavy tests ran
// at the same time; 100% on a quiet one. The clones of every packet on lo are
// counted here, so the test needs a quiet loopback.
TEST_CASE("AF_PACKET capture leak matches the /proc/slabinfo delta within 5%", "[root][accuracy]") {
  REQUIRE_ROOT_OR_SKIP();
  const auto data_caches = leak_data_caches("packet");
  settle_slabinfo();
  TestCgroup capture_cg("capture"), sender_cg("sender");
  Child capture({workload_bin(), "packet-hold", "--cgroup", capture_cg.dir()});
  REQUIRE(capture.read_line(60));
  auto tracer = start_slabtrace({"record", "--duration", kUntilStopped, "--format", "json"});
  // No listener on the port: each datagram also brings an ICMP error, and
  // the capture keeps clones of everything in both directions.
  udp_send(sender_cg, 9, 50000);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the last ICMP errors, sent from softirq
  json report = stop_json(*tracer);
  capture.close_stdin();
  capture.finish(60);
  leak_row("leak-packet", report, "skbuff_head_cache");
  for (const auto& [name, grew] : data_caches) leak_row("leak-packet", report, name);
  check_within(outstanding(report, "skbuff_head_cache"), slabinfo_delta(report, "skbuff_head_cache"), 0.05);
  for (const auto& [name, grew] : data_caches) {
    INFO(name << " grew by " << grew << " in the probe");
    check_within(outstanding(report, name), slabinfo_delta(report, name), 0.05);
  }
}

TEST_CASE("TCP bulk transfer: nothing outstanding that slabinfo does not also show", "[root][accuracy][tcp]") {
  REQUIRE_ROOT_OR_SKIP();
  if (access("/usr/bin/iperf3", X_OK) != 0) {
    WARN("skipped: iperf3 not installed (scripts/setup.sh installs it)");
    return;
  }
  // The transfer runs in the test's cgroup and slabtrace looks only there, so
  // whatever else the machine does cannot blur the result.
  TestCgroup cg("iperf");
  auto in_cgroup = [&](const std::string& cmd) {
    return std::vector<std::string>{"/bin/sh", "-c", "echo $$ > " + cg.dir() + "/cgroup.procs && exec " + cmd};
  };
  Child server(in_cgroup("/usr/bin/iperf3 -s -1 -p 5299 -B 127.0.0.1"));
  REQUIRE(wait_tcp_listening(5299));
  auto tracer = start_slabtrace({"record", "--duration", kUntilStopped, "--format", "json", "--no-stacks", "--cgroup", cg.path()});
  Child client(in_cgroup("/usr/bin/iperf3 -c 127.0.0.1 -p 5299 -t 10"));
  REQUIRE(client.finish(120) == 0);
  json report = stop_json(*tracer);
  server.finish(10);
  CHECK(!report["cgroups"].empty());

  for (const auto& c : report["caches"]) {
    std::uint64_t out = c["outstanding"], all = c["allocs"];
    if (all >= 10000 || out > 1000)
      accuracy_row("tcp", c["name"], out, all, c["slabinfo"].is_null() ? 0 : c["slabinfo"]["delta"].get<std::int64_t>(),
                   "<=1000 or <=1% of allocs left, or slabinfo grew by half of it");
    if (out <= 1000 || double(out) <= 0.01 * double(all)) continue;
    std::int64_t grew = c["slabinfo"].is_null() ? 0 : c["slabinfo"]["delta"].get<std::int64_t>();
    INFO(c.dump());
    CHECK(double(grew) >= 0.5 * double(out));
  }
}

TEST_CASE("mixed load: every cache that moved agrees, or check says why", "[root][accuracy][check]") {
  REQUIRE_ROOT_OR_SKIP();
  settle_slabinfo();
  TestCgroup churn_cg("churn"), sender_cg("sender"), holder_cg("holder");
  UdpHolder holder(holder_cg);
  // 100,000 files take longer than a few seconds here: the leak goes first and
  // the check runs long enough for all of it.
  auto tracer = start_slabtrace({"check", "--duration", kUntilStopped, "--format", "json", "--min-delta", "10000"});
  udp_send(sender_cg, holder.port, 50000);
  Child churn({workload_bin(), "udp-churn", "--cgroup", churn_cg.dir(), "--seconds", "5"});
  std::string dir = "/tmp/slabtrace-test-files-" + std::to_string(getpid());
  std::filesystem::create_directory(dir);
  for (int i = 0; i < 100000; ++i) std::ofstream(dir + "/f" + std::to_string(i)).put('x');
  std::filesystem::remove_all(dir);
  churn.finish(120);
  wait_udp_queue_settled(holder.port);
  json check = stop_json(*tracer);
  holder.exit();

  REQUIRE(check["schema"] == "slabtrace.check/v1");
  bool skb_row = false;
  for (const auto& row : check["caches"]) {
    INFO(row.dump());
    accuracy_row("mixed", row["cache"], row["outstanding"], row["allocs"], row["slabinfo_delta"],
                 "agrees within 10%, or check says why",
                 row["verdict"] == "agrees" ? std::string("agrees")
                                            : row["verdict"].get<std::string>() + ": " + row["reason"].get<std::string>());
    if (row["verdict"] == "agrees") {
      double ratio = row["ratio"];
      CHECK(ratio >= 0.9);
      CHECK(ratio <= 1.1);
    } else {
      CHECK(!row["reason"].get<std::string>().empty());
    }
    if (row["cache"] == "skbuff_head_cache") skb_row = row["verdict"] == "agrees";
  }
  INFO(check.dump(1));
  CHECK(skb_row);
}
