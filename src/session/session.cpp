// A tracing session: start the tracer with what the kernel needs to know (skb
// code ranges, filters), then turn its maps into snapshots and the report.
#include "slabtrace/session.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include "slabtrace/btf_names.hpp"
#include "slabtrace/census_iter.hpp"
#include "slabtrace/error.hpp"
#include "slabtrace/human.hpp"
#include "slabtrace/sockets.hpp"
#include "slabtrace/unique_fd.hpp"

namespace slabtrace {

namespace {

std::optional<std::string> discover_cgroup2_mount() {
  std::string unreadable;
  auto mount = procfs::own_cgroup2_mount(&unreadable);
  if (!unreadable.empty()) spdlog::warn("cannot read /proc/self/mountinfo: {}", unreadable);
  return mount;
}

// memory.stat of every cgroup below the mount that has one (cgroup v2 with
// the memory controller on), by cgroup id.
std::map<std::uint64_t, model::CgroupMemory> read_memory_stats(const std::string& mount,
                                                               const std::map<std::uint64_t, model::CgroupMemory>* only = nullptr) {
  namespace fs = std::filesystem;
  std::map<std::uint64_t, model::CgroupMemory> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(mount, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    auto id = cgroups::cgroup_id_of(it->path().string());
    if (!id || (only && !only->count(*id))) continue;
    std::ifstream in(it->path() / "memory.stat");
    if (in) out[*id] = model::parse_memory_stat(in);
  }
  return out;
}

// --cache names must name a cache this kernel has: listed in /proc/slabinfo,
// merged into one (/sys/kernel/slab), or a kmalloc size. Otherwise say what
// exists: names that contain what was asked, or the largest caches.
void check_cache_filters(const std::vector<std::string>& wanted, const procfs::Slabinfo& slabinfo,
                         const slab::CacheAliases& aliases) {
  for (const auto& name : wanted) {
    if (model::kmalloc_key(name) || procfs::find_cache(slabinfo, name) || aliases.target_of.count(name)) continue;
    std::vector<std::string> like;
    std::string needle = name.size() > 3 ? name.substr(0, name.size() - 1) : name;
    for (const auto& e : slabinfo)
      if (e.name.find(needle) != std::string::npos || name.find(e.name) != std::string::npos) like.push_back(e.name);
    std::string hint;
    if (!like.empty()) {
      if (like.size() > 8) like.resize(8);
      hint = "similar: " + fmt::format("{}", fmt::join(like, ", "));
    } else {
      std::vector<const procfs::SlabinfoEntry*> largest;
      for (const auto& e : slabinfo) largest.push_back(&e);
      std::sort(largest.begin(), largest.end(), [](auto* a, auto* b) {
        return a->active_objs * a->object_size > b->active_objs * b->object_size;
      });
      std::vector<std::string> names;
      for (std::size_t i = 0; i < largest.size() && i < 8; ++i) names.push_back(largest[i]->name);
      hint = "the largest here: " + fmt::format("{}", fmt::join(names, ", "));
    }
    throw UserError(fmt::format("--cache {}: no such slab cache on this kernel ({}; all in /proc/slabinfo)", name, hint));
  }
}

// --cgroup must name a directory under the cgroup2 mount; otherwise list
// what the nearest existing parent holds.
void check_cgroup_filter(const std::string& filter, const std::string& mount) {
  namespace fs = std::filesystem;
  if (filter.empty() || filter == "/") return;
  std::string rel = filter.front() == '/' ? filter : "/" + filter;
  std::error_code ec;
  if (fs::is_directory(mount + rel, ec)) return;
  fs::path parent = fs::path(rel).parent_path();
  while (!parent.empty() && parent != "/" && !fs::is_directory(mount + parent.string(), ec)) parent = parent.parent_path();
  std::vector<std::string> children;
  std::string base = parent.empty() || parent == "/" ? "" : parent.string();
  for (fs::directory_iterator it(mount + base, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory(ec)) children.push_back(base + "/" + it->path().filename().string());
  std::sort(children.begin(), children.end());
  std::size_t more = children.size() > 10 ? children.size() - 10 : 0;
  if (more) children.resize(10);
  throw UserError(fmt::format("--cgroup {}: no such cgroup under {} (paths are relative to it); {} holds: {}{}", filter,
                              mount, base.empty() ? "/" : base, children.empty() ? "nothing" : fmt::format("{}", fmt::join(children, ", ")),
                              more ? fmt::format(" and {} more", more) : ""));
}

bpf::AddrRange range_of(const symbols::KernelSymbols& syms, const char* function) {
  auto r = syms.function_range(function);
  if (!r) return {};
  return {r->first, r->second};
}

}  // namespace

// The kernel's per-program run-time statistics cost every BPF program a clock
// read per run (measured: the empty-program floor drops from 0.94 to 0.83 of
// untraced throughput). Switched on one second in ten, they still give our
// cost per event, at a tenth of the price.
class CostSampler {
 public:
  explicit CostSampler(bpf::Tracer& tracer) : tracer_(tracer), thread_([this] { run(); }) {}
  ~CostSampler() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
    tracer_.measure_cost(false);
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      tracer_.measure_cost(true);
      if (wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; })) break;
      tracer_.measure_cost(false);
      wake_.wait_for(lock, std::chrono::seconds(9), [&] { return stop_; });
    }
  }
  bpf::Tracer& tracer_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

