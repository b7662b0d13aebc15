// Findings: what grew by the kernel's own count, what leaks (rises through the
// run's intervals with objects that age while the kernel's count rises with
// it), what is only turnover, who drops, and how far to trust the numbers.
// Pure: built from the Report alone.
#include "slabtrace/verdict.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "slabtrace/human.hpp"

namespace slabtrace::model {

namespace {

bool near_one_to_one(std::uint64_t a, std::uint64_t b) {
  if (a == 0 || b == 0) return false;
  double ratio = double(a) / double(b);
  return ratio >= 0.9 && ratio <= 1.0 / 0.9;
}

std::string who(const SkbHolder& h, const Report& r) {
  return census::describe(label_of(h), r.skb.census ? r.skb.census->home_netns : 0);
}

std::string seconds(double s) { return s < 10 ? fmt::format("{:.1f} s", s) : fmt::format("{:.0f} s", s); }
std::string rate(double per_s) { return group_thousands(std::uint64_t(std::llround(std::max(0.0, per_s)))) + "/s"; }

// The kernel's count at the time closest to t.
std::uint64_t kernel_at(const Trend& t, double when) {
  std::uint64_t best = t.kernel.front().second;
  double dist = 1e300;
  for (const auto& [at, n] : t.kernel)
    if (std::abs(at - when) < dist) {
      dist = std::abs(at - when);
      best = n;
    }
  return best;
}

std::uint64_t outstanding_at(const Trend& t, double when) {
  std::uint64_t best = 0;
  for (const auto& [at, n] : t.outstanding)
    if (at <= when + 1e-9) best = n;
  return best;
}

// The first frame of a stack that is not the allocator itself: what the
// kernel was doing when it allocated ("path_openat", "udp_sendmsg").
std::string caller_of(const std::vector<std::string>& frames) {
  for (const auto& f : frames) {
    bool allocator = f.find("alloc") != std::string::npos || f.rfind("kmem_cache", 0) == 0 ||
                     f.rfind("kmalloc", 0) == 0 || f.rfind("__kmalloc", 0) == 0 || f.rfind("slab_", 0) == 0;
    if (!allocator) return f;
  }
  return {};
}

const CacheReport* cache_by_slabinfo(const Report& r, const std::string& slabinfo_name) {
  for (const auto& c : r.caches)
    if (c.slabinfo_name == slabinfo_name && c.slabinfo) return &c;
  return nullptr;
}

std::uint64_t outstanding_of_slabinfo(const Report& r, const std::string& slabinfo_name) {
  std::uint64_t n = 0;
  for (const auto& c : r.caches)
    if (c.slabinfo_name == slabinfo_name) n += c.outstanding;
  return n;
}

std::string stack_caller(const Report& r, const Trend& t) {
  for (const auto& s : r.stacks)
    if (s.cache == t.cache && s.cgroup_id == t.cgroup_id)
      if (auto c = caller_of(s.frames); !c.empty()) return c;
  return {};
}

// A run this long tells a leak from objects that live long: three times what
// the objects have lived so far, at least 10 s.
double run_needed(double duration_s, double oldest_s) { return std::max(10.0, 3.0 * std::max(duration_s, oldest_s)); }

Finding make(FindingKind kind, std::string cache, std::string cgroup, std::uint64_t cgroup_id) {
  Finding f;
  f.kind = kind;
  f.cache = std::move(cache);
  f.cgroup = std::move(cgroup);
  f.cgroup_id = cgroup_id;
  return f;
}

// A finding on one (cache, cgroup) trend, with the figures its reading gives.
Finding trend_finding(FindingKind kind, const Trend& t, const TrendReading& reading) {
  Finding f = make(kind, t.slabinfo_name, t.cgroup_path, t.cgroup_id);
  f.objects = reading.objects;
  f.bytes = reading.bytes;
  f.per_s = reading.per_s;
  f.held_s = reading.held_s;
  return f;
}

// The sk_buff finding: a leak when the heads rise and age with the kernel's
// count (evidence "trend"), or a socket's queue holds them for most of the
// run or since before it (evidence "queue"); never on a count alone.
std::optional<Finding> skb_finding(const Report& r, std::set<std::string>& explained) {
  const auto& skb = r.skb;
  const Trend* rising = nullptr;
  TrendReading rising_reading;
  for (const auto& t : r.trends) {
    if (!t.skb_heads) continue;
    auto reading = read_trend(t);
    if (reading.shape == TrendShape::rising_and_aging && reading.kernel_rose_with_it &&
        (!rising || reading.bytes > rising_reading.bytes)) {
      rising = &t;
      rising_reading = reading;
    }
  }
  const SkbHolder* holder = skb.holders.empty() ? nullptr : &skb.holders.front();
  // The kernel's own accounting of the queue where there is one, else what we saw queued.
  auto queue_bytes = [](const SkbHolder& h) { return h.kernel_queued_bytes.value_or(h.queued_bytes); };
  const double held_long = std::max(1.0, 0.5 * r.duration_s);
  const SkbHolder* holding = nullptr;
  for (const auto& h : skb.holders) {
    if (h.kernel_queued_bytes && *h.kernel_queued_bytes < kBytesThatMatter) continue;
    bool before_start = h.queued_before_start_bytes.value_or(0) >= kBytesThatMatter;
    bool aged = h.oldest_queued_age_s >= held_long && queue_bytes(h) >= kBytesThatMatter;
    if ((before_start || aged) && (!holding || queue_bytes(h) > queue_bytes(*holding))) holding = &h;
  }
  if (holding) holder = holding;
  std::uint64_t objects = skb.outstanding_heads;
  std::uint64_t bytes = skb.outstanding_bytes;
  if (holder && holder->kernel_queued_bytes && *holder->kernel_queued_bytes > bytes) {
    bytes = *holder->kernel_queued_bytes;
    objects = std::max(objects, holder->kernel_queued_skbs.value_or(holder->queued_skbs));
  }
  // A queue that is large but young: a slow reader, or a leak that began
  // just now. Said when it has sat for a second, or the run is too short to
  // have seen more; in-flight traffic on a busy socket is neither.
  const bool young_queue = holder && !holding && queue_bytes(*holder) >= kBytesThatMatter &&
                           (holder->oldest_queued_age_s >= 1.0 || r.duration_s < 2.0);
  if (!rising && !holding && !young_queue) return std::nullopt;

  std::string allocated;
  std::uint64_t allocator_cgroup = 0;
  std::string allocator_path;
  if (!skb.allocators.empty()) {
    const auto& a = skb.allocators.front();
    std::uint64_t pct = skb.outstanding_heads ? a.heads * 100 / skb.outstanding_heads : 0;
    allocator_cgroup = a.cgroup_id;
    allocator_path = a.cgroup_path;
    allocated = fmt::format(" allocated by cgroup {}", a.cgroup_path);
    if (!a.via.empty()) allocated += " via " + a.via;
    if (pct < 95) allocated += fmt::format(" ({}%)", pct);
  } else if (rising) {
    allocator_cgroup = rising->cgroup_id;
    allocator_path = rising->cgroup_path;
    allocated = fmt::format(" allocated by cgroup {}", rising->cgroup_path) + (rising->via.empty() ? "" : " via " + rising->via);
  }
  std::string cgroup = holder && !holder->cgroup_path.empty() ? holder->cgroup_path : allocator_path;
  std::uint64_t cgroup_id = holder && !holder->cgroup_path.empty() ? holder->cgroup_id : allocator_cgroup;
  Finding f = make(young_queue && !rising ? FindingKind::too_short : FindingKind::skb_leak, "skbuff_head_cache", cgroup,
                   cgroup_id);
  f.objects = objects;
  f.bytes = bytes;
  std::string signature;
  for (const auto& d : skb.data_caches)
    if (near_one_to_one(d.with_live_head, skb.outstanding_heads))
      signature = fmt::format(" — heads 1:1 with {} data buffers, the sk_buff leak signature", d.cache);

  if (f.kind == FindingKind::too_short) {
    f.needs_s = run_needed(r.duration_s, holder->oldest_queued_age_s);
    f.confidence = "low";
    f.text = fmt::format("too short to call an sk_buff leak: {} ({}) queued unread on {}, the oldest for {}; a run of "
                         "≥ {:.0f} s tells a leak from a slow reader",
                         group_thousands(holder->kernel_queued_skbs.value_or(holder->queued_skbs)),
                         human_bytes(queue_bytes(*holder)), who(*holder, r), seconds(holder->oldest_queued_age_s), f.needs_s);
    return f;
  }
  f.confidence = rising && holding ? "high" : "medium";
  f.text = fmt::format("sk_buff leak: {} skbs ({} with data){}", group_thousands(objects), human_bytes(bytes), allocated);
  if (holder) {
    f.text += fmt::format("; held unread by {} ({} queued", who(*holder, r), group_thousands(holder->queued_skbs));
    if (holder->queued_before_start_bytes.value_or(0) >= kBytesThatMatter)
      f.text += fmt::format(", besides {} queued before slabtrace started", human_bytes(*holder->queued_before_start_bytes));
    else if (holder->oldest_queued_age_s > 0)
      f.text += fmt::format(", the oldest for {}", seconds(holder->oldest_queued_age_s));
    f.text += ")";
    if (holder->owners.size() > 1) {
      f.text += "; open in pids";
      for (std::size_t i = 0; i < holder->owners.size() && i < 4; ++i)
        f.text += fmt::format("{} {} ({})", i ? "," : "", holder->owners[i].pid, holder->owners[i].comm);
      if (holder->owners.size() > 4) f.text += fmt::format(" and {} more", holder->owners.size() - 4);
    }
  } else {
    f.text += "; no socket queue holds them (not queued on a socket while we watched)";
  }
  if (rising) {
    f.per_s = rising_reading.per_s;
    f.held_s = rising_reading.held_s;
    f.text += fmt::format("; growing {} for {}", rate(f.per_s), seconds(f.held_s));
  } else {
    f.text += "; not growing while we watched";
  }
  f.text += signature;
  // What this finding explains is not said again as growth of its caches.
  for (const auto& t : r.trends)
    if (t.skb_heads || t.skb_data) explained.insert(t.slabinfo_name);
  for (const auto& d : skb.data_caches)
    if (d.with_live_head * 2 >= d.data_buffers)
      for (const auto& c : r.caches)
        if (c.name == d.cache) explained.insert(c.slabinfo_name);
  return f;
}

void order(std::vector<Finding>& findings) {
  std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) {
    if (a.kind != b.kind) return int(a.kind) < int(b.kind);
    return a.bytes > b.bytes;
  });
}

}  // namespace

