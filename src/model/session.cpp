// A tracing session: start the tracer with what the kernel needs to know (skb
// code ranges, filters), then turn its maps into snapshots and the report.
#include "slabtrace/session.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <algorithm>
#include <fstream>
#include <unordered_set>

#include "slabtrace/btf_names.hpp"
#include "slabtrace/human.hpp"
#include "slabtrace/sockets.hpp"

namespace slabtrace {

namespace {

std::string kernel_release() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

std::optional<std::string> discover_cgroup2_mount() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return std::nullopt;
  try {
    return procfs::find_cgroup2_mount(procfs::parse_mountinfo(in));
  } catch (const ParseError& e) {
    spdlog::warn("cannot read /proc/self/mountinfo: {}", e.what());
    return std::nullopt;
  }
}

bpf::AddrRange range_of(const symbols::KernelSymbols& syms, const char* function) {
  auto r = syms.function_range(function);
  if (!r) return {};
  return {r->first, r->second};
}


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

std::string skb_origin(const std::vector<std::string>& frames) {
  // The first protocol-level function above the generic skb allocation code.
  static const char* suffixes[] = {"sendmsg", "_sendpage", "_rcv", "_xmit_nit", "_recvmsg", "_output", "_input"};
  for (const auto& f : frames) {
    for (const char* s : suffixes) {
      std::string_view sv(s);
      if (f.size() > sv.size() && f.compare(f.size() - sv.size(), sv.size(), sv) == 0 &&
          !starts_with(f, "sock_") && !starts_with(f, "__sock_") && !starts_with(f, "____sys_") &&
          !starts_with(f, "__sys_"))
        return f;
    }
  }
  return frames.empty() ? std::string("?") : frames.back();
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

// The kernel's per-program run-time statistics cost every BPF program a clock
// read per run (measured: the empty-program floor drops from 0.94 to 0.83 of
// untraced throughput). Switched on one second in ten, they still give our
// cost per event, at a tenth of the price.
class CostSampler {
 public:
  explicit CostSampler(bpf::Tracer& tracer) : tracer_(tracer), thread_([this] { run(); }) {}
  ~CostSampler() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
    tracer_.measure_cost(false);
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      tracer_.measure_cost(true);
      if (wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; })) break;
      tracer_.measure_cost(false);
      wake_.wait_for(lock, std::chrono::seconds(9), [&] { return stop_; });
    }
  }
  bpf::Tracer& tracer_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

Session::~Session() = default;

Session::Session(SessionOptions options) : options_(std::move(options)), pod_names_(options_.kubelet_logs) {
  bpf::require_privileges();
  symbols_ = symbols::KernelSymbols::load();
  if (auto mount = discover_cgroup2_mount()) {
    cgroups_.emplace(*mount);
    cgroups_->refresh();
  } else {
    spdlog::warn("no cgroup2 mount found: cgroups are shown by id");
  }
  aliases_ = slab::read_slab_aliases();
  slabinfo_start_ = procfs::read_slabinfo();

  auto& t = options_.tracer;
  for (const auto& name : options_.caches) {
    if (auto key = model::kmalloc_key(name))
      t.cache_keys.push_back(*key);
    else
      // Merged caches allocate under the name of the cache they merged into.
      for (const auto& alias : aliases_.aliases_of(name)) {
        if (std::find(t.cache_names.begin(), t.cache_names.end(), alias) == t.cache_names.end())
          t.cache_names.push_back(alias);
      }
    if (t.cache_names.empty() && !model::kmalloc_key(name)) t.cache_names.push_back(name);
  }
  t.skb_alloc_ranges = {range_of(symbols_, "__alloc_skb"), range_of(symbols_, "kmalloc_reserve")};
  t.skb_clone_range = range_of(symbols_, "skb_clone");
  // Where the BPF memory allocator (our own map elements) calls kmalloc, and
  // the slab allocator's per-slab metadata (obj_exts vectors, allocated when
  // any memcg-accounted slab is created; our map elements' slabs among them).
  for (const char* fn : {"alloc_bulk", "__alloc", "bpf_mem_refill", "alloc_slab_obj_exts"})
    if (auto r = range_of(symbols_, fn); r.start) t.ignore_ranges.push_back(r);
  if (!t.skb_alloc_ranges[0].start) spdlog::warn("__alloc_skb not in kallsyms: sk_buff heads and data are not paired");
  tracer_ = std::make_unique<bpf::Tracer>(t);
  started_ = std::chrono::steady_clock::now();
  if (options_.measure_cost) cost_sampler_ = std::make_unique<CostSampler>(*tracer_);
  for (const auto& missing : tracer_->missing_optional())
    spdlog::info("tracepoint {} is not available on this kernel; continuing without it", missing);
}