Session::~Session() = default;

Session::Session(SessionOptions options) : options_(std::move(options)), pod_names_(options_.kubelet_logs) {
  bpf::require_privileges();
  symbols_ = symbols::KernelSymbols::load();
  if (auto mount = discover_cgroup2_mount()) {
    cgroups_.emplace(*mount);
    cgroups_->refresh();
  } else {
    spdlog::warn("no cgroup2 mount found: cgroups are shown by id");
  }
  aliases_ = slab::read_slab_aliases();
  owners_ = census::OwnerResolver::for_node(cgroups_ ? cgroups_->mount_point() : std::string(), &pod_names_);
  std::string no_counts;
  skb_iterators_ = census::SkbIterators::load(&no_counts);
  if (!skb_iterators_) spdlog::info("socket census without exact skb counts: {}", no_counts);
  // Before the first event is traced: the queues that predate the run.
  census_start_ = take_census();
  if (cgroups_) memory_start_ = read_memory_stats(cgroups_->mount_point());
  slabinfo_start_ = procfs::read_slabinfo();
  check_cache_filters(options_.caches, slabinfo_start_, aliases_);
  if (!options_.cgroup_filter.empty()) {
    if (!cgroups_) throw UserError("--cgroup needs a cgroup2 mount, and this node has none");
    check_cgroup_filter(options_.cgroup_filter, cgroups_->mount_point());
  }

  auto& t = options_.tracer;
  for (const auto& name : options_.caches) {
    if (auto key = model::kmalloc_key(name))
      t.cache_keys.push_back(*key);
    else
      // Merged caches allocate under the name of the cache they merged into.
      for (const auto& alias : aliases_.aliases_of(name)) {
        if (std::find(t.cache_names.begin(), t.cache_names.end(), alias) == t.cache_names.end())
          t.cache_names.push_back(alias);
      }
    if (t.cache_names.empty() && !model::kmalloc_key(name)) t.cache_names.push_back(name);
  }
  t.skb_alloc_ranges = {range_of(symbols_, "__alloc_skb"), range_of(symbols_, "kmalloc_reserve")};
  t.skb_clone_range = range_of(symbols_, "skb_clone");
  t.skb_data_site_is_caller = t.skb_alloc_ranges[0].start && !t.skb_alloc_ranges[1].start;
  // Where the BPF memory allocator (our own map elements) calls kmalloc, and
  // the slab allocator's per-slab metadata (obj_exts vectors, allocated when
  // any memcg-accounted slab is created; our map elements' slabs among them).
  for (const char* fn : {"alloc_bulk", "__alloc", "bpf_mem_refill", "alloc_slab_obj_exts"})
    if (auto r = range_of(symbols_, fn); r.start) t.ignore_ranges.push_back(r);
  if (!t.skb_alloc_ranges[0].start) spdlog::warn("__alloc_skb not in kallsyms: sk_buff heads and data are not paired");
  t.page_offset_base_addr = symbols_.variable_address("page_offset_base").value_or(0);
  t.vmemmap_base_addr = symbols_.variable_address("vmemmap_base").value_or(0);
  tracer_ = std::make_unique<bpf::Tracer>(t);
  prime_skb_head_cache();
  started_ = std::chrono::steady_clock::now();
  if (options_.measure_cost) cost_sampler_ = std::make_unique<CostSampler>(*tracer_);
  for (const auto& limit : tracer_->limitations()) spdlog::info("{}", limit);
}

