// Per-cache agreement between slabtrace and /proc/slabinfo, with the likely
// reason when they differ (design.md, "Untraced paths").
#include "slabtrace/crosscheck.hpp"

#include <algorithm>
#include <cmath>
#include <map>

namespace slabtrace::model {

const char* to_string(Agreement a) {
  switch (a) {
    case Agreement::Agrees: return "agrees";
    case Agreement::UnderCounts: return "slabtrace under-counts";
    case Agreement::OverCounts: return "slabtrace over-counts";
    case Agreement::NotTraced: return "not traced";
  }
  return "?";
}

std::vector<CheckRow> cross_check(const Report& report, std::int64_t min_delta) {
  // Merged caches: several slabtrace names can land in one slabinfo line.
  std::map<std::string, CheckRow> rows;
  for (const auto& c : report.caches) {
    if (!c.slabinfo) continue;
    auto& row = rows[c.slabinfo_name];
    row.cache = c.slabinfo_name;
    row.traced_as.push_back(c.name);
    row.slabinfo_delta = c.slabinfo->delta;
    row.outstanding += c.outstanding;
    row.allocs += c.allocs;
  }
  std::vector<CheckRow> out;
  for (auto& [name, row] : rows) {
    if (std::llabs(row.slabinfo_delta) < min_delta) continue;
    double delta = double(row.slabinfo_delta);
    row.ratio = delta != 0 ? double(row.outstanding) / delta : 0;
    double diff = double(row.outstanding) - delta;
    double tolerance = std::max(500.0, std::abs(delta) * 0.10);
    bool merged = row.traced_as.size() > 1 || row.traced_as.front() != row.cache;
    if (std::abs(diff) <= tolerance) {
      row.agreement = Agreement::Agrees;
    } else if (row.allocs == 0) {
      row.agreement = Agreement::NotTraced;
      row.reason = "no traced allocations: objects came from an untraced path (kmem_cache_alloc_bulk, per-CPU/NAPI caches, kmalloc_nolock)";
    } else if (diff < 0) {
      row.agreement = Agreement::UnderCounts;
      bool kmalloc = row.cache.rfind("kmalloc-", 0) == 0;
      if (kmalloc && double(row.allocs) < 0.1 * delta)
        row.reason = "BPF map elements (slabtrace's own among them) and slab metadata (obj_exts) live here; slabtrace excludes those allocation sites so that it does not trace itself";
      else if (row.slabinfo_delta < 0)
        row.reason = "objects that existed before tracing started were freed (slabtrace only counts what it saw allocated)";
      else if (merged)
        row.reason = "merged cache: other caches allocate into it too";
      else
        row.reason = "allocations on untraced paths (bulk allocation, per-CPU caches), or objects older than the run";
    } else {
      row.agreement = Agreement::OverCounts;
      row.reason = "frees on untraced paths (kfree_rcu batches, kmem_cache_free_bulk, per-CPU sheaves) keep objects looking live";
    }
    out.push_back(row);
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return std::llabs(a.slabinfo_delta) > std::llabs(b.slabinfo_delta); });
  return out;
}

}  // namespace slabtrace::model
