// serve's watch-before-trace mode: readings of the kernel's own counters,
// growth over a window, and the watching/tracing state machine (see watch.hpp).
#include "slabtrace/watch.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "slabtrace/aggregate.hpp"
#include "slabtrace/human.hpp"
#include "slabtrace/prometheus.hpp"
#include "slabtrace/unique_fd.hpp"

namespace slabtrace::watch {

std::string to_string(Kind kind) { return kind == Kind::Cache ? "cache" : "cgroup"; }
std::string to_string(State state) { return state == State::Watching ? "watching" : "tracing"; }

// --- growth over the window ----------------------------------------------------

void GrowthDetector::add(Reading reading) {
  readings_.push_back(std::move(reading));
  const double oldest = readings_.back().t_s - window_s_;
  // Keep one reading at or before the window's start: growth is measured
  // over the whole window, not over what is left of it.
  while (readings_.size() > 2 && readings_[1].t_s <= oldest) readings_.pop_front();
}

std::uint64_t GrowthDetector::grown(Kind kind, const std::string& name, std::uint64_t now) const {
  // The lowest reading within the window: growth is a rise from there, so a
  // value that rose and fell again does not count.
  std::uint64_t lowest = now;
  for (const auto& r : readings_) {
    const auto& values = kind == Kind::Cache ? r.caches : r.cgroups;
    auto it = values.find(name);
    if (it != values.end()) lowest = std::min(lowest, it->second);
  }
  return now - lowest;
}

std::vector<Growth> GrowthDetector::all() const {
  std::vector<Growth> out;
  if (readings_.empty()) return out;
  const Reading& now = readings_.back();
  for (const auto& [name, bytes] : now.caches) out.push_back({Kind::Cache, name, bytes, grown(Kind::Cache, name, bytes)});
  for (const auto& [name, bytes] : now.cgroups)
    out.push_back({Kind::Cgroup, name, bytes, grown(Kind::Cgroup, name, bytes)});
  return out;
}

std::vector<Growth> GrowthDetector::grown_by(std::uint64_t bytes) const {
  std::vector<Growth> out;
  if (readings_.empty()) return out;
  const Reading& now = readings_.back();
  for (auto& g : all()) {
    if (g.grown < bytes) continue;
    if (g.kind == Kind::Cache && now.reclaimable.count(g.name)) continue;
    if (g.kind == Kind::Cgroup && g.name == "/") continue;  // the node: its caches say more
    out.push_back(std::move(g));
  }
  std::sort(out.begin(), out.end(), [](const Growth& a, const Growth& b) {
    return a.grown != b.grown ? a.grown > b.grown : a.name < b.name;
  });
  return out;
}

// --- the state machine -------------------------------------------------------------

WatchMachine::WatchMachine(WatchOptions options, slab::CacheAliases aliases)
    : options_(options), aliases_(std::move(aliases)), detector_(options.window_s) {
  if (options_.always_trace) reason_ = "--trace always";
}

std::vector<std::string> WatchMachine::caches_to_trace(const std::vector<Growth>& growing) const {
  std::vector<std::string> caches;
  for (const auto& g : growing) {
    if (g.kind == Kind::Cgroup) return {};
    for (const auto& alias : aliases_.aliases_of(g.name))
      if (alias.rfind("skbuff_", 0) == 0) return {};
    caches.push_back(g.name);
  }
  std::sort(caches.begin(), caches.end());
  return caches;
}

std::string WatchMachine::describe(const std::vector<Growth>& growing) const {
  std::string text;
  for (std::size_t i = 0; i < growing.size() && i < 3; ++i) {
    if (i) text += ", ";
    text += fmt::format("{} {} grew {}", to_string(growing[i].kind), growing[i].name, human_bytes(growing[i].grown));
  }
  if (growing.size() > 3) text += fmt::format(" and {} more", growing.size() - 3);
  return fmt::format("{} in {:g}s (threshold {})", text, options_.window_s, human_bytes(options_.threshold_bytes));
}

Decision WatchMachine::step(const Reading& reading) {
  detector_.add(reading);
  Decision d;
  const double t = reading.t_s;
  if (options_.always_trace) {
    if (state_ == State::Watching && (!retry_after_s_ || t >= *retry_after_s_)) {
      d.action = Decision::Action::Attach;
      pending_caches_.clear();
      pending_reason_ = "--trace always";
    }
    return d;
  }
  if (state_ == State::Watching) {
    if (retry_after_s_ && t < *retry_after_s_) return d;
    auto growing = detector_.grown_by(options_.threshold_bytes);
    if (growing.empty()) return d;
    d.action = Decision::Action::Attach;
    d.caches = caches_to_trace(growing);
    pending_caches_ = d.caches;
    pending_reason_ = describe(growing);
    return d;
  }
  // Tracing: detach once nothing grows by even half the threshold over the window.
  if (detector_.grown_by(options_.threshold_bytes / 2).empty()) {
    d.action = Decision::Action::Detach;
    state_ = State::Watching;
    since_s_ = t;
    reason_ = fmt::format("growth stopped: nothing grew by {} in {:g}s", human_bytes(options_.threshold_bytes / 2),
                          options_.window_s);
    traced_caches_.clear();
    return d;
  }
  // Tracing only some caches, and another one grows past the threshold: widen.
  if (!traced_caches_.empty()) {
    auto growing = detector_.grown_by(options_.threshold_bytes);
    auto wanted = caches_to_trace(growing);
    bool widen = wanted.empty() && !growing.empty();
    for (const auto& c : wanted)
      if (!std::binary_search(traced_caches_.begin(), traced_caches_.end(), c)) widen = true;
    if (widen) {
      d.action = Decision::Action::Retarget;
      if (!wanted.empty()) {
        std::set<std::string> all(traced_caches_.begin(), traced_caches_.end());
        all.insert(wanted.begin(), wanted.end());
        d.caches.assign(all.begin(), all.end());
      }
      pending_caches_ = d.caches;
      pending_reason_ = describe(growing);
    }
  }
  return d;
}

void WatchMachine::attached(double t_s) {
  if (state_ == State::Watching) {
    since_s_ = t_s;
    ++to_tracing_;
  }
  state_ = State::Tracing;
  reason_ = pending_reason_;
  traced_caches_ = pending_caches_;
  retry_after_s_.reset();
}

void WatchMachine::attach_failed(double t_s, const std::string& error) {
  retry_after_s_ = t_s + options_.retry_s;
  if (state_ == State::Tracing) {  // a retarget failed: the old tracer is gone too
    state_ = State::Watching;
    since_s_ = t_s;
    traced_caches_.clear();
  }
  reason_ = fmt::format("attaching failed ({}); retrying in {:g}s: {}", pending_reason_, options_.retry_s, error);
}

// --- reading the node ------------------------------------------------------------------

NodeReader::NodeReader(NodeSources sources) : sources_(std::move(sources)) {
  if (sources_.cgroup2_mount) {
    std::ifstream in(*sources_.cgroup2_mount + "/cgroup.subtree_control");
    std::string controller;
    while (in >> controller) cgroup_memory_ |= controller == "memory";
    if (!cgroup_memory_)
      spdlog::info("the cgroup2 hierarchy at {} has no memory controller: watching caches only, not cgroups",
                   *sources_.cgroup2_mount);
  }
}

bool NodeReader::is_reclaimable(const std::string& cache) {
  auto it = reclaimable_.find(cache);
  if (it != reclaimable_.end()) return it->second;
  int flag = 0;
  std::ifstream(sources_.sys_slab + "/" + cache + "/reclaim_account") >> flag;
  return reclaimable_[cache] = flag == 1;
}

void NodeReader::read_cgroups(const std::string& dir, const std::string& rel, int depth, Reading& out) const {
  if (depth > 0) {
    std::ifstream in(dir + "/memory.stat");
    if (!in) return;  // no memory controller here: none below either
    model::CgroupMemory m = model::parse_memory_stat(in);
    out.cgroups[rel] = m.slab_unreclaimable + m.sock;
  }
  if (depth >= sources_.cgroup_depth) return;
  std::vector<std::string> children;
  {
    UniqueDir d = UniqueDir::open(dir.c_str());
    if (!d) return;
    while (dirent* e = d.next())
      if (e->d_type == DT_DIR && e->d_name[0] != '.') children.emplace_back(e->d_name);
  }  // closed before descending: one directory open at a time
  for (const auto& child : children)
    read_cgroups(dir + "/" + child, (rel == "/" ? "" : rel) + "/" + child, depth + 1, out);
}

Reading NodeReader::read(double t_s) {
  Reading r;
  r.t_s = t_s;
  for (const auto& e : procfs::read_slabinfo(sources_.slabinfo)) {
    r.caches[e.name] = e.active_objs * e.object_size;
    if (is_reclaimable(e.name)) r.reclaimable.insert(e.name);
  }
  if (cgroup_memory_) read_cgroups(*sources_.cgroup2_mount, "/", 0, r);
  return r;
}

// --- the exposition ----------------------------------------------------------------------

namespace {

std::string label(std::string_view name, std::string_view value) {
  return fmt::format("{}=\"{}\"", name, prometheus::escape_label_value(value));
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, prometheus::escape_help(help), name, type);
}

}  // namespace