sockets::SkbCounter Session::skb_counter() const {
  sockets::SkbCounter count = skb_iterators_ ? skb_iterators_->counter() : sockets::SkbCounter();
  if (!tracer_ || !tracer_->walks_queues()) return count;
  // The census visits every network namespace on one thread: the queue walk
  // rides along, so that each tracked head in a queue is tied to its socket
  // by the time the table is read.
  const bpf::Tracer* tracer = tracer_.get();
  auto first = std::make_shared<bool>(true);  // packet sockets: once per census, in whichever namespace
  return [tracer, count, first](std::uint64_t netns) {
    sockets::SkbCountScan scan;
    if (count) scan = count(netns);
    scan.netns = netns;
    for (auto& w : tracer->tie_queues(*first)) scan.warnings.push_back(std::move(w));
    *first = false;
    return scan;
  };
}

census::Census Session::take_census() {
  sockets::ScanOptions options;
  options.count_skbs = skb_counter();
  census::Census now = census::take_census(owners_, options);
  for (const auto& w : now.warnings) spdlog::debug("socket census: {}", w);
  spdlog::debug("socket census: {} sockets, {} holding {} bytes, {} namespaces, {:.3f}s", now.sockets_seen,
                now.sockets.size(), now.queued_bytes, now.namespaces, now.took_s);
  return now;
}

// Heads from the NAPI skb cache are adopted into the skb head cache's bucket,
// which the BPF side learns from the first head it sees allocated
// (bpf/napi.bpf.h): one datagram over a private socketpair allocates one.
void Session::prime_skb_head_cache() {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) != 0) return;
  UniqueFd sender(pair[0]), receiver(pair[1]);
  char byte = 0;
  if (::send(sender.get(), &byte, 1, MSG_DONTWAIT) == 1) (void)::recv(receiver.get(), &byte, 1, MSG_DONTWAIT);
}

double Session::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

std::string Session::cgroup_path(std::uint64_t id) {
  if (model::is_interrupt_cgroup(id)) return model::cgroup_label(id, std::nullopt);
  auto it = path_cache_.find(id);
  if (it != path_cache_.end()) return it->second;
  std::optional<std::string> path;
  if (cgroups_) path = cgroups_->path_of(id);
  std::string label = model::cgroup_label(id, path);
  // Unknown ids are retried on the next call (the cgroup may be brand new).
  if (path) path_cache_.emplace(id, label);
  return label;
}

k8s::Workload Session::workload_of(const std::string& path) {
  return pod_names_.lookup(cgroups::parse_container(path));
}

bool Session::cgroup_selected(std::uint64_t id) {
  if (options_.cgroup_filter.empty()) return true;
  return model::cgroup_matches(cgroup_path(id), options_.cgroup_filter);
}

bool Session::cache_selected(const std::string& name) const {
  if (options_.caches.empty()) return true;
  for (const auto& wanted : options_.caches) {
    if (wanted == name) return true;
    auto aliases = aliases_.aliases_of(wanted);
    if (std::find(aliases.begin(), aliases.end(), name) != aliases.end()) return true;
  }
  return false;
}

model::Snapshot Session::snapshot() { return snapshot_of(tracer_->buckets()); }

model::Snapshot Session::snapshot_recycling() {
  std::vector<bpf::BucketSnapshot> buckets = tracer_->buckets();
  std::vector<std::uint32_t> retired = recycle(buckets);
  if (!retired.empty()) {
    std::sort(retired.begin(), retired.end());
    buckets.erase(std::remove_if(buckets.begin(), buckets.end(),
                                 [&](const bpf::BucketSnapshot& b) {
                                   return std::binary_search(retired.begin(), retired.end(), b.index);
                                 }),
                  buckets.end());
  }
  return snapshot_of(buckets);
}