double Session::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

std::string Session::cgroup_path(std::uint64_t id) {
  if (model::is_interrupt_cgroup(id)) return model::cgroup_label(id, std::nullopt);
  auto it = path_cache_.find(id);
  if (it != path_cache_.end()) return it->second;
  std::optional<std::string> path;
  if (cgroups_) path = cgroups_->path_of(id);
  std::string label = model::cgroup_label(id, path);
  // Unknown ids are retried on the next call (the cgroup may be brand new).
  if (path) path_cache_.emplace(id, label);
  return label;
}

k8s::Workload Session::workload_of(const std::string& path) {
  return pod_names_.lookup(cgroups::parse_container(path));
}

bool Session::cgroup_selected(std::uint64_t id) {
  if (options_.cgroup_filter.empty()) return true;
  return model::cgroup_matches(cgroup_path(id), options_.cgroup_filter);
}

bool Session::cache_selected(const std::string& name) const {
  if (options_.caches.empty()) return true;
  for (const auto& wanted : options_.caches) {
    if (wanted == name) return true;
    auto aliases = aliases_.aliases_of(wanted);
    if (std::find(aliases.begin(), aliases.end(), name) != aliases.end()) return true;
  }
  return false;
}

model::Snapshot Session::snapshot() {
  model::Snapshot snap;
  snap.elapsed_s = elapsed_s();
  for (const auto& b : tracer_->buckets()) {
    model::Bucket out;
    out.index = b.index;
    out.cache = model::cache_name(b.info.cache, b.info.name);
    out.cgroup_id = b.info.cgroup;
    out.object_size = b.info.object_size;
    out.ignored = (b.info.flags & ST_BUCKET_IGNORED) != 0;
    out.counts = model::Counts::from(b.counters);
    if (out.ignored || !cache_selected(out.cache) || !cgroup_selected(out.cgroup_id)) continue;
    snap.buckets.push_back(std::move(out));
  }
  return snap;
}

std::vector<std::string> Session::symbolize(const std::vector<std::uint64_t>& addrs, bool with_offsets) const {
  std::vector<std::string> out;
  out.reserve(addrs.size());
  for (auto a : addrs) {
    if (with_offsets) {
      out.push_back(symbols_.format(a));
    } else {
      auto r = symbols_.resolve(a);
      out.push_back(r.found ? r.name : fmt::format("{:#x}", a));
    }
  }
  return out;
}

