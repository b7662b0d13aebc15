// Bodies of the fuzz targets (see fuzz_targets.hpp).
#include "fuzz_targets.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>

#include "slabtrace/cgroups.hpp"
#include "slabtrace/error.hpp"
#include "slabtrace/http_server.hpp"
#include "slabtrace/k8s_names.hpp"
#include "slabtrace/nodemem.hpp"
#include "slabtrace/procfs.hpp"
#include "slabtrace/sockets.hpp"
#include "slabtrace/symbols.hpp"

namespace slabtrace::fuzz {

namespace {

// A broken promise of a parser: abort so that the fuzzer keeps the input.
#define FUZZ_ASSERT(cond)                                                   \
  do {                                                                      \
    if (!(cond)) {                                                          \
      __builtin_printf("fuzz: assertion failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                         \
    }                                                                       \
  } while (0)

std::istringstream stream_of(std::string_view input) { return std::istringstream(std::string(input)); }

void slabinfo(std::string_view input) {
  auto in = stream_of(input);
  auto info = procfs::parse_slabinfo(in);
  for (const auto& e : info) FUZZ_ASSERT(procfs::find_cache(info, e.name) != nullptr);
}

void kallsyms(std::string_view input) {
  auto in = stream_of(input);
  auto symbols = symbols::KernelSymbols::parse(in);
  // Look up addresses taken from the input itself, and the edges.
  for (std::uint64_t addr : {std::uint64_t(0), std::uint64_t(1), ~std::uint64_t(0), std::uint64_t(0xffffffff81000000)}) {
    auto r = symbols.resolve(addr);
    FUZZ_ASSERT(!r.name.empty());
    (void)symbols.format(addr);
  }
  for (std::size_t i = 0; i + 16 <= input.size() && i < 4096; i += 97) {
    std::uint64_t addr = std::strtoull(std::string(input.substr(i, 16)).c_str(), nullptr, 16);
    (void)symbols.format(addr);
    if (auto range = symbols.function_range("udp_sendmsg")) FUZZ_ASSERT(range->first <= range->second);
  }
}

void mountinfo(std::string_view input) {
  auto in = stream_of(input);
  auto mounts = procfs::parse_mountinfo(in);
  (void)procfs::find_cgroup2_mount(mounts);
  (void)procfs::find_mount(mounts, "tracefs");
}

void proc_cgroup(std::string_view input) {
  auto in = stream_of(input);
  auto entries = procfs::parse_proc_cgroup(in);
  if (auto path = procfs::cgroup2_path(entries)) (void)cgroups::parse_container(*path);
}

void meminfo(std::string_view input) {
  auto in = stream_of(input);
  auto m = node::parse_meminfo(in);
  (void)node::field_or_zero(m, "SUnreclaim");
}

void vmstat(std::string_view input) {
  auto in = stream_of(input);
  auto v = node::parse_vmstat(in);
  (void)node::swap_counters(v);
}

void pressure(std::string_view input) {
  auto in = stream_of(input);
  auto p = node::parse_pressure(in);
  for (const auto* l : {&p.some, &p.full})
    for (double share : {l->avg10, l->avg60, l->avg300}) FUZZ_ASSERT(std::isfinite(share) && share >= 0);
}

void loadavg(std::string_view input) {
  auto in = stream_of(input);
  auto l = node::parse_loadavg(in);
  for (double load : {l.avg1, l.avg5, l.avg15}) FUZZ_ASSERT(std::isfinite(load) && load >= 0);
}

void cpu_list(std::string_view input) {
  auto in = stream_of(input);
  (void)node::parse_cpu_count(in);
}

void proc_net_inet(std::string_view input) {
  auto in = stream_of(input);
  for (const auto& s : sockets::parse_proc_net_inet(in)) FUZZ_ASSERT(!s.local_address.empty());
}

void proc_net_unix(std::string_view input) {
  auto in = stream_of(input);
  (void)sockets::parse_proc_net_unix(in);
}

void proc_net_packet(std::string_view input) {
  auto in = stream_of(input);
  (void)sockets::parse_proc_net_packet(in);
}

// sock_diag dump replies (the netlink message and attribute walker), read
// as each family's reply, then unix queues attributed across them.
void sock_diag(std::string_view input) {
  std::vector<sockets::QueueAccounting> all;
  for (sockets::DiagQuery q : {sockets::DiagQuery{AF_UNIX, 0}, sockets::DiagQuery{AF_INET, IPPROTO_UDP},
                               sockets::DiagQuery{AF_INET6, IPPROTO_TCP}, sockets::DiagQuery{AF_INET, IPPROTO_UDPLITE},
                               sockets::DiagQuery{AF_PACKET, 0}, sockets::DiagQuery{AF_NETLINK, 0}}) {
    std::vector<sockets::QueueAccounting> out;
    auto end = sockets::parse_diag_dump(input, q, 4026531840u, out);
    FUZZ_ASSERT(end.error >= 0 || end.done);
    FUZZ_ASSERT(out.size() <= input.size() / 16 + 1);  // no socket from nothing
    all.insert(all.end(), out.begin(), out.end());
  }
  sockets::attribute_unix_queues(all, [](std::uint64_t len) { return len + 768; });
}

void container(std::string_view input) {
  auto c = cgroups::parse_container(input);
  if (c.container_id) FUZZ_ASSERT(!c.container_id->empty());
  if (c.pod_uid) FUZZ_ASSERT(!c.pod_uid->empty());
}

void kubelet_names(std::string_view input) {
  if (auto log = k8s::parse_container_log(input)) FUZZ_ASSERT(log->container_id.size() == 64);
  if (auto pod = k8s::parse_pod_dir(input)) FUZZ_ASSERT(!pod->uid.empty());
}

// Request heads as serve's server reads them: parsed, pipelined, routed.
void http_request(std::string_view input) {
  static http::SharedPage page;
  std::string_view rest = input;
  for (int i = 0; i < 16 && !rest.empty(); ++i) {
    auto p = http::parse_request(rest, 8192);
    if (p.status != http::ParseStatus::complete) {
      FUZZ_ASSERT(p.status == http::ParseStatus::incomplete || !p.reason.empty());
      return;
    }
    FUZZ_ASSERT(p.consumed > 0 && p.consumed <= rest.size() && p.consumed <= 8192);
    auto r = http::route_exporter(p.request, page, "text/plain; version=0.0.4", "ok\n");
    FUZZ_ASSERT(r.status == 200 || r.status == 404 || r.status == 405);
    if (r.status == 200) FUZZ_ASSERT(p.request.path == "/metrics" || p.request.path == "/healthz");
    std::string head = http::response_head(r, r.body ? r.body->size() : 0, p.request.keep_alive);
    FUZZ_ASSERT(head.find("\r\n\r\n") == head.size() - 4);  // nothing from the request reaches the head
    rest.remove_prefix(p.consumed);
  }
}

const std::vector<Target> kTargets = {
    {"slabinfo", slabinfo, {"procfs/slabinfo", "procfs/slabinfo-slab-allocator", "doctor/healthy/proc/slabinfo", "doctor/broken/proc/slabinfo"}},
    {"kallsyms", kallsyms, {"procfs/kallsyms", "procfs/kallsyms-modules"}},
    {"mountinfo", mountinfo, {"procfs/mountinfo", "cgroups/k8s-node-mountinfo"}},
    {"proc_cgroup", proc_cgroup, {"procfs/cgroup", "cgroups/k8s-pod-cgroup", "cgroups/k8s-pod-cgroup-v1"}},
    {"meminfo", meminfo, {"doctor/healthy/proc/meminfo", "doctor/broken/proc/meminfo"}},
    {"vmstat", vmstat, {"doctor/healthy/proc/vmstat", "doctor/broken/proc/vmstat"}},
    {"pressure", pressure, {"doctor/healthy/proc/pressure/memory", "doctor/broken/proc/pressure/memory"}},
    {"loadavg", loadavg, {"doctor/healthy/proc/loadavg", "doctor/broken/proc/loadavg"}},
    {"cpu_list", cpu_list, {"doctor/healthy/sys/devices/system/cpu/online"}},
    {"proc_net_inet", proc_net_inet, {"net/udp", "net/udp6", "net/tcp", "net/tcp6", "net/raw"}},
    {"proc_net_unix", proc_net_unix, {"net/unix"}},
    {"proc_net_packet", proc_net_packet, {"net/packet"}},
    {"sock_diag", sock_diag, {"net/diag-unix.bin", "net/diag-udp.bin", "net/diag-udp6.bin", "net/diag-tcp.bin",
                              "net/diag-udplite.bin", "net/diag-packet.bin", "net/diag-netlink.bin"}},
    {"container", container, {"fuzz/container"}},
    {"kubelet_names", kubelet_names, {"fuzz/kubelet_names"}},
    {"http_request", http_request, {"fuzz/http_request"}},
};

}  // namespace

const std::vector<Target>& targets() { return kTargets; }

const Target* find_target(std::string_view name) {
  for (const auto& t : kTargets)
    if (name == t.name) return &t;
  return nullptr;
}

void run_one(const Target& target, std::string_view input) {
  try {
    target.run(input);
  } catch (const ParseError&) {
    // The documented answer to a malformed file.
  } catch (const UserError&) {
    // kallsyms with every address zero (kptr_restrict), the documented answer.
  }
}

}  // namespace slabtrace::fuzz
