#pragma once
// A recording made up in memory: the tracer's maps (FakeTrace) and the node
// (FakeKernel) that aggregate() reads, with /proc/slabinfo from the fixture of
// a real kernel. Tests fill them the way a run would, then aggregate.
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "slabtrace/aggregate.hpp"
#include "slabtrace/procfs.hpp"

namespace fakerun {

using namespace slabtrace;

inline procfs::Slabinfo fixture_slabinfo() {
  std::ifstream in(std::string(SLABTRACE_FIXTURES) + "/procfs/slabinfo");
  return procfs::parse_slabinfo(in);
}

// Sets a cache's active count in a slabinfo copy.
inline void set_active(procfs::Slabinfo& info, const std::string& name, std::uint64_t active) {
  for (auto& e : info)
    if (e.name == name) {
      e.active_objs = active;
      e.num_objs = std::max(e.num_objs, active);
      return;
    }
  procfs::SlabinfoEntry e;
  e.name = name;
  e.active_objs = e.num_objs = active;
  info.push_back(e);
}
inline std::uint64_t active_of(const procfs::Slabinfo& info, const std::string& name) {
  const auto* e = procfs::find_cache(info, name);
  return e ? e->active_objs : 0;
}

class FakeTrace final : public model::TraceSource {
 public:
  std::vector<bpf::LiveObject> live;
  std::map<std::int32_t, std::vector<std::uint64_t>> stacks;
  std::map<std::uint64_t, st_sock> socks;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> drop_counts;
  std::vector<std::pair<st_drop_key, std::uint64_t>> socket_drops;
  st_stats health{};
  std::vector<bpf::ProgramCost> costs;

