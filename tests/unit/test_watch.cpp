// serve's watch-before-trace state machine: growth over a window, hysteresis,
// what gets traced, and the readings of /proc/slabinfo.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "slabtrace/watch.hpp"
#include "temp_dir.hpp"

using namespace slabtrace;
using namespace slabtrace::watch;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

Reading at(double t, std::map<std::string, std::uint64_t> caches, std::map<std::string, std::uint64_t> cgroups = {}) {
  Reading r;
  r.t_s = t;
  r.caches = std::move(caches);
  r.cgroups = std::move(cgroups);
  return r;
}

WatchOptions options(std::uint64_t threshold, double window) {
  WatchOptions o;
  o.threshold_bytes = threshold;
  o.window_s = window;
  return o;
}

}  // namespace

TEST_CASE("growth is measured from the lowest reading within the window", "[unit][watch]") {
  GrowthDetector d(10);
  d.add(at(0, {{"kmalloc-1k", 50 * MiB}}));
  d.add(at(5, {{"kmalloc-1k", 40 * MiB}}));
  d.add(at(10, {{"kmalloc-1k", 70 * MiB}}));
  auto g = d.grown_by(1);
  REQUIRE(g.size() == 1);
  CHECK(g[0].grown == 30 * MiB);  // from 40, not from 50
  CHECK(g[0].bytes == 70 * MiB);
  // Readings older than the window leave it: the 40 is gone at t=16.
  d.add(at(16, {{"kmalloc-1k", 70 * MiB}}));
  d.add(at(21, {{"kmalloc-1k", 70 * MiB}}));
  CHECK(d.grown_by(1).empty());
}

TEST_CASE("reclaimable caches and the root cgroup never trigger", "[unit][watch]") {
  GrowthDetector d(60);
  Reading a = at(0, {{"dentry", 0}, {"kmalloc-1k", 0}}, {{"/", 0}, {"/pod", 0}});
  a.reclaimable = {"dentry"};
  Reading b = at(5, {{"dentry", 500 * MiB}, {"kmalloc-1k", 1 * MiB}}, {{"/", 900 * MiB}, {"/pod", 40 * MiB}});
  b.reclaimable = {"dentry"};
  d.add(a);
  d.add(b);
  auto g = d.grown_by(32 * MiB);
  REQUIRE(g.size() == 1);
  CHECK(g[0].kind == Kind::Cgroup);
  CHECK(g[0].name == "/pod");
  // They are still there for the metrics.
  CHECK(d.all().size() == 4);
}

TEST_CASE("the machine attaches on growth, stays while it lasts and detaches below half the threshold", "[unit][watch]") {
  WatchMachine m(options(10 * MiB, 10), {});
  CHECK(m.step(at(0, {{"kmalloc-1k", 100 * MiB}})).action == Decision::Action::None);
  CHECK(m.step(at(5, {{"kmalloc-1k", 104 * MiB}})).action == Decision::Action::None);
  Decision d = m.step(at(10, {{"kmalloc-1k", 112 * MiB}}));
  REQUIRE(d.action == Decision::Action::Attach);
  CHECK(d.caches == std::vector<std::string>{"kmalloc-1k"});  // only what grows
  CHECK(m.state() == State::Watching);                         // until serve says it attached
  m.attached(10);
  CHECK(m.state() == State::Tracing);
  CHECK(m.since_s() == 10);
  CHECK(m.reason().find("kmalloc-1k grew 12.0 MiB") != std::string::npos);
  CHECK(m.transitions_to_tracing() == 1);
  // Growing on by 6 MiB per window: more than half the threshold, so it stays.
  CHECK(m.step(at(15, {{"kmalloc-1k", 115 * MiB}})).action == Decision::Action::None);
  CHECK(m.step(at(20, {{"kmalloc-1k", 118 * MiB}})).action == Decision::Action::None);
  // Flat from t=20: at t=25 the window [15, 25] saw 3 MiB, under half: detach.
  CHECK(m.step(at(25, {{"kmalloc-1k", 118 * MiB}})).action == Decision::Action::Detach);
  CHECK(m.state() == State::Watching);
  CHECK(m.since_s() == 25);
  CHECK(m.reason().rfind("growth stopped", 0) == 0);
  CHECK(m.traced_caches().empty());
}

TEST_CASE("sk_buff caches and cgroups are traced with every cache", "[unit][watch]") {
  slab::CacheAliases aliases;
  aliases.target_of["pool_workqueue"] = ":0000256";
  aliases.target_of["skbuff_fclone_cache"] = ":0000256";
  aliases.names_by_target[":0000256"] = {"pool_workqueue", "skbuff_fclone_cache"};
  WatchMachine m(options(MiB, 10), aliases);
  CHECK(m.caches_to_trace({{Kind::Cache, "kmalloc-1k", 0, MiB}, {Kind::Cache, "filp", 0, MiB}}) ==
        std::vector<std::string>{"filp", "kmalloc-1k"});
  // A head is ended by its data buffer's free: trace everything with it.
  CHECK(m.caches_to_trace({{Kind::Cache, "kmalloc-1k", 0, MiB}, {Kind::Cache, "skbuff_head_cache", 0, MiB}}).empty());
  // Merged under another name in /proc/slabinfo, still an sk_buff cache.
  CHECK(m.caches_to_trace({{Kind::Cache, "pool_workqueue", 0, MiB}}).empty());
  CHECK(m.caches_to_trace({{Kind::Cgroup, "/pod", 0, MiB}}).empty());
}