const char* to_string(FindingKind kind) {
  switch (kind) {
    case FindingKind::skb_leak: return "skb_leak";
    case FindingKind::leak: return "leak";
    case FindingKind::too_short: return "too_short";
    case FindingKind::drop_storm: return "drop_storm";
    case FindingKind::growth: return "growth";
    case FindingKind::reclaimable_growth: return "reclaimable_growth";
    case FindingKind::turnover: return "turnover";
    case FindingKind::trust: return "trust";
    case FindingKind::self_cost: return "self_cost";
  }
  return "?";
}

TrendReading read_trend(const Trend& t) {
  TrendReading out;
  if (t.outstanding.empty()) return out;
  const auto& [end_s, last] = t.outstanding.back();
  out.objects = last;
  out.bytes = last * t.object_size;
  if (t.kernel.size() >= 2) out.kernel_delta = std::int64_t(t.kernel.back().second) - std::int64_t(t.kernel.front().second);
  if (out.bytes < kBytesThatMatter) {
    out.shape = TrendShape::small;
    return out;
  }
  // The rise: from the last point at zero to the end; count the intervals in it that rose.
  std::size_t start = 0;
  for (std::size_t i = 1; i < t.outstanding.size(); ++i)
    if (t.outstanding[i].second == 0) start = i;
  std::size_t steps = t.outstanding.size() - 1 - start, rose = 0, last_rise = start;
  for (std::size_t i = start + 1; i < t.outstanding.size(); ++i)
    if (t.outstanding[i].second > t.outstanding[i - 1].second) {
      ++rose;
      last_rise = i;
    }
  const double rise_start = t.outstanding[start].first;
  out.held_s = t.outstanding[last_rise].first - rise_start;
  out.rose_until_s = t.outstanding[last_rise].first;
  if (out.held_s > 0) out.per_s = double(t.outstanding[last_rise].second) / out.held_s;

  if (t.kernel.size() >= 2) {
    std::uint64_t mid_ours = outstanding_at(t, t.mid_s);
    double ours_after_mid = double(last) - double(mid_ours);
    double kernel_after_mid = double(t.kernel.back().second) - double(kernel_at(t, t.mid_s));
    out.kernel_rose_with_it = double(out.kernel_delta) >= 0.5 * double(last) &&
                              kernel_after_mid >= 0.25 * ours_after_mid - 0.05 * double(last);
  }
  if (t.outstanding.size() < 5 || t.retained < 0 || steps == 0) {
    out.shape = TrendShape::unknown;
    return out;
  }
  const bool sustained = rose >= 3 && double(rose) >= 0.6 * double(steps);
  if (t.retained < 0.5)
    out.shape = TrendShape::turnover;
  else if (t.retained < 0.8)
    out.shape = TrendShape::partly_aged;
  else
    out.shape = sustained ? TrendShape::rising_and_aging : TrendShape::held;
  return out;
}