model::Snapshot Session::snapshot_of(const std::vector<bpf::BucketSnapshot>& buckets) {
  buckets_in_use_ = buckets.size();
  model::Snapshot snap;
  snap.elapsed_s = elapsed_s();
  for (const auto& b : buckets) {
    model::Bucket out;
    out.index = b.index;
    out.cache = model::cache_name(b.info.cache, b.info.name);
    out.cgroup_id = b.info.cgroup;
    out.object_size = b.info.object_size;
    out.ignored = (b.info.flags & ST_BUCKET_IGNORED) != 0;
    out.counts = model::Counts::from(b.counters, b.info.object_size, scale());
    if (out.ignored || !cache_selected(out.cache) || !cgroup_selected(out.cgroup_id)) continue;
    snap.buckets.push_back(std::move(out));
  }
  return snap;
}

std::vector<std::uint32_t> Session::recycle(const std::vector<bpf::BucketSnapshot>& buckets) {
  if (!cgroups_) return {};
  std::unordered_map<std::uint64_t, bool> gone;  // many buckets share a cgroup: ask once each
  std::unordered_map<std::uint64_t, std::size_t> kept;  // buckets of a gone cgroup that stay
  std::set<std::pair<std::uint32_t, std::uint64_t>> dead_now;
  std::vector<std::uint32_t> retire;
  for (const auto& b : buckets) {
    std::uint64_t id = b.info.cgroup;
    if (id == 0 || model::is_interrupt_cgroup(id)) continue;
    auto [it, first] = gone.try_emplace(id, false);
    if (first) it->second = cgroups_->exists(id) == false;  // unknown: assume it exists
    if (!it->second) continue;
    std::pair key{b.index, id};
    if (model::Counts::from(b.counters, b.info.object_size).outstanding() != 0) {
      ++kept[id];  // objects it counted are still live: it stays, and so does its name
    } else if (dead_buckets_.count(key)) {
      retire.push_back(b.index);
    } else {
      dead_now.insert(key);
      ++kept[id];
    }
  }
  dead_buckets_ = std::move(dead_now);
  std::vector<std::uint32_t> retired = retire.empty() ? retire : tracer_->retire_buckets(retire);
  retired_total_ += retired.size();
  if (!retired.empty()) {
    // A cgroup none of whose buckets is left is forgotten: its path too.
    for (const auto& [id, is_gone] : gone) {
      if (!is_gone || kept.count(id)) continue;
      path_cache_.erase(id);
      cgroups_->forget(id);
    }
    spdlog::debug("retired {} buckets of cgroups that are gone", retired.size());
  }
  return retired;
}

void Session::mark_interval() {
  model::IntervalPoint p;
  model::Snapshot now = snapshot();
  p.elapsed_s = now.elapsed_s;
  for (const auto& b : now.buckets) p.outstanding[b.index] = b.counts.outstanding();
  try {
    for (const auto& e : procfs::read_slabinfo()) p.slab_active[e.name] = e.active_objs;
  } catch (const std::exception& e) {
    spdlog::debug("interval: {}", e.what());
  }
  intervals_.push_back(std::move(p));
}

std::vector<std::string> Session::symbolize(const std::vector<std::uint64_t>& addrs, bool with_offsets) const {
  std::vector<std::string> out;
  out.reserve(addrs.size());
  for (auto a : addrs) {
    if (with_offsets) {
      out.push_back(symbols_.format(a));
    } else {
      auto r = symbols_.resolve(a);
      out.push_back(r.found ? r.name : fmt::format("{:#x}", a));
    }
  }
  return out;
}

