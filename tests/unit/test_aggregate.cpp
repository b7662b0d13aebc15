// aggregate(): the report of a recording from a made-up tracer and node, with
// /proc/slabinfo from a real kernel's fixture.
#include <catch2/catch.hpp>
#include <sstream>

#include "fake_run.hpp"
#include "slabtrace/aggregate.hpp"

using namespace slabtrace;
using namespace fakerun;

namespace {

// A UDP leak of n skbs: heads in skbuff_head_cache, data in kmalloc-1k, both
// allocated by cgroup 25 through udp_sendmsg and queued on socket 0xAA, whose
// inode 18884 pid 4242 holds.
struct UdpLeak {
  model::RunSnapshot run;
  FakeTrace trace;
  FakeKernel kernel;

  explicit UdpLeak(std::uint64_t n) {
    run.kernel = "6.18.44";
    run.duration_s = 10;
    run.attach_mode = "tp_btf";
    run.counters.elapsed_s = 10;
    run.counters.buckets = {bucket(0, "skbuff_head_cache", 25, 256, n + 100, 100),
                            bucket(1, "kmalloc-1k", 25, 1024, n + 50, 50)};
    run.slabinfo_start = fixture_slabinfo();
    run.slabinfo_end = run.slabinfo_start;
    set_active(*run.slabinfo_end, "skbuff_head_cache", active_of(run.slabinfo_start, "skbuff_head_cache") + n);
    set_active(*run.slabinfo_end, "kmalloc-1k", active_of(run.slabinfo_start, "kmalloc-1k") + n);
    trace.stacks[7] = {0x10, 0x20, 0x30, 0x40};
    kernel.symbols = {{0x10, "bpf_trace_run4"}, {0x20, "kmem_cache_alloc_node_noprof"}, {0x30, "__alloc_skb"}, {0x40, "udp_sendmsg"}};
    kernel.paths[25] = "/kubepods.slice/pod1/cri-containerd-abc";
    kernel.slabinfo_start = &run.slabinfo_start;
    for (std::uint64_t i = 0; i < n; ++i) {
      trace.add_live(0, 1, 9.0, 9.0, 7, ST_OBJ_SKB_HEAD, 0xAA);
      std::uint64_t head = trace.last_addr();
      trace.add_live(1, 1, 9.0, 9.0, -1, ST_OBJ_SKB_DATA, head);
    }
    add_inet_socket(trace, kernel, 0xAA, 18884, "udp", n * 1280, 4026531840).owners = {
        {4242, "leaky", 4026531840, "/kubepods.slice/pod1/cri-containerd-abc"}};
  }
};

}  // namespace