std::string render_watch(const WatchMachine& m, const WatchPage& page) {
  std::string out;
  const std::string state = to_string(m.state());
  family(out, "slabtrace_serve_state", "gauge",
         "1 for the state serve is in: watching (kernel counters only, no BPF) or tracing (BPF attached).");
  for (State s : {State::Watching, State::Tracing})
    out += fmt::format("slabtrace_serve_state{{{}}} {}\n", label("state", to_string(s)), s == m.state() ? 1 : 0);
  family(out, "slabtrace_serve_state_since_timestamp_seconds", "gauge", "When serve entered its current state (Unix time).");
  out += fmt::format("slabtrace_serve_state_since_timestamp_seconds {}\n", page.since_unix_s);
  family(out, "slabtrace_serve_state_info", "gauge",
         "Why serve is in its current state, and the caches it traces (empty: all).");
  std::string caches;
  for (const auto& c : m.traced_caches()) caches += (caches.empty() ? "" : ",") + c;
  out += fmt::format("slabtrace_serve_state_info{{{},{},{}}} 1\n", label("state", state), label("reason", m.reason()),
                     label("caches", caches));
  family(out, "slabtrace_serve_tracing_starts_total", "counter", "Times serve attached the tracer because something grew.");
  out += fmt::format("slabtrace_serve_tracing_starts_total {}\n", m.transitions_to_tracing());
  family(out, "slabtrace_watch_threshold_bytes", "gauge",
         "Growth within the window that makes serve trace (--watch-threshold); half of it keeps it tracing.");
  out += fmt::format("slabtrace_watch_threshold_bytes {}\n", m.options().threshold_bytes);
  family(out, "slabtrace_watch_window_seconds", "gauge", "The window growth is measured over (--watch-window).");
  out += fmt::format("slabtrace_watch_window_seconds {}\n", m.options().window_s);

  std::vector<Growth> caches_now, cgroups_now;
  for (auto& g : m.detector().all()) (g.kind == Kind::Cache ? caches_now : cgroups_now).push_back(std::move(g));
  // The largest caches and cgroups, and every one that grows by half the threshold.
  auto keep = [&](std::vector<Growth>& v, std::size_t n) {
    std::sort(v.begin(), v.end(), [](const Growth& a, const Growth& b) { return a.bytes != b.bytes ? a.bytes > b.bytes : a.name < b.name; });
    std::vector<Growth> kept;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (i < n || v[i].grown >= m.options().threshold_bytes / 2) kept.push_back(v[i]);
    v = std::move(kept);
  };
  keep(caches_now, page.top_caches);
  keep(cgroups_now, page.top_cgroups);
  const Reading* latest = m.detector().latest();
  auto cache_labels = [&](const Growth& g) {
    bool reclaimable = latest && latest->reclaimable.count(g.name);
    return fmt::format("{},{}", label("cache", g.name), label("reclaimable", reclaimable ? "true" : "false"));
  };
  family(out, "slabtrace_slab_bytes", "gauge", "Active objects times object size of a slab cache (/proc/slabinfo), largest caches.");
  for (const auto& g : caches_now) out += fmt::format("slabtrace_slab_bytes{{{}}} {}\n", cache_labels(g), g.bytes);
  family(out, "slabtrace_slab_growth_bytes", "gauge", "How much a slab cache grew within the watch window (from its lowest reading).");
  for (const auto& g : caches_now) out += fmt::format("slabtrace_slab_growth_bytes{{{}}} {}\n", cache_labels(g), g.grown);
  family(out, "slabtrace_cgroup_kernel_bytes", "gauge",
         "slab_unreclaimable + sock of a cgroup's memory.stat (cgroup v2 with the memory controller).");
  for (const auto& g : cgroups_now) out += fmt::format("slabtrace_cgroup_kernel_bytes{{{}}} {}\n", label("cgroup", g.name), g.bytes);
  family(out, "slabtrace_cgroup_kernel_growth_bytes", "gauge", "How much a cgroup's slab_unreclaimable + sock grew within the watch window.");
  for (const auto& g : cgroups_now)
    out += fmt::format("slabtrace_cgroup_kernel_growth_bytes{{{}}} {}\n", label("cgroup", g.name), g.grown);
  return out;
}

}  // namespace slabtrace::watch
