// The model's arithmetic and wording, on made-up snapshots and reports.
#include <catch2/catch.hpp>
#include <sstream>

#include "fake_run.hpp"
#include "slabtrace/crosscheck.hpp"
#include "slabtrace/output.hpp"
#include "slabtrace/session.hpp"
#include "slabtrace/tracer.hpp"
#include "slabtrace/verdict.hpp"

using namespace slabtrace;
using namespace slabtrace::model;

namespace {

std::uint64_t kmalloc(std::uint32_t kind, std::uint32_t size) {
  return (std::uint64_t(kind) << ST_KEY_KIND_SHIFT) | size;
}

// The seed incident, small: 50,000 skbs from one cgroup, held by one socket.
Report leak_report() {
  Report r;
  r.duration_s = 10;
  CacheReport heads;
  heads.name = heads.slabinfo_name = "skbuff_head_cache";
  heads.outstanding = 50000;
  heads.outstanding_bytes = 50000 * 256;
  heads.allocs = 51000;
  heads.slabinfo = SlabinfoDelta{300, 50300, 50000};
  CacheReport data = heads;
  data.name = data.slabinfo_name = "kmalloc-1k";
  data.outstanding = 50010;
  data.outstanding_bytes = 50010 * 1024;
  data.slabinfo = SlabinfoDelta{700, 50600, 49900};
  r.caches = {data, heads};
  CgroupReport g;
  g.id = 25;
  g.path = "/kubepods.slice/pod1/cri-containerd-abc";
  g.outstanding = 100010;
  g.outstanding_bytes = heads.outstanding_bytes + data.outstanding_bytes;
  r.cgroups = {g};
  r.skb.outstanding_heads = 50000;
  r.skb.outstanding_data = 50000;
  r.skb.outstanding_bytes = heads.outstanding_bytes + data.outstanding_bytes;
  r.skb.allocators = {{25, g.path, "udp_sendmsg", 50000}};
  SkbHolder h = fakerun::udp_holder(18884, 4242, "leaky", "/kubepods.slice/pod2");
  h.queued_skbs = 50000;
  r.skb.holders = {h};
  return r;
}

}  // namespace

TEST_CASE("kmalloc caches are named as /proc/slabinfo names them", "[unit][model]") {
  CHECK(kmalloc_name(ST_KEY_KMALLOC, 1024) == "kmalloc-1k");
  CHECK(kmalloc_name(ST_KEY_KMALLOC_CG, 192) == "kmalloc-cg-192");
  CHECK(kmalloc_name(ST_KEY_KMALLOC_RCL, 8192) == "kmalloc-rcl-8k");
  CHECK(kmalloc_name(ST_KEY_KMALLOC_DMA, 64) == "dma-kmalloc-64");
  CHECK(kmalloc_name(ST_KEY_KMALLOC_LARGE, 0) == "kmalloc-large");
  CHECK(cache_name(kmalloc(ST_KEY_KMALLOC, 96), "") == "kmalloc-96");
  CHECK(cache_name(0xffff888100123400ull, "skbuff_head_cache") == "skbuff_head_cache");
  CHECK(cache_name(0xffff888100123400ull, "").rfind("cache@", 0) == 0);
  // 5-level paging (LA57) puts the direct map at 0xff11...: still a pointer.
  CHECK(cache_name(0xff11000100123400ull, "skbuff_head_cache") == "skbuff_head_cache");
  CHECK(cache_name((std::uint64_t(ST_KEY_NAMED) << ST_KEY_NAMED_SHIFT) | 0x123, "kmalloc-1k") == "kmalloc-1k");
}

TEST_CASE("cache filters on kmalloc names map to their keys", "[unit][model]") {
  CHECK(kmalloc_key("kmalloc-1k") == kmalloc(ST_KEY_KMALLOC, 1024));
  CHECK(kmalloc_key("kmalloc-cg-1k") == kmalloc(ST_KEY_KMALLOC_CG, 1024));
  CHECK(kmalloc_key("kmalloc-rcl-96") == kmalloc(ST_KEY_KMALLOC_RCL, 96));
  CHECK(kmalloc_key("dma-kmalloc-8k") == kmalloc(ST_KEY_KMALLOC_DMA, 8192));
  CHECK_FALSE(kmalloc_key("skbuff_head_cache"));
  CHECK_FALSE(kmalloc_key("kmalloc-"));
  CHECK_FALSE(kmalloc_key("kmalloc-cg-abc"));
  CHECK_FALSE(kmalloc_key("kmalloc-99999999k"));
}

