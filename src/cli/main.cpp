// The command line: arguments become options structs; the library does the rest.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <iostream>

#include "slabtrace/commands.hpp"
#include "slabtrace/error.hpp"

using namespace slabtrace;

namespace {

// CLI11's PositiveNumber says "not in range 0 to 1.797e308"; a person wants the rule.
std::string number_rule(const std::string& text, bool zero_allowed) {
  const char* rule = zero_allowed ? "must be >= 0" : "must be > 0";
  double value = 0;
  std::size_t used = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return fmt::format("{} (a number of seconds or a count), not '{}'", rule, text);
  }
  if (used != text.size() || !std::isfinite(value)) return fmt::format("{}, not '{}'", rule, text);
  if (value < 0 || (!zero_allowed && value == 0)) return fmt::format("{}, not {}", rule, text);
  return {};
}
const CLI::Validator kPositive([](std::string& s) { return number_rule(s, false); }, "> 0", "Positive");
const CLI::Validator kNonNegative([](std::string& s) { return number_rule(s, true); }, ">= 0", "NonNegative");

void add_tracer_options(CLI::App* cmd, commands::CommonOptions& o) {
  // Parsed into enums here: the library never sees the strings.
  cmd->add_option_function<std::string>(
         "--attach-mode", [&o](const std::string& text) { o.attach_mode = bpf::parse_attach_mode(text); },
         "tp_btf, raw_tp, tracepoint or auto (probe at start-up)")
      ->check(CLI::IsMember({"auto", "tp_btf", "raw_tp", "tracepoint"}));
  cmd->add_option_function<std::string>(
         "--irq-context", [&o](const std::string& text) { o.irq_context = bpf::parse_irq_context(text); },
         "how allocations in interrupt context are recognised: preempt_count (one read per allocation, "
         "no extra programs; x86 6.15+), programs (softirq/irq entry and exit) or auto (default: "
         "preempt_count where the kernel allows it, else programs)")
      ->check(CLI::IsMember({"auto", "preempt_count", "programs"}));
  cmd->add_option_function<std::string>(
         "--queue-ties", [&o](const std::string& text) { o.queue_ties = bpf::parse_queue_ties(text); },
         "how queued sk_buffs are tied to the socket holding them: walk (socket iterators walk the "
         "queues at each report or refresh; 5.17+), events (per packet at sock:sk_data_ready; 6.3+) "
         "or auto (default: walk where it loads, else events)")
      ->check(CLI::IsMember({"auto", "walk", "events"}));
  cmd->add_option("--skb-slots", o.skb_slots,
                  "live-table slots per sk_buff from __alloc_skb: 1 (default where the kmem_cache_free event "
                  "carries the cache, 6.1+; one insert and one release per packet) or 2 (head and data apart)")
      ->check(CLI::Range(1u, 2u));
  cmd->add_option("--sample", o.sample, "track 1 in N object addresses (power of two; estimates are scaled)")
      ->check(kPositive);
  cmd->add_option("--max-objects", o.max_objects, "objects the live-object table has room for")->check(CLI::Range(1024u, 1u << 26));
  cmd->add_option("--max-buckets", o.max_buckets,
                  "(cache, cgroup) pairs counted at once; serve, stream and top give back those of cgroups that are gone")
      ->check(CLI::Range(64u, std::uint32_t(ST_MAX_BUCKETS)));
  cmd->add_option("--btf", o.btf_path, "BTF file for kernels without /sys/kernel/btf/vmlinux");
  cmd->add_option("--cache", o.caches, "only this cache (repeatable; kmalloc-1k, skbuff_head_cache, ...)");
  cmd->add_option("--cgroup", o.cgroup, "only this cgroup subtree (path relative to the cgroup2 mount)");
  cmd->add_option("--min-age", o.min_age_s, "only objects at least this many seconds old")->check(kNonNegative);
  cmd->add_flag("--no-stacks", o.no_stacks, "do not capture kernel stacks (cheaper)");
  cmd->add_option("--stack-sample", o.stack_sample,
                   "capture the stack of 1 in N tracked objects (power of two; per-stack counts scaled)")
      ->check(kPositive);
  cmd->add_option("--stack-budget", o.stack_budget,
                  "stack captures per second per CPU at the --stack-sample rate; past it 16 times fewer, "
                  "weighted in the report (0: no limit)")
      ->check(kNonNegative);
  cmd->add_option("--pods-dir", o.pods_dir, "kubelet's pod log directory (pod names)");
  cmd->add_option("--containers-dir", o.containers_dir, "kubelet's container log directory (container names)");
  cmd->add_flag("!--no-cost", o.measure_cost, "do not measure slabtrace's own cost (kernel bpf_stats)");
}

