#include <catch2/catch.hpp>

#include <sstream>

#include "slabtrace/procfs.hpp"

using namespace slabtrace;
using namespace slabtrace::procfs;

namespace {

std::vector<ProcCgroupEntry> parse_text(const std::string& text) {
  std::istringstream in(text);
  return parse_proc_cgroup(in);
}

}  // namespace

TEST_CASE("/proc/self/cgroup of a hybrid host (this build machine)", "[unit][proc_cgroup]") {
  auto entries = read_proc_cgroup(SLABTRACE_FIXTURES "/procfs/cgroup");
  REQUIRE(entries.size() == 10);
  CHECK(entries[0].hierarchy == 9);
  CHECK(entries[0].controllers == "name=systemd");
  CHECK(entries[0].path == "/");
  CHECK(entries[5].hierarchy == 4);
  CHECK(entries[5].controllers == "memory");
  CHECK(entries[5].path == "/process_api/32270bbeb3a226358e6d0dca10718ece");
  CHECK(entries[9].hierarchy == 0);
  CHECK(entries[9].controllers.empty());
  CHECK_FALSE(entries[9].deleted);
  CHECK(cgroup2_path(entries) == "/");
}

TEST_CASE("/proc/PID/cgroup of a pod on a cgroup v2 node", "[unit][proc_cgroup]") {
  auto entries = read_proc_cgroup(SLABTRACE_FIXTURES "/cgroups/k8s-pod-cgroup");
  REQUIRE(entries.size() == 1);
  CHECK(cgroup2_path(entries) ==
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podb47edbfb_5e13_4dc1_8dcb_cfe89e625385.slice/"
        "cri-containerd-954b15f0cf5bd23b9f0e84753f4bfe4855bf04d3ca82ee73ac929931ca24e39d.scope");
}

TEST_CASE("/proc/PID/cgroup of a pod on a cgroup v1 node", "[unit][proc_cgroup]") {
  auto entries = read_proc_cgroup(SLABTRACE_FIXTURES "/cgroups/k8s-pod-cgroup-v1");
  REQUIRE(entries.size() == 13);
  CHECK(entries[3].controllers == "cpu,cpuacct");
  CHECK(entries[3].path ==
        "/kubepods/besteffort/podb47edbfb-5e13-4dc1-8dcb-cfe89e625385/"
        "954b15f0cf5bd23b9f0e84753f4bfe4855bf04d3ca82ee73ac929931ca24e39d");
  CHECK(cgroup2_path(entries) == "/");
}

TEST_CASE("/proc/PID/cgroup paths keep their colons and lose ' (deleted)'", "[unit][proc_cgroup]") {
  auto entries = parse_text("0::/system.slice/weird:name.service (deleted)\n\n1:name=systemd:/a:b\n");
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].path == "/system.slice/weird:name.service");
  CHECK(entries[0].deleted);
  CHECK(entries[1].path == "/a:b");
  CHECK_FALSE(entries[1].deleted);
}

TEST_CASE("cgroup2_path is empty for a pure v1 process", "[unit][proc_cgroup]") {
  CHECK_FALSE(cgroup2_path(parse_text("4:memory:/a\n1:cpu:/\n")));
  CHECK_FALSE(cgroup2_path({}));
}

TEST_CASE("/proc/PID/cgroup rejects malformed lines with the line number", "[unit][proc_cgroup]") {
  CHECK(parse_text("").empty());
  CHECK_THROWS_WITH(parse_text("0::/\n0:/\n"), "cgroup line 2: expected 'hierarchy:controllers:path'");
  CHECK_THROWS_WITH(parse_text("no colons"), "cgroup line 1: expected 'hierarchy:controllers:path'");
  CHECK_THROWS_WITH(parse_text(":memory:/"), "cgroup line 1: hierarchy id '' is not a number");
  CHECK_THROWS_WITH(parse_text("99999999999::/"), "cgroup line 1: hierarchy id '99999999999' is out of range");
  CHECK_THROWS_AS(read_proc_cgroup(SLABTRACE_FIXTURES "/procfs/no-such-file"), UserError);
}