TEST_CASE("aggregate: a UDP leak from fakes gives caches, cgroups, stacks, skb pairs and the holder", "[unit][aggregate]") {
  UdpLeak leak(2000);
  leak.trace.drop_counts = {{6, 30}, {99, 2}};
  st_drop_key key{};
  key.reason = 6;
  key.inode = 18884;
  key.cgroup = 25;
  leak.trace.socket_drops = {{key, 30}};
  leak.trace.health.v[ST_STAT_MAP_FULL] = 3;
  model::Report r = model::aggregate(leak.run, leak.trace, leak.kernel);

  // What the run was goes out as it came in.
  CHECK(r.kernel == "6.18.44");
  CHECK(r.duration_s == 10);
  CHECK(r.sample_rate == 1);
  CHECK(r.stack_sample_rate == 1);
  CHECK(r.attach_mode == "tp_btf");
  REQUIRE(r.caches.size() >= 2);
  CHECK(r.caches[0].name == "kmalloc-1k");  // by bytes
  CHECK(r.caches[0].outstanding == 2000);
  CHECK(r.caches[0].frees == 50);
  REQUIRE(r.caches[1].slabinfo);
  CHECK(r.caches[1].slabinfo->delta == 2000);
  REQUIRE(r.cgroups.size() == 1);
  CHECK(r.cgroups[0].path == "/kubepods.slice/pod1/cri-containerd-abc");
  CHECK(r.cgroups[0].outstanding == 4000);
  REQUIRE(r.stacks.size() == 2);
  CHECK(r.stacks[0].cache == "kmalloc-1k");  // by bytes; no stack was taken for the data buffers
  CHECK(r.stacks[0].frames.empty());
  // An sk_buff's stacks start at __alloc_skb, the head's as its data's.
  CHECK(r.stacks[1].frames == std::vector<std::string>{"__alloc_skb", "udp_sendmsg"});
  REQUIRE(r.stacks[1].frames_with_offsets.size() == 2);
  CHECK(r.stacks[1].frames_with_offsets[1] == "udp_sendmsg+0x10");
  CHECK(r.stacks[1].oldest_age_s == Approx(9.0));

  CHECK(r.skb.outstanding_heads == 2000);
  CHECK(r.skb.outstanding_data == 2000);
  REQUIRE(r.skb.allocators.size() == 1);
  CHECK(r.skb.allocators[0].via == "udp_sendmsg");
  REQUIRE(r.skb.data_caches.size() == 1);
  CHECK(r.skb.data_caches[0].with_live_head == 2000);
  REQUIRE(r.skb.holders.size() == 1);
  const auto& h = r.skb.holders[0];
  CHECK(h.socket_inode == 18884);
  CHECK(h.protocol == "udp");
  CHECK(h.pid == std::optional<std::uint32_t>(4242));
  CHECK(h.cgroup_id == 25);
  CHECK(h.queued_skbs == 2000);
  CHECK(h.queued_bytes == 2000 * (256 + 1024));
  CHECK(h.kernel_queued_bytes == std::optional<std::uint64_t>(2000 * 1280));

  // Drop reasons by their BTF names, unknown ones by number, owners by inode.
  REQUIRE(r.skb.drops.size() == 2);
  CHECK(r.skb.drops[0].first == "SOCKET_RCVBUFF");
  CHECK(r.skb.drops[1].first == "reason 99");
  REQUIRE(r.skb.drops_by_socket.size() == 1);
  CHECK(r.skb.drops_by_socket[0].comm == "leaky");
  CHECK(r.lost.map_full == 3);
  CHECK(r.notes.size() == 1);  // the full map
}


TEST_CASE("aggregate: sk_buffs in one slot each report as heads and data, as in two", "[unit][aggregate][skb]") {
  UdpLeak two(2000);
  UdpLeak one(2000);
  one.trace.live.clear();
  for (const auto& o : two.trace.live) {
    if (!(o.flags & ST_OBJ_SKB_DATA)) continue;
    bpf::LiveObject both = o;  // the slot: the data's address and bucket, the head's socket and stack
    both.flags = ST_OBJ_SKB_BOTH;
    both.link = 0xAA;
    both.stack_id = 7;
    auto skb = bpf::split_whole_skb(both, 0 + 1);
    one.trace.live.push_back(skb.head);
    one.trace.live.push_back(skb.data);
  }
  model::Report a = model::aggregate(two.run, two.trace, two.kernel);
  model::Report b = model::aggregate(one.run, one.trace, one.kernel);
  CHECK(b.skb.outstanding_heads == a.skb.outstanding_heads);
  REQUIRE(b.skb.data_caches.size() == 1);
  CHECK(b.skb.data_caches[0].with_live_head == 2000);
  REQUIRE(b.skb.holders.size() == 1);
  CHECK(b.skb.holders[0].queued_skbs == 2000);
  CHECK(b.skb.holders[0].queued_bytes == a.skb.holders[0].queued_bytes);
  REQUIRE(b.caches.size() == a.caches.size());
  for (std::size_t k = 0; k < a.caches.size(); ++k) CHECK(b.caches[k].outstanding == a.caches[k].outstanding);
  CHECK(b.cgroups[0].outstanding == 4000);
}
TEST_CASE("aggregate: a holder whose queue the kernel says is empty is a note, not a holder", "[unit][aggregate]") {
  UdpLeak leak(10);
  leak.kernel.sockets_by_inode[18884].rx_queue_bytes = 0;
  model::Report r = model::aggregate(leak.run, leak.trace, leak.kernel);
  CHECK(r.skb.holders.empty());
  REQUIRE_FALSE(r.notes.empty());
  CHECK(r.notes[0].find("read already") != std::string::npos);
}

