// serve: a Prometheus exporter. The main thread reads the BPF maps every
// interval and renders the whole exposition into a string; the HTTP server
// (src/output/http_server.cpp) only hands out the latest string. A scrape
// never touches a BPF map and never waits for the tracer, and a slow or
// hostile client cannot slow the tracing down.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include "slabtrace/procfs.hpp"

#include <memory>
#include <unordered_map>

#include "slabtrace/census.hpp"
#include "slabtrace/commands.hpp"
#include "slabtrace/error.hpp"
#include "slabtrace/http_server.hpp"
#include "slabtrace/k8s_names.hpp"
#include "slabtrace/nodemem.hpp"
#include "slabtrace/prometheus.hpp"
#include "slabtrace/sockets.hpp"
#include "slabtrace/human.hpp"
#include "slabtrace/watch.hpp"

namespace slabtrace::commands {

namespace {

struct ListenAddress {
  std::string host;
  int port = 0;
};

// "127.0.0.1:9464", "0.0.0.0:9464", "[::1]:9464", "localhost:9464".
ListenAddress parse_listen(const std::string& text) {
  auto fail = [&] {
    return UserError(fmt::format("--listen wants HOST:PORT (127.0.0.1:9464, 0.0.0.0:9464, [::1]:9464), not '{}'", text));
  };
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) throw fail();
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') throw fail();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    throw fail();  // an IPv6 address needs brackets: [::1]:9464
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) throw fail();
  int number = std::stoi(port);
  if (number < 1 || number > 65535) throw fail();
  return {host, number};
}


double monotonic_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double unix_s() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

// The node's memory, traced or not; its series are left out when /proc/meminfo cannot be read.
void read_node_memory(prometheus::Metrics& m) {
  try {
    m.node_memory = node::read_meminfo();
  } catch (const std::exception& e) {
    spdlog::debug("{}", e.what());
  }
}

// A cgroup's labels: its path, the container id in it, and its pod as `workload` names it.
prometheus::CgroupLabels cgroup_labels(const std::string& cgroup_path, const k8s::Workload& workload) {
  prometheus::CgroupLabels l;
  l.cgroup = cgroup_path;
  l.container_id = cgroups::parse_container(cgroup_path).container_id.value_or("");
  l.pod_uid = workload.pod_uid;
  l.pod_namespace = workload.pod_namespace;
  l.pod = workload.pod;
  l.container = workload.container;
  return l;
}

// Gathers every figure of the exposition from the session and the node's files.
class MetricsGatherer {
 public:
  MetricsGatherer(Session& session, const ServeOptions& options)
      : session_(session),
        names_(k8s::LogDirs{options.common.pods_dir, options.common.containers_dir}),
        kernel_(procfs::kernel_release()),
        rates_since_(session.scale()) {}

  prometheus::Metrics gather(const census::Census& now_sockets, census::NodeCensus& census) {
    auto started = std::chrono::steady_clock::now();
    prometheus::Metrics m;
    model::Rates rates = rates_since_.next(session_.snapshot_recycling());
    const model::Snapshot& now = *rates_since_.previous();
    m.cgroups = cgroups(now, rates);
    m.skb_holders = skb_holders(now_sockets, census);
    m.health = health(now);
    read_node_memory(m);
    m.health.refresh_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    m.health.refreshed_unix_seconds = unix_s();
    return m;
  }

 private:
  prometheus::CgroupLabels labels_of(const std::string& cgroup_path) {
    return cgroup_labels(cgroup_path, names_.lookup(cgroups::parse_container(cgroup_path)));
  }

  std::vector<prometheus::CgroupFigures> cgroups(const model::Snapshot& now, const model::Rates& rates) {
    // Allocation and free counters since the start, which the rates do not keep.
    std::map<std::pair<std::uint64_t, std::string>, model::Counts> totals;
    for (const auto& b : now.buckets) totals[{b.cgroup_id, b.cache}] += b.counts;

    std::vector<prometheus::CgroupFigures> out;
    for (const auto& g : rates.cgroups) {
      prometheus::CgroupFigures f;
      f.labels = labels_of(session_.cgroup_path(g.cgroup_id));
      for (const auto& [cache, r] : g.by_cache) {
        const model::Counts& t = totals[{g.cgroup_id, cache}];
        f.by_cache[cache] = {r.outstanding, r.outstanding_bytes, r.growth_per_s, t.allocs, t.ended_total() * session_.scale()};
      }
      out.push_back(std::move(f));
    }
    return out;
  }

