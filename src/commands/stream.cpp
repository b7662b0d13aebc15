// stream: read the per-bucket counters every interval and write rates as NDJSON,
// with a line of the sockets that hold queues (the census) when any does.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "slabtrace/commands.hpp"
#include "slabtrace/error.hpp"
#include "slabtrace/output.hpp"
#include "slabtrace/report_file.hpp"

namespace slabtrace::commands {

int stream(const StreamOptions& o) {
  Session session(session_options(o.common));
  install_stop_handlers();
  spdlog::info("tracing ({}); a line per active cgroup every {}s", bpf::to_string(session.tracer().attach_mode()), o.interval_s);
  model::RateTracker rates_since(session.scale());
  double waited = 0;
  while (wait_for(o.interval_s)) {
    waited += o.interval_s;
    model::Rates rates = rates_since.next(session.snapshot_recycling());
    std::string ts = output::utc_timestamp();
    std::string lines;
    for (const auto& g : rates.cgroups) {
      if (!g.active) continue;
      output::StreamContext ctx;
      ctx.timestamp = ts;
      ctx.interval_s = rates.interval_s;
      ctx.path = session.cgroup_path(g.cgroup_id);
      ctx.container = cgroups::parse_container(ctx.path);
      ctx.workload = session.workload_of(ctx.path);
      lines += output::stream_line(g, ctx).dump() + "\n";
    }
    // Who holds queued sk_buffs now, traced or not: one line per interval
    // while any socket holds a queue worth listing.
    if (auto line = output::sockets_line(session.take_census(), ts, rates.interval_s)) lines += line->dump() + "\n";
    // Each interval's lines go out at once (`stream | jq` works live). A
    // reader that went away ends the stream; any other failure is an error.
    if (int err = output::write_all(STDOUT_FILENO, lines)) {
      if (err == EPIPE) return 0;
      throw OutputError(fmt::format("cannot write stdout: {}; stopping the stream", std::strerror(err)));
    }
    if (o.duration_s > 0 && waited + 1e-9 >= o.duration_s) break;
  }
  return 0;
}

}  // namespace slabtrace::commands
