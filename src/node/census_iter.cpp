// Exact sk_buff counts from BPF socket iterators (census_iter.hpp).
#include "slabtrace/census_iter.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "census_iter.skel.h"
#include "slabtrace/census_iter.h"
#include "slabtrace/bpf_iter.hpp"

namespace slabtrace::census {

static_assert(sizeof(st_iter_socket) == 40, "st_iter_socket: the BPF side writes 40 bytes a socket");

namespace {

// libbpf's own lines go to the debug log: a kernel without an iterator is an
// expected case here, never a dump on the user's terminal.
int quiet_print(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  int n = std::vsnprintf(line, sizeof line, format, args);
  std::string_view text(line, n > 0 ? std::min<std::size_t>(std::size_t(n), sizeof line - 1) : 0);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  spdlog::debug("census iterators: libbpf: {}", text);
  return 0;
}

// libbpf has one print callback per process: ours only while we load.
class QuietLibbpf {
 public:
  QuietLibbpf() : previous_(libbpf_set_print(quiet_print)) {}
  ~QuietLibbpf() { libbpf_set_print(previous_); }
  QuietLibbpf(const QuietLibbpf&) = delete;
  QuietLibbpf& operator=(const QuietLibbpf&) = delete;

 private:
  libbpf_print_fn_t previous_;
};

struct Target {
  sockets::SkbCountKind kind;
  const char* name;          // for messages: "udp"
  const char* kernel_func;   // what the kernel registers the iterator as
};
constexpr Target kTargets[] = {
    {sockets::SkbCountKind::Udp, "udp", "bpf_iter_udp"},
    {sockets::SkbCountKind::Tcp, "tcp", "bpf_iter_tcp"},
    {sockets::SkbCountKind::Unix, "unix", "bpf_iter_unix"},
    {sockets::SkbCountKind::Netlink, "netlink", "bpf_iter_netlink"},
};

bpf_program* program_of(census_iter_bpf* skel, sockets::SkbCountKind kind) {
  switch (kind) {
    case sockets::SkbCountKind::Udp: return skel->progs.st_iter_udp;
    case sockets::SkbCountKind::Tcp: return skel->progs.st_iter_tcp;
    case sockets::SkbCountKind::Unix: return skel->progs.st_iter_unix;
    case sockets::SkbCountKind::Netlink: return skel->progs.st_iter_netlink;
  }
  return nullptr;
}

sockets::SkbCountKind kind_of_record(__u32 kind) {
  switch (kind) {
    case ST_ITER_TCP: return sockets::SkbCountKind::Tcp;
    case ST_ITER_UNIX: return sockets::SkbCountKind::Unix;
    case ST_ITER_NETLINK: return sockets::SkbCountKind::Netlink;
    default: return sockets::SkbCountKind::Udp;
  }
}

const char* name_of(sockets::SkbCountKind kind) {
  for (const auto& t : kTargets)
    if (t.kind == kind) return t.name;
  return "?";
}

}  // namespace

std::vector<sockets::SkbCount> parse_iter_records(std::string_view bytes) {
  std::vector<sockets::SkbCount> out;
  out.reserve(bytes.size() / sizeof(st_iter_socket));
  for (std::size_t at = 0; at + sizeof(st_iter_socket) <= bytes.size(); at += sizeof(st_iter_socket)) {
    st_iter_socket rec;
    std::memcpy(&rec, bytes.data() + at, sizeof rec);
    if (rec.kind < ST_ITER_UDP || rec.kind > ST_ITER_NETLINK) continue;  // not ours: never trust a count of it
    sockets::SkbCount c;
    c.inode = rec.inode;
    c.netns = rec.netns;
    c.kind = kind_of_record(rec.kind);
    c.receive = rec.receive_skbs;
    c.backlog = rec.backlog_skbs;
    c.write = rec.write_skbs;
    c.exact = (rec.flags & ST_ITER_INEXACT) == 0;
    out.push_back(c);
  }
  return out;
}

std::unique_ptr<SkbIterators> SkbIterators::load(std::string* why_not) {
  auto fail = [&](std::string reason) -> std::unique_ptr<SkbIterators> {
    spdlog::debug("census iterators: {}", reason);
    if (why_not) *why_not = std::move(reason);
    return nullptr;
  };
  if (::geteuid() != 0) return fail("not root: no BPF socket iterators, so no exact skb counts");
  QuietLibbpf quiet;
  // Which iterators this kernel registers: a missing one would fail the load.
  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return fail(fmt::format("no kernel BTF ({}): no BPF socket iterators", std::strerror(errno)));
  std::unique_ptr<SkbIterators> self(new SkbIterators());
  self->skel_ = census_iter_bpf__open();
  if (!self->skel_) {
    btf__free(vmlinux);
    return fail(fmt::format("cannot open the iterator object: {}", std::strerror(errno)));
  }
  std::vector<std::string> missing;
  unsigned wanted = 0;
  for (const auto& t : kTargets) {
    const bool present = btf__find_by_name_kind(vmlinux, t.kernel_func, BTF_KIND_FUNC) >= 0;
    bpf_program__set_autoload(program_of(self->skel_, t.kind), present);
    if (present) wanted |= unsigned(t.kind);
    else missing.push_back(t.name);
  }
  btf__free(vmlinux);
  if (wanted == 0) return fail("this kernel has no BPF socket iterators (5.9+)");
  if (int err = census_iter_bpf__load(self->skel_); err != 0)
    return fail(fmt::format("cannot load the socket iterators: {}", std::strerror(-err)));
  for (const auto& t : kTargets) {
    if (!(wanted & unsigned(t.kind))) continue;
    bpf_link* link = bpf_program__attach_iter(program_of(self->skel_, t.kind), nullptr);
    if (!link) {
      missing.push_back(fmt::format("{} ({})", t.name, std::strerror(errno)));
      continue;
    }
    self->iterators_.push_back({t.kind, link});
    self->kinds_ |= unsigned(t.kind);
  }
  if (self->kinds_ == 0) return fail("no BPF socket iterator could be attached");
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    spdlog::debug("census iterators: not on this kernel: {}", list);
  }
  return self;
}

SkbIterators::~SkbIterators() {
  for (auto& it : iterators_) bpf_link__destroy(it.link);
  if (skel_) census_iter_bpf__destroy(skel_);
}

sockets::SkbCountScan SkbIterators::count(std::uint64_t netns) const {
  sockets::SkbCountScan scan;
  scan.netns = netns;
  for (const auto& it : iterators_) {
    // The namespace is the opening thread's: one iterator instance per call.
    std::string bytes;
    if (int error = run_bpf_iterator(bpf_link__fd(it.link), &bytes); error != 0) {
      scan.warnings.push_back(fmt::format("BPF iterator {}: {}; its exact skb counts are skipped", name_of(it.kind),
                                          std::strerror(error)));
      continue;
    }
    for (auto& c : parse_iter_records(bytes))
      if (c.kind == it.kind) scan.sockets.push_back(c);
    scan.kinds |= unsigned(it.kind);
  }
  return scan;
}

sockets::SkbCounter SkbIterators::counter() const {
  return [this](std::uint64_t netns) { return count(netns); };
}

}  // namespace slabtrace::census