  void for_each_live(const std::function<void(const bpf::LiveObject&)>& fn) const override {
    for (const auto& o : live) fn(o);
  }
  std::optional<bpf::LiveObject> find_live(std::uint64_t addr) const override {
    for (const auto& o : live)
      if (o.addr == addr) return o;
    return std::nullopt;
  }
  std::vector<std::uint64_t> stack(std::int32_t id) const override {
    auto it = stacks.find(id);
    return it == stacks.end() ? std::vector<std::uint64_t>{} : it->second;
  }
  std::optional<st_sock> socket(std::uint64_t sk) const override {
    auto it = socks.find(sk);
    if (it == socks.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::pair<std::uint32_t, std::uint64_t>> drops() const override { return drop_counts; }
  std::vector<std::pair<st_drop_key, std::uint64_t>> drops_by_socket() const override { return socket_drops; }
  st_stats stats() const override { return health; }
  std::vector<bpf::ProgramCost> program_costs() const override { return costs; }
  std::vector<std::pair<st_adopt_key, st_adopt_dev>> adopted_devices;
  std::vector<std::pair<st_adopt_key, st_adopt_dev>> adopted() const override { return adopted_devices; }
  std::uint32_t live_capacity() const override { return 1u << 20; }

  // n live objects of a bucket, allocated evenly over [age_min_s, age_max_s] ago.
  void add_live(std::uint32_t bucket, std::uint64_t n, double age_min_s, double age_max_s, std::int32_t stack_id = -1,
                std::uint32_t flags = 0, std::uint64_t link = 0) {
    for (std::uint64_t i = 0; i < n; ++i) {
      bpf::LiveObject o;
      o.addr = next_addr_ += 0x100;
      o.bucket = bucket;
      o.stack_id = stack_id;
      o.flags = flags;
      o.link = link;
      double f = n > 1 ? double(i) / double(n - 1) : 0.0;
      o.age_ms = std::uint64_t((age_min_s + (age_max_s - age_min_s) * f) * 1000.0);
      live.push_back(o);
    }
  }
  std::uint64_t last_addr() const { return next_addr_; }

 private:
  std::uint64_t next_addr_ = 0xffff888000000000ull;
};

class FakeKernel final : public model::KernelView {
 public:
  std::map<std::uint64_t, std::string> paths = {{1, "/"}};
  std::map<std::string, std::vector<std::string>> aliases;  // name -> all names of its cache
  std::set<std::string> reclaim;                          // reclaimable slabinfo names
  std::map<std::uint64_t, sockets::SocketInfo> sockets_by_inode;
  std::map<std::uint32_t, std::string> reasons = {{2, "NOT_SPECIFIED"}, {6, "SOCKET_RCVBUFF"}};
  std::map<std::uint64_t, std::string> symbols;  // address -> function
  const procfs::Slabinfo* slabinfo_start = nullptr;

  std::string cgroup_path(std::uint64_t id) override {
    if (model::is_interrupt_cgroup(id)) return model::cgroup_label(id, std::nullopt);
    auto it = paths.find(id);
    return model::cgroup_label(id, it == paths.end() ? std::nullopt : std::optional<std::string>(it->second));
  }
  std::optional<std::uint64_t> cgroup_id_of(const std::string& path) override {
    for (const auto& [id, p] : paths)
      if (p == path) return id;
    return std::nullopt;
  }
  k8s::Workload workload_of(const std::string&) override { return {}; }
  std::string slabinfo_name(const std::string& cache) override {
    if (!slabinfo_start || procfs::find_cache(*slabinfo_start, cache)) return cache;
    for (const auto& a : aliases_of(cache))
      if (procfs::find_cache(*slabinfo_start, a)) return a;
    return cache;
  }
  std::vector<std::string> aliases_of(const std::string& cache) override {
    auto it = aliases.find(cache);
    return it == aliases.end() ? std::vector<std::string>{cache} : it->second;
  }
  bool reclaimable(const std::string& name) override { return reclaim.count(name) > 0; }
  std::vector<std::string> symbolize(const std::vector<std::uint64_t>& addrs, bool with_offsets) override {
    std::vector<std::string> out;
    for (auto a : addrs) {
      auto it = symbols.find(a);
      std::string name = it == symbols.end() ? "0x" + std::to_string(a) : it->second;
      out.push_back(with_offsets ? name + "+0x10" : name);
    }
    return out;
  }
  // The census of the sockets in sockets_by_inode, owners named from `paths`.
  census::OwnerResolver owner_resolver() {
    return census::OwnerResolver([this](const std::string& path) { return cgroup_id_of(path); },
                                 [this](const std::string& path) { return workload_of(path); });
  }
  const census::Census& socket_census() override {
    std::vector<sockets::SocketInfo> all;
    for (const auto& [inode, s] : sockets_by_inode) all.push_back(s);
    auto resolver = owner_resolver();
    census_ = census::build_census(all, resolver);
    return census_;
  }
  const census::Census* socket_census_at_start() override { return census_start ? &*census_start : nullptr; }
  std::vector<census::Owner> resolve_owners(const std::vector<sockets::Owner>& processes) override {
    return owner_resolver().resolve(processes);
  }
  std::optional<census::Census> census_start;
  census::Census census_;
  const std::map<std::uint32_t, std::string>& drop_reasons() override { return reasons; }
};

// An inet socket at kernel address `sk` that the tracer saw skbs queued on,
// and the node's view of it (sock_diag, /proc): `queued` bytes in its receive
// queue. protocol: "udp" or "tcp". Returns the node's entry (owners are the
// test's to add).
inline sockets::SocketInfo& add_inet_socket(FakeTrace& trace, FakeKernel& kernel, std::uint64_t sk, std::uint64_t inode,
                                            const std::string& protocol, std::uint64_t queued, std::uint64_t netns = 0) {
  const bool udp = protocol == "udp";
  st_sock s{};
  s.inode = inode;
  s.netns = netns;
  s.family = 2;          // AF_INET
  s.type = udp ? 2 : 1;  // SOCK_DGRAM, SOCK_STREAM
  s.protocol = udp ? 17 : 6;
  trace.socks[sk] = s;
  sockets::SocketInfo info;
  info.inode = inode;
  info.family = "inet";
  info.protocol = protocol;
  info.rx_queue_bytes = queued;
  return kernel.sockets_by_inode[inode] = info;
}

// A UDP socket's holder as the report names it: the blamed process and its cgroup.
inline model::SkbHolder udp_holder(std::uint64_t inode, int pid, const std::string& comm, const std::string& cgroup_path) {
  model::SkbHolder h;
  h.socket_inode = inode;
  h.protocol = "udp";
  h.pid = pid;
  h.comm = comm;
  h.cgroup_path = cgroup_path;
  return h;
}

// A bucket of the final counters: `tracked` objects seen allocated, `ended` of them freed.
inline model::Bucket bucket(std::uint32_t index, const std::string& cache, std::uint64_t cgroup, std::uint32_t size,
                            std::uint64_t tracked, std::uint64_t ended) {
  model::Bucket b;
  b.index = index;
  b.cache = cache;
  b.cgroup_id = cgroup;
  b.object_size = size;
  b.counts.allocs = tracked;
  b.counts.tracked = tracked;
  b.counts.tracked_bytes = tracked * size;
  b.counts.ended[ST_END_FREE] = ended;
  b.counts.ended_bytes = ended * size;
  return b;
}

}  // namespace fakerun