TEST_CASE("outstanding is tracked minus ended, never negative", "[unit][model]") {
  Counts c;
  c.tracked = 10;
  c.ended = {3, 2, 1, 1};
  CHECK(c.ended_total() == 7);
  CHECK(c.outstanding() == 3);
  c.ended[0] = 20;  // a read in the middle of an update
  CHECK(c.outstanding() == 0);
}

TEST_CASE("BPF counters: bytes from the object size, sampled allocation counts scaled", "[unit][model]") {
  st_counters raw{};
  raw.allocs = 100;
  raw.tracked = 100;
  raw.ended[ST_END_FREE] = 60;
  Counts exact = Counts::from(raw, 256);
  CHECK(exact.allocs == 100);
  CHECK(exact.alloc_bytes == 100 * 256);
  CHECK(exact.tracked_bytes == 100 * 256);
  CHECK(exact.ended_bytes == 60 * 256);
  CHECK(exact.outstanding_bytes() == 40 * 256);
  CHECK(exact.outstanding() == 40);
  // 1 in 16: allocations are estimates of all; tracked and ended stay the
  // sample's (the rates scale those themselves).
  Counts sampled = Counts::from(raw, 256, 16);
  CHECK(sampled.allocs == 1600);
  CHECK(sampled.alloc_bytes == 1600 * 256);
  CHECK(sampled.tracked == 100);
  CHECK(sampled.tracked_bytes == 100 * 256);
  CHECK(sampled.outstanding() == 40);
}

TEST_CASE("cgroup filters match a subtree, not a prefix of a name", "[unit][model]") {
  CHECK(cgroup_matches("/kubepods/pod1/abc", "/kubepods"));
  CHECK(cgroup_matches("/kubepods", "/kubepods/"));
  CHECK_FALSE(cgroup_matches("/kubepods-besteffort", "/kubepods"));
  CHECK(cgroup_matches("/anything", "/"));
  CHECK(cgroup_label(ST_CGROUP_SOFTIRQ, std::nullopt) == "[softirq]");
  CHECK(cgroup_label(77, std::nullopt) == "[cgroup 77]");
}

TEST_CASE("rates between snapshots: growth per second per cgroup and cache", "[unit][model]") {
  Snapshot before, after;
  before.elapsed_s = 1;
  after.elapsed_s = 3;
  before.buckets = {fakerun::bucket(0, "skbuff_head_cache", 25, 256, 1000, 0), fakerun::bucket(1, "filp", 1, 256, 50, 50)};
  after.buckets = {fakerun::bucket(0, "skbuff_head_cache", 25, 256, 11000, 0), fakerun::bucket(1, "filp", 1, 256, 50, 50)};
  Rates r = compute_rates(&before, after, 1);
  CHECK(r.interval_s == Approx(2.0));
  REQUIRE(r.cgroups.size() == 2);
  const GroupRate* leaking = nullptr;
  for (const auto& g : r.cgroups)
    if (g.cgroup_id == 25) leaking = &g;
  REQUIRE(leaking);
  CHECK(leaking->active);
  CHECK(leaking->total.outstanding == 11000);
  CHECK(leaking->total.growth_per_s == Approx(5000.0));
  CHECK(leaking->by_cache.at("skbuff_head_cache").allocs_per_s == Approx(5000.0));
  for (const auto& g : r.cgroups)
    if (g.cgroup_id == 1) CHECK_FALSE(g.active);  // nothing happened there

  // Sampled: every figure stands for 2^shift objects.
  Rates scaled = compute_rates(&before, after, 16);
  for (const auto& g : scaled.cgroups)
    if (g.cgroup_id == 25) CHECK(g.total.outstanding == 11000 * 16);
}