  // The sockets whose receive queues hold live sk_buffs, and who owns them:
  // the census names the owner, by the same rule as record's report.
  std::vector<prometheus::SkbHolderFigures> skb_holders(const census::Census& now, census::NodeCensus& census) {
    // BPF keeps a queued count per socket, so this never walks the live set;
    // bytes are estimated from the last queued skb's truesize.
    std::unordered_map<std::uint64_t, prometheus::SkbHolderFigures> by_sock;
    for (const auto& [sk, info] : session_.tracer().sockets()) {
      if (info.queued <= 0) continue;
      auto& h = by_sock[sk];
      h.queued_objects = std::uint64_t(info.queued) * session_.scale();
      h.queued_bytes = h.queued_objects * info.last_truesize;
    }
    spdlog::debug("skb holds: {} sockets", by_sock.size());
    std::vector<prometheus::SkbHolderFigures> out;
    for (auto& [sk, h] : by_sock) {
      if (auto info = session_.tracer().socket(sk)) {
        h.socket_inode = info->inode;
        h.netns = info->netns;
        h.protocol = socket_protocol_name(info->family, info->type, info->protocol);
      }
      auto it = now.owners_by_inode.find(h.socket_inode);
      if (h.socket_inode && it != now.owners_by_inode.end() && !it->second.empty()) {
        auto owners = census.resolve(it->second);
        const census::Owner& blamed = owners[census::blamed_owner(owners)];
        h.pid = std::uint32_t(blamed.pid);
        h.comm = blamed.comm;
        h.owner = labels_of(blamed.cgroup_path);
      } else if (auto info = session_.tracer().socket(sk); info && info->cgroup) {
        // No process holds it any more: the cgroup that created it.
        h.owner = labels_of(session_.cgroup_path(info->cgroup));
      }
      out.push_back(std::move(h));
    }
    return out;
  }

  prometheus::Health health(const model::Snapshot& now) {
    bpf::Tracer& tracer = session_.tracer();
    prometheus::Health h;
    h.version = SLABTRACE_VERSION;
    h.kernel = kernel_;
    h.attach_mode = bpf::to_string(tracer.attach_mode());
    h.sample_rate = session_.scale();
    st_stats st = tracer.stats();
    for (const auto& [name, n] : model::Lost::from(st).named()) h.lost[name] = n;
    // Tracked minus ended is what sits in the live map; counting it from the
    // bucket counters spares a walk over up to millions of entries.
    for (const auto& b : now.buckets) h.live_map_entries += b.counts.outstanding();
    h.live_map_capacity = tracer.live_capacity();
    h.buckets = session_.buckets_in_use();
    h.bucket_capacity = tracer.bucket_capacity();
    h.buckets_retired = session_.retired_buckets();
    for (const auto& c : tracer.program_costs()) h.programs.push_back({c.name, c.run_count, c.run_time_ns});
    return h;
  }

  Session& session_;
  k8s::PodNames names_;
  std::string kernel_;
  model::RateTracker rates_since_;
};

// Health figures while no tracer is attached: what serve is, and that it traces nothing.
prometheus::CgroupLabels owner_labels(const census::Owner& o) { return cgroup_labels(o.cgroup_path, o.workload); }

prometheus::Metrics untraced_metrics() {
  prometheus::Metrics m;
  m.health.version = SLABTRACE_VERSION;
  m.health.kernel = procfs::kernel_release();
  m.health.attach_mode = "none";
  m.health.sample_rate = 0;
  read_node_memory(m);
  m.health.refreshed_unix_seconds = unix_s();
  return m;
}

// The tracer and what reads it, attached and detached as the watch decides.
// Attaching loads the BPF programs afresh (a second or two); detaching unloads
// them, so a watching serve costs the node no BPF program run at all.
class Tracing {
 public:
  Tracing(const ServeOptions& options) : options_(options) {}
  void attach(const std::vector<std::string>& caches) {
    detach();
    CommonOptions common = options_.common;
    if (common.caches.empty()) common.caches = caches;  // the user's --cache wins
    session_ = std::make_unique<Session>(session_options(common));
    gatherer_ = std::make_unique<MetricsGatherer>(*session_, options_);
  }
  void detach() {
    gatherer_.reset();
    session_.reset();
  }
  bool attached() const { return bool(session_); }
  std::string attach_mode() const { return session_ ? bpf::to_string(session_->tracer().attach_mode()) : "none"; }
  prometheus::Metrics gather() {
    // The census needs no tracer: socket queues are exported while watching
    // too, counted in skbs only while tracing (watching loads no BPF).
    sockets::ScanOptions census_options;
    if (session_) census_options.count_skbs = session_->skb_counter();
    // Watching exports the owners of queued sockets only, which the cache
    // keeps without walking every descriptor each time; tracing also names
    // the owners of sockets the tracer saw (owners_by_inode), so it walks.
    else census_options.owner_cache = &owners_;
    census::Census now = census_.take(census_options);
    prometheus::Metrics m = gatherer_ ? gatherer_->gather(now, census_) : untraced_metrics();
    m.socket_census = socket_census_figures(now);
    return m;
  }

