// The report of a recording, from the tracer's maps and the node's names:
// outstanding per cache, cgroup and stack; sk_buffs, their allocators, their
// holders and their drops; the kernel's own counts beside ours. No I/O: every
// question goes to the TraceSource or the KernelView.
#include "slabtrace/aggregate.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <istream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "slabtrace/human.hpp"
#include "slabtrace/sockets.hpp"

namespace slabtrace::model {

namespace {

struct Agg {
  std::uint64_t count = 0, bytes = 0, oldest_ms = 0;
  // Of count, the objects whose stack was drawn at the throttled rate
  // (past the stack budget): each stands for 2^ST_STACK_THROTTLE_SHIFT more.
  std::uint64_t throttled = 0;
};

// Keyed by bucket << 32 | stack id: one hash per object over millions.
std::uint64_t stack_key(std::uint32_t bucket, std::int32_t stack) { return std::uint64_t(bucket) << 32 | std::uint32_t(stack); }
std::pair<std::uint32_t, std::int32_t> unkey(std::uint64_t key) {
  return {std::uint32_t(key >> 32), std::int32_t(std::uint32_t(key))};
}

bool selected_by(const std::vector<std::string>& filter, const std::string& slabinfo_name, KernelView& kernel) {
  if (filter.empty()) return true;
  for (const auto& wanted : filter) {
    if (wanted == slabinfo_name) return true;
    auto aliases = kernel.aliases_of(wanted);
    if (std::find(aliases.begin(), aliases.end(), slabinfo_name) != aliases.end()) return true;
  }
  return false;
}

}  // namespace

CgroupMemory parse_memory_stat(std::istream& in) {
  CgroupMemory m;
  std::string key;
  std::uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "slab_reclaimable") m.slab_reclaimable = value;
    else if (key == "slab_unreclaimable") m.slab_unreclaimable = value;
    else if (key == "sock") m.sock = value;
  }
  return m;
}

std::string drop_reason_name(const std::map<std::uint32_t, std::string>& names, std::uint32_t reason) {
  auto it = names.find(reason);
  return it != names.end() ? it->second : fmt::format("reason {}", reason);
}

Lost Lost::from(const st_stats& st) {
  Lost l;
  l.map_full = st.v[ST_STAT_MAP_FULL];
  l.stack_errors = st.v[ST_STAT_STACK_ERRORS];
  l.missed_frees = st.v[ST_STAT_MISSED_FREES];
  l.buckets_full = st.v[ST_STAT_BUCKETS_FULL];
  l.busy = st.v[ST_STAT_BUSY];
  l.socks_full = st.v[ST_STAT_SOCKS_FULL];
  l.context_unknown = st.v[ST_STAT_IRQ_CONTEXT_UNKNOWN];
  l.not_adopted = st.v[ST_STAT_ADOPT_NO_CACHE];
  return l;
}

std::vector<std::pair<std::string, std::uint64_t>> Lost::named() const {
  return {{"map_full", map_full}, {"stack_errors", stack_errors}, {"missed_frees", missed_frees},
          {"buckets_full", buckets_full}, {"busy", busy}, {"socks_full", socks_full},
          {"context_unknown", context_unknown}, {"not_adopted", not_adopted}};
}

Rates RateTracker::next(Snapshot now) {
  Rates r = compute_rates(previous(), now, scale_);
  previous_ = std::move(now);
  return r;
}

