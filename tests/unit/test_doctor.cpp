#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>

#include "slabtrace/doctor.hpp"
#include "temp_dir.hpp"

using namespace slabtrace;
using namespace slabtrace::doctor;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

DoctorInputs fixture(const std::string& name) {
  auto inputs = DoctorInputs::under(SLABTRACE_FIXTURES "/doctor/" + name);
  inputs.swap_window = std::chrono::milliseconds(0);  // fixtures do not change under us
  return inputs;
}

const RedFlag* flag(const DoctorReport& report, const std::string& check) {
  const auto it =
      std::find_if(report.flags.begin(), report.flags.end(), [&](const RedFlag& f) { return f.check == check; });
  return it == report.flags.end() ? nullptr : &*it;
}

std::string text_of(const DoctorReport& report) {
  std::ostringstream out;
  write_doctor_text(report, out);
  return out.str();
}

}  // namespace

TEST_CASE("doctor: the article's broken node raises each of its red flags", "[unit][doctor]") {
  const auto report = run_doctor(fixture("broken"));

  SECTION("1:1 skbuff_head_cache : kmalloc-1k is an sk_buff leak, and the first thing said") {
    const auto* skb = flag(report, "skb_leak_signature");
    REQUIRE(skb);
    CHECK(skb->severity == Severity::critical);
    CHECK_THAT(skb->figure, Contains("1,657,980 skbuff_head_cache") && Contains("1,667,384 kmalloc-1k"));
    CHECK(skb->next == "slabtrace record --duration 30 --cache skbuff_head_cache");
    CHECK(report.flags.front().check == "skb_leak_signature");
  }
  SECTION("SUnreclaim 2,143 MiB of 3,936 MiB") {
    const auto* slab = flag(report, "sunreclaim");
    REQUIRE(slab);
    CHECK(slab->severity == Severity::critical);
    CHECK_THAT(slab->figure, Contains("SUnreclaim 2.09 GiB = 54.4% of MemTotal 3.84 GiB"));
    CHECK_THAT(slab->figure, Contains("largest cache kmalloc-1k"));
    CHECK_THAT(slab->next, StartsWith("slabtrace record --duration 30"));
  }
  SECTION("PSI full avg10 62.85") {
    const auto* psi = flag(report, "memory_pressure_full");
    REQUIRE(psi);
    CHECK(psi->severity == Severity::critical);
    CHECK_THAT(psi->figure, Contains("full avg10 62.85%"));
    // Slab outweighs the applications here, so the next step is slabtrace.
    CHECK_THAT(psi->next, StartsWith("slabtrace record"));
  }
  SECTION("MemAvailable low") {
    const auto* available = flag(report, "mem_available");
    REQUIRE(available);
    CHECK(available->severity == Severity::warning);
    CHECK_THAT(available->figure, Contains("MemAvailable 735 MiB = 18.7%"));
  }
  SECTION("swap in use") {
    const auto* swap = flag(report, "swap_used");
    REQUIRE(swap);
    CHECK_THAT(swap->figure, Contains("swap used 500 MiB"));
  }
  SECTION("load 34 on 2 CPUs") {
    const auto* load = flag(report, "load");
    REQUIRE(load);
    CHECK(load->severity == Severity::critical);
    CHECK_THAT(load->figure, Contains("load 34.08 on 2 CPUs = 17.0 per CPU"));
  }
  SECTION("critical overall, critical flags first") {
    CHECK(report.verdict == Severity::critical);
    CHECK(exit_code(report) == 2);
    CHECK(std::is_sorted(report.flags.begin(), report.flags.end(),
                         [](const RedFlag& a, const RedFlag& b) { return a.severity > b.severity; }));
    CHECK_FALSE(flag(report, "overcommit"));  // Committed_AS 4.4 GiB < RAM + swap 5.8 GiB
    CHECK(report.skipped.empty());
    for (const auto& f : report.flags) {
      INFO(f.check);
      CHECK_FALSE(f.title.empty());
      CHECK_FALSE(f.figure.empty());
      CHECK_FALSE(f.next.empty());
    }
  }
  SECTION("the largest caches, by memory") {
    REQUIRE(report.top_caches.size() == 10);
    CHECK(report.top_caches[0].name == "kmalloc-1k");
    CHECK(report.top_caches[0].bytes == 1667392ull * 1024);
    CHECK(report.top_caches[1].name == "skbuff_head_cache");
    REQUIRE(report.skb);
    CHECK(report.skb->leak_signature);
    CHECK(report.skb->data_cache == "kmalloc-1k");
  }
}

