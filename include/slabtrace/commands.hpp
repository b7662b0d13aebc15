#pragma once
// What each subcommand does, given its options. The CLI only parses arguments
// into these structs; everything else lives here and below.
#include <cstdint>
#include <string>
#include <vector>

#include "slabtrace/session.hpp"
#include "slabtrace/watch.hpp"

namespace slabtrace::commands {

struct CommonOptions {
  bpf::AttachMode attach_mode = bpf::AttachMode::Auto;
  bpf::IrqContext irq_context = bpf::IrqContext::Auto;
  bpf::QueueTies queue_ties = bpf::QueueTies::Auto;
  std::uint32_t skb_slots = 1;
  std::uint32_t sample = 1;
  std::uint32_t max_objects = 1u << 20;
  std::uint32_t max_buckets = ST_MAX_BUCKETS;
  std::string btf_path;
  std::vector<std::string> caches;
  std::string cgroup;
  double min_age_s = 0;
  bool no_stacks = false;
  // A stack for 1 in N tracked objects, drawn at random: a stack walk costs
  // ~2.6 us, ten times the rest of an allocation's tracking; 1 in 64 still
  // gives a 50,000-object leak ~780 stacks, with per-stack counts scaled.
  std::uint32_t stack_sample = 64;
  // Stack captures per second per CPU at that rate; past it, 16 times fewer
  // (weighted in the report). Under UDP churn 1 in 64 was ~1,800 captures
  // per second per CPU, a fifth of the default mode's cost. 0: no limit.
  std::uint32_t stack_budget = 500;
  bool measure_cost = true;        // kernel run-time stats, on 10% of the time
  std::string pods_dir = "/var/log/pods";
  std::string containers_dir = "/var/log/containers";
  bool verbose = false;
};
// Throws UserError for values the tracer cannot take (--sample not a power of two).
SessionOptions session_options(const CommonOptions& common, std::size_t top = 10);

struct RecordOptions {
  CommonOptions common;
  double duration_s = 10;
  std::string format = "text";
  std::string output;
  std::size_t top = 10;
  std::string svg;
};
int record(const RecordOptions& options);
int stacks(const RecordOptions& options);

struct StreamOptions {
  CommonOptions common;
  double interval_s = 1;
  double duration_s = 0;  // 0: until interrupted
  std::string format = "ndjson";
};
int stream(const StreamOptions& options);

struct TopOptions {
  CommonOptions common;
  double interval_s = 2;
  double duration_s = 0;
  std::string sort = "growth";  // outstanding, growth or allocs
  std::size_t rows = 0;         // per table; 0: fit the terminal (8 when piped)
};
int top(const TopOptions& options);

struct CheckOptions {
  CommonOptions common;
  double duration_s = 10;
  std::string format = "text";
  std::int64_t min_delta = 1000;
};
int check(const CheckOptions& options);

struct ServeOptions {
  CommonOptions common;
  std::string listen = "127.0.0.1:9464";  // HOST:PORT; localhost unless told otherwise
  double interval_s = 5;
  std::size_t top_cgroups = 20;
  // Watch before tracing: the tracer is attached only while a cache or a
  // cgroup grows by threshold_bytes within window_s (--trace always: all the time).
  watch::WatchOptions watch;
};
// Prometheus exporter: /metrics and /healthz until SIGINT/SIGTERM.
int serve(const ServeOptions& options);

struct DoctorOptions {
  std::string format = "text";
  std::string root;
  double swap_window_s = 1;
};
int doctor(const DoctorOptions& options);

// Ctrl-C and SIGTERM end the wait early; the report is still written.
void install_stop_handlers();
bool stop_requested();
// Sleeps up to `seconds` (0: forever) in short steps; false if a stop came first.
bool wait_for(double seconds);

}  // namespace slabtrace::commands
