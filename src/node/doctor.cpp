// Reading the node and judging it. Writing the report is in src/output/doctor_report.cpp.
#include "slabtrace/doctor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <thread>
#include <unistd.h>

#include <fstream>

#include "slabtrace/procfs.hpp"

#include "slabtrace/human.hpp"

namespace slabtrace::doctor {
namespace {

// ---- thresholds -------------------------------------------------------------
// Each check grades one figure against a warning and a critical limit. The
// reasons for each pair are next to it; most come from the incident in
// shared/background/linux-memory-explained.txt, where a 4 GB Kubernetes node
// swapped itself to a halt with 2.1 GB of leaked sk_buffs in slab.
struct Limits {
  double warning;
  double critical;
};

// SUnreclaim as % of MemTotal. Healthy nodes hold 1-3% (the article's "normal"
// is 50-200 MB); 10% is several times that, and past 25% a quarter of RAM is
// held by the kernel and no reclaim will give it back.
constexpr Limits sunreclaim_pct{10, 25};

// PSI "full" avg10: share of the last 10 s in which every non-idle task was
// stalled on memory at once. Above 10% the node visibly loses time (the
// article's "severe"); at 40% close to half of it is gone and health probes and
// the kubelet start missing deadlines.
constexpr Limits psi_full_avg10{10, 40};
// PSI "some" avg10: at least one task waited on memory. Half of the time is the
// article's "memory pressure exists"; only a warning, as other tasks still run.
constexpr double psi_some_avg10_warning = 50;

// MemAvailable as % of MemTotal, lower is worse. Below 20% the page cache is
// being squeezed and the kubelet's eviction thresholds are close; below 10%
// (the article's alert) reclaim runs all the time and swapping or OOM kills follow.
constexpr Limits mem_available_pct_below{20, 10};

// Swap used as % of SwapTotal. A tenth means RAM ran out at some point (the few
// idle pages some nodes push out at boot stay below it); three quarters means
// swap runs out next, and then the OOM killer.
constexpr Limits swap_used_pct{10, 75};

// Pages swapped in + out per second during the window. 100/s (400 KiB/s) means
// the node swaps now; 1,000/s is a thousand random 4 KiB I/Os a second, enough
// to stall every task that faults on a swapped page: thrashing.
constexpr Limits swap_pages_per_s{100, 1000};

// 1-minute load per CPU. Linux counts tasks waiting on the disk (swap-ins) in
// the load, so it also rises when the CPUs are idle. Above 2 per CPU tasks queue
// for a long time; above 8 the node is stuck (the article's: 34 on 2 CPUs = 17).
constexpr Limits load_per_cpu{2, 8};

// The sk_buff leak signature: heads and data buffers within 10% of each other
// (one of each per packet; the article's 1,657,980 : 1,667,384 is 0.6% apart,
// a 50 k-datagram leak here 50,336 : 50,576), holding memory that matters: a
// tenth of SUnreclaim, or 128 MiB whatever SUnreclaim is, and never less than
// 16 MiB (a few thousand packets in flight on a busy socket).
constexpr double skb_signature_max_mismatch = 0.10;
constexpr double skb_signature_share_of_sunreclaim_pct = 10;
constexpr std::uint64_t skb_signature_min_bytes = 16ull << 20;
constexpr std::uint64_t skb_signature_large_bytes = 128ull << 20;
// Critical once the pair holds a tenth of RAM; below that the leak is real but
// not yet what hurts the node.
constexpr double skb_signature_critical_pct = 10;

// ---- next commands ----------------------------------------------------------
constexpr const char* record_all = "slabtrace record --duration 30";
constexpr const char* record_skb = "slabtrace record --duration 30 --cache skbuff_head_cache";

Severity grade_above(double value, Limits limits) {
  if (value > limits.critical) return Severity::critical;
  if (value > limits.warning) return Severity::warning;
  return Severity::healthy;
}

Severity grade_below(double value, Limits limits) {
  if (value < limits.critical) return Severity::critical;
  if (value < limits.warning) return Severity::warning;
  return Severity::healthy;
}

std::string limits_text(Limits limits, const char* unit) {
  return fmt::format("warning at {}{}, critical at {}{}", limits.warning, unit, limits.critical, unit);
}

// When memory is short, the next step is to find what took it: the kernel's slab
// (slabtrace) or the processes.
const char* where_memory_went(const MemoryBreakdown& memory) {
  return memory.sreclaimable + memory.sunreclaim > memory.anon ? record_all
                                                               : "ps -eo pid,rss,comm --sort=-rss | head -15";
}

std::optional<SkbPair> find_skb_pair(const procfs::Slabinfo& slabinfo, std::uint64_t sunreclaim) {
  const auto* heads = procfs::find_cache(slabinfo, "skbuff_head_cache");
  const auto* data = procfs::find_cache(slabinfo, "kmalloc-1k");
  // Memory-cgroup accounted sockets (unix, most container traffic) take their
  // data from kmalloc-cg-1k: follow whichever 1k cache holds more.
  if (const auto* cg = procfs::find_cache(slabinfo, "kmalloc-cg-1k");
      cg && (!data || cg->active_objs > data->active_objs))
    data = cg;
  if (!heads || !data) return std::nullopt;

  SkbPair pair;
  pair.heads = heads->active_objs;
  pair.data_cache = data->name;
  pair.data_buffers = data->active_objs;
  pair.bytes = heads->num_objs * heads->object_size + data->num_objs * data->object_size;
  const auto larger = std::max(pair.heads, pair.data_buffers);
  const auto smaller = std::min(pair.heads, pair.data_buffers);
  const bool matters = pair.bytes >= skb_signature_min_bytes &&
                       (pair.bytes >= skb_signature_large_bytes ||
                        (sunreclaim > 0 && percent(pair.bytes, sunreclaim) >= skb_signature_share_of_sunreclaim_pct));
  pair.leak_signature =
      matters && smaller > 0 &&
      static_cast<double>(larger - smaller) <= skb_signature_max_mismatch * static_cast<double>(larger);
  return pair;
}

std::vector<CacheUsage> largest_caches(const procfs::Slabinfo& slabinfo, std::size_t how_many) {
  std::vector<CacheUsage> caches;
  caches.reserve(slabinfo.size());
  for (const auto& entry : slabinfo)
    caches.push_back({entry.name, entry.active_objs, entry.object_size, entry.num_objs * entry.object_size});
  std::sort(caches.begin(), caches.end(), [](const CacheUsage& a, const CacheUsage& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.name < b.name;
  });
  if (caches.size() > how_many) caches.resize(how_many);
  return caches;
}

// ---- the checks, likeliest cause first --------------------------------------
// Each returns at most one red flag.

std::optional<RedFlag> check_skb_signature(const DoctorReport& report) {
  if (!report.skb || !report.skb->leak_signature) return std::nullopt;
  const auto& skb = *report.skb;
  const double share = percent(skb.bytes, report.memory.total);
  std::string figure = fmt::format("{} skbuff_head_cache + {} {} (1:{:.2f}) hold {} = {:.1f}% of MemTotal, {:.0f}% of "
                                   "SUnreclaim (critical at {:.0f}% of MemTotal)",
                                   group_thousands(skb.heads), group_thousands(skb.data_buffers), skb.data_cache,
                                   static_cast<double>(skb.data_buffers) / static_cast<double>(skb.heads),
                                   human_bytes(skb.bytes), share, percent(skb.bytes, report.memory.sunreclaim),
                                   skb_signature_critical_pct);
  // Who holds them, where the socket census could tell.
  if (report.sockets && !report.sockets->sockets.empty()) {
    const auto& census = *report.sockets;
    figure += "; held by ";
    for (std::size_t i = 0; i < census.sockets.size() && i < 3; ++i) {
      const auto& s = census.sockets[i];
      figure += fmt::format("{}{} ({})", i ? "; " : "", census::describe(census::label_of(s), census.home_netns),
                            human_bytes(s.queued_bytes()));
    }
  }
  return RedFlag{"skb_leak_signature", share >= skb_signature_critical_pct ? Severity::critical : Severity::warning,
                 "sk_buff leak signature: packets never freed", figure, record_skb};
}

// Sockets whose queues hold this share of SUnreclaim (and at least the floor)
// are named: on a healthy node socket queues hold a few MiB at most, so a
// quarter of the unreclaimable slab sitting in them is a stuck reader; past
// half, they are why the node is short of memory.
constexpr Limits socket_queue_share_of_sunreclaim{25, 50};
constexpr std::uint64_t socket_queue_floor_bytes = 32 << 20;
constexpr const char* record_sockets = "slabtrace record --duration 10 (names allocators and every holder)";

std::optional<RedFlag> check_socket_queues(const DoctorReport& report) {
  if (!report.sockets || report.sockets->sockets.empty() || report.memory.sunreclaim == 0) return std::nullopt;
  const auto& census = *report.sockets;
  const double share = percent(census.queued_bytes, report.memory.sunreclaim);
  if (census.queued_bytes < socket_queue_floor_bytes || share < socket_queue_share_of_sunreclaim.warning)
    return std::nullopt;
  std::string holders;
  for (std::size_t i = 0; i < census.sockets.size() && i < 3; ++i) {
    const auto& s = census.sockets[i];
    holders += fmt::format("{}{} holds {}", i ? "; " : "", census::describe(census::label_of(s), census.home_netns),
                           human_bytes(s.queued_bytes()));
    if (s.queued_skbs) holders += fmt::format(" ({}{} skbs)", s.queued_skbs_estimated ? "~" : "", group_thousands(*s.queued_skbs));
  }
  return RedFlag{"socket_queues",
                 share >= socket_queue_share_of_sunreclaim.critical ? Severity::critical : Severity::warning,
                 "socket queues hold unread sk_buffs",
                 fmt::format("{} queued in {} sockets = {:.0f}% of SUnreclaim ({}) (warn at {:.0f}%, critical at {:.0f}%): {}",
                             human_bytes(census.queued_bytes), group_thousands(report.sockets_queued),
                             share, human_bytes(report.memory.sunreclaim), socket_queue_share_of_sunreclaim.warning,
                             socket_queue_share_of_sunreclaim.critical, holders),
                 record_sockets};
}

std::optional<RedFlag> check_sunreclaim(const DoctorReport& report) {
  const auto& memory = report.memory;
  const double share = percent(memory.sunreclaim, memory.total);
  const auto severity = grade_above(share, sunreclaim_pct);
  if (severity == Severity::healthy) return std::nullopt;
  std::string largest;
  if (!report.top_caches.empty())
    largest = fmt::format("; largest cache {} {}", report.top_caches.front().name,
                          human_bytes(report.top_caches.front().bytes));
  return RedFlag{"sunreclaim", severity, "kernel slab memory that cannot be reclaimed",
                 fmt::format("SUnreclaim {} = {:.1f}% of MemTotal {} ({}){}", human_bytes(memory.sunreclaim), share,
                             human_bytes(memory.total), limits_text(sunreclaim_pct, "%"), largest),
                 record_all};
}

std::optional<RedFlag> check_memory_pressure(const DoctorReport& report) {
  if (!report.memory_pressure) return std::nullopt;
  const auto& psi = *report.memory_pressure;
  const auto next = where_memory_went(report.memory);
  if (const auto severity = grade_above(psi.full.avg10, psi_full_avg10); severity != Severity::healthy)
    return RedFlag{"memory_pressure_full", severity, "every task stalls on memory (PSI full)",
                   fmt::format("full avg10 {:.2f}%: all tasks stalled {:.1f} s of the last 10 s (avg60 {:.2f}%; {})",
                               psi.full.avg10, psi.full.avg10 / 10, psi.full.avg60, limits_text(psi_full_avg10, "%")),
                   next};
  if (psi.some.avg10 > psi_some_avg10_warning)
    return RedFlag{"memory_pressure_some", Severity::warning, "tasks wait on memory (PSI some)",
                   fmt::format("some avg10 {:.2f}% (avg60 {:.2f}%; warning at {}%)", psi.some.avg10, psi.some.avg60,
                               psi_some_avg10_warning),
                   next};
  return std::nullopt;
}

std::optional<RedFlag> check_mem_available(const DoctorReport& report) {
  const auto& memory = report.memory;
  const double share = percent(memory.available, memory.total);
  const auto severity = grade_below(share, mem_available_pct_below);
  if (severity == Severity::healthy) return std::nullopt;
  return RedFlag{"mem_available", severity, "little memory left to hand out",
                 fmt::format("MemAvailable {} = {:.1f}% of MemTotal {} (warning below {}%, critical below {}%)",
                             human_bytes(memory.available), share, human_bytes(memory.total),
                             mem_available_pct_below.warning, mem_available_pct_below.critical),
                 where_memory_went(memory)};
}

std::optional<RedFlag> check_swap_activity(const DoctorReport& report) {
  const auto& swap = report.swap;
  if (!swap.measured()) return std::nullopt;
  const double pages_per_s = swap.pages_in_per_s() + swap.pages_out_per_s();
  const auto severity = grade_above(pages_per_s, swap_pages_per_s);
  if (severity == Severity::healthy) return std::nullopt;
  return RedFlag{
      "swap_activity", severity, "the node is swapping now",
      fmt::format("{:.0f} pages/s swapped in, {:.0f} pages/s out over {:.1f} s "
                  "({} pages/s in + out)",
                  swap.pages_in_per_s(), swap.pages_out_per_s(), swap.window_s, limits_text(swap_pages_per_s, "")),
      where_memory_went(report.memory)};
}

std::optional<RedFlag> check_swap_used(const DoctorReport& report) {
  const auto& memory = report.memory;
  if (memory.swap_total == 0) return std::nullopt;
  const double share = percent(memory.swap_used(), memory.swap_total);
  const auto severity = grade_above(share, swap_used_pct);
  if (severity == Severity::healthy) return std::nullopt;
  return RedFlag{"swap_used", severity, "swap in use: RAM ran out",
                 fmt::format("swap used {} = {:.1f}% of SwapTotal {} ({})", human_bytes(memory.swap_used()), share,
                             human_bytes(memory.swap_total), limits_text(swap_used_pct, "%")),
                 // si/so columns: whether pages move to and from swap right now.
                 "vmstat 1 10"};
}

std::optional<RedFlag> check_load(const DoctorReport& report) {
  const double per_cpu = report.load.avg1 / report.cpus;
  const auto severity = grade_above(per_cpu, load_per_cpu);
  if (severity == Severity::healthy) return std::nullopt;
  return RedFlag{"load", severity, "load far above the CPU count",
                 fmt::format("load {:.2f} on {} CPUs = {:.1f} per CPU ({})", report.load.avg1, report.cpus, per_cpu,
                             limits_text(load_per_cpu, "")),
                 // r = runnable, b = blocked on I/O, wa = I/O wait, si/so = swap:
                 // tells CPU-bound from swap-bound load.
                 "vmstat 1 5"};
}

std::optional<RedFlag> check_overcommit(const DoctorReport& report) {
  // CommitLimit is only enforced with vm.overcommit_memory=2, and busy nodes
  // exceed it all the time. Promising more than RAM and swap together is the
  // article's red flag: not all of it can ever be backed.
  const auto& memory = report.memory;
  const auto backing = memory.total + memory.swap_total;
  if (memory.committed_as <= backing) return std::nullopt;
  return RedFlag{
      "overcommit", Severity::warning, "more memory promised than RAM and swap together",
      fmt::format("Committed_AS {} > MemTotal + SwapTotal {}", human_bytes(memory.committed_as), human_bytes(backing)),
      "ps -eo pid,vsz,comm --sort=-vsz | head -15"};
}

}  // namespace

DoctorInputs DoctorInputs::under(const std::string& root) {
  DoctorInputs inputs;
  for (std::string* path :
       {&inputs.meminfo, &inputs.pressure, &inputs.vmstat, &inputs.loadavg, &inputs.slabinfo, &inputs.cpus_online})
    *path = root + *path;
  // A node's / mounted at `root` (a debug pod): its processes are there too.
  // A fixture tree has no process 1: no census.
  inputs.proc_root = ::access((root + "/proc/1").c_str(), F_OK) == 0 ? root + "/proc" : "";
  return inputs;
}

double SwapActivity::pages_in_per_s() const {
  return measured() ? static_cast<double>(during_window.pages_in) / window_s : 0.0;
}

double SwapActivity::pages_out_per_s() const {
  return measured() ? static_cast<double>(during_window.pages_out) / window_s : 0.0;
}

const char* to_string(Severity severity) {
  switch (severity) {
    case Severity::healthy:
      return "healthy";
    case Severity::warning:
      return "warning";
    case Severity::critical:
      return "critical";
  }
  return "unknown";
}

MemoryBreakdown memory_breakdown(const node::Meminfo& meminfo) {
  for (const char* required : {"MemTotal", "MemAvailable"})
    if (meminfo.find(required) == meminfo.end())
      throw ParseError(fmt::format("meminfo: no {} line (kernel older than 3.14?)", required));
  const auto field = [&](std::string_view name) { return node::field_or_zero(meminfo, name); };
  MemoryBreakdown memory;
  memory.total = field("MemTotal");
  memory.free = field("MemFree");
  memory.available = field("MemAvailable");
  memory.anon = field("AnonPages");
  memory.page_cache = field("Buffers") + field("Cached");
  memory.sreclaimable = field("SReclaimable");
  memory.sunreclaim = field("SUnreclaim");
  memory.kernel_stack = field("KernelStack");
  memory.page_tables = field("PageTables");
  memory.swap_total = field("SwapTotal");
  memory.swap_free = std::min(field("SwapFree"), memory.swap_total);
  memory.committed_as = field("Committed_AS");
  memory.commit_limit = field("CommitLimit");
  if (memory.total == 0) throw ParseError("meminfo: MemTotal is 0");
  return memory;
}

namespace {

// Who holds queued sk_buffs now: without root, only our own processes' sockets
// and namespace (the census says so in its warnings, and so do we).
census::Census socket_census(const std::string& proc_root, std::vector<std::string>& skipped) {
  // As root, on the live node (not a saved snapshot), the BPF socket
  // iterators count the skbs; they need nothing else and go when doctor does.
  census::NodeCensus census({}, ::geteuid() == 0 && proc_root == "/proc");
  sockets::ScanOptions options;
  options.proc_root = proc_root;
  census::Census c = census.take(options);
  if (::geteuid() != 0)
    skipped.push_back("socket queues: not root, so only this user's processes and network namespace were seen");
  return c;
}

}  // namespace

NodeSnapshot read_node(const DoctorInputs& inputs) {
  NodeSnapshot node;
  node.meminfo = node::read_meminfo(inputs.meminfo);

  // PSI and slabinfo are optional: kernels without CONFIG_PSI (or booted with
  // psi=0) have no /proc/pressure, and /proc/slabinfo is root-only. The rest of
  // the diagnosis still helps, so say what was skipped and carry on. Files that
  // open but do not parse still throw.
  try {
    node.memory_pressure = node::read_pressure(inputs.pressure);
  } catch (const UserError& unreadable) {
    node.skipped.push_back(fmt::format("memory pressure: {}", unreadable.what()));
  }
  try {
    node.slabinfo = procfs::read_slabinfo(inputs.slabinfo);
  } catch (const UserError& unreadable) {
    node.skipped.push_back(fmt::format("slab caches: {}", unreadable.what()));
  }

  const auto started = std::chrono::steady_clock::now();
  const auto before = node::swap_counters(node::read_vmstat(inputs.vmstat));
  node.swap.since_boot = before;
  if (inputs.swap_window.count() > 0) {
    std::this_thread::sleep_for(inputs.swap_window);
    const auto after = node::swap_counters(node::read_vmstat(inputs.vmstat));
    node.swap.window_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    // Counters only grow; guard anyway so a file swapped under us cannot wrap.
    node.swap.during_window.pages_in = after.pages_in >= before.pages_in ? after.pages_in - before.pages_in : 0;
    node.swap.during_window.pages_out = after.pages_out >= before.pages_out ? after.pages_out - before.pages_out : 0;
    node.swap.since_boot = after;
  }

  node.load = node::read_loadavg(inputs.loadavg);
  node.cpus = node::read_cpu_count(inputs.cpus_online);
  if (!inputs.proc_root.empty()) node.sockets = socket_census(inputs.proc_root, node.skipped);
  return node;
}

DoctorReport diagnose(const NodeSnapshot& node, std::size_t top_caches, std::size_t top_sockets) {
  DoctorReport report;
  report.memory = memory_breakdown(node.meminfo);
  report.memory_pressure = node.memory_pressure;
  if (node.slabinfo) {
    report.top_caches = largest_caches(*node.slabinfo, top_caches);
    report.skb = find_skb_pair(*node.slabinfo, report.memory.sunreclaim);
  }
  report.swap = node.swap;
  report.load = node.load;
  report.cpus = std::max(node.cpus, 1u);
  report.skipped = node.skipped;
  if (node.sockets) {
    report.sockets = node.sockets;
    report.sockets_queued = node.sockets->sockets.size();
    if (report.sockets->sockets.size() > top_sockets) report.sockets->sockets.resize(top_sockets);
  }

  for (const auto check : {check_skb_signature, check_socket_queues, check_sunreclaim, check_memory_pressure, check_mem_available,
                           check_swap_activity, check_swap_used, check_load, check_overcommit})
    if (auto flag = check(report)) report.flags.push_back(std::move(*flag));
  std::stable_sort(report.flags.begin(), report.flags.end(),
                   [](const RedFlag& a, const RedFlag& b) { return a.severity > b.severity; });
  report.verdict = report.flags.empty() ? Severity::healthy : report.flags.front().severity;
  return report;
}

DoctorReport run_doctor(const DoctorInputs& inputs) {
  return diagnose(read_node(inputs), inputs.top_caches, inputs.top_sockets);
}

int exit_code(const DoctorReport& report) { return static_cast<int>(report.verdict); }

}  // namespace slabtrace::doctor