TEST_CASE("doctor: text for a tired SRE, verdict first", "[unit][doctor]") {
  const auto text = text_of(run_doctor(fixture("broken")));
  INFO(text);
  CHECK_THAT(text, StartsWith("CRITICAL: sk_buff leak signature"));
  // The second line says what to run.
  const auto second_line = text.substr(text.find('\n') + 1, text.find('\n', text.find('\n') + 1) - text.find('\n') - 1);
  CHECK_THAT(second_line, Contains("next: slabtrace record --duration 30 --cache skbuff_head_cache"));
  CHECK_THAT(text, Contains("!! CRITICAL"));
  CHECK_THAT(text, Contains("slab, unreclaimable (SUnreclaim)") && Contains("2.09 GiB"));
  CHECK_THAT(text, Contains("<- sk_buff heads"));
  CHECK_THAT(text, Contains("full  avg10  62.85%"));
  CHECK_THAT(text, Contains("34.08 33.61 31.02 on 2 CPUs"));
  CHECK_THAT(text, Contains("not measured"));
  for (const char* section :
       {"Red flags", "Memory pressure", "Memory (/proc/meminfo", "Largest slab caches", "Swap activity", "Load"})
    CHECK_THAT(text, Contains(section));
}

TEST_CASE("doctor: this machine's idle files are healthy", "[unit][doctor]") {
  const auto report = run_doctor(fixture("healthy"));
  CHECK(report.flags.empty());
  CHECK(report.verdict == Severity::healthy);
  CHECK(exit_code(report) == 0);
  CHECK(report.memory_pressure);
  CHECK_FALSE(report.top_caches.empty());
  REQUIRE(report.skb);
  CHECK_FALSE(report.skb->leak_signature);
  CHECK_THAT(text_of(report), StartsWith("HEALTHY: no red flags"));
}

TEST_CASE("doctor: JSON carries every figure", "[unit][doctor]") {
  const auto json = doctor_json(run_doctor(fixture("broken")));
  CHECK(json["schema"] == "slabtrace.doctor/v1");
  CHECK(json["verdict"] == "critical");
  CHECK(json["exit_code"] == 2);
  REQUIRE(json["flags"].is_array());
  CHECK(json["flags"][0]["check"] == "skb_leak_signature");
  for (const auto& f : json["flags"])
    for (const char* key : {"check", "severity", "title", "figure", "next"}) CHECK(f.contains(key));

  CHECK(json["memory_pressure"]["full"]["avg10"].get<double>() == Approx(62.85));
  CHECK(json["memory_pressure"]["some"]["total_us"] == 381246311078ull);
  const auto& memory = json["memory"];
  CHECK(memory["total_bytes"] == 4030464ull * 1024);
  CHECK(memory["sunreclaim_bytes"] == 2194432ull * 1024);
  CHECK(memory["sreclaimable_bytes"] == 51200ull * 1024);
  CHECK(memory["available_bytes"] == 752640ull * 1024);
  CHECK(memory["swap_used_bytes"] == 512000ull * 1024);
  for (const char* key : {"free_bytes", "anon_bytes", "page_cache_bytes", "kernel_stack_bytes", "page_tables_bytes",
                          "swap_total_bytes", "committed_as_bytes", "commit_limit_bytes"})
    CHECK(memory.contains(key));
  CHECK(json["slab"]["top_caches"][0]["name"] == "kmalloc-1k");
  CHECK(json["slab"]["skb"]["heads"] == 1657980);
  CHECK(json["slab"]["skb"]["data_buffers"] == 1667384);
  CHECK(json["slab"]["skb"]["leak_signature"] == true);
  CHECK(json["swap_activity"]["pages_in_per_s"].is_null());
  CHECK(json["swap_activity"]["pages_out_since_boot"] == 61877402);
  CHECK(json["load"]["cpus"] == 2);
  CHECK(json["load"]["per_cpu"].get<double>() == Approx(17.04));
  CHECK(json["skipped"].empty());
}