// A command that traces for --duration seconds, then reports once, as text or JSON.
CLI::App* add_report_command(CLI::App& app, const char* name, const char* what, commands::CommonOptions& common,
                             double& duration_s, const char* duration_help, std::string& format) {
  auto* cmd = app.add_subcommand(name, what);
  add_tracer_options(cmd, common);
  cmd->add_option("-d,--duration", duration_s, duration_help)->check(kPositive);
  cmd->add_option("-f,--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  return cmd;
}

// A command that reports every --interval until stopped (or for --duration seconds).
CLI::App* add_interval_command(CLI::App& app, const char* name, const char* what, commands::CommonOptions& common,
                               double& interval_s, const char* interval_help, double& duration_s, const char* stopped_by) {
  auto* cmd = app.add_subcommand(name, what);
  add_tracer_options(cmd, common);
  cmd->add_option("-i,--interval", interval_s, interval_help)->check(kPositive);
  cmd->add_option("-d,--duration", duration_s, fmt::format("stop after this many seconds (default: until {})", stopped_by))
      ->check(kNonNegative);
  return cmd;
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("slabtrace");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("slabtrace: %^%l%$: %v");
  spdlog::set_level(spdlog::level::info);

  CLI::App app{"slabtrace: who is eating the kernel's slab memory — by cache, cgroup, kernel stack and socket"};
  app.require_subcommand(1);
  app.set_version_flag("--version", SLABTRACE_VERSION);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "debug logging, including libbpf's");

  commands::RecordOptions record;
  auto* rec = add_report_command(app, "record", "trace for a while, then report outstanding objects by cache, cgroup and stack",
                                 record.common, record.duration_s, "seconds to trace (Ctrl-C stops early)", record.format);
  rec->add_option("-o,--output", record.output, "write the report to FILE");
  rec->add_option("--top", record.top, "stacks to show");
  rec->add_option("--svg", record.svg, "also write a flame graph of outstanding bytes to FILE");

  commands::RecordOptions stacks;
  stacks.format = "text";
  auto* stk = app.add_subcommand("stacks", "the top leaking kernel stacks by outstanding bytes");
  add_tracer_options(stk, stacks.common);
  stk->add_option("-d,--duration", stacks.duration_s, "seconds to trace")->check(kPositive);
  stk->add_option("--top", stacks.top, "stacks to show");
  stk->add_option("-f,--format", stacks.format, "text, json, folded or svg")
      ->check(CLI::IsMember({"text", "json", "folded", "svg"}));
  stk->add_option("-o,--output", stacks.output, "write to FILE");

  commands::StreamOptions stream;
  auto* str = add_interval_command(
      app, "stream", "per-cgroup leak rates every interval, one NDJSON line per cgroup (and one of the sockets holding queues)",
      stream.common, stream.interval_s, "seconds between lines", stream.duration_s, "Ctrl-C");
  str->add_option("-f,--format", stream.format, "ndjson")->check(CLI::IsMember({"ndjson"}));

  commands::TopOptions top;
  auto* tp = add_interval_command(app, "top", "live view of node kernel memory, caches and cgroups by growth (keys: q o g a c space)",
                                  top.common, top.interval_s, "seconds between refreshes", top.duration_s, "q or Ctrl-C");
  tp->add_option("--sort", top.sort, "outstanding, growth or allocs")
      ->check(CLI::IsMember({"outstanding", "growth", "allocs"}));
  tp->add_option("-n,--rows", top.rows, "rows per table at most (default: as many as fit the terminal; 8 when piped)");

  commands::CheckOptions check;
  auto* chk = add_report_command(app, "check", "compare slabtrace's outstanding counts with /proc/slabinfo, per cache",
                                 check.common, check.duration_s, "seconds to trace", check.format);
  chk->add_option("--min-delta", check.min_delta, "caches whose slabinfo count changed by at least this much");

  commands::ServeOptions serve;
  auto* srv = app.add_subcommand("serve", "Prometheus exporter: /metrics (per cache, cgroup and pod) and /healthz");
  // Always on, on every node: sampled by default (outstanding counts are
  // estimates, 95 % bound stated; allocation counters stay exact). On the
  // bench's UDP churn 1 in 16 keeps 0.81 of the throughput, every object 0.71
  // (README, Cost).
  serve.common.sample = 16;
  add_tracer_options(srv, serve.common);
  srv->add_option("--listen", serve.listen, "HOST:PORT to serve on (default localhost only; 0.0.0.0:9464 in a pod)");
  srv->add_option("-i,--interval", serve.interval_s, "seconds between readings of the BPF maps")->check(kPositive);
  srv->add_option("--top-cgroups", serve.top_cgroups, "cgroups with series of their own; the rest are summed as cgroup=\"other\"");
  std::string serve_trace = "on-growth";
  double serve_threshold_mib = 32;
  srv->add_option("--trace", serve_trace,
                  "on-growth: read only the kernel's counters and trace while a cache or cgroup grows (default); "
                  "always: trace all the time")
      ->check(CLI::IsMember({"on-growth", "always"}));
  srv->add_option("--watch-threshold", serve_threshold_mib,
                  "MiB a cache (/proc/slabinfo) or a cgroup (memory.stat slab_unreclaimable + sock) must grow by "
                  "within the window to start tracing; tracing stops below half of it")
      ->check(kPositive);
  srv->add_option("--watch-window", serve.watch.window_s, "seconds growth is measured over")->check(kPositive);

  commands::DoctorOptions doctor;
  auto* doc = app.add_subcommand("doctor", "node memory health in one go (no root needed, no tracing): PSI, meminfo, slabs, swap, load");
  doc->add_option("-f,--format", doctor.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  doc->add_option("--root", doctor.root, "read /proc and /sys under this directory (for saved snapshots)");
  doc->add_option("--swap-window", doctor.swap_window_s, "seconds to watch swap activity")->check(kNonNegative);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line: what is wrong and with which option.
    std::cerr << "slabtrace: " << e.what() << " (see --help)\n";
    return e.get_exit_code();
  }
  if (verbose) spdlog::set_level(spdlog::level::debug);
  for (auto* o : {&record.common, &stacks.common, &stream.common, &top.common, &check.common, &serve.common})
    o->verbose = verbose;

  try {
    if (rec->parsed()) return commands::record(record);
    if (stk->parsed()) return commands::stacks(stacks);
    if (str->parsed()) return commands::stream(stream);
    if (tp->parsed()) return commands::top(top);
    if (chk->parsed()) return commands::check(check);
    if (doc->parsed()) return commands::doctor(doctor);
    if (srv->parsed()) {
      serve.watch.always_trace = serve_trace == "always";
      serve.watch.threshold_bytes = std::uint64_t(serve_threshold_mib * 1024 * 1024);
      return commands::serve(serve);
    }
  } catch (const UserError& e) {
    spdlog::error("{}", e.what());
    return 2;
  } catch (const ParseError& e) {
    spdlog::error("{}", e.what());
    return 3;
  } catch (const OutputError& e) {
    spdlog::error("{}", e.what());
    return 4;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