TEST_CASE("rates: a bucket retired between snapshots (its cgroup gone) is no change", "[unit][model]") {
  // Index 1 belonged to cgroup 40, gone and retired; it was reused by cgroup
  // 41 for kmalloc-64. Cgroup 25's filp counts in the same index as before.
  Snapshot before, after;
  before.elapsed_s = 1;
  after.elapsed_s = 2;
  before.buckets = {fakerun::bucket(0, "filp", 25, 256, 100, 100), fakerun::bucket(1, "kmalloc-64", 40, 64, 9000, 9000)};
  after.buckets = {fakerun::bucket(0, "filp", 25, 256, 150, 150), fakerun::bucket(1, "kmalloc-64", 41, 64, 30, 0)};
  Rates r = compute_rates(&before, after, 1);
  const GroupRate* cache = nullptr;
  for (const auto& g : r.caches)
    if (g.key == "kmalloc-64") cache = &g;
  REQUIRE(cache);
  CHECK(cache->total.allocs == 30);  // not 30 - 9000 clamped to 0
  CHECK(cache->total.growth_per_s == Approx(30.0));
  for (const auto& g : r.caches)
    if (g.key == "filp") CHECK(g.total.allocs == 50);
}

TEST_CASE("verdicts: an sk_buff leak names allocator, path, holder and the 1:1 signature", "[unit][model][verdict]") {
  Report r = leak_report();
  // What makes it a leak here: the socket's queue has held them for most of the run.
  r.skb.holders[0].oldest_queued_age_s = 9.5;
  r.skb.holders[0].kernel_queued_bytes = 50000ull * 1280;
  r.skb.data_caches = {{"kmalloc-1k", 50010, 50000}};
  add_verdicts(r);
  REQUIRE(r.verdicts.size() >= 2);
  const std::string& leak = r.verdicts[0];
  CHECK(leak.find("sk_buff leak: 50,000 skbs") == 0);
  CHECK(leak.find("cgroup /kubepods.slice/pod1/cri-containerd-abc via udp_sendmsg") != std::string::npos);
  CHECK(leak.find("UDP socket inode 18884 of pid 4242 (leaky) in cgroup /kubepods.slice/pod2") != std::string::npos);
  CHECK(leak.find("the oldest for 9.5 s") != std::string::npos);
  CHECK(leak.find("1:1 with kmalloc-1k data buffers, the sk_buff leak signature") != std::string::npos);
  REQUIRE(r.findings.size() >= 2);
  CHECK(r.findings[0].kind == FindingKind::skb_leak);
  CHECK(r.findings[0].cgroup == "/kubepods.slice/pod2");  // who holds them
  bool agrees = false;
  for (const auto& f : r.findings) agrees = agrees || (f.kind == FindingKind::trust && f.text.find("agrees") != std::string::npos);
  CHECK(agrees);
}

TEST_CASE("verdicts: nothing outstanding is said plainly, a drop storm is not a leak", "[unit][model][verdict]") {
  Report quiet;
  add_verdicts(quiet);
  REQUIRE(quiet.verdicts.size() == 1);
  CHECK(quiet.verdicts[0].find("no leak") == 0);

  Report drops;
  SkbDrop d;
  d.reason = "SOCKET_RCVBUFF";
  d.count = 20000;
  d.socket_inode = 99;
  d.pid = 7;
  d.comm = "slowpoke";
  drops.skb.drops_by_socket = {d};
  add_verdicts(drops);
  CHECK(drops.verdicts[0] == "drop storm (dropped, not leaked): 20,000 skbs dropped (SOCKET_RCVBUFF) at socket inode 99 of pid 7 (slowpoke)");
  CHECK(drops.findings[0].kind == FindingKind::drop_storm);
  CHECK(drops.verdicts[1].find("no leak") == 0);
}

