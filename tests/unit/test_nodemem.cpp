#include <catch2/catch.hpp>

#include <sstream>

#include "slabtrace/nodemem.hpp"

using namespace slabtrace;
using namespace slabtrace::node;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

Meminfo meminfo_of(const std::string& text) {
  std::istringstream in(text);
  return parse_meminfo(in);
}

}  // namespace

TEST_CASE("meminfo: kB lines in bytes, unit-less lines as counts", "[unit][nodemem]") {
  const auto meminfo = meminfo_of(
      "MemTotal:        4030464 kB\n"
      "SUnreclaim:      2194432 kB\n"
      "HugePages_Total:       3\n"
      "\n");
  CHECK(meminfo.at("MemTotal") == 4030464ull * 1024);
  CHECK(meminfo.at("SUnreclaim") == 2194432ull * 1024);
  CHECK(meminfo.at("HugePages_Total") == 3);
  CHECK(field_or_zero(meminfo, "SwapTotal") == 0);
  CHECK(meminfo.size() == 3);
}

TEST_CASE("meminfo: this machine's file and the broken node's", "[unit][nodemem]") {
  const auto healthy = read_meminfo(SLABTRACE_FIXTURES "/doctor/healthy/proc/meminfo");
  CHECK(healthy.at("MemTotal") > healthy.at("MemAvailable"));
  const auto broken = read_meminfo(SLABTRACE_FIXTURES "/doctor/broken/proc/meminfo");
  CHECK(broken.at("SUnreclaim") == 2143ull * 1024 * 1024);
  CHECK(broken.at("VmallocTotal") == 34359738367ull * 1024);
}

TEST_CASE("meminfo: malformed lines name the line", "[unit][nodemem]") {
  CHECK_THROWS_WITH(meminfo_of("MemTotal: 1 kB\nno colon here\n"),
                    StartsWith("meminfo line 2:") && Contains("Name: value"));
  CHECK_THROWS_WITH(meminfo_of("MemTotal: lots kB\n"), StartsWith("meminfo line 1:") && Contains("not a number"));
  CHECK_THROWS_WITH(meminfo_of("MemTotal: 12 MB\n"), StartsWith("meminfo line 1:") && Contains("unit 'MB'"));
  CHECK_THROWS_WITH(meminfo_of("MemTotal: 12 kB extra\n"), StartsWith("meminfo line 1:"));
  CHECK_THROWS_WITH(meminfo_of("MemTotal:\n"), StartsWith("meminfo line 1:"));
  CHECK_THROWS_AS(meminfo_of(""), ParseError);
}

TEST_CASE("read_* name the file in errors and throw UserError when it cannot be opened", "[unit][nodemem]") {
  CHECK_THROWS_AS(read_meminfo("/nonexistent/meminfo"), UserError);
  CHECK_THROWS_WITH(read_loadavg(SLABTRACE_FIXTURES "/doctor/broken/proc/meminfo"),
                    StartsWith(SLABTRACE_FIXTURES "/doctor/broken/proc/meminfo line 1:"));
}

TEST_CASE("pressure: some and full lines", "[unit][nodemem]") {
  std::istringstream in(
      "some avg10=98.98 avg60=98.90 avg300=98.38 total=381246311078\n"
      "full avg10=62.85 avg60=63.91 avg300=63.33 total=281968539996\n");
  const auto psi = parse_pressure(in);
  CHECK(psi.some.avg10 == Approx(98.98));
  CHECK(psi.some.avg300 == Approx(98.38));
  CHECK(psi.full.avg10 == Approx(62.85));
  CHECK(psi.full.avg60 == Approx(63.91));
  CHECK(psi.full.total_us == 281968539996ull);
}

TEST_CASE("pressure: malformed input", "[unit][nodemem]") {
  const auto parse = [](const std::string& text) {
    std::istringstream in(text);
    return parse_pressure(in);
  };
  CHECK_THROWS_WITH(parse("some avg10=1.00 avg60=1.00 avg300=1.00 total=5\n"), Contains("'full'"));
  CHECK_THROWS_WITH(parse("some avg10=x avg60=1 avg300=1 total=5\nfull avg10=1 avg60=1 avg300=1 total=5\n"),
                    StartsWith("pressure line 1:") && Contains("avg10 'x'"));
  CHECK_THROWS_WITH(parse("some avg10=1 avg60=1 total=5\n"), StartsWith("pressure line 1:"));
  CHECK_THROWS_WITH(parse("partial avg10=1 avg60=1 avg300=1 total=5\n"), StartsWith("pressure line 1:"));
}

TEST_CASE("vmstat: counts, and swap counters default to 0", "[unit][nodemem]") {
  std::istringstream in("nr_free_pages 22272\npswpin 48213571\npswpout 61877402\n");
  const auto vmstat = parse_vmstat(in);
  CHECK(vmstat.at("nr_free_pages") == 22272);
  const auto swap = swap_counters(vmstat);
  CHECK(swap.pages_in == 48213571);
  CHECK(swap.pages_out == 61877402);

  const auto none = swap_counters(Vmstat{{"nr_free_pages", 1}});
  CHECK(none.pages_in == 0);
  CHECK(none.pages_out == 0);

  std::istringstream bad("pswpin 1\npswpout\n");
  CHECK_THROWS_WITH(parse_vmstat(bad), StartsWith("vmstat line 2:"));
}

TEST_CASE("loadavg", "[unit][nodemem]") {
  std::istringstream in("34.08 33.61 31.02 6/412 2894761\n");
  const auto load = parse_loadavg(in);
  CHECK(load.avg1 == Approx(34.08));
  CHECK(load.avg5 == Approx(33.61));
  CHECK(load.avg15 == Approx(31.02));
  CHECK(load.runnable == 6);
  CHECK(load.tasks == 412);
  CHECK(load.last_pid == 2894761);

  for (const char* bad : {"", "1.0 2.0 3.0\n", "1.0 2.0 3.0 6 99\n", "high 2.0 3.0 1/2 3\n"}) {
    std::istringstream bad_in(bad);
    CHECK_THROWS_AS(parse_loadavg(bad_in), ParseError);
  }
}

TEST_CASE("CPU lists", "[unit][nodemem]") {
  const auto count = [](const std::string& text) {
    std::istringstream in(text);
    return parse_cpu_count(in);
  };
  CHECK(count("0\n") == 1);
  CHECK(count("0-1\n") == 2);
  CHECK(count("0,2-5,8\n") == 6);
  CHECK_THROWS_WITH(count("3-1\n"), Contains("backwards"));
  CHECK_THROWS_AS(count("0,,2\n"), ParseError);
  CHECK_THROWS_AS(count("\n"), ParseError);
  CHECK_THROWS_AS(count(""), ParseError);
  CHECK(read_cpu_count(SLABTRACE_FIXTURES "/doctor/broken/sys/devices/system/cpu/online") == 2);
}