TEST_CASE("doctor: pages swapped during the window are thrashing", "[unit][doctor]") {
  NodeSnapshot node;
  node.meminfo = {{"MemTotal", 4ull << 30}, {"MemAvailable", 2ull << 30}};
  node.load = {0.5, 0.5, 0.5, 1, 100, 1};
  node.cpus = 2;
  node.swap.window_s = 2;

  node.swap.during_window = {100, 50};  // 75 pages/s
  CHECK(diagnose(node).flags.empty());

  node.swap.during_window = {400, 200};  // 300 pages/s
  auto report = diagnose(node);
  REQUIRE(report.flags.size() == 1);
  CHECK(report.flags[0].check == "swap_activity");
  CHECK(report.flags[0].severity == Severity::warning);
  CHECK_THAT(report.flags[0].figure, Contains("200 pages/s swapped in, 100 pages/s out over 2.0 s"));

  node.swap.during_window = {3000, 1000};  // 2,000 pages/s
  report = diagnose(node);
  CHECK(report.verdict == Severity::critical);
  CHECK_THAT(text_of(report), Contains("now: 1500 pages/s in, 500 pages/s out (over 2.0 s)  <- CRITICAL"));
  CHECK(doctor_json(report)["swap_activity"]["pages_in_per_s"].get<double>() == Approx(1500));
}

TEST_CASE("doctor: the sk_buff signature needs both caches large and close", "[unit][doctor]") {
  const auto cache = [](const std::string& name, std::uint64_t objects, std::uint32_t size) {
    procfs::SlabinfoEntry entry;
    entry.name = name;
    entry.active_objs = entry.num_objs = objects;
    entry.object_size = size;
    return entry;
  };
  NodeSnapshot node;
  node.meminfo = {{"MemTotal", 64ull << 30}, {"MemAvailable", 32ull << 30}};
  node.cpus = 8;
  const auto signature = [&](std::uint64_t heads, const std::string& data_cache, std::uint64_t data) {
    node.slabinfo = procfs::Slabinfo{cache("skbuff_head_cache", heads, 256), cache("kmalloc-1k", 500, 1024),
                                     cache(data_cache, data, 1024)};
    const auto report = diagnose(node);
    return report.skb && report.skb->leak_signature;
  };
  CHECK(signature(200'000, "kmalloc-cg-1k", 205'000));        // unix sockets charge kmalloc-cg-1k
  CHECK_FALSE(signature(200'000, "kmalloc-cg-1k", 260'000));  // 23% apart
  CHECK_FALSE(signature(50'000, "kmalloc-cg-1k", 50'000));    // 61 MiB, and SUnreclaim unknown: not a size that matters
  // The pair this machine showed after a 50 k-datagram leak, 61 MiB: a third of
  // a 180 MiB SUnreclaim is the signature, 3% of a 2 GiB one is not yet.
  node.meminfo["SUnreclaim"] = 180ull << 20;
  CHECK(signature(50'336, "kmalloc-cg-1k", 50'576));
  node.meminfo["SUnreclaim"] = 2ull << 30;
  CHECK_FALSE(signature(50'336, "kmalloc-cg-1k", 50'576));
  CHECK_FALSE(signature(5'000, "kmalloc-cg-1k", 5'000));  // 6 MiB: in flight, whatever the share
  node.meminfo["SUnreclaim"] = 20ull << 20;
  CHECK_FALSE(signature(5'000, "kmalloc-cg-1k", 5'000));
  node.meminfo.erase("SUnreclaim");

  // 200 k pairs on a 64 GiB node: a leak worth a look, not yet what hurts.
  signature(200'000, "kmalloc-cg-1k", 200'000);
  const auto report = diagnose(node);
  REQUIRE(report.flags.size() == 1);
  CHECK(report.flags[0].severity == Severity::warning);
}

