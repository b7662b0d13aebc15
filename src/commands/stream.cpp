// stream and top: read the per-bucket counters every interval and show rates.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "slabtrace/commands.hpp"
#include "slabtrace/human.hpp"
#include "slabtrace/output.hpp"

namespace slabtrace::commands {

int stream(const StreamOptions& o) {
  Session session(session_options(o.common));
  install_stop_handlers();
  spdlog::info("tracing ({}); a line per active cgroup every {}s", bpf::to_string(session.tracer().attach_mode()), o.interval_s);
  std::optional<model::Snapshot> previous;
  double waited = 0;
  while (wait_for(o.interval_s)) {
    waited += o.interval_s;
    model::Snapshot now = session.snapshot();
    model::Rates rates = model::compute_rates(previous ? &*previous : nullptr, now, session.scale());
    std::string ts = output::utc_timestamp();
    for (const auto& g : rates.cgroups) {
      if (!g.active) continue;
      output::StreamContext ctx;
      ctx.timestamp = ts;
      ctx.interval_s = rates.interval_s;
      ctx.path = session.cgroup_path(g.cgroup_id);
      ctx.container = cgroups::parse_container(ctx.path);
      std::cout << output::stream_line(g, ctx).dump() << "\n";
    }
    std::cout.flush();
    if (!std::cout) return 0;  // the reader went away
    previous = std::move(now);
    if (o.duration_s > 0 && waited + 1e-9 >= o.duration_s) break;
  }
  return 0;
}

namespace {

double sort_key(const model::GroupRate& g, const std::string& sort) {
  if (sort == "outstanding") return double(g.total.outstanding_bytes);
  if (sort == "allocs") return g.total.allocs_per_s;
  return g.total.growth_per_s;
}

void write_table(const std::string& title, std::vector<model::GroupRate> rows, const TopOptions& o,
                 const std::function<std::string(const model::GroupRate&)>& label, std::ostream& out) {
  std::sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) { return sort_key(a, o.sort) > sort_key(b, o.sort); });
  out << fmt::format("{:<38} {:>12} {:>10} {:>11} {:>11}\n", title, "outstanding", "bytes", "growth/s", "allocs/s");
  for (std::size_t i = 0; i < rows.size() && i < o.rows; ++i) {
    const auto& r = rows[i].total;
    std::string name = label(rows[i]);
    if (name.size() > 38) name = "…" + name.substr(name.size() - 37);
    out << fmt::format("{:<38} {:>12} {:>10} {:>+11.0f} {:>11.0f}\n", name, group_thousands(r.outstanding),
                       human_bytes(r.outstanding_bytes), r.growth_per_s, r.allocs_per_s);
  }
}

}  // namespace

int top(const TopOptions& o) {
  Session session(session_options(o.common));
  install_stop_handlers();
  bool tty = isatty(STDOUT_FILENO);
  std::optional<model::Snapshot> previous;
  double waited = 0;
  while (wait_for(o.interval_s)) {
    waited += o.interval_s;
    model::Snapshot now = session.snapshot();
    model::Rates rates = model::compute_rates(previous ? &*previous : nullptr, now, session.scale());
    if (tty) std::cout << "\x1b[H\x1b[2J";
    std::cout << fmt::format("slabtrace top — {:.0f}s, every {:.0f}s, sorted by {} (Ctrl-C quits)\n\n",
                             session.elapsed_s(), o.interval_s, o.sort);
    write_table("CACHE", rates.caches, o, [](const auto& g) { return g.key; }, std::cout);
    std::cout << "\n";
    write_table("CGROUP", rates.cgroups, o, [&](const auto& g) { return session.cgroup_path(g.cgroup_id); }, std::cout);
    if (!tty) std::cout << "\n";
    std::cout.flush();
    previous = std::move(now);
    if (o.duration_s > 0 && waited + 1e-9 >= o.duration_s) break;
  }
  return 0;
}

}  // namespace slabtrace::commands
