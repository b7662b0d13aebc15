// Cache names, counters and rates: the arithmetic of the model.
#include <cmath>
#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "slabtrace/model.hpp"

namespace slabtrace::model {

namespace {

std::string size_label(std::uint32_t size) {
  if (size >= 1024 && size % 1024 == 0) return fmt::format("{}k", size / 1024);
  return std::to_string(size);
}

}  // namespace

std::string kmalloc_name(std::uint32_t kind, std::uint32_t size) {
  switch (kind) {
    case ST_KEY_KMALLOC: return "kmalloc-" + size_label(size);
    case ST_KEY_KMALLOC_CG: return "kmalloc-cg-" + size_label(size);
    case ST_KEY_KMALLOC_RCL: return "kmalloc-rcl-" + size_label(size);
    case ST_KEY_KMALLOC_DMA: return "dma-kmalloc-" + size_label(size);
    case ST_KEY_KMALLOC_LARGE: return "kmalloc-large";
    case ST_KEY_UNNAMED: return "size-" + std::to_string(size);
    default: return fmt::format("cache-{:#x}", size);
  }
}

std::string cache_name(std::uint64_t cache_key, const char* bpf_name) {
  std::string name(bpf_name, strnlen(bpf_name, ST_CACHE_NAME_LEN));
  if (ST_KEY_IS_POINTER(cache_key) || (cache_key >> ST_KEY_NAMED_SHIFT) == ST_KEY_NAMED)
    return name.empty() ? fmt::format("cache@{:#x}", cache_key) : name;
  auto kind = std::uint32_t(cache_key >> ST_KEY_KIND_SHIFT);
  return kmalloc_name(kind, std::uint32_t(cache_key & ST_KEY_SIZE_MASK));
}

std::optional<std::uint64_t> kmalloc_key(const std::string& name) {
  struct Prefix {
    const char* text;
    std::uint32_t kind;
  };
  // Longest prefixes first: "kmalloc-cg-" must not be read as "kmalloc-" + "cg-..".
  static const Prefix prefixes[] = {{"kmalloc-cg-", ST_KEY_KMALLOC_CG},
                                    {"kmalloc-rcl-", ST_KEY_KMALLOC_RCL},
                                    {"dma-kmalloc-", ST_KEY_KMALLOC_DMA},
                                    {"kmalloc-", ST_KEY_KMALLOC}};
  for (const auto& p : prefixes) {
    std::string_view prefix(p.text);
    if (name.rfind(prefix, 0) != 0) continue;
    std::string rest = name.substr(prefix.size());
    if (rest.empty()) return std::nullopt;
    std::uint64_t mult = 1;
    if (rest.back() == 'k') {
      mult = 1024;
      rest.pop_back();
    }
    if (rest.empty() || !std::all_of(rest.begin(), rest.end(), ::isdigit) || rest.size() > 6) return std::nullopt;
    std::uint64_t size = std::stoull(rest) * mult;
    return (std::uint64_t(p.kind) << ST_KEY_KIND_SHIFT) | size;
  }
  return std::nullopt;
}

bool is_skb_head_cache(const std::string& name) {
  return name == "skbuff_head_cache" || name == "skbuff_fclone_cache";
}

std::uint64_t Counts::ended_total() const { return std::accumulate(ended.begin(), ended.end(), std::uint64_t{0}); }

std::uint64_t Counts::outstanding() const {
  auto done = ended_total();
  return tracked > done ? tracked - done : 0;
}

std::uint64_t Counts::outstanding_bytes() const {
  return tracked_bytes > ended_bytes ? tracked_bytes - ended_bytes : 0;
}

Counts& Counts::operator+=(const Counts& o) {
  allocs += o.allocs;
  alloc_bytes += o.alloc_bytes;
  tracked += o.tracked;
  tracked_bytes += o.tracked_bytes;
  for (std::size_t i = 0; i < ended.size(); ++i) ended[i] += o.ended[i];
  ended_bytes += o.ended_bytes;
  return *this;
}

Counts Counts::from(const st_counters& c, std::uint32_t object_size, std::uint64_t alloc_scale) {
  Counts out;
  out.allocs = c.allocs * alloc_scale;
  out.alloc_bytes = out.allocs * object_size;
  out.tracked = c.tracked;
  out.tracked_bytes = out.tracked * object_size;
  for (std::size_t i = 0; i < out.ended.size(); ++i) out.ended[i] = c.ended[i];
  out.ended_bytes = out.ended_total() * object_size;
  return out;
}

bool is_interrupt_cgroup(std::uint64_t id) { return id == ST_CGROUP_SOFTIRQ || id == ST_CGROUP_HARDIRQ; }

std::string cgroup_label(std::uint64_t id, const std::optional<std::string>& path) {
  if (id == ST_CGROUP_SOFTIRQ) return "[softirq]";
  if (id == ST_CGROUP_HARDIRQ) return "[hardirq]";
  if (path) return *path;
  return fmt::format("[cgroup {}]", id);
}

bool cgroup_matches(const std::string& path, const std::string& filter) {
  if (filter.empty() || filter == "/") return true;
  std::string f = filter;
  while (f.size() > 1 && f.back() == '/') f.pop_back();
  if (path.rfind(f, 0) != 0) return false;
  return path.size() == f.size() || path[f.size()] == '/';
}

namespace {

struct Totals {
  Counts counts;
  std::map<std::string, Counts> by_cache;
};

CacheRate rate_of(const Counts& now, const Counts* before, double interval_s, std::uint64_t scale) {
  CacheRate r;
  r.outstanding = now.outstanding() * scale;
  r.outstanding_bytes = now.outstanding_bytes() * scale;
  double prev_outstanding = before ? double(before->outstanding()) : 0.0;
  std::uint64_t prev_allocs = before ? before->allocs : 0;
  r.allocs = now.allocs - std::min(now.allocs, prev_allocs);
  if (interval_s > 0) {
    r.growth_per_s = (double(now.outstanding()) - prev_outstanding) * double(scale) / interval_s;
    r.allocs_per_s = double(r.allocs) / interval_s;
  }
  return r;
}

bool changed(const Counts& now, const Counts* before) {
  if (!before) return now.allocs > 0 || now.tracked > 0;
  return now.allocs != before->allocs || now.ended_total() != before->ended_total();
}

template <typename KeyFn>
std::map<std::string, Totals> group(const Snapshot& snap, KeyFn key_of) {
  std::map<std::string, Totals> out;
  for (const auto& b : snap.buckets) {
    auto& t = out[key_of(b)];
    t.counts += b.counts;
    t.by_cache[b.cache] += b.counts;
  }
  return out;
}

std::vector<GroupRate> rates_for(const std::map<std::string, Totals>& now, const std::map<std::string, Totals>* before,
                                 double interval_s, std::uint64_t scale) {
  std::vector<GroupRate> out;
  for (const auto& [key, t] : now) {
    const Totals* prev = nullptr;
    if (before) {
      auto it = before->find(key);
      if (it != before->end()) prev = &it->second;
    }
    GroupRate g;
    g.key = key;
    g.total = rate_of(t.counts, prev ? &prev->counts : nullptr, interval_s, scale);
    g.active = changed(t.counts, prev ? &prev->counts : nullptr);
    for (const auto& [cache, c] : t.by_cache) {
      const Counts* pc = nullptr;
      if (prev) {
        auto it = prev->by_cache.find(cache);
        if (it != prev->by_cache.end()) pc = &it->second;
      }
      g.by_cache[cache] = rate_of(c, pc, interval_s, scale);
    }
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

Rates compute_rates(const Snapshot* before, const Snapshot& after, std::uint64_t scale) {
  Rates r;
  r.interval_s = before ? after.elapsed_s - before->elapsed_s : after.elapsed_s;
  auto by_cgroup = [](const Bucket& b) { return std::to_string(b.cgroup_id); };
  auto by_cache = [](const Bucket& b) { return b.cache; };
  auto cg_now = group(after, by_cgroup);
  auto cache_now = group(after, by_cache);
  std::map<std::string, Totals> cg_before, cache_before;
  if (before) {
    // Only buckets still there: one retired in between (its cgroup gone, see
    // Session::snapshot_recycling) took its counts with it, and is no change.
    std::set<std::pair<std::uint32_t, std::uint64_t>> present;
    for (const auto& b : after.buckets) present.emplace(b.index, b.cgroup_id);
    Snapshot kept;
    kept.elapsed_s = before->elapsed_s;
    for (const auto& b : before->buckets)
      if (present.count({b.index, b.cgroup_id})) kept.buckets.push_back(b);
    cg_before = group(kept, by_cgroup);
    cache_before = group(kept, by_cache);
  }
  r.cgroups = rates_for(cg_now, before ? &cg_before : nullptr, r.interval_s, scale);
  for (auto& g : r.cgroups) g.cgroup_id = std::stoull(g.key);
  r.caches = rates_for(cache_now, before ? &cache_before : nullptr, r.interval_s, scale);
  return r;
}

std::uint64_t error95(std::uint64_t sampled, std::uint64_t rate) {
  if (rate <= 1 || sampled == 0) return 0;
  double variance = double(sampled) * double(rate) * double(rate - 1);
  return std::uint64_t(std::ceil(1.96 * std::sqrt(variance)));
}

}  // namespace slabtrace::model