TEST_CASE("doctor: missing PSI or slabinfo is skipped, not fatal", "[unit][doctor]") {
  auto inputs = fixture("broken");
  inputs.pressure = "/nonexistent/pressure/memory";
  inputs.slabinfo = "/nonexistent/slabinfo";
  const auto report = run_doctor(inputs);
  CHECK_FALSE(report.memory_pressure);
  CHECK(report.top_caches.empty());
  CHECK_FALSE(flag(report, "skb_leak_signature"));
  CHECK(flag(report, "sunreclaim"));  // meminfo still tells it
  REQUIRE(report.skipped.size() == 2);
  CHECK_THAT(report.skipped[0], StartsWith("memory pressure: cannot open /nonexistent/pressure/memory"));
  CHECK_THAT(report.skipped[1], StartsWith("slab caches: cannot open /nonexistent/slabinfo"));
  const auto text = text_of(report);
  CHECK_THAT(text, Contains("Skipped\n  memory pressure: cannot open"));
  CHECK(doctor_json(report)["memory_pressure"].is_null());
}

TEST_CASE("doctor: malformed or unreadable files are errors", "[unit][doctor]") {
  testing::TempDir dir("slabtrace-doctor");
  auto inputs = fixture("broken");

  const struct {
    const char* file;
    std::string DoctorInputs::*path;
    const char* content;
    const char* error;
  } malformed[] = {
      {"meminfo", &DoctorInputs::meminfo, "MemTotal: 4030464 kB\nSUnreclaim 2194432 kB\n", "meminfo line 2:"},
      {"meminfo", &DoctorInputs::meminfo, "MemTotal: 4030464 kB\n", "no MemAvailable line"},
      {"memory", &DoctorInputs::pressure, "some avg10=lots avg60=1 avg300=1 total=1\n", "memory line 1:"},
      {"slabinfo", &DoctorInputs::slabinfo, "slabinfo - version: 2.1\nkmalloc-1k 1 2\n", "slabinfo line 2:"},
      {"vmstat", &DoctorInputs::vmstat, "pswpin one\n", "vmstat line 1:"},
      {"loadavg", &DoctorInputs::loadavg, "34.08 33.61\n", "loadavg line 1:"},
      {"online", &DoctorInputs::cpus_online, "0-\n", "online line 1:"},
  };
  for (const auto& bad : malformed) {
    DYNAMIC_SECTION(bad.file << ": " << bad.error) {
      inputs.*bad.path = dir.write(bad.file, bad.content);
      CHECK_THROWS_AS(run_doctor(inputs), ParseError);
      CHECK_THROWS_WITH(run_doctor(inputs), Contains(bad.error));
    }
  }
  SECTION("a required file that is missing") {
    inputs.meminfo = (dir.path() / "absent").string();
    CHECK_THROWS_AS(run_doctor(inputs), UserError);
  }
}

TEST_CASE("doctor: runs on this machine's /proc without root or BPF", "[unit][doctor]") {
  DoctorInputs inputs;
  inputs.swap_window = std::chrono::milliseconds(50);
  const auto report = run_doctor(inputs);
  CHECK(report.memory.total > 0);
  CHECK(report.swap.measured());
  CHECK(report.cpus >= 1);
  CHECK_FALSE(text_of(report).empty());
}