TEST_CASE("tracing some caches widens when another one grows", "[unit][watch]") {
  WatchMachine m(options(10 * MiB, 10), {});
  m.step(at(0, {{"filp", 0}, {"kmalloc-64", 0}}));
  REQUIRE(m.step(at(5, {{"filp", 20 * MiB}, {"kmalloc-64", 0}})).action == Decision::Action::Attach);
  m.attached(5);
  CHECK(m.traced_caches() == std::vector<std::string>{"filp"});
  Decision d = m.step(at(8, {{"filp", 30 * MiB}, {"kmalloc-64", 15 * MiB}}));
  REQUIRE(d.action == Decision::Action::Retarget);
  CHECK(d.caches == std::vector<std::string>{"filp", "kmalloc-64"});
  m.attached(8);
  CHECK(m.since_s() == 5);  // still the same tracing period
  CHECK(m.transitions_to_tracing() == 1);
}

TEST_CASE("a failed attach is retried after a pause, and said why", "[unit][watch]") {
  WatchOptions o = options(MiB, 10);
  o.retry_s = 30;
  WatchMachine m(o, {});
  m.step(at(0, {{"kmalloc-1k", 0}}));
  REQUIRE(m.step(at(1, {{"kmalloc-1k", 5 * MiB}})).action == Decision::Action::Attach);
  m.attach_failed(1, "no BTF");
  CHECK(m.state() == State::Watching);
  CHECK(m.reason().find("no BTF") != std::string::npos);
  CHECK(m.step(at(2, {{"kmalloc-1k", 6 * MiB}})).action == Decision::Action::None);
  CHECK(m.step(at(31, {{"kmalloc-1k", 7 * MiB}})).action == Decision::Action::Attach);
}

TEST_CASE("trace mode always attaches at once and never detaches", "[unit][watch]") {
  WatchOptions o = options(MiB, 10);
  o.always_trace = true;
  WatchMachine m(o, {});
  m.attached(0);
  CHECK(m.state() == State::Tracing);
  CHECK(m.step(at(100, {{"kmalloc-1k", 0}})).action == Decision::Action::None);
  CHECK(m.state() == State::Tracing);
}

TEST_CASE("the node reader turns /proc/slabinfo into bytes and knows reclaimable caches", "[unit][watch]") {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path().string() + "/slab/dentry");
  std::ofstream(dir.path().string() + "/slab/dentry/reclaim_account") << "1\n";
  std::filesystem::create_directories(dir.path().string() + "/slab/kmalloc-1k");
  std::ofstream(dir.path().string() + "/slab/kmalloc-1k/reclaim_account") << "0\n";
  NodeSources s;
  s.slabinfo = std::string(SLABTRACE_FIXTURES) + "/doctor/healthy/proc/slabinfo";
  s.sys_slab = dir.path().string() + "/slab";
  NodeReader reader(s);
  Reading r = reader.read(1);
  REQUIRE(r.caches.count("kmalloc-1k"));
  CHECK(r.caches["kmalloc-1k"] == 736 * 1024);  // active objects x object size
  CHECK(r.reclaimable.count("dentry"));
  CHECK(!r.reclaimable.count("kmalloc-1k"));
  CHECK(r.cgroups.empty());  // no cgroup2 mount given

  // A cgroup-v2 tree with the memory controller: slab_unreclaimable + sock per cgroup.
  const std::string mount = dir.path().string() + "/cgroup";
  std::filesystem::create_directories(mount + "/kubepods.slice/pod-a");
  std::ofstream(mount + "/cgroup.subtree_control") << "cpu memory pids\n";
  std::ofstream(mount + "/kubepods.slice/memory.stat") << "anon 4096\nsock 8192\nslab_reclaimable 100\nslab_unreclaimable 50000\n";
  std::ofstream(mount + "/kubepods.slice/pod-a/memory.stat") << "anon 0\nsock 4096\nslab_unreclaimable 30000\n";
  s.cgroup2_mount = mount;
  NodeReader with_cgroups(s);
  CHECK(with_cgroups.cgroup_memory());
  Reading c = with_cgroups.read(2);
  CHECK(c.cgroups == std::map<std::string, std::uint64_t>{{"/kubepods.slice", 58192}, {"/kubepods.slice/pod-a", 34096}});
}