TEST_CASE("aggregate: --min-age leaves young objects out, sampling scales and says so", "[unit][aggregate]") {
  UdpLeak leak(100);
  leak.trace.add_live(0, 50, 0.1, 0.2);  // young heads with no link
  leak.run.counters.buckets[0].counts.tracked += 50;
  SECTION("min age") {
    leak.run.min_age_s = 1;
    model::Report r = model::aggregate(leak.run, leak.trace, leak.kernel);
    CHECK(r.skb.outstanding_heads == 100);
    CHECK(r.caches[1].outstanding == 100);
  }
  SECTION("1 in 4") {
    leak.run.sample_rate = 4;
    model::Report r = model::aggregate(leak.run, leak.trace, leak.kernel);
    CHECK(r.caches[1].outstanding == 600);
    CHECK(r.caches[1].outstanding_error > 0);
    bool said = false;
    for (const auto& n : r.notes) said = said || n.find("sampled 1 in 4") != std::string::npos;
    CHECK(said);
  }
}

TEST_CASE("aggregate: caches the tracer never saw still carry their slabinfo change", "[unit][aggregate]") {
  UdpLeak leak(10);
  set_active(*leak.run.slabinfo_end, "dentry", active_of(leak.run.slabinfo_start, "dentry") + 5000);
  model::Report r = model::aggregate(leak.run, leak.trace, leak.kernel);
  const model::CacheReport* dentry = nullptr;
  for (const auto& c : r.caches)
    if (c.name == "dentry") dentry = &c;
  REQUIRE(dentry);
  CHECK(dentry->slabinfo->delta == 5000);
  CHECK(dentry->outstanding == 0);

  leak.run.slabinfo_end.reset();
  leak.run.slabinfo_end_error = "Permission denied";
  r = model::aggregate(leak.run, leak.trace, leak.kernel);
  CHECK(r.notes.back() == "/proc/slabinfo unreadable at the end: Permission denied");
}

TEST_CASE("rates: one tracker for every interval command", "[unit][model]") {
  model::RateTracker rates(2);
  model::Snapshot first;
  first.elapsed_s = 1;
  first.buckets = {bucket(0, "kmalloc-1k", 25, 1024, 100, 0)};
  model::Rates r1 = rates.next(first);
  CHECK(r1.interval_s == Approx(1));
  REQUIRE(r1.cgroups.size() == 1);
  CHECK(r1.cgroups[0].total.growth_per_s == Approx(200));
  model::Snapshot second = first;
  second.elapsed_s = 3;
  second.buckets[0] = bucket(0, "kmalloc-1k", 25, 1024, 200, 50);
  model::Rates r2 = rates.next(second);
  CHECK(r2.interval_s == Approx(2));
  CHECK(r2.cgroups[0].total.growth_per_s == Approx((150.0 - 100.0) * 2 / 2));
  CHECK(rates.previous()->elapsed_s == 3);
}

TEST_CASE("lost counters have one set of names", "[unit][model]") {
  st_stats st{};
  st.v[ST_STAT_BUSY] = 4;
  st.v[ST_STAT_SOCKS_FULL] = 5;
  st.v[ST_STAT_IRQ_CONTEXT_UNKNOWN] = 6;
  st.v[ST_STAT_ADOPT_NO_CACHE] = 7;
  auto named = model::Lost::from(st).named();
  REQUIRE(named.size() == 8);
  CHECK(named[4] == std::make_pair(std::string("busy"), std::uint64_t(4)));
  CHECK(named[5] == std::make_pair(std::string("socks_full"), std::uint64_t(5)));
  CHECK(named[6] == std::make_pair(std::string("context_unknown"), std::uint64_t(6)));
  CHECK(named[7] == std::make_pair(std::string("not_adopted"), std::uint64_t(7)));
}