Report aggregate(const RunSnapshot& run, const TraceSource& trace, KernelView& kernel) {
  Report rep;
  static_cast<RunInfo&>(rep) = run;
  for (const auto& limit : run.kernel_limits) rep.notes.push_back(limit);
  const std::uint64_t scale = run.sample_rate;
  const Snapshot& snap = run.counters;

  std::unordered_map<std::uint32_t, const Bucket*> bucket_of;
  for (const auto& b : snap.buckets) bucket_of.emplace(b.index, &b);

  // One pass over the live set: per bucket and per (bucket, stack).
  std::unordered_map<std::uint32_t, Agg> per_bucket;
  std::unordered_map<std::uint64_t, Agg> per_stack, head_stacks;
  // Stacks of data buffers: captured at their sk_buff's head (the BPF side
  // takes one stack per sk_buff), so they are shown from __alloc_skb out.
  std::unordered_set<std::uint64_t> data_stacks;
  std::unordered_map<std::uint32_t, Agg> heads_by_bucket, data_by_bucket;
  // skb relations kept in the objects themselves: head -> holding socket,
  // data buffer -> its head.
  struct QueuedHead {
    std::uint64_t addr, sk, size, age_ms;
  };
  std::vector<QueuedHead> queued_heads;
  // Data buffers and their heads, looked up in the table afterwards (as the
  // BPF side does) rather than through a set of millions of heads.
  struct DataLink {
    std::uint32_t bucket;
    std::uint64_t head, size;
  };
  std::vector<DataLink> data_links;
  const std::uint64_t min_age_ms = std::uint64_t(run.min_age_s * 1000.0);
  // When each live object was allocated, by interval: born[bucket][k] objects
  // were allocated after interval point k-1 and before point k.
  std::vector<double> point_times;
  for (const auto& p : run.intervals) point_times.push_back(p.elapsed_s);
  std::unordered_map<std::uint32_t, std::vector<std::uint64_t>> born;
  std::unordered_map<std::uint32_t, std::uint64_t> oldest_of_bucket;
  std::uint64_t live_total = 0;
  std::uint64_t adopted_heads = 0;
  trace.for_each_live([&](const bpf::LiveObject& o) {
    ++live_total;
    auto it = bucket_of.find(o.bucket);
    if (it == bucket_of.end()) return;
    std::uint64_t age = o.age_ms;
    auto& hist = born[o.bucket];
    if (hist.empty()) hist.resize(point_times.size() + 1);
    double allocated_at = run.duration_s - double(age) / 1000.0;
    hist[std::size_t(std::upper_bound(point_times.begin(), point_times.end(), allocated_at) - point_times.begin())] += 1;
    auto& oldest = oldest_of_bucket[o.bucket];
    oldest = std::max(oldest, age);
    if (age < min_age_ms) return;
    std::uint64_t size = it->second->object_size;
    auto add = [&](Agg& a) {
      a.count += 1;
      a.bytes += size;
      a.oldest_ms = std::max(a.oldest_ms, age);
    };
    add(per_bucket[o.bucket]);
    auto& of_stack = per_stack[stack_key(o.bucket, o.stack_id)];
    add(of_stack);
    if (o.stack_throttled) of_stack.throttled += 1;
    if (o.flags & ST_OBJ_SKB_HEAD) {
      add(heads_by_bucket[o.bucket]);
      add(head_stacks[stack_key(o.bucket, o.stack_id)]);
      if (o.link) queued_heads.push_back({o.addr, o.link, size, age});
      if (o.flags & ST_OBJ_SKB_ADOPTED) ++adopted_heads;
    }
    if (o.flags & ST_OBJ_SKB_DATA) {
      add(data_by_bucket[o.bucket]);
      if (o.stack_id >= 0) data_stacks.insert(stack_key(o.bucket, o.stack_id));
      if (o.link) data_links.push_back({o.bucket, o.link, size});
    }
  });
  rep.live_objects = live_total;
  rep.live_capacity = trace.live_capacity();

  // Caches: counters for allocs/frees, the live set for what is outstanding.
  std::map<std::string, CacheReport> caches;
  for (const auto& b : snap.buckets) {
    auto& c = caches[b.cache];
    c.name = b.cache;
    c.object_size = b.object_size;
    c.allocs += b.counts.allocs;
    c.frees += b.counts.ended_total() * scale;
    for (std::size_t i = 0; i < c.ended_by.size(); ++i) c.ended_by[i] += b.counts.ended[i] * scale;
    auto it = per_bucket.find(b.index);
    if (it != per_bucket.end()) {
      c.outstanding += it->second.count * scale;
      c.outstanding_bytes += it->second.bytes * scale;
    }
  }
  for (auto& [name, c] : caches) c.outstanding_error = error95(c.outstanding / scale, scale);
  static const procfs::Slabinfo kNoSlabinfo;
  const procfs::Slabinfo& slabinfo_end = run.slabinfo_end ? *run.slabinfo_end : kNoSlabinfo;
  if (!run.slabinfo_end)
    rep.notes.push_back(fmt::format("/proc/slabinfo unreadable at the end: {}", run.slabinfo_end_error));
  for (auto& [name, c] : caches) {
    c.slabinfo_name = kernel.slabinfo_name(name);
    c.reclaimable = kernel.reclaimable(c.slabinfo_name);
    for (const auto& a : kernel.aliases_of(name))
      if (a != name) c.aliases.push_back(a);
    const auto* s0 = procfs::find_cache(run.slabinfo_start, c.slabinfo_name);
    const auto* s1 = procfs::find_cache(slabinfo_end, c.slabinfo_name);
    if (s0 && s1)
      c.slabinfo = SlabinfoDelta{s0->active_objs, s1->active_objs,
                                 std::int64_t(s1->active_objs) - std::int64_t(s0->active_objs)};
    rep.caches.push_back(c);
  }
  // Caches that grew or shrank with nothing traced: the check needs them too.
  for (const auto& s1 : slabinfo_end) {
    const auto* s0 = procfs::find_cache(run.slabinfo_start, s1.name);
    if (!s0) continue;
    std::int64_t delta = std::int64_t(s1.active_objs) - std::int64_t(s0->active_objs);
    bool listed = std::any_of(rep.caches.begin(), rep.caches.end(),
                              [&](const auto& c) { return c.slabinfo_name == s1.name; });
    if (listed || std::llabs(delta) < 1000 || !selected_by(run.cache_filter, s1.name, kernel)) continue;
    CacheReport c;
    c.name = c.slabinfo_name = s1.name;
    c.reclaimable = kernel.reclaimable(s1.name);
    c.object_size = s1.object_size;
    c.slabinfo = SlabinfoDelta{s0->active_objs, s1.active_objs, delta};
    rep.caches.push_back(c);
  }
  std::sort(rep.caches.begin(), rep.caches.end(),
            [](const auto& a, const auto& b) { return a.outstanding_bytes > b.outstanding_bytes; });

  // Cgroups.
  std::map<std::uint64_t, CgroupReport> cgs;
  for (const auto& b : snap.buckets) {
    auto it = per_bucket.find(b.index);
    if (it == per_bucket.end() || it->second.count == 0) continue;
    auto& g = cgs[b.cgroup_id];
    g.id = b.cgroup_id;
    g.outstanding += it->second.count * scale;
    g.outstanding_bytes += it->second.bytes * scale;
    g.by_cache[b.cache] += it->second.count * scale;
  }
  for (auto& [id, g] : cgs) {
    g.outstanding_error = error95(g.outstanding / scale, scale);
    g.path = kernel.cgroup_path(id);
    g.container = cgroups::parse_container(g.path);
    g.workload = kernel.workload_of(g.path);
    auto m0 = run.memory_start.find(id);
    auto m1 = run.memory_end.find(id);
    if (m0 != run.memory_start.end() && m1 != run.memory_end.end())
      g.memory_slab_unreclaimable_delta =
          std::int64_t(m1->second.slab_unreclaimable) - std::int64_t(m0->second.slab_unreclaimable);
    rep.cgroups.push_back(std::move(g));
  }
  std::sort(rep.cgroups.begin(), rep.cgroups.end(),
            [](const auto& a, const auto& b) { return a.outstanding_bytes > b.outstanding_bytes; });

  // Stacks: symbolize only the top ones. With stack sampling, objects without
  // a stack are left out and the sampled ones stand for stack_sample_rate each.
  const bool stacks_sampled = run.stack_sample_rate > 1;
  const std::uint64_t stack_scale = scale * std::max<std::uint64_t>(run.stack_sample_rate, 1);
  std::vector<std::pair<std::pair<std::uint32_t, std::int32_t>, Agg>> stacks;
  for (const auto& [key, agg] : per_stack) {
    auto bucket_stack = unkey(key);
    if (bucket_stack.second >= 0 || !stacks_sampled) stacks.emplace_back(bucket_stack, agg);
  }
  // Each object stands for the rate its stack was drawn at, and a stack's
  // objects are all of its bucket's size: the top stacks by what they stand for.
  constexpr std::uint64_t kThrottled = 1u << ST_STACK_THROTTLE_SHIFT;
  auto drawn_for = [&](const Agg& a) { return a.count - a.throttled + a.throttled * kThrottled; };
  auto stands_for_bytes = [&](const auto& entry) {
    return drawn_for(entry.second) * bucket_of.at(entry.first.first)->object_size;
  };
  std::sort(stacks.begin(), stacks.end(),
            [&](const auto& a, const auto& b) { return stands_for_bytes(a) > stands_for_bytes(b); });
  std::unordered_map<std::int32_t, std::vector<std::uint64_t>> raw_stacks;
  auto raw_stack = [&](std::int32_t id) -> const std::vector<std::uint64_t>& {
    auto it = raw_stacks.find(id);
    if (it == raw_stacks.end()) it = raw_stacks.emplace(id, trace.stack(id)).first;
    return it->second;
  };
  for (std::size_t i = 0; i < stacks.size() && rep.stacks.size() < run.top; ++i) {
    const auto& [key, agg] = stacks[i];
    const Bucket* b = bucket_of.at(key.first);
    StackReport s;
    s.cache = b->cache;
    s.cgroup_id = b->cgroup_id;
    s.cgroup_path = kernel.cgroup_path(b->cgroup_id);
    s.stack_id = key.second;
    const std::uint64_t full = agg.count - agg.throttled;
    s.outstanding = drawn_for(agg) * stack_scale;
    s.outstanding_bytes = s.outstanding * b->object_size;
    s.outstanding_error = std::uint64_t(std::ceil(std::hypot(double(error95(full, stack_scale)),
                                                            double(error95(agg.throttled, stack_scale * kThrottled)))));
    s.oldest_age_s = double(agg.oldest_ms) / 1000.0;
    const auto& addrs = raw_stack(key.second);
    s.frames = trim_tracing_frames(kernel.symbolize(addrs, false));
    if (data_stacks.count(stack_key(key.first, key.second))) {
      s.stack_of = "skb_head";
      s.frames = from_skb_alloc(std::move(s.frames));
    } else if (head_stacks.count(stack_key(key.first, key.second))) {
      // Under address sampling a head's stack is taken at its data buffer's
      // allocation (the pair is drawn by the data's address): either way the
      // call path starts at __alloc_skb.
      s.frames = from_skb_alloc(std::move(s.frames));
    }
    auto with = kernel.symbolize(addrs, true);
    std::size_t trimmed = addrs.size() - s.frames.size();
    s.frames_with_offsets.assign(with.begin() + std::ptrdiff_t(trimmed), with.end());
    rep.stacks.push_back(std::move(s));
  }

  // sk_buffs: heads and data buffers, who allocated them, who holds them.
  // Heads adopted on a receive path count as any other (the cache table has
  // them too); the report says how many there are and where they came in.
  rep.skb.adopted_heads = adopted_heads * scale;
  for (const auto& [key, dev] : trace.adopted()) {
    SkbAdoption a;
    a.ifindex = key.ifindex;
    a.netns = key.netns;
    a.device = dev.name[0] ? std::string(dev.name, strnlen(dev.name, sizeof dev.name)) : fmt::format("ifindex {}", key.ifindex);
    a.heads = dev.heads * scale;
    rep.skb.adopted_by_device.push_back(std::move(a));
  }
  std::sort(rep.skb.adopted_by_device.begin(), rep.skb.adopted_by_device.end(),
            [](const auto& a, const auto& b) { return a.heads > b.heads; });
  if (rep.skb.adopted_heads >= 1000) {
    std::string devices;
    for (std::size_t i = 0; i < rep.skb.adopted_by_device.size() && i < 3; ++i)
      devices += fmt::format("{}{} ({})", i ? ", " : "", rep.skb.adopted_by_device[i].device,
                             group_thousands(rep.skb.adopted_by_device[i].heads));
    rep.notes.push_back(fmt::format("{} outstanding sk_buff heads were adopted, not seen allocated: they came from the "
                                    "NAPI skb cache and were first seen on the receive path{}",
                                    group_thousands(rep.skb.adopted_heads), devices.empty() ? "" : " of " + devices));
  }
  for (const auto& [idx, a] : heads_by_bucket) {
    rep.skb.outstanding_heads += a.count * scale;
    rep.skb.outstanding_bytes += a.bytes * scale;
  }
  for (const auto& [idx, a] : data_by_bucket) {
    rep.skb.outstanding_data += a.count * scale;
    rep.skb.outstanding_bytes += a.bytes * scale;
  }
  std::map<std::pair<std::uint64_t, std::string>, std::uint64_t> allocators;
  for (const auto& [packed_key, agg] : head_stacks) {
    auto key = unkey(packed_key);
    if (key.second < 0 && stacks_sampled) continue;
    const Bucket* b = bucket_of.at(key.first);
    auto frames = trim_tracing_frames(kernel.symbolize(raw_stack(key.second), false));
    allocators[{b->cgroup_id, frames.empty() ? std::string() : skb_origin(frames)}] += agg.count * stack_scale;
  }
  // Per data cache: how many data buffers still have their head (1:1 is the leak signature).
  std::map<std::string, SkbDataCache> data_caches;
  for (const auto& [idx, a] : data_by_bucket) {
    auto& d = data_caches[bucket_of.at(idx)->cache];
    d.cache = bucket_of.at(idx)->cache;
    d.data_buffers += a.count * scale;
  }
  // Each data buffer's head, found in the table: still live (1:1 leak
  // signature), and which socket holds it (the holder's bytes).
  std::unordered_map<std::uint64_t, std::uint64_t> queued_data_bytes;  // socket -> bytes
  for (const auto& d : data_links) {
    auto head = trace.find_live(d.head);
    if (!head || !(head->flags & ST_OBJ_SKB_HEAD)) continue;
    data_caches[bucket_of.at(d.bucket)->cache].with_live_head += scale;
    if (head->link) queued_data_bytes[head->link] += d.size;
  }
  for (auto& [name, d] : data_caches) rep.skb.data_caches.push_back(d);
  for (const auto& [key, n] : allocators) rep.skb.allocators.push_back({key.first, kernel.cgroup_path(key.first), key.second, n});
  std::sort(rep.skb.allocators.begin(), rep.skb.allocators.end(),
            [](const auto& a, const auto& b) { return a.heads > b.heads; });

  // Trends: each bucket's outstanding over the run's intervals, beside the
  // kernel's count of its cache and the share of its objects that aged.
  std::map<std::uint32_t, std::string> via_of_bucket;
  {
    std::map<std::uint32_t, std::map<std::string, std::uint64_t>> votes;
    for (const auto& [packed_key, agg] : head_stacks) {
      auto key = unkey(packed_key);
      if (key.second < 0) continue;
      auto frames = trim_tracing_frames(kernel.symbolize(raw_stack(key.second), false));
      if (!frames.empty()) votes[key.first][skb_origin(frames)] += agg.count;
    }
    for (const auto& [bucket, v] : votes)
      via_of_bucket[bucket] = std::max_element(v.begin(), v.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
  }
  for (const auto& b : snap.buckets) {
    if (b.counts.outstanding() == 0) continue;
    Trend t;
    t.cache = b.cache;
    t.slabinfo_name = kernel.slabinfo_name(b.cache);
    t.reclaimable = kernel.reclaimable(t.slabinfo_name);
    t.cgroup_id = b.cgroup_id;
    t.cgroup_path = kernel.cgroup_path(b.cgroup_id);
    t.object_size = b.object_size;
    t.outstanding.emplace_back(0.0, 0);
    for (const auto& p : run.intervals) {
      auto it = p.outstanding.find(b.index);
      if (p.elapsed_s < run.duration_s) t.outstanding.emplace_back(p.elapsed_s, it == p.outstanding.end() ? 0 : it->second * scale);
    }
    t.outstanding.emplace_back(run.duration_s, b.counts.outstanding() * scale);
    if (const auto* s0 = procfs::find_cache(run.slabinfo_start, t.slabinfo_name)) t.kernel.emplace_back(0.0, s0->active_objs);
    for (const auto& p : run.intervals) {
      auto it = p.slab_active.find(t.slabinfo_name);
      if (it != p.slab_active.end() && p.elapsed_s < run.duration_s) t.kernel.emplace_back(p.elapsed_s, it->second);
    }
    if (const auto* s1 = procfs::find_cache(slabinfo_end, t.slabinfo_name)) t.kernel.emplace_back(run.duration_s, s1->active_objs);
    // The middle of the rise: the first interval point at or past half the
    // final count. Of what was outstanding then, how much is still live.
    std::uint64_t last = t.outstanding.back().second;
    auto hist = born.find(b.index);
    for (std::size_t k = 0; k < run.intervals.size(); ++k) {
      const auto& p = run.intervals[k];
      if (p.elapsed_s >= run.duration_s) break;
      auto it = p.outstanding.find(b.index);
      std::uint64_t then = it == p.outstanding.end() ? 0 : it->second * scale;
      if (then == 0 || then * 2 < last) continue;
      std::uint64_t alive = 0;
      if (hist != born.end())
        for (std::size_t j = 0; j <= k && j < hist->second.size(); ++j) alive += hist->second[j];
      t.retained = std::min(1.0, double(alive * scale) / double(then));
      t.mid_s = p.elapsed_s;
      break;
    }
    if (auto it = oldest_of_bucket.find(b.index); it != oldest_of_bucket.end()) t.oldest_age_s = double(it->second) / 1000.0;
    t.skb_heads = heads_by_bucket.count(b.index) && heads_by_bucket.at(b.index).count * 2 >= per_bucket[b.index].count;
    t.skb_data = data_by_bucket.count(b.index) && data_by_bucket.at(b.index).count * 2 >= per_bucket[b.index].count;
    if (auto it = via_of_bucket.find(b.index); it != via_of_bucket.end()) t.via = it->second;
    rep.trends.push_back(std::move(t));
  }
  std::sort(rep.trends.begin(), rep.trends.end(), [](const auto& a, const auto& b) {
    return a.outstanding.back().second * a.object_size > b.outstanding.back().second * b.object_size;
  });

  std::unordered_map<std::uint64_t, SkbHolder> holders;
  for (const auto& q : queued_heads) {
    auto& h = holders[q.sk];
    h.sk = q.sk;
    h.queued_skbs += scale;
    h.queued_bytes += q.size * scale;
    h.oldest_queued_age_s = std::max(h.oldest_queued_age_s, double(q.age_ms) / 1000.0);
  }
  for (const auto& [sk, bytes] : queued_data_bytes) {
    auto h = holders.find(sk);
    if (h != holders.end()) h->second.queued_bytes += bytes * scale;
  }
  for (auto& [sk, h] : holders) {
    if (auto info = trace.socket(sk)) {
      h.socket_inode = info->inode;
      h.netns = info->netns;
      h.family = socket_family_name(info->family);
      h.protocol = socket_protocol_name(info->family, info->type, info->protocol);
      h.socket_cgroup_id = info->cgroup;
    }
    rep.skb.holders.push_back(h);
  }
  // Every socket queue now, whoever allocated what it holds: owners, the one
  // to blame and the kernel's counts come from the census (holders.cpp).
  const census::Census& now = kernel.socket_census();
  merge_census(rep.skb, now, kernel.socket_census_at_start(), rep.notes);
  for (const auto& w : now.warnings) spdlog::debug("socket census: {}", w);

  const auto& reason_names = kernel.drop_reasons();
  for (const auto& [reason, n] : trace.drops()) rep.skb.drops.emplace_back(drop_reason_name(reason_names, reason), n);
  std::sort(rep.skb.drops.begin(), rep.skb.drops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  auto by_socket = trace.drops_by_socket();
  std::sort(by_socket.begin(), by_socket.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (by_socket.size() > 10) by_socket.resize(10);
  for (const auto& [key, n] : by_socket) {
    SkbDrop d;
    d.reason = drop_reason_name(reason_names, key.reason);
    d.count = n;
    d.socket_inode = key.inode;
    d.cgroup_id = key.cgroup;
    if (key.cgroup) d.cgroup_path = kernel.cgroup_path(key.cgroup);
    if (auto it = now.owners_by_inode.find(key.inode); key.inode && it != now.owners_by_inode.end()) {
      auto owners = kernel.resolve_owners(it->second);
      if (!owners.empty()) {
        const census::Owner& blamed = owners[census::blamed_owner(owners)];
        d.pid = std::uint32_t(blamed.pid);
        d.comm = blamed.comm;
      }
    }
    rep.skb.drops_by_socket.push_back(std::move(d));
  }

  // Health and our own cost.
  st_stats st = trace.stats();
  for (int i = 0; i < ST_STAT_COUNT; ++i) spdlog::debug("bpf stat {}: {}", i, st.v[i]);
  rep.lost = Lost::from(st);
  for (const auto& c : trace.program_costs()) {
    if (!c.run_count) continue;
    rep.costs.push_back({c.name, c.run_count, double(c.run_time_ns) / double(c.run_count)});
  }
  if (rep.lost.map_full)
    rep.notes.push_back(fmt::format("{} objects were not tracked: the live-object table (room for {} objects) was full; raise --max-objects or use --sample",
                                    group_thousands(rep.lost.map_full), group_thousands(rep.live_capacity)));
  if (scale > 1) {
    const CacheReport* largest = nullptr;
    for (const auto& c : rep.caches)
      if (!largest || c.outstanding > largest->outstanding) largest = &c;
    if (largest && largest->outstanding)
      rep.notes.push_back(fmt::format("sampled 1 in {} addresses: counts are estimates, e.g. {} {} ± {} (95 %)", scale,
                                      largest->name, group_thousands(largest->outstanding),
                                      group_thousands(largest->outstanding_error)));
    else
      rep.notes.push_back(fmt::format("sampled 1 in {} addresses: counts are estimates", scale));
  }
  if (stacks_sampled)
    rep.notes.push_back(fmt::format("stacks sampled from 1 in {} tracked objects: per-stack counts are estimates",
                                    run.stack_sample_rate));
  rep.alloc_failures = st.v[ST_STAT_FAILED_ALLOCS];
  rep.bpf_allocs_untraced = st.v[ST_STAT_BPF_ALLOCS];
  if (rep.alloc_failures)
    rep.notes.push_back(fmt::format("the kernel's allocators returned NULL {} times while traced: allocations are "
                                    "failing (memory pressure, or callers that may fail)",
                                    group_thousands(rep.alloc_failures)));
  if (rep.lost.context_unknown)
    rep.notes.push_back(fmt::format("the interrupt context of {} allocations could not be read: they are blamed on the "
                                    "task that was running",
                                    group_thousands(rep.lost.context_unknown)));
  if (rep.lost.not_adopted)
    rep.notes.push_back(fmt::format("{} sk_buff heads from the NAPI cache were seen before any head allocation named "
                                    "their cache: not tracked",
                                    group_thousands(rep.lost.not_adopted)));
  rep.stacks_throttled = st.v[ST_STAT_STACKS_THROTTLED];
  if (rep.stacks_throttled)
    rep.notes.push_back(fmt::format(
        "stack captures were held to {} per second per CPU: {} stacks were drawn at 1 in {} and count {} times each",
        group_thousands(run.stack_budget), group_thousands(rep.stacks_throttled),
        group_thousands(run.stack_sample_rate << ST_STACK_THROTTLE_SHIFT), 1u << ST_STACK_THROTTLE_SHIFT));
  return rep;
}

}  // namespace slabtrace::model

namespace slabtrace {

namespace {
bool starts_with(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }
}  // namespace

std::vector<std::string> trim_tracing_frames(std::vector<std::string> frames) {
  // The innermost frames are the BPF program and the tracepoint plumbing that
  // called it; everything from the first frame after them is the kernel's.
  auto is_tracing = [](const std::string& f) {
    return starts_with(f, "bpf_") || starts_with(f, "__bpf_") || starts_with(f, "__traceiter_") ||
           starts_with(f, "trace_call_bpf") || starts_with(f, "perf_trace_") || starts_with(f, "0x");
  };
  std::size_t last = 0;
  bool found = false;
  for (std::size_t i = 0; i < frames.size() && i < 8; ++i)
    if (is_tracing(frames[i])) {
      last = i;
      found = true;
    }
  if (found) frames.erase(frames.begin(), frames.begin() + std::ptrdiff_t(last + 1));
  return frames;
}

std::vector<std::string> from_skb_alloc(std::vector<std::string> frames) {
  // A head's stack enters __alloc_skb from the head cache's allocator; its
  // data buffer was allocated from the same __alloc_skb call, by another
  // allocator: what they share starts there.
  for (std::size_t i = 0; i < frames.size() && i < 8; ++i)
    if (frames[i] == "__alloc_skb" || starts_with(frames[i], "__alloc_skb.")) {
      frames.erase(frames.begin(), frames.begin() + std::ptrdiff_t(i));
      break;
    }
  return frames;
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Frames that say nothing about the path: allocators, skb helpers, syscall
// and interrupt entry, workqueue and thread plumbing.
bool is_plumbing(const std::string& f) {
  static const char* prefixes[] = {"kmem_cache_alloc", "__kmem_cache_alloc", "kmalloc", "__kmalloc", "__do_kmalloc",
                                   "kmalloc_reserve", "__alloc_skb", "alloc_skb", "__napi_alloc_skb", "napi_alloc_skb",
                                   "__netdev_alloc_skb", "netdev_alloc_skb", "napi_get_frags", "napi_skb_cache",
                                   "build_skb", "__build_skb", "napi_build_skb", "sock_alloc_send", "sock_wmalloc",
                                   "sock_omalloc", "skb_", "__skb_", "pskb_", "__pskb_", "consume_skb", "kfree_skb",
                                   "entry_SYSCALL", "do_syscall_", "x64_sys_call", "__x64_sys_", "__ia32_sys_",
                                   "__se_sys_", "__do_sys_", "ksys_", "vfs_", "do_iter_", "new_sync_", "ret_from_fork",
                                   "kthread", "worker_thread", "process_one_work", "handle_softirqs", "__do_softirq",
                                   "do_softirq", "irq_exit", "__irq_exit", "asm_", "sysvec_", "common_interrupt",
                                   "net_rx_action", "__napi_poll", "____sys_", "__sys_", "sock_", "__sock_"};
  for (const char* p : prefixes)
    if (starts_with(f, p)) return true;
  return f.empty() || starts_with(f, "0x");
}

}  // namespace

std::string skb_origin(const std::vector<std::string>& frames) {
  // The innermost function that names the path: a protocol's send or receive,
  // a device's write from user space (tun_get_user), the receive entry of a
  // driver's packets. Never an allocator, skb helper or entry stub.
  static const char* suffixes[] = {"sendmsg", "_sendpage", "_rcv", "_xmit_nit", "_recvmsg", "_output",
                                   "_input",  "_get_user", "_xmit"};
  static const char* paths[] = {"napi_gro_frags", "napi_gro_receive", "netif_receive_skb", "netif_rx",
                                "__netif_receive_skb_core", "gro_receive_skb"};
  for (const auto& f : frames) {
    if (is_plumbing(f)) continue;
    for (const char* path : paths)
      if (f == path || starts_with(f, std::string(path) + ".")) return f;
    for (const char* s : suffixes)
      if (ends_with(f, s)) return f;
  }
  for (const auto& f : frames)
    if (!is_plumbing(f)) return f;
  return "?";
}

std::string socket_family_name(std::uint16_t family) {
  switch (family) {
    case AF_UNIX: return "unix";
    case AF_INET: return "inet";
    case AF_INET6: return "inet6";
    case AF_PACKET: return "packet";
    case AF_NETLINK: return "netlink";
    default: return fmt::format("af{}", family);
  }
}

std::string socket_protocol_name(std::uint16_t family, std::uint16_t type, std::uint16_t protocol) {
  if (family == AF_UNIX) return sockets::unix_protocol(type);
  if (family == AF_PACKET) return sockets::packet_protocol(type);
  if (family == AF_INET || family == AF_INET6) {
    switch (protocol) {
      case 6: return "tcp";
      case 17: return "udp";
      case 136: return "udplite";
      case 1: case 58: return "icmp";
      default: return type == SOCK_RAW ? "raw" : fmt::format("ip{}", protocol);
    }
  }
  return fmt::format("proto{}", protocol);
}

}  // namespace slabtrace
