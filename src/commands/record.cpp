// record, stacks and check: trace for a while, then report once.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "slabtrace/commands.hpp"
#include "slabtrace/crosscheck.hpp"
#include "slabtrace/error.hpp"
#include "slabtrace/flamegraph.hpp"
#include "slabtrace/human.hpp"
#include "slabtrace/output.hpp"
#include "slabtrace/report_file.hpp"
#include "slabtrace/verdict.hpp"

namespace slabtrace::commands {

namespace {

model::Report trace_and_report(const CommonOptions& common, double duration_s, std::size_t top) {
  Session session(session_options(common, top));
  install_stop_handlers();
  spdlog::info("tracing for {:.0f}s ({}); Ctrl-C stops early", duration_s, bpf::to_string(session.tracer().attach_mode()));
  // Counters every twentieth of the run (¼ s to 5 s): a leak is what keeps
  // rising across them, so the report needs the intervals, not just the end.
  const double step = std::clamp(duration_s / 20.0, 0.25, 5.0);
  for (double waited = 0; waited + 1e-9 < duration_s;) {
    double next = std::min(step, duration_s - waited);
    if (!wait_for(next)) {
      spdlog::info("interrupted: reporting what was seen so far");
      break;
    }
    waited += next;
    if (waited + 1e-9 < duration_s) session.mark_interval();
  }
  model::Report report = session.report();
  model::add_verdicts(report);
  return report;
}

std::vector<output::FlameStack> flame_stacks(const model::Report& r) {
  std::vector<output::FlameStack> out;
  for (const auto& s : r.stacks) {
    output::FlameStack f;
    f.frames.push_back("cgroup " + s.cgroup_path);
    f.frames.insert(f.frames.end(), s.frames.rbegin(), s.frames.rend());
    f.cache = s.cache;
    f.bytes = s.outstanding_bytes;
    f.count = s.outstanding;
    out.push_back(std::move(f));
  }
  return out;
}

void write_svg(const model::Report& r, std::ostream& out) {
  output::FlameOptions opts;
  opts.title = fmt::format("slabtrace: outstanding slab memory by kernel stack ({:.0f}s, Linux {})", r.duration_s, r.kernel);
  output::write_flamegraph_svg(flame_stacks(r), out, opts);
}

}  // namespace

// --output and --svg are opened before tracing, so a bad path fails at once.
int record(const RecordOptions& o) {
  output::ReportSink dest(o.output);
  std::optional<output::ReportSink> svg;
  if (!o.svg.empty()) svg.emplace(o.svg);
  model::Report report = trace_and_report(o.common, o.duration_s, o.top);
  if (o.format == "json")
    dest.stream() << output::report_json(report).dump(2) << "\n";
  else
    output::write_report_text(report, dest.stream());
  dest.commit();
  if (svg) {
    write_svg(report, svg->stream());
    svg->commit();
  }
  return 0;
}

int stacks(const RecordOptions& o) {
  output::ReportSink dest(o.output);
  model::Report report = trace_and_report(o.common, o.duration_s, o.top);
  if (o.format == "json")
    dest.stream() << output::stacks_json(report).dump(2) << "\n";
  else if (o.format == "folded")
    output::write_stacks_folded(report, dest.stream());
  else if (o.format == "svg")
    write_svg(report, dest.stream());
  else
    output::write_stacks_text(report, dest.stream());
  dest.commit();
  return 0;
}

int check(const CheckOptions& o) {
  model::Report report = trace_and_report(o.common, o.duration_s, 0);
  auto rows = model::cross_check(report, o.min_delta);
  output::ReportSink sink("-");
  std::ostream& out = sink.stream();
  if (o.format == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : rows)
      arr.push_back({{"cache", r.cache}, {"traced_as", r.traced_as}, {"slabinfo_delta", r.slabinfo_delta},
                     {"outstanding", r.outstanding}, {"allocs", r.allocs}, {"ratio", r.ratio},
                     {"verdict", model::to_string(r.agreement)}, {"reason", r.reason}});
    out << nlohmann::json{{"schema", "slabtrace.check/v1"}, {"duration_s", report.duration_s},
                          {"sample_rate", report.sample_rate}, {"caches", arr}}
               .dump(2)
        << "\n";
    sink.commit();
    return 0;
  }
  out << fmt::format("slabtrace check: {:.1f}s, caches whose /proc/slabinfo active count changed by >= {}\n\n",
                     report.duration_s, group_thousands(std::uint64_t(o.min_delta)));
  out << fmt::format("  {:<26} {:>14} {:>14} {:>7}  {}\n", "cache", "slabinfo delta", "outstanding", "ratio", "verdict");
  for (const auto& r : rows) {
    out << fmt::format("  {:<26} {:>+14} {:>14} {:>6.0f}%  {}\n", r.cache, r.slabinfo_delta,
                       group_thousands(r.outstanding), r.ratio * 100, model::to_string(r.agreement));
    if (!r.reason.empty()) out << "      likely: " << r.reason << "\n";
  }
  if (rows.empty()) out << "  (no cache changed that much)\n";
  sink.commit();
  return 0;
}

}  // namespace slabtrace::commands