TEST_CASE("cross-check against /proc/slabinfo: agreement and the likely reason", "[unit][model][check]") {
  Report r = leak_report();
  CacheReport untraced;
  untraced.name = untraced.slabinfo_name = "kmalloc-cg-96";
  untraced.allocs = 3;
  untraced.slabinfo = SlabinfoDelta{100, 400100, 400000};
  CacheReport rcu;
  rcu.name = rcu.slabinfo_name = "dentry";
  rcu.allocs = 100000;
  rcu.outstanding = 60000;
  rcu.slabinfo = SlabinfoDelta{1000, 21000, 20000};
  CacheReport merged;
  merged.name = "skbuff_fclone_cache";
  merged.slabinfo_name = "pool_workqueue";
  merged.allocs = 30000;
  merged.outstanding = 10000;
  merged.slabinfo = SlabinfoDelta{100, 30100, 30000};
  r.caches.push_back(untraced);
  r.caches.push_back(rcu);
  r.caches.push_back(merged);

  auto rows = cross_check(r, 10000);
  auto row = [&](const std::string& name) -> const CheckRow& {
    for (const auto& x : rows)
      if (x.cache == name) return x;
    FAIL("no row for " << name);
    throw;
  };
  CHECK(row("skbuff_head_cache").agreement == Agreement::Agrees);
  CHECK(row("kmalloc-1k").ratio == Approx(50010.0 / 49900.0));
  CHECK(row("kmalloc-cg-96").agreement == Agreement::UnderCounts);
  CHECK(row("kmalloc-cg-96").reason.find("BPF map elements") != std::string::npos);
  CHECK(row("dentry").agreement == Agreement::OverCounts);
  CHECK(row("dentry").reason.find("untraced") != std::string::npos);
  CHECK(row("pool_workqueue").traced_as == std::vector<std::string>{"skbuff_fclone_cache"});
  CHECK(row("pool_workqueue").reason.find("merged") != std::string::npos);
  CHECK(rows.front().cache == "kmalloc-cg-96");  // largest change first
  CHECK(cross_check(r, 1000000).empty());
}

TEST_CASE("tracing frames are trimmed and the protocol entry is found", "[unit][model]") {
  std::vector<std::string> raw = {"0xffffffffc00264f8", "bpf_trace_run5",        "kmem_cache_alloc_node_noprof",
                                  "__alloc_skb",        "alloc_skb_with_frags",  "sock_alloc_send_pskb",
                                  "__ip_append_data",   "ip_make_skb",           "udp_sendmsg",
                                  "__sys_sendto",       "do_syscall_64"};
  auto frames = trim_tracing_frames(raw);
  REQUIRE(!frames.empty());
  CHECK(frames.front() == "kmem_cache_alloc_node_noprof");
  CHECK(skb_origin(frames) == "udp_sendmsg");
  CHECK(skb_origin({"kmem_cache_alloc_noprof", "skb_clone", "packet_rcv", "__netif_receive_skb_core"}) == "packet_rcv");
  CHECK(skb_origin({"kmalloc_reserve", "__alloc_skb", "unix_dgram_sendmsg", "__sys_sendto"}) == "unix_dgram_sendmsg");
  CHECK(socket_protocol_name(2, 2, 17) == "udp");
  CHECK(socket_family_name(17) == "packet");
}

TEST_CASE("a data buffer's stack is its head's from __alloc_skb out", "[unit][model]") {
  auto frames = from_skb_alloc({"kmem_cache_alloc_node_noprof", "__alloc_skb", "alloc_skb_with_frags", "udp_sendmsg"});
  CHECK(frames == std::vector<std::string>{"__alloc_skb", "alloc_skb_with_frags", "udp_sendmsg"});
  // A compiler-split copy is the same function.
  CHECK(from_skb_alloc({"kmem_cache_alloc_node_noprof", "__alloc_skb.part.0", "tcp_send_ack"}).front() == "__alloc_skb.part.0");
  // No __alloc_skb frame (a clone's stack): nothing to trim, nothing made up.
  std::vector<std::string> clone = {"kmem_cache_alloc_noprof", "skb_clone", "packet_rcv"};
  CHECK(from_skb_alloc(clone) == clone);
}

TEST_CASE("JSON report and stream lines carry the contract fields", "[unit][model][contract]") {
  Report r = leak_report();
  r.kernel = "6.18.44";
  r.attach_mode = "tp_btf";
  StackReport s;
  s.cache = "skbuff_head_cache";
  s.cgroup_id = 25;
  s.frames = {"kmem_cache_alloc_node_noprof", "__alloc_skb", "udp_sendmsg"};
  s.outstanding = 50000;
  r.stacks = {s};
  auto j = output::report_json(r);
  CHECK(j["schema"] == "slabtrace.report/v1");
  for (const char* key : {"kernel", "duration_s", "sample_rate", "attach_mode", "caches", "cgroups", "stacks", "skb", "lost"})
    CHECK(j.contains(key));
  CHECK(j["cgroups"][0]["container_id"].is_null());
  CHECK(j["cgroups"][0]["pod"].is_null());
  CHECK(j["caches"][0]["slabinfo"]["delta"] == 49900);
  CHECK(j["skb"]["holders"][0]["socket_inode"] == 18884);
  CHECK(j["stacks"][0]["frames"][2] == "udp_sendmsg");

  GroupRate g;
  g.cgroup_id = 25;
  g.total.outstanding = 10;
  output::StreamContext ctx;
  ctx.timestamp = "2026-11-22T10:00:01Z";
  ctx.path = "/x";
  ctx.workload.pod = "web-0";
  ctx.workload.pod_namespace = "shop";
  auto line = output::stream_line(g, ctx);
  CHECK(line["schema"] == "slabtrace.stream/v1");
  CHECK(line["pod"] == "web-0");
  CHECK(line["namespace"] == "shop");
  CHECK(line["container_id"].is_null());
  CHECK(line.dump().find('\n') == std::string::npos);  // NDJSON: one line

  std::ostringstream folded;
  output::write_stacks_folded(r, folded);
  CHECK(folded.str() ==
        "cgroup ;skbuff_head_cache;udp_sendmsg;__alloc_skb;kmem_cache_alloc_node_noprof 0\n");
}