model::Report Session::report() {
  model::Report rep;
  rep.kernel = kernel_release();
  rep.duration_s = elapsed_s();
  rep.sample_rate = scale();
  rep.attach_mode = bpf::to_string(tracer_->attach_mode());
  const std::uint64_t scale_ = scale();

  // Buckets by index, with what the filters keep.
  model::Snapshot snap = snapshot();
  std::unordered_map<std::uint32_t, const model::Bucket*> bucket_of;
  for (const auto& b : snap.buckets) bucket_of.emplace(b.index, &b);

  // One pass over the live set: per bucket and per (bucket, stack).
  struct Agg {
    std::uint64_t count = 0, bytes = 0, oldest_ms = 0;
  };
  std::unordered_map<std::uint32_t, Agg> per_bucket;
  // Keyed by bucket << 32 | stack id: one hash per object over millions.
  auto stack_key = [](std::uint32_t bucket, std::int32_t stack) {
    return std::uint64_t(bucket) << 32 | std::uint32_t(stack);
  };
  std::unordered_map<std::uint64_t, Agg> per_stack, head_stacks;
  std::unordered_map<std::uint32_t, Agg> heads_by_bucket, data_by_bucket;
  // skb relations kept in the objects themselves: head -> holding socket,
  // data buffer -> its head.
  struct QueuedHead {
    std::uint64_t addr, sk, size;
  };
  std::vector<QueuedHead> queued_heads;
  // Data buffers and their heads, looked up in the table afterwards (as the
  // BPF side does) rather than through a set of millions of heads.
  struct DataLink {
    std::uint32_t bucket;
    std::uint64_t head, size;
  };
  std::vector<DataLink> data_links;
  const std::uint64_t min_age_ms = std::uint64_t(options_.min_age_s * 1000.0);
  std::uint64_t live_total = 0;
  tracer_->for_each_live([&](const bpf::LiveObject& o) {
    ++live_total;
    auto it = bucket_of.find(o.bucket);
    if (it == bucket_of.end()) return;
    std::uint64_t age = o.age_ms;
    if (age < min_age_ms) return;
    std::uint64_t size = it->second->object_size;
    auto add = [&](Agg& a) {
      a.count += 1;
      a.bytes += size;
      a.oldest_ms = std::max(a.oldest_ms, age);
    };
    add(per_bucket[o.bucket]);
    add(per_stack[stack_key(o.bucket, o.stack_id)]);
    if (o.flags & ST_OBJ_SKB_HEAD) {
      add(heads_by_bucket[o.bucket]);
      add(head_stacks[stack_key(o.bucket, o.stack_id)]);
      if (o.link) queued_heads.push_back({o.addr, o.link, size});
    }
    if (o.flags & ST_OBJ_SKB_DATA) {
      add(data_by_bucket[o.bucket]);
      if (o.link) data_links.push_back({o.bucket, o.link, size});
    }
  });
  rep.live_objects = live_total;
  rep.live_capacity = tracer_->live_capacity();

  // Caches: counters for allocs/frees, the live set for what is outstanding.
  std::map<std::string, model::CacheReport> caches;
  for (const auto& b : snap.buckets) {
    auto& c = caches[b.cache];
    c.name = b.cache;
    c.object_size = b.object_size;
    c.allocs += b.counts.allocs;
    c.frees += b.counts.ended_total() * scale_;
    for (std::size_t i = 0; i < c.ended_by.size(); ++i) c.ended_by[i] += b.counts.ended[i] * scale_;
    auto it = per_bucket.find(b.index);
    if (it != per_bucket.end()) {
      c.outstanding += it->second.count * scale_;
      c.outstanding_bytes += it->second.bytes * scale_;
    }
  }
  for (auto& [name, c] : caches) c.outstanding_error = model::error95(c.outstanding / scale_, scale_);
  procfs::Slabinfo slabinfo_end;
  try {
    slabinfo_end = procfs::read_slabinfo();
  } catch (const std::exception& e) {
    rep.notes.push_back(fmt::format("/proc/slabinfo unreadable at the end: {}", e.what()));
  }
  for (auto& [name, c] : caches) {
    c.slabinfo_name = aliases_.slabinfo_name(name, slabinfo_start_);
    for (const auto& a : aliases_.aliases_of(name))
      if (a != name) c.aliases.push_back(a);
    const auto* s0 = procfs::find_cache(slabinfo_start_, c.slabinfo_name);
    const auto* s1 = procfs::find_cache(slabinfo_end, c.slabinfo_name);
    if (s0 && s1)
      c.slabinfo = model::SlabinfoDelta{s0->active_objs, s1->active_objs,
                                        std::int64_t(s1->active_objs) - std::int64_t(s0->active_objs)};
    rep.caches.push_back(c);
  }
  // Caches that grew or shrank with nothing traced: the check needs them too.
  for (const auto& s1 : slabinfo_end) {
    const auto* s0 = procfs::find_cache(slabinfo_start_, s1.name);
    if (!s0) continue;
    std::int64_t delta = std::int64_t(s1.active_objs) - std::int64_t(s0->active_objs);
    bool listed = std::any_of(rep.caches.begin(), rep.caches.end(),
                              [&](const auto& c) { return c.slabinfo_name == s1.name; });
    if (listed || std::llabs(delta) < 1000 || !cache_selected(s1.name)) continue;
    model::CacheReport c;
    c.name = c.slabinfo_name = s1.name;
    c.object_size = s1.object_size;
    c.slabinfo = model::SlabinfoDelta{s0->active_objs, s1.active_objs, delta};
    rep.caches.push_back(c);
  }
  std::sort(rep.caches.begin(), rep.caches.end(),
            [](const auto& a, const auto& b) { return a.outstanding_bytes > b.outstanding_bytes; });

  // Cgroups.
  std::map<std::uint64_t, model::CgroupReport> cgs;
  for (const auto& b : snap.buckets) {
    auto it = per_bucket.find(b.index);
    if (it == per_bucket.end() || it->second.count == 0) continue;
    auto& g = cgs[b.cgroup_id];
    g.id = b.cgroup_id;
    g.outstanding += it->second.count * scale_;
    g.outstanding_bytes += it->second.bytes * scale_;
    g.by_cache[b.cache] += it->second.count * scale_;
  }
  for (auto& [id, g] : cgs) {
    g.outstanding_error = model::error95(g.outstanding / scale_, scale_);
    g.path = cgroup_path(id);
    g.container = cgroups::parse_container(g.path);
    g.workload = pod_names_.lookup(g.container);
    rep.cgroups.push_back(std::move(g));
  }
  std::sort(rep.cgroups.begin(), rep.cgroups.end(),
            [](const auto& a, const auto& b) { return a.outstanding_bytes > b.outstanding_bytes; });

  // Stacks: symbolize only the top ones. With stack sampling, objects without
  // a stack are left out and the sampled ones stand for 2^shift each.
  const bool stacks_sampled = stack_scale() > 1;
  const std::uint64_t stack_scale_ = scale_ * stack_scale();
  auto unkey = [](std::uint64_t key) {
    return std::make_pair(std::uint32_t(key >> 32), std::int32_t(std::uint32_t(key)));
  };
  std::vector<std::pair<std::pair<std::uint32_t, std::int32_t>, Agg>> stacks;
  for (const auto& [key, agg] : per_stack) {
    auto bucket_stack = unkey(key);
    if (bucket_stack.second >= 0 || !stacks_sampled) stacks.emplace_back(bucket_stack, agg);
  }
  std::sort(stacks.begin(), stacks.end(), [](const auto& a, const auto& b) { return a.second.bytes > b.second.bytes; });
  std::unordered_map<std::int32_t, std::vector<std::uint64_t>> raw_stacks;
  auto raw_stack = [&](std::int32_t id) -> const std::vector<std::uint64_t>& {
    auto it = raw_stacks.find(id);
    if (it == raw_stacks.end()) it = raw_stacks.emplace(id, tracer_->stack(id)).first;
    return it->second;
  };
  for (std::size_t i = 0; i < stacks.size() && rep.stacks.size() < options_.top; ++i) {
    const auto& [key, agg] = stacks[i];
    const model::Bucket* b = bucket_of.at(key.first);
    model::StackReport s;
    s.cache = b->cache;
    s.cgroup_id = b->cgroup_id;
    s.cgroup_path = cgroup_path(b->cgroup_id);
    s.stack_id = key.second;
    s.outstanding = agg.count * stack_scale_;
    s.outstanding_bytes = agg.bytes * stack_scale_;
    s.outstanding_error = model::error95(agg.count, stack_scale_);
    s.oldest_age_s = double(agg.oldest_ms) / 1000.0;
    const auto& addrs = raw_stack(key.second);
    s.frames = trim_tracing_frames(symbolize(addrs, false));
    auto with = symbolize(addrs, true);
    std::size_t trimmed = addrs.size() - s.frames.size();
    s.frames_with_offsets.assign(with.begin() + std::ptrdiff_t(trimmed), with.end());
    rep.stacks.push_back(std::move(s));
  }

  // sk_buffs: heads and data buffers, who allocated them, who holds them.
  for (const auto& [idx, a] : heads_by_bucket) {
    rep.skb.outstanding_heads += a.count * scale_;
    rep.skb.outstanding_bytes += a.bytes * scale_;
  }
  for (const auto& [idx, a] : data_by_bucket) {
    rep.skb.outstanding_data += a.count * scale_;
    rep.skb.outstanding_bytes += a.bytes * scale_;
  }
  std::map<std::pair<std::uint64_t, std::string>, std::uint64_t> allocators;
  for (const auto& [packed_key, agg] : head_stacks) {
    auto key = unkey(packed_key);
    if (key.second < 0 && stacks_sampled) continue;
    const model::Bucket* b = bucket_of.at(key.first);
    auto frames = trim_tracing_frames(symbolize(raw_stack(key.second), false));
    allocators[{b->cgroup_id, frames.empty() ? std::string() : skb_origin(frames)}] += agg.count * stack_scale_;
  }
  // Per data cache: how many data buffers still have their head (1:1 is the leak signature).
  std::map<std::string, model::SkbDataCache> data_caches;
  for (const auto& [idx, a] : data_by_bucket) {
    auto& d = data_caches[bucket_of.at(idx)->cache];
    d.cache = bucket_of.at(idx)->cache;
    d.data_buffers += a.count * scale_;
  }
  // Each data buffer's head, found in the table: still live (1:1 leak
  // signature), and which socket holds it (the holder's bytes).
  std::unordered_map<std::uint64_t, std::uint64_t> queued_data_bytes;  // socket -> bytes
  for (const auto& d : data_links) {
    auto head = tracer_->find_live(d.head);
    if (!head || !(head->flags & ST_OBJ_SKB_HEAD)) continue;
    data_caches[bucket_of.at(d.bucket)->cache].with_live_head += scale_;
    if (head->link) queued_data_bytes[head->link] += d.size;
  }
  for (auto& [name, d] : data_caches) rep.skb.data_caches.push_back(d);
  for (const auto& [key, n] : allocators)
    rep.skb.allocators.push_back({key.first, cgroup_path(key.first), key.second, n});
  std::sort(rep.skb.allocators.begin(), rep.skb.allocators.end(),
            [](const auto& a, const auto& b) { return a.heads > b.heads; });

  std::unordered_map<std::uint64_t, model::SkbHolder> holders;
  for (const auto& q : queued_heads) {
    auto& h = holders[q.sk];
    h.sk = q.sk;
    h.queued_skbs += scale_;
    h.queued_bytes += q.size * scale_;
  }
  for (const auto& [sk, bytes] : queued_data_bytes) {
    auto h = holders.find(sk);
    if (h != holders.end()) h->second.queued_bytes += bytes * scale_;
  }
  if (!holders.empty()) {
    auto inventory = sockets::SocketInventory::scan({});
    for (auto& [sk, h] : holders) {
      if (auto info = tracer_->socket(sk)) {
        h.socket_inode = info->inode;
        h.netns = info->netns;
        h.family = socket_family_name(info->family);
        h.protocol = socket_protocol_name(info->family, info->type, info->protocol);
        h.socket_cgroup_id = info->cgroup;
      }
      if (const auto* s = inventory.find(h.socket_inode)) {
        if (!s->owners.empty()) {
          const auto& owner = s->owners.front();
          h.pid = std::uint32_t(owner.pid);
          h.comm = owner.comm;
          h.cgroup_path = owner.cgroup.empty() ? "/" : owner.cgroup;
          h.workload = workload_of(h.cgroup_path);
          if (cgroups_)
            if (auto id = cgroups::cgroup_id_of(cgroups_->mount_point() + (owner.cgroup == "/" ? "" : owner.cgroup)))
              h.cgroup_id = *id;
        }
        h.kernel_queued_bytes = s->queued_bytes();
        h.kernel_queued_skbs = s->queued_skbs();
      }
      // The socket's own accounting says its queue is empty: what we saw
      // queued has been read and waits only to be freed.
      if (h.kernel_queued_bytes && *h.kernel_queued_bytes == 0) {
        rep.notes.push_back(fmt::format("{} skbs seen on {} socket inode {} were read already (awaiting free)",
                                        group_thousands(h.queued_skbs), h.protocol, h.socket_inode));
        continue;
      }
      rep.skb.holders.push_back(h);
    }
    for (const auto& w : inventory.warnings()) spdlog::debug("socket inventory: {}", w);
  }
  std::sort(rep.skb.holders.begin(), rep.skb.holders.end(),
            [](const auto& a, const auto& b) { return a.queued_skbs > b.queued_skbs; });
  auto reason_names = btf::enum_names("skb_drop_reason", "SKB_DROP_REASON_");
  for (const auto& [reason, n] : tracer_->drops()) {
    auto it = reason_names.find(reason);
    rep.skb.drops.emplace_back(it != reason_names.end() ? it->second : fmt::format("reason {}", reason), n);
  }
  std::sort(rep.skb.drops.begin(), rep.skb.drops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  auto by_socket = tracer_->drops_by_socket();
  std::sort(by_socket.begin(), by_socket.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (by_socket.size() > 10) by_socket.resize(10);
  std::optional<sockets::OwnerMap> owners;
  for (const auto& [key, n] : by_socket) {
    model::SkbDrop d;
    auto it = reason_names.find(key.reason);
    d.reason = it != reason_names.end() ? it->second : fmt::format("reason {}", key.reason);
    d.count = n;
    d.socket_inode = key.inode;
    d.cgroup_id = key.cgroup;
    if (key.cgroup) d.cgroup_path = cgroup_path(key.cgroup);
    if (key.inode) {
      if (!owners) owners = sockets::scan_socket_owners();
      auto o = owners->find(key.inode);
      if (o != owners->end() && !o->second.empty()) {
        d.pid = std::uint32_t(o->second.front().pid);
        d.comm = o->second.front().comm;
      }
    }
    rep.skb.drops_by_socket.push_back(std::move(d));
  }

  // Health and our own cost.
  st_stats st = tracer_->stats();
  for (int i = 0; i < ST_STAT_COUNT; ++i) spdlog::debug("bpf stat {}: {}", i, st.v[i]);
  rep.lost.map_full = st.v[ST_STAT_MAP_FULL];
  rep.lost.stack_errors = st.v[ST_STAT_STACK_ERRORS];
  rep.lost.missed_frees = st.v[ST_STAT_MISSED_FREES];
  rep.lost.buckets_full = st.v[ST_STAT_BUCKETS_FULL];
  rep.lost.busy = st.v[ST_STAT_BUSY];
  rep.lost.socks_full = st.v[ST_STAT_SOCKS_FULL];
  for (const auto& c : tracer_->program_costs()) {
    if (!c.run_count) continue;
    rep.costs.push_back({c.name, c.run_count, double(c.run_time_ns) / double(c.run_count)});
  }
  if (rep.lost.map_full)
    rep.notes.push_back(fmt::format("{} objects were not tracked: the live-object map ({} entries) was full; raise --max-objects or use --sample",
                                    group_thousands(rep.lost.map_full), group_thousands(rep.live_capacity)));
  if (scale_ > 1) {
    const model::CacheReport* largest = nullptr;
    for (const auto& c : rep.caches)
      if (!largest || c.outstanding > largest->outstanding) largest = &c;
    if (largest && largest->outstanding)
      rep.notes.push_back(fmt::format("sampled 1 in {} addresses: counts are estimates, e.g. {} {} ± {} (95 %)", scale_,
                                      largest->name, group_thousands(largest->outstanding),
                                      group_thousands(largest->outstanding_error)));
    else
      rep.notes.push_back(fmt::format("sampled 1 in {} addresses: counts are estimates", scale_));
  }
  if (stacks_sampled)
    rep.notes.push_back(fmt::format("stacks sampled from 1 in {} tracked objects: per-stack counts are estimates",
                                    stack_scale()));
  rep.stack_sample_rate = options_.tracer.stack_shift == ST_STACK_NONE ? 0 : stack_scale();
  return rep;
}

}  // namespace slabtrace