TEST_CASE("aggregate: failed allocations, unread interrupt contexts and unadopted heads are said, not dropped",
          "[unit][aggregate]") {
  UdpLeak leak(10);
  leak.trace.health.v[ST_STAT_FAILED_ALLOCS] = 1234;
  leak.trace.health.v[ST_STAT_BPF_ALLOCS] = 9;
  leak.trace.health.v[ST_STAT_IRQ_CONTEXT_UNKNOWN] = 3;
  leak.trace.health.v[ST_STAT_ADOPT_NO_CACHE] = 2;
  model::Report r = model::aggregate(leak.run, leak.trace, leak.kernel);
  CHECK(r.alloc_failures == 1234);
  CHECK(r.bpf_allocs_untraced == 9);
  CHECK(r.lost.context_unknown == 3);
  CHECK(r.lost.not_adopted == 2);
  auto said = [&](const std::string& text) {
    for (const auto& n : r.notes)
      if (n.find(text) != std::string::npos) return true;
    return false;
  };
  CHECK(said("returned NULL 1,234 times"));
  CHECK(said("interrupt context of 3 allocations"));
  CHECK(said("2 sk_buff heads from the NAPI cache"));

  UdpLeak quiet(10);
  model::Report q = model::aggregate(quiet.run, quiet.trace, quiet.kernel);
  for (const auto& n : q.notes) CHECK(n.find("NULL") == std::string::npos);
}

TEST_CASE("memory.stat: the memory controller's own slab count per cgroup, start to end", "[unit][aggregate]") {
  std::istringstream stat("anon 4096\nfile 8192\nslab_reclaimable 1048576\nslab_unreclaimable 5242880\nsock 65536\nslab 6291456\n");
  model::CgroupMemory m = model::parse_memory_stat(stat);
  CHECK(m.slab_reclaimable == 1048576);
  CHECK(m.slab_unreclaimable == 5242880);
  CHECK(m.sock == 65536);

  UdpLeak leak(100);
  leak.run.memory_start[25] = {0, 1u << 20, 0};
  leak.run.memory_end[25] = {0, 3u << 20, 0};
  model::Report r = model::aggregate(leak.run, leak.trace, leak.kernel);
  REQUIRE(r.cgroups.size() == 1);
  CHECK(r.cgroups[0].memory_slab_unreclaimable_delta == std::optional<std::int64_t>(2 << 20));
}

TEST_CASE("aggregate: stacks drawn past the stack budget count for the rate they were drawn at", "[unit][aggregate]") {
  // 100 heads with stack 7 drawn at 1 in 64, 10 more drawn at 1 in 1024
  // (the throttled rate): 100 * 64 + 10 * 1024 heads on that path.
  UdpLeak leak(100);
  leak.run.stack_sample_rate = 64;
  leak.run.stack_budget = 500;
  leak.trace.add_live(0, 10, 9.0, 9.0, 7, ST_OBJ_SKB_HEAD, 0xAA);
  for (std::size_t i = leak.trace.live.size() - 10; i < leak.trace.live.size(); ++i) leak.trace.live[i].stack_throttled = true;
  leak.trace.health.v[ST_STAT_STACKS_THROTTLED] = 10;
  model::Report r = model::aggregate(leak.run, leak.trace, leak.kernel);
  const model::StackReport* heads = nullptr;
  for (const auto& s : r.stacks)
    if (s.stack_id == 7) heads = &s;
  REQUIRE(heads != nullptr);
  CHECK(heads->outstanding == 100 * 64 + 10 * 1024);
  CHECK(heads->outstanding_bytes == (100 * 64 + 10 * 1024) * 256);
  // Two independent parts, in quadrature: more than the full-rate part alone.
  CHECK(heads->outstanding_error > model::error95(100, 64));
  CHECK(r.stacks_throttled == 10);
  // Ranked by what they stand for: 150 full-rate objects (9,600) come after
  // stack 7's 110 (16,640).
  leak.trace.stacks[8] = {0x10, 0x20, 0x30, 0x40};
  leak.trace.add_live(0, 150, 9.0, 9.0, 8, ST_OBJ_SKB_HEAD, 0xAA);
  model::Report ranked = model::aggregate(leak.run, leak.trace, leak.kernel);
  REQUIRE(ranked.stacks.size() >= 2);
  CHECK(ranked.stacks[0].stack_id == 7);
  CHECK(ranked.stacks[1].stack_id == 8);
  CHECK(ranked.stacks[1].outstanding == 150 * 64);
  bool said = false;
  for (const auto& n : r.notes)
    said = said || n == "stack captures were held to 500 per second per CPU: 10 stacks were drawn at 1 in 1,024 and count 16 times each";
  CHECK(said);
}