namespace {

// The tracer's maps, as aggregate() asks for them.
class TracerSource final : public model::TraceSource {
 public:
  explicit TracerSource(const bpf::Tracer& tracer) : t_(tracer) {}
  void for_each_live(const std::function<void(const bpf::LiveObject&)>& fn) const override { t_.for_each_live(fn); }
  std::optional<bpf::LiveObject> find_live(std::uint64_t addr) const override { return t_.find_live(addr); }
  std::vector<std::uint64_t> stack(std::int32_t id) const override { return t_.stack(id); }
  std::optional<st_sock> socket(std::uint64_t sk) const override { return t_.socket(sk); }
  std::vector<std::pair<std::uint32_t, std::uint64_t>> drops() const override { return t_.drops(); }
  std::vector<std::pair<st_drop_key, std::uint64_t>> drops_by_socket() const override { return t_.drops_by_socket(); }
  std::vector<std::pair<st_adopt_key, st_adopt_dev>> adopted() const override { return t_.adopted(); }
  st_stats stats() const override { return t_.stats(); }
  std::vector<bpf::ProgramCost> program_costs() const override { return t_.program_costs(); }
  std::uint32_t live_capacity() const override { return t_.live_capacity(); }

 private:
  const bpf::Tracer& t_;
};

}  // namespace

// The node, as aggregate() asks about it: names from the session's resolvers,
// sockets from one scan made the first time one is asked for.
class Session::NodeView final : public model::KernelView {
 public:
  explicit NodeView(Session& s) : s_(s) {}
  std::string cgroup_path(std::uint64_t id) override { return s_.cgroup_path(id); }
  std::optional<std::uint64_t> cgroup_id_of(const std::string& path) override {
    if (!s_.cgroups_) return std::nullopt;
    return cgroups::cgroup_id_of(s_.cgroups_->mount_point() + (path == "/" ? "" : path));
  }
  k8s::Workload workload_of(const std::string& path) override { return s_.workload_of(path); }
  std::string slabinfo_name(const std::string& cache) override {
    return s_.aliases_.slabinfo_name(cache, s_.slabinfo_start_);
  }
  std::vector<std::string> aliases_of(const std::string& cache) override { return s_.aliases_.aliases_of(cache); }
  bool reclaimable(const std::string& name) override { return slab::is_reclaimable(name); }
  std::vector<std::string> symbolize(const std::vector<std::uint64_t>& addrs, bool with_offsets) override {
    return s_.symbolize(addrs, with_offsets);
  }
  const census::Census& socket_census() override {
    if (!census_) census_ = s_.take_census();
    return *census_;
  }
  const census::Census* socket_census_at_start() override { return &s_.census_start_; }
  std::vector<census::Owner> resolve_owners(const std::vector<sockets::Owner>& processes) override {
    return s_.owners_.resolve(processes);
  }
  const std::map<std::uint32_t, std::string>& drop_reasons() override {
    if (!reasons_) {
      reasons_.emplace();
      for (const auto& [value, name] : btf::enum_names("skb_drop_reason", "SKB_DROP_REASON_")) reasons_->emplace(std::uint32_t(value), name);
    }
    return *reasons_;
  }

 private:
  Session& s_;
  std::optional<census::Census> census_;
  std::optional<std::map<std::uint32_t, std::string>> reasons_;
};

model::Report Session::report() {
  model::RunSnapshot run;
  run.kernel = procfs::kernel_release();
  run.duration_s = elapsed_s();
  run.sample_rate = scale();
  run.stack_sample_rate = options_.tracer.stack_shift == ST_STACK_NONE ? 0 : stack_scale();
  run.stack_budget = std::uint64_t(options_.tracer.stack_budget) * 1000000000ull / ST_STACK_WINDOW_NS;
  run.attach_mode = bpf::to_string(tracer_->attach_mode());
  run.kernel_limits = tracer_->limitations();
  run.min_age_s = options_.min_age_s;
  run.top = options_.top;
  run.cache_filter = options_.caches;
  run.counters = snapshot();
  run.slabinfo_start = slabinfo_start_;
  run.intervals = intervals_;
  run.memory_start = memory_start_;
  if (cgroups_ && !memory_start_.empty()) run.memory_end = read_memory_stats(cgroups_->mount_point(), &memory_start_);
  try {
    run.slabinfo_end = procfs::read_slabinfo();
  } catch (const std::exception& e) {
    run.slabinfo_end_error = e.what();
  }
  NodeView node(*this);
  // The census first: its queue walk ties queued heads to their sockets
  // before aggregate() reads the table.
  node.socket_census();
  return model::aggregate(run, TracerSource(*tracer_), node);
}

}  // namespace slabtrace
