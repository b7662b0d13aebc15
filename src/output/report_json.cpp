// slabtrace.report/v1 and slabtrace.stream/v1, per shared/output-contract.md.
#include <ctime>

#include "slabtrace/output.hpp"

namespace slabtrace::output {

using nlohmann::json;

namespace {

// Null, never a made-up value, for what is not known.
template <typename T>
json nullable(const std::optional<T>& v) { return v ? json(*v) : json(nullptr); }
json nullable(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

const char* end_reason_name(std::size_t i) {
  switch (i) {
    case ST_END_FREE: return "free";
    case ST_END_SKB_EVENT: return "skb_event";
    case ST_END_REUSED: return "address_reused";
    case ST_END_SKB_DATA: return "skb_data_freed";
  }
  return "other";
}

json cache_json(const model::CacheReport& c) {
  json j = {{"name", c.name},
            {"slabinfo_name", c.slabinfo_name},
            {"aliases", c.aliases},
            {"object_size", c.object_size},
            {"allocs", c.allocs},
            {"frees", c.frees},
            {"outstanding", c.outstanding},
            {"outstanding_bytes", c.outstanding_bytes},
            {"outstanding_error95", c.outstanding_error}};
  json ended = json::object();
  for (std::size_t i = 0; i < c.ended_by.size(); ++i) ended[end_reason_name(i)] = c.ended_by[i];
  j["ended_by"] = ended;
  j["reclaimable"] = c.reclaimable;
  if (c.slabinfo)
    j["slabinfo"] = {{"active_start", c.slabinfo->active_start},
                     {"active_end", c.slabinfo->active_end},
                     {"delta", c.slabinfo->delta}};
  else
    j["slabinfo"] = nullptr;
  return j;
}

json stack_json(const model::StackReport& s) {
  return {{"cache", s.cache},
          {"cgroup_id", s.cgroup_id},
          {"cgroup_path", s.cgroup_path},
          {"stack_id", s.stack_id},
          {"outstanding", s.outstanding},
          {"outstanding_bytes", s.outstanding_bytes},
          {"outstanding_error95", s.outstanding_error},
          {"oldest_age_s", s.oldest_age_s},
          {"frames", s.frames},
          {"frames_with_offsets", s.frames_with_offsets},
          {"stack_of", s.stack_of.empty() ? json(nullptr) : json(s.stack_of)}};
}

}  // namespace

json owner_json(const census::Owner& o) {
  json j = {{"pid", o.pid}, {"comm", o.comm}, {"cgroup_id", o.cgroup_id}, {"cgroup_path", o.cgroup_path}};
  add_workload_fields(j, o.workload);
  return j;
}

json holder_json(const model::SkbHolder& h) {
  json owners = json::array();
  for (const auto& o : h.owners) owners.push_back(owner_json(o));
  json j = {{"pid", nullable(h.pid)},
            {"comm", h.comm},
            {"cgroup_id", h.cgroup_id},
            {"cgroup_path", h.cgroup_path},
            {"netns", h.netns},
            {"socket_inode", h.socket_inode},
            {"family", h.family},
            {"protocol", h.protocol},
            {"socket_cgroup_id", h.socket_cgroup_id},
            {"queued_skbs", h.queued_skbs},
            {"queued_bytes", h.queued_bytes},
            {"kernel_queued_skbs", nullable(h.kernel_queued_skbs)},
            {"kernel_queued_skbs_estimated", h.kernel_queued_skbs_estimated},
            {"kernel_queued_bytes", nullable(h.kernel_queued_bytes)},
            {"receive_queue_bytes", h.receive_queue_bytes},
            {"backlog_bytes", h.backlog_bytes},
            {"write_queue_bytes", h.write_queue_bytes},
            {"queued_before_start_bytes", nullable(h.queued_before_start_bytes)},
            {"oldest_queued_age_s", h.oldest_queued_age_s},
            {"owners", owners}};
  add_workload_fields(j, h.workload);
  return j;
}

json census_json(const model::SocketCensusSummary& c) {
  return {{"sockets_seen", c.sockets_seen},
          {"sockets_queued", c.sockets_queued},
          {"namespaces", c.namespaces},
          {"home_netns", c.home_netns},
          {"queued_bytes", c.queued_bytes},
          {"queued_before_start_bytes", c.queued_before_start_bytes},
          {"took_s", c.took_s},
          {"warnings", c.warnings}};
}


std::optional<json> sockets_line(const census::Census& census, const std::string& timestamp, double interval_s,
                                 std::uint64_t min_bytes, std::size_t top) {
  json holders = json::array();
  for (const auto& s : census.sockets) {
    if (s.queued_bytes() < min_bytes || holders.size() >= top) break;  // largest first
    holders.push_back(holder_json(model::holder_from(s)));
  }
  if (holders.empty()) return std::nullopt;
  return json{{"schema", "slabtrace.sockets/v1"},
              {"ts", timestamp},
              {"interval_s", interval_s},
              {"queued_bytes", census.queued_bytes},
              {"sockets_queued", census.sockets.size()},
              {"holders", holders}};
}

json report_json(const model::Report& r) {
  json caches = json::array(), cgroups = json::array(), stacks = json::array();
  for (const auto& c : r.caches) caches.push_back(cache_json(c));
  for (const auto& g : r.cgroups) {
    json entry = {{"id", g.id},
                       {"path", g.path},
                       {"container_id", nullable(g.container.container_id)},
                       {"pod_uid", nullable(g.container.pod_uid)},
                       {"runtime", g.container.runtime},
                       {"outstanding", g.outstanding},
                       {"outstanding_bytes", g.outstanding_bytes},
                       {"outstanding_error95", g.outstanding_error},
                       {"by_cache", g.by_cache},
                       {"memory_slab_unreclaimable_delta", nullable(g.memory_slab_unreclaimable_delta)}};
    add_workload_fields(entry, g.workload);
    cgroups.push_back(std::move(entry));
  }
  for (const auto& s : r.stacks) stacks.push_back(stack_json(s));

  json holders = json::array(), allocators = json::array(), drops = json::object();
  for (const auto& h : r.skb.holders) holders.push_back(holder_json(h));
  for (const auto& a : r.skb.allocators)
    allocators.push_back({{"cgroup_id", a.cgroup_id}, {"cgroup_path", a.cgroup_path}, {"via", a.via}, {"heads", a.heads}});
  for (const auto& [reason, n] : r.skb.drops) drops[reason] = n;
  json drops_by_socket = json::array();
  for (const auto& d : r.skb.drops_by_socket)
    drops_by_socket.push_back({{"reason", d.reason},
                               {"count", d.count},
                               {"socket_inode", d.socket_inode},
                               {"cgroup_id", d.cgroup_id},
                               {"cgroup_path", d.cgroup_path},
                               {"pid", nullable(d.pid)},
                               {"comm", d.comm}});
  json adopted = json::array();
  for (const auto& a : r.skb.adopted_by_device)
    adopted.push_back({{"device", a.device}, {"ifindex", a.ifindex}, {"netns", a.netns}, {"heads", a.heads}});
  json data_caches = json::array();
  for (const auto& d : r.skb.data_caches) {
    double ratio = d.data_buffers ? double(d.with_live_head) / double(d.data_buffers) : 0.0;
    data_caches.push_back({{"cache", d.cache}, {"data_buffers", d.data_buffers}, {"with_live_head", d.with_live_head},
                           {"head_ratio", ratio}});
  }

  json costs = json::array();
  for (const auto& c : r.costs) costs.push_back({{"program", c.name}, {"events", c.events}, {"ns_per_event", c.ns_per_event}});

  json findings = json::array();
  for (const auto& f : r.findings) {
    json j = {{"kind", model::to_string(f.kind)},
              {"cache", nullable(f.cache)},
              {"cgroup", nullable(f.cgroup)},
              {"cgroup_id", f.cgroup_id ? json(f.cgroup_id) : json(nullptr)},
              {"objects", f.objects},
              {"bytes", f.bytes},
              {"per_s", f.per_s},
              {"held_s", f.held_s},
              {"confidence", f.confidence},
              {"text", f.text}};
    if (f.needs_s > 0) j["needs_s"] = f.needs_s;
    findings.push_back(std::move(j));
  }
  json lost = json::object();
  for (const auto& [name, n] : r.lost.named()) lost[name] = n;

  return {{"schema", kReportSchema},
          {"kernel", r.kernel},
          {"duration_s", r.duration_s},
          {"sample_rate", r.sample_rate},
          {"stack_sample_rate", r.stack_sample_rate},
          {"stack_budget", r.stack_budget},
          {"stacks_throttled", r.stacks_throttled},
          {"alloc_failures", r.alloc_failures},
          {"bpf_allocs_untraced", r.bpf_allocs_untraced},
          {"attach_mode", r.attach_mode},
          {"findings", findings},
          {"verdicts", r.verdicts},
          {"notes", r.notes},
          {"caches", caches},
          {"cgroups", cgroups},
          {"stacks", stacks},
          {"skb",
           {{"outstanding_heads", r.skb.outstanding_heads},
            {"adopted_heads", r.skb.adopted_heads},
            {"adopted_by_device", adopted},
            {"outstanding_data", r.skb.outstanding_data},
            {"outstanding_bytes", r.skb.outstanding_bytes},
            {"holders", holders},
            {"census", r.skb.census ? census_json(*r.skb.census) : json(nullptr)},
            {"allocators", allocators},
            {"data_caches", data_caches},
            {"drops", drops},
            {"drops_by_socket", drops_by_socket}}},
          {"lost", lost},
          {"live_objects", r.live_objects},
          {"live_capacity", r.live_capacity},
          {"cost", costs}};
}

json stacks_json(const model::Report& r) {
  json stacks = json::array();
  for (const auto& s : r.stacks) stacks.push_back(stack_json(s));
  return {{"schema", kReportSchema}, {"duration_s", r.duration_s}, {"sample_rate", r.sample_rate}, {"stacks", stacks}};
}

json stream_line(const model::GroupRate& g, const StreamContext& ctx) {
  json by_cache = json::object();
  for (const auto& [cache, rate] : g.by_cache)
    by_cache[cache] = {{"outstanding", rate.outstanding},
                       {"outstanding_bytes", rate.outstanding_bytes},
                       {"growth_per_s", rate.growth_per_s},
                       {"allocs_per_s", rate.allocs_per_s}};
  json line = {{"schema", kStreamSchema},
          {"ts", ctx.timestamp},
          {"interval_s", ctx.interval_s},
          {"cgroup_id", g.cgroup_id},
          {"path", ctx.path},
          {"container_id", nullable(ctx.container.container_id)},
          {"pod_uid", nullable(ctx.container.pod_uid)},
          {"outstanding", g.total.outstanding},
          {"outstanding_bytes", g.total.outstanding_bytes},
          {"growth_per_s", g.total.growth_per_s},
          {"allocs_per_s", g.total.allocs_per_s},
          {"by_cache", by_cache}};
  add_workload_fields(line, ctx.workload);
  return line;
}

void add_workload_fields(json& into, const k8s::Workload& w) {
  into["namespace"] = nullable(w.pod_namespace);
  into["pod"] = nullable(w.pod);
  into["container"] = nullable(w.container);
}

std::string workload_label(const k8s::Workload& w) {
  if (!w.known()) return {};
  std::string s = w.pod_namespace + "/" + w.pod;
  if (!w.container.empty()) s += " (container " + w.container + ")";
  return s;
}

std::string utc_timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace slabtrace::output