 private:
  prometheus::SocketCensusFigures socket_census_figures(const census::Census& now) {
    prometheus::SocketCensusFigures f;
    f.queued_bytes = now.queued_bytes;
    f.seconds = now.took_s;
    for (const auto& s : now.sockets) {
      prometheus::SocketQueueFigures q;
      q.socket_inode = s.inode;
      q.netns = s.netns;
      q.protocol = s.protocol;
      q.owners = s.owners.size();
      if (const census::Owner* o = s.blamed_owner()) {
        q.pid = std::uint32_t(o->pid);
        q.comm = o->comm;
        q.owner = owner_labels(*o);
      }
      q.receive_queue_bytes = s.receive_queue_bytes;
      q.backlog_bytes = s.backlog_bytes;
      q.write_queue_bytes = s.write_queue_bytes;
      f.sockets.push_back(std::move(q));
    }
    return f;
  }

  const ServeOptions& options_;
  census::NodeCensus census_{k8s::LogDirs{options_.common.pods_dir, options_.common.containers_dir}};
  sockets::OwnerCache owners_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<MetricsGatherer> gatherer_;  // refers to session_: reset first
};

}  // namespace

int serve(const ServeOptions& o) {
  ListenAddress address = parse_listen(o.listen);
  install_stop_handlers();
  // The port first: a taken port is a one-line error before seconds of BPF loading.
  http::Server server(address.host, address.port);

  Tracing tracing(o);
  // Loaded once at start even when watching: a node where tracing cannot work
  // (no root, no BTF, a missing tracepoint) says so now, not on the day it leaks.
  tracing.attach({});
  const std::string attach_mode = tracing.attach_mode();
  if (!o.watch.always_trace) tracing.detach();

  watch::WatchMachine machine(o.watch, slab::read_slab_aliases());
  if (o.watch.always_trace) machine.attached(monotonic_s());
  watch::NodeSources sources;
  sources.cgroup2_mount = procfs::find_cgroup2_mount(procfs::read_mountinfo());
  watch::NodeReader reader(sources);
  watch::WatchPage watch_page;
  watch_page.top_cgroups = o.top_cgroups;
  watch_page.since_unix_s = unix_s();
  prometheus::Limits limits;
  limits.top_cgroups = o.top_cgroups;

  // One refresh: read the node's counters, let the watch decide, attach or
  // detach, and publish the whole page.
  auto refresh = [&] {
    const double t = monotonic_s();
    watch::Decision d = machine.step(reader.read(t));
    using Action = watch::Decision::Action;
    if (d.action == Action::Attach || d.action == Action::Retarget) {
      try {
        tracing.attach(d.caches);
        const bool from_watching = machine.state() == watch::State::Watching;
        machine.attached(t);
        if (from_watching) watch_page.since_unix_s = unix_s();
        spdlog::info("tracing ({}{}): {}", tracing.attach_mode(),
                     machine.traced_caches().empty() ? ", all caches" : ", only the growing caches", machine.reason());
      } catch (const std::exception& e) {
        tracing.detach();
        machine.attach_failed(t, e.what());
        watch_page.since_unix_s = unix_s();
        spdlog::warn("{}", machine.reason());
      }
    } else if (d.action == Action::Detach) {
      tracing.detach();
      watch_page.since_unix_s = unix_s();
      spdlog::info("watching again, tracer detached: {}", machine.reason());
    }
    return prometheus::render(tracing.gather(), limits) + watch::render_watch(machine, watch_page);
  };

  http::SharedPage page;
  page.publish(refresh());  // no scrape ever sees an empty page

  const std::string health_line =
      fmt::format("ok {}\n", o.watch.always_trace ? attach_mode : "watching, " + attach_mode + " on growth");
  server.start([&page, &health_line](const http::Request& request) {
    return http::route_exporter(request, page, prometheus::kContentType, health_line);
  });
  if (o.watch.always_trace)
    spdlog::info("tracing ({}); metrics on http://{}/metrics, refreshed every {}s", attach_mode, o.listen, o.interval_s);
  else
    spdlog::info("watching /proc/slabinfo{} (tracing when something grows by {} in {:g}s); metrics on http://{}/metrics, refreshed every {}s",
                 reader.cgroup_memory() ? " and cgroup memory.stat" : "", human_bytes(o.watch.threshold_bytes),
                 o.watch.window_s, o.listen, o.interval_s);

  auto next = std::chrono::steady_clock::now();
  for (;;) {
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(o.interval_s));
    double left = std::chrono::duration<double>(next - std::chrono::steady_clock::now()).count();
    if (left < 0) {  // a refresh took longer than the interval: start afresh from now
      next = std::chrono::steady_clock::now();
      left = 0.001;
    }
    if (!wait_for(left)) break;
    try {
      page.publish(refresh());
    } catch (const std::exception& e) {
      // Keep serving the last page; slabtrace_last_refresh_timestamp_seconds shows its age.
      spdlog::warn("refreshing the metrics failed: {}", e.what());
    }
  }
  spdlog::info("stopping: closing the HTTP server{}", tracing.attached() ? " and detaching" : "");
  server.stop();
  const http::Stats& st = server.stats();
  spdlog::debug("http: {} connections, {} requests, {} bad, {} timed out, {} evicted", st.accepted.load(),
                st.requests.load(), st.bad_requests.load(), st.timed_out.load(), st.evicted.load());
  return 0;
}

}  // namespace slabtrace::commands