std::vector<Finding> find_findings(const Report& r) {
  std::vector<Finding> out;
  std::set<std::string> explained;  // slabinfo caches a leak finding accounts for
  if (auto skb = skb_finding(r, explained)) out.push_back(*skb);

  // Caches that grow one for one with a reclaimable cache are its companions
  // (an inode's LSM blob grows with ext4_inode_cache): freed with it.
  std::map<std::string, std::string> companion_of;
  {
    std::map<std::string, std::int64_t> reclaimable_growth;
    for (const auto& c : r.caches)
      if (c.reclaimable && c.slabinfo && c.slabinfo->delta >= 1000) reclaimable_growth[c.slabinfo_name] = c.slabinfo->delta;
    for (const auto& c : r.caches) {
      if (c.reclaimable || !c.slabinfo || c.slabinfo->delta < 1000) continue;
      for (const auto& [name, delta] : reclaimable_growth)
        if (near_one_to_one(std::uint64_t(c.slabinfo->delta), std::uint64_t(delta))) companion_of[c.slabinfo_name] = name;
    }
  }

  // Leaks and undecided rises, per (cache, cgroup).
  std::map<std::string, const Trend*> top_trend;  // by slabinfo name: the largest bucket
  for (const auto& t : r.trends) {
    if (!top_trend.count(t.slabinfo_name)) top_trend[t.slabinfo_name] = &t;
    if (t.skb_heads || t.reclaimable || companion_of.count(t.slabinfo_name) || explained.count(t.slabinfo_name)) continue;
    TrendReading reading = read_trend(t);
    if (!reading.kernel_rose_with_it) continue;
    if (reading.shape == TrendShape::rising_and_aging) {
      Finding f = trend_finding(FindingKind::leak, t, reading);
      f.confidence = t.retained >= 0.95 && reading.held_s >= 5 ? "high" : "medium";
      std::string via = stack_caller(r, t);
      f.text = fmt::format("leak: {} in cgroup {}: {} objects ({}) outstanding, rising {} for {}, {:.0f}% of them alive "
                           "since mid-run; /proc/slabinfo {:+}{}",
                           t.slabinfo_name, t.cgroup_path, group_thousands(f.objects), human_bytes(f.bytes),
                           rate(f.per_s), seconds(f.held_s), t.retained * 100, reading.kernel_delta,
                           via.empty() ? "" : "; allocated via " + via);
      for (const auto& g : r.cgroups)
        if (g.id == t.cgroup_id && g.memory_slab_unreclaimable_delta)
          f.text += fmt::format("; memory.stat slab_unreclaimable {:+} bytes", *g.memory_slab_unreclaimable_delta);
      out.push_back(f);
      explained.insert(t.slabinfo_name);
    } else if (reading.shape == TrendShape::partly_aged || reading.shape == TrendShape::unknown) {
      Finding f = trend_finding(FindingKind::too_short, t, reading);
      f.needs_s = run_needed(r.duration_s, t.oldest_age_s);
      f.confidence = "low";
      const auto& o = t.outstanding;
      const bool last_only = o.size() >= 2 && o[o.size() - 2].second == 0;
      std::string why = reading.shape != TrendShape::unknown
                            ? fmt::format("{:.0f}% of what was outstanding mid-run is still alive", t.retained * 100)
                        : last_only ? fmt::format("all of it came in the run's last {}", seconds(o.back().first - o[o.size() - 2].first))
                                    : "too few intervals to see whether it keeps rising";
      f.text = fmt::format("too short to call: {} in cgroup {} rose to {} objects ({}) with /proc/slabinfo {:+}, but {}; "
                           "a run of ≥ {:.0f} s tells a leak from objects that live long",
                           t.slabinfo_name, t.cgroup_path, group_thousands(f.objects), human_bytes(f.bytes),
                           reading.kernel_delta, why, f.needs_s);
      out.push_back(f);
      explained.insert(t.slabinfo_name);
    }
  }

  // Drops are not leaks: said as such.
  if (!r.skb.drops_by_socket.empty()) {
    const auto& d = r.skb.drops_by_socket.front();
    if (d.count >= 1000 && d.socket_inode) {
      Finding f = make(FindingKind::drop_storm, "", d.cgroup_path, d.cgroup_id);
      f.objects = d.count;
      f.per_s = r.duration_s > 0 ? double(d.count) / r.duration_s : 0;
      f.confidence = "high";
      f.text = fmt::format("drop storm (dropped, not leaked): {} skbs dropped ({}) at socket inode {}",
                           group_thousands(d.count), d.reason, d.socket_inode);
      if (d.pid) f.text += fmt::format(" of pid {} ({})", *d.pid, d.comm);
      if (!d.cgroup_path.empty()) f.text += " in cgroup " + d.cgroup_path;
      out.push_back(f);
    }
  }

  // Growth, by the kernel's own count only; turnover where it did not grow.
  std::set<std::string> seen;
  std::vector<Finding> turnover;
  for (const auto& c : r.caches) {
    if (!c.slabinfo || !seen.insert(c.slabinfo_name).second || explained.count(c.slabinfo_name)) continue;
    const std::int64_t delta = c.slabinfo->delta;
    const std::uint64_t grew_bytes = delta > 0 ? std::uint64_t(delta) * c.object_size : 0;
    const std::uint64_t ours = outstanding_of_slabinfo(r, c.slabinfo_name);
    const Trend* t = top_trend.count(c.slabinfo_name) ? top_trend[c.slabinfo_name] : nullptr;
    const std::string span = fmt::format("{} → {}", group_thousands(c.slabinfo->active_start),
                                         group_thousands(c.slabinfo->active_end));
    const auto companion = companion_of.find(c.slabinfo_name);
    const bool freed_under_pressure = c.reclaimable || companion != companion_of.end();
    if (grew_bytes >= kBytesThatMatter) {
      Finding f = make(freed_under_pressure ? FindingKind::reclaimable_growth : FindingKind::growth, c.slabinfo_name,
                       t ? t->cgroup_path : "", t ? t->cgroup_id : 0);
      f.objects = std::uint64_t(delta);
      f.bytes = grew_bytes;
      f.per_s = r.duration_s > 0 ? double(delta) / r.duration_s : 0;
      f.confidence = "high";
      f.text = fmt::format("{} grew by {} objects ({}) by /proc/slabinfo ({})", c.slabinfo_name,
                           group_thousands(f.objects), human_bytes(f.bytes), span);
      if (c.reclaimable) {
        f.text += " — reclaimable: the kernel frees it under memory pressure; not a leak";
      } else if (companion != companion_of.end()) {
        f.text += fmt::format(" — one for one with {}, which is reclaimable: freed with it; not a leak", companion->second);
      } else if (t && ours) {
        TrendReading reading = read_trend(*t);
        f.text += fmt::format("; cgroup {} has {} of its objects outstanding", t->cgroup_path,
                              group_thousands(t->outstanding.back().second));
        if (reading.shape == TrendShape::held)
          f.text += fmt::format(", allocated by {} into the run and still live, not rising since", seconds(reading.rose_until_s));
        else if (reading.shape == TrendShape::turnover)
          f.text += fmt::format(", {:.0f}% of those outstanding mid-run freed since (turnover)", (1 - t->retained) * 100);
      } else if (!ours) {
        f.text += "; slabtrace saw none of it allocated (an untraced path, or before tracing began)";
      }
      out.push_back(f);
    } else if (!freed_under_pressure && ours * c.object_size >= kBytesThatMatter &&
               double(std::max<std::int64_t>(delta, 0)) < 0.5 * double(ours)) {
      Finding f = make(FindingKind::turnover, c.slabinfo_name, t ? t->cgroup_path : "", t ? t->cgroup_id : 0);
      f.objects = ours;
      f.bytes = ours * c.object_size;
      f.confidence = delta <= 0 ? "high" : "medium";
      f.text = fmt::format("turnover, not growth: {} has {} objects ({}) allocated during the run still live{}, but "
                           "/proc/slabinfo went {} ({:+}){}",
                           c.slabinfo_name, group_thousands(ours), human_bytes(f.bytes),
                           t ? fmt::format(" (oldest {})", seconds(t->oldest_age_s)) : "", span, delta,
                           delta > 0 ? ", less than a MiB" : "");
      turnover.push_back(f);
    }
  }
  order(turnover);
  if (turnover.size() > 3) turnover.resize(3);
  out.insert(out.end(), turnover.begin(), turnover.end());

  // How far to trust it: the kernel's count beside ours for what was called
  // a leak, and what the tracer could not keep.
  for (const auto& f : out) {
    if (f.kind != FindingKind::leak && f.kind != FindingKind::skb_leak) continue;
    const CacheReport* c = cache_by_slabinfo(r, f.cache);
    if (!c || c->slabinfo->delta <= 0) continue;
    std::uint64_t ours = outstanding_of_slabinfo(r, f.cache);
    double ratio = double(ours) / double(c->slabinfo->delta);
    bool agrees = std::abs(ratio - 1.0) <= 0.1;
    Finding t = make(FindingKind::trust, f.cache, "", 0);
    t.objects = ours;
    t.bytes = ours * c->object_size;
    t.confidence = agrees ? "high" : "medium";
    t.text = fmt::format("/proc/slabinfo {}: {} active {:+} vs {} outstanding ({:.0f}%)",
                         agrees ? "agrees" : ratio < 1 ? "slabtrace counts fewer" : "slabtrace counts more", f.cache,
                         c->slabinfo->delta, group_thousands(ours), ratio * 100.0);
    out.push_back(t);
    break;
  }
  if (r.lost.map_full || r.lost.buckets_full || r.lost.socks_full) {
    Finding t = make(FindingKind::trust, "", "", 0);
    t.objects = r.lost.map_full;
    t.confidence = "low";
    t.text = fmt::format("counts are low: {} objects not tracked (live table full), {} (cache, cgroup) pairs and {} "
                         "sockets without room",
                         group_thousands(r.lost.map_full), group_thousands(r.lost.buckets_full),
                         group_thousands(r.lost.socks_full));
    out.push_back(t);
  }

  std::uint64_t events = 0;
  double ns = 0;
  for (const auto& c : r.costs) {
    events += c.events;
    ns += c.ns_per_event * double(c.events);
  }
  if (events) {
    Finding f = make(FindingKind::self_cost, "", "", 0);
    f.objects = events;
    f.per_s = ns / double(events);
    f.confidence = "high";
    f.text = fmt::format("slabtrace's own cost: {:.0f} ns per traced event (kernel bpf_stats over {} sampled events)",
                         ns / double(events), group_thousands(events));
    out.push_back(f);
  }
  order(out);
  return out;
}

void add_verdicts(Report& r) {
  r.findings = find_findings(r);
  r.verdicts.clear();
  bool leak = false;
  for (const auto& f : r.findings) leak = leak || f.kind == FindingKind::leak || f.kind == FindingKind::skb_leak;
  for (const auto& f : r.findings) r.verdicts.push_back(f.text);
  if (!leak) {
    // Findings come by kind: too_short and drop_storm (more specific than
    // "no leak") are the first ones when there is no leak.
    auto specific_first = std::count_if(r.findings.begin(), r.findings.end(), [](const Finding& f) {
      return f.kind == FindingKind::too_short || f.kind == FindingKind::drop_storm;
    });
    r.verdicts.insert(r.verdicts.begin() + specific_first,
                      fmt::format("no leak: nothing rose steadily with objects that stay alive over the {}",
                                  r.duration_s > 0 ? seconds(r.duration_s) + " run" : "run"));
  }
}

}  // namespace slabtrace::model