TEST_CASE("sampling error bound: 95 % half-width of a scaled count", "[unit][model]") {
  using model::error95;
  CHECK(error95(0, 16) == 0);     // nothing sampled, nothing to bound
  CHECK(error95(5000, 1) == 0);   // exact
  // 1,875 sampled at 1 in 16 stand for 30,000: sd = sqrt(1875 * 16 * 15) = 670.8
  CHECK(error95(1875, 16) == 1315);
  // Relative error shrinks as 1/sqrt(sampled): 100x the sample, a tenth the relative bound.
  double small = double(error95(100, 64)) / (100.0 * 64);
  double large = double(error95(10000, 64)) / (10000.0 * 64);
  CHECK(large == Approx(small / 10).epsilon(0.01));
}

TEST_CASE("record and doctor list the processes a shared socket is open in", "[unit][model][text]") {
  Report r = leak_report();
  auto& h = r.skb.holders[0];
  auto owner = [](int pid, const char* comm, const char* cgroup) {
    census::Owner o;
    o.pid = pid;
    o.comm = comm;
    o.cgroup_path = cgroup;
    return o;
  };
  h.owners = {owner(4242, "leaky", "/kubepods.slice/pod2")};
  std::ostringstream one;
  output::write_report_text(r, one);
  CHECK(one.str().find("open in:") == std::string::npos);  // the blamed process alone: already named

  for (int pid = 4243; pid < 4252; ++pid) h.owners.push_back(owner(pid, "child", "/kubepods.slice/pod2/child"));
  std::ostringstream many;
  output::write_report_text(r, many);
  CHECK(many.str().find("\n             open in: pid 4242 (leaky) in /kubepods.slice/pod2, pid 4243 (child) in "
                        "/kubepods.slice/pod2/child,") != std::string::npos);
  CHECK(many.str().find(", pid 4249 (child) in /kubepods.slice/pod2/child and 2 more\n") != std::string::npos);
  CHECK(output::open_in_line(h.owners, 2).rfind("  open in: pid 4242 (leaky)", 0) == 0);
  CHECK(output::open_in_line({}, 2).empty());
}

TEST_CASE("a whole sk_buff's slot is its head and its data buffer", "[model][skb]") {
  slabtrace::bpf::LiveObject both;
  both.addr = 0xffff888012345000ull;
  both.bucket = 7;
  both.stack_id = 42;
  both.flags = ST_OBJ_SKB_BOTH;
  both.age_ms = 1500;
  both.link = 0xffff888000abc000ull;  // the socket holding it
  auto skb = slabtrace::bpf::split_whole_skb(both, 3 + 1);
  CHECK(skb.head.bucket == 3);
  CHECK(skb.head.flags == ST_OBJ_SKB_HEAD);
  CHECK(skb.head.link == both.link);
  CHECK(skb.head.stack_id == 42);
  CHECK(skb.head.age_ms == 1500);
  CHECK(skb.data.bucket == 7);
  CHECK(skb.data.flags == ST_OBJ_SKB_DATA);
  CHECK(skb.data.link == both.addr);
  CHECK(skb.data.stack_id == 42);
  // No head bucket known: the head is in no bucket, which the report skips.
  CHECK(slabtrace::bpf::split_whole_skb(both, 0).head.bucket == ST_MAX_BUCKETS);
}
