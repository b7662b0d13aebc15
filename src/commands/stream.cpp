// stream: read the per-bucket counters every interval and write rates as NDJSON.
#include <spdlog/spdlog.h>

#include <iostream>

#include "slabtrace/commands.hpp"
#include "slabtrace/output.hpp"

namespace slabtrace::commands {

int stream(const StreamOptions& o) {
  Session session(session_options(o.common));
  install_stop_handlers();
  spdlog::info("tracing ({}); a line per active cgroup every {}s", bpf::to_string(session.tracer().attach_mode()), o.interval_s);
  model::RateTracker rates_since(session.scale());
  double waited = 0;
  while (wait_for(o.interval_s)) {
    waited += o.interval_s;
    model::Rates rates = rates_since.next(session.snapshot());
    std::string ts = output::utc_timestamp();
    for (const auto& g : rates.cgroups) {
      if (!g.active) continue;
      output::StreamContext ctx;
      ctx.timestamp = ts;
      ctx.interval_s = rates.interval_s;
      ctx.path = session.cgroup_path(g.cgroup_id);
      ctx.container = cgroups::parse_container(ctx.path);
      ctx.workload = session.workload_of(ctx.path);
      std::cout << output::stream_line(g, ctx).dump() << "\n";
    }
    std::cout.flush();
    if (!std::cout) return 0;  // the reader went away
    if (o.duration_s > 0 && waited + 1e-9 >= o.duration_s) break;
  }
  return 0;
}

}  // namespace slabtrace::commands
