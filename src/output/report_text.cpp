// The report for a person: verdicts first, then the tables that back them.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "slabtrace/human.hpp"
#include "slabtrace/output.hpp"

namespace slabtrace::output {

namespace {

std::string slabinfo_cell(const model::CacheReport& c) {
  if (!c.slabinfo) return "-";
  return fmt::format("{} -> {} ({:+})", group_thousands(c.slabinfo->active_start),
                     group_thousands(c.slabinfo->active_end), c.slabinfo->delta);
}

std::string truncate(const std::string& s, std::size_t width) {
  if (s.size() <= width) return s;
  return "…" + s.substr(s.size() - (width - 1));
}

void write_stack(const model::StackReport& s, std::ostream& out, std::size_t max_frames) {
  std::string error = s.outstanding_error ? " ± " + group_thousands(s.outstanding_error) : "";
  out << fmt::format("  {}{} objects, {}, {} — cgroup {}, oldest {:.1f}s\n", group_thousands(s.outstanding), error,
                     human_bytes(s.outstanding_bytes), s.cache, s.cgroup_path, s.oldest_age_s);
  if (s.frames.empty()) out << "      (no stack captured)\n";
  if (s.stack_of == "skb_head" && !s.frames.empty()) out << "      (sk_buff data: the call path of its head)\n";
  for (std::size_t i = 0; i < s.frames_with_offsets.size() && i < max_frames; ++i)
    out << "      " << s.frames_with_offsets[i] << "\n";
  if (s.frames_with_offsets.size() > max_frames)
    out << fmt::format("      … {} more frames\n", s.frames_with_offsets.size() - max_frames);
}

}  // namespace

std::string open_in_line(const std::vector<census::Owner>& owners, std::size_t indent) {
  if (owners.size() <= 1) return "";
  std::string line = std::string(indent, ' ') + "open in:";
  for (std::size_t i = 0; i < owners.size() && i < 8; ++i)
    line += fmt::format("{} pid {} ({}) in {}", i ? "," : "", owners[i].pid, owners[i].comm, owners[i].cgroup_path);
  if (owners.size() > 8) line += fmt::format(" and {} more", owners.size() - 8);
  return line + "\n";
}

void write_report_text(const model::Report& r, std::ostream& out) {
  out << fmt::format("slabtrace: {:.1f}s on Linux {} ({}, sample 1/{})\n\n", r.duration_s, r.kernel, r.attach_mode,
                     r.sample_rate);
  for (const auto& v : r.verdicts) out << "  * " << v << "\n";
  for (const auto& n : r.notes) out << "  ! " << n << "\n";
  out << "\n";

  out << "Caches (outstanding = allocated while tracing and still live)\n";
  out << fmt::format("  {:<26} {:>12} {:>10} {:>12} {:>12}  {}\n", "cache", "outstanding", "bytes", "allocs", "frees",
                     "/proc/slabinfo active");
  // Every cache seen is in the JSON; a person wants the ones that matter.
  std::size_t shown = 0;
  for (const auto& c : r.caches) {
    if (shown == 15 || (c.outstanding == 0 && !(c.slabinfo && std::llabs(c.slabinfo->delta) >= 1000))) continue;
    ++shown;
    std::string name = c.name == c.slabinfo_name ? c.name : c.name + " (" + c.slabinfo_name + ")";
    out << fmt::format("  {:<26} {:>12} {:>10} {:>12} {:>12}  {}\n", truncate(name, 26), group_thousands(c.outstanding),
                       human_bytes(c.outstanding_bytes), group_thousands(c.allocs), group_thousands(c.frees),
                       slabinfo_cell(c));
  }
  if (r.caches.empty()) out << "  (nothing outstanding)\n";

  out << "\nCgroups\n";
  for (const auto& g : r.cgroups) {
    out << fmt::format("  {:>12} {:>10}  {}", group_thousands(g.outstanding), human_bytes(g.outstanding_bytes), g.path);
    if (g.workload.known())
      out << "  [pod " << workload_label(g.workload) << "]";
    else if (g.container.container_id)
      out << fmt::format("  [{} {}]", g.container.runtime, g.container.container_id->substr(0, 12));
    out << "\n";
    std::vector<std::pair<std::string, std::uint64_t>> by(g.by_cache.begin(), g.by_cache.end());
    std::sort(by.begin(), by.end(), [](auto& a, auto& b) { return a.second > b.second; });
    for (std::size_t i = 0; i < by.size() && i < 4; ++i)
      out << fmt::format("  {:>12}             {}\n", group_thousands(by[i].second), by[i].first);
  }
  if (r.cgroups.empty()) out << "  (none)\n";

  if (r.skb.outstanding_heads || !r.skb.holders.empty() || !r.skb.drops.empty()) {
    out << "\nsk_buffs\n";
    out << fmt::format("  outstanding heads {}, data buffers {}, {} in all\n", group_thousands(r.skb.outstanding_heads),
                       group_thousands(r.skb.outstanding_data), human_bytes(r.skb.outstanding_bytes));
    if (r.skb.adopted_heads)
      out << fmt::format("  adopted:   {:>10} heads first seen on a receive path (NAPI skb cache), not allocated\n",
                         group_thousands(r.skb.adopted_heads));
    // The call path comes from the stacks: with stack sampling these are estimates.
    const char* about = r.stack_sample_rate > 1 ? "~" : "";
    for (const auto& a : r.skb.allocators)
      out << fmt::format("  allocated: {:>10} by {}{}\n", about + group_thousands(a.heads), a.cgroup_path,
                         a.via.empty() ? "" : " via " + a.via);
    for (const auto& d : r.skb.data_caches)
      out << fmt::format("  data:      {:>10} in {}, {} of them with their head still live\n",
                         group_thousands(d.data_buffers), d.cache, group_thousands(d.with_live_head));
    for (const auto& h : r.skb.holders) {
      const std::uint64_t home = r.skb.census ? r.skb.census->home_netns : 0;
      if (h.queued_skbs)
        out << fmt::format("  held:      {:>10} ({}) in {}", group_thousands(h.queued_skbs), human_bytes(h.queued_bytes),
                           census::describe(model::label_of(h), home));
      else  // a queue the tracer saw nothing added to
        out << fmt::format("  held:      {:>10} in {}", "(untraced)", census::describe(model::label_of(h), home));
      if (h.kernel_queued_bytes) {
        out << fmt::format("; kernel says {} queued", human_bytes(*h.kernel_queued_bytes));
        if (h.kernel_queued_skbs)
          out << fmt::format(" ({}{} skbs)", h.kernel_queued_skbs_estimated ? "~" : "", group_thousands(*h.kernel_queued_skbs));
      }
      if (h.queued_before_start_bytes.value_or(0) > 0)
        out << fmt::format(", {} of it queued before slabtrace started", human_bytes(*h.queued_before_start_bytes));
      out << "\n";
      out << open_in_line(h.owners, 13);
    }
    if (r.skb.census)
      out << fmt::format("  census:    {} sockets hold {} in their queues ({} sockets in {} network namespace{}, {:.2f}s)\n",
                         group_thousands(r.skb.census->sockets_queued), human_bytes(r.skb.census->queued_bytes),
                         group_thousands(r.skb.census->sockets_seen), r.skb.census->namespaces,
                         r.skb.census->namespaces == 1 ? "" : "s", r.skb.census->took_s);
    if (!r.skb.drops.empty()) {
      out << "  drops:";
      for (std::size_t i = 0; i < r.skb.drops.size() && i < 5; ++i)
        out << fmt::format(" {} {}", r.skb.drops[i].first, group_thousands(r.skb.drops[i].second));
      out << "\n";
    }
    for (std::size_t i = 0; i < r.skb.drops_by_socket.size() && i < 3; ++i) {
      const auto& d = r.skb.drops_by_socket[i];
      if (!d.socket_inode) continue;
      out << fmt::format("  dropped:   {:>10} {} at socket inode {}", group_thousands(d.count), d.reason, d.socket_inode);
      if (d.pid) out << fmt::format(" of pid {} ({})", *d.pid, d.comm);
      if (!d.cgroup_path.empty()) out << " in " << d.cgroup_path;
      out << "\n";
    }
  }

  out << "\nTop stacks by outstanding bytes\n";
  for (const auto& s : r.stacks) write_stack(s, out, 16);
  if (r.stacks.empty()) out << "  (none)\n";

  out << fmt::format("\nHealth: {} live objects tracked of {} capacity; lost: map full {}, stack errors {}, missed frees detected {}\n",
                     group_thousands(r.live_objects), group_thousands(r.live_capacity), group_thousands(r.lost.map_full),
                     group_thousands(r.lost.stack_errors), group_thousands(r.lost.missed_frees));
}

void write_stacks_text(const model::Report& r, std::ostream& out) {
  out << fmt::format("Top {} leaking stacks over {:.1f}s (sample 1/{})\n\n", r.stacks.size(), r.duration_s, r.sample_rate);
  for (const auto& s : r.stacks) {
    write_stack(s, out, 64);
    out << "\n";
  }
  if (r.stacks.empty()) out << "  (nothing outstanding)\n";
}

void write_stacks_folded(const model::Report& r, std::ostream& out) {
  for (const auto& s : r.stacks) {
    // Folded format is root first; semicolons inside names would split frames.
    std::string line = "cgroup " + s.cgroup_path + ";" + s.cache;
    for (auto it = s.frames.rbegin(); it != s.frames.rend(); ++it) {
      std::string f = *it;
      std::replace(f.begin(), f.end(), ';', ':');
      line += ";" + f;
    }
    out << line << " " << s.outstanding_bytes << "\n";
  }
}

}  // namespace slabtrace::output
