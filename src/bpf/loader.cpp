// Opens, configures, loads and attaches the BPF programs, and reads their maps.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>

#include "slabtrace/bpf_shared.h"
#include "slabtrace.skel.h"
#include "slabtrace_legacy.skel.h"
#include "slabtrace/error.hpp"
#include "slabtrace/procfs.hpp"
#include "slabtrace/tracer.hpp"
#include "slabtrace/bpf_iter.hpp"

// The contract header is shared with BPF: catch layout drift at compile time.
static_assert(sizeof(st_object) == 16, "live-object value: every byte is megabytes at scale");
static_assert(sizeof(st_bucket_key) == 16);
static_assert(sizeof(st_bucket) == 56);
static_assert(sizeof(st_counters) == (2 + ST_END_REASONS) * 8);
static_assert(sizeof(st_sock) == 48);
static_assert(sizeof(st_drop_key) == 24);
static_assert(sizeof(st_stats) == ST_STAT_COUNT * 8);
static_assert(sizeof(st_slot) == 24, "a live-object slot is 24 bytes: the table's memory is slots x 24");
static_assert((ST_MAX_BUCKETS & (ST_MAX_BUCKETS - 1)) == 0 && ST_MAX_BUCKETS <= (1u << ST_OBJ_STACK_SHIFT));
static_assert(ST_MAX_STACKS <= ST_OBJ_NO_STACK);
// One skeleton opens both objects (see Tracer::open_and_load): same maps,
// programs and global data, in the same layout.
static_assert(sizeof(::slabtrace_bpf) == sizeof(::slabtrace_legacy_bpf));
static_assert(sizeof(*::slabtrace_bpf{}.rodata) == sizeof(*::slabtrace_legacy_bpf{}.rodata));
static_assert(sizeof(*::slabtrace_bpf{}.bss) == sizeof(*::slabtrace_legacy_bpf{}.bss));

namespace slabtrace::bpf {
namespace {

// libbpf's own log: shown with -v; otherwise only its last line is kept, to
// explain a failure in one line instead of a verifier dump.
bool g_verbose = false;
std::mutex g_log_mutex;
std::string g_last_libbpf_line;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  // The verifier's log arrives as one message of many kilobytes.
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string line(n > 0 ? std::size_t(n) : 0, '\0');
  if (n > 0) vsnprintf(line.data(), line.size() + 1, format, args);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (g_verbose) {
    spdlog::debug("libbpf: {}", line);
  } else if (level != LIBBPF_DEBUG && !line.empty()) {
    std::lock_guard lock(g_log_mutex);
    g_last_libbpf_line = line;
  }
  return 0;
}

std::string last_libbpf_line() {
  std::lock_guard lock(g_log_mutex);
  return g_last_libbpf_line;
}

std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1000000000ull + std::uint64_t(ts.tv_nsec);
}

bool path_exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

// Does a classic tracepoint's format list a field of that name?
bool tracefs_has_field(const std::string& category, const std::string& event, const std::string& field) {
  for (const char* base : {"/sys/kernel/tracing/events/", "/sys/kernel/debug/tracing/events/"}) {
    std::ifstream in(std::string(base) + category + "/" + event + "/format");
    std::string line;
    while (std::getline(in, line))
      if (line.find("field:") != std::string::npos && line.find(" " + field + ";") != std::string::npos) return true;
  }
  return false;
}

bool tracefs_has_event(const std::string& category, const std::string& event) {
  for (const char* base : {"/sys/kernel/tracing/events/", "/sys/kernel/debug/tracing/events/"})
    if (path_exists(std::string(base) + category + "/" + event)) return true;
  return false;
}

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

// ---- the program table ------------------------------------------------------

using Progs = decltype(std::declval<::slabtrace_bpf>().progs);

enum class Flavour { TpBtf, RawTp, Tracepoint };
// Which mode decides a program's flavour: the allocation events follow the
// attach mode; the others are tp_btf wherever BTF is (their struct arguments
// pass the verifier on every kernel), classic in tracepoint mode.
enum class Group { Kmem, Irq, Skb };

// --irq-context auto found the preempt count unreadable at start-up (see
// Tracer::open_and_load): load again with the entry/exit programs.
struct PreemptCountUnreadable {};

struct ProgramSpec {
  bpf_program* Progs::*prog;
  Flavour flavour;
  Group group;
  const char* category;  // tracefs category of the event
  const char* event;
  bool required;      // the job cannot be done without it
  bool attach_first;  // ends before starts: no entry without its exit, no object tracked whose end goes unseen
};

constexpr bool kRequired = true, kOptional = false, kFirst = true, kAnyOrder = false;

// Every attached program. st_clock and st_layout are run, never attached.
const ProgramSpec kPrograms[] = {
    {&Progs::st_btf_cache_alloc, Flavour::TpBtf, Group::Kmem, "kmem", "kmem_cache_alloc", kRequired, kAnyOrder},
    {&Progs::st_btf_cache_free, Flavour::TpBtf, Group::Kmem, "kmem", "kmem_cache_free", kRequired, kFirst},
    {&Progs::st_btf_kmalloc, Flavour::TpBtf, Group::Kmem, "kmem", "kmalloc", kRequired, kAnyOrder},
    {&Progs::st_btf_kfree, Flavour::TpBtf, Group::Kmem, "kmem", "kfree", kRequired, kFirst},
    {&Progs::st_raw_cache_alloc, Flavour::RawTp, Group::Kmem, "kmem", "kmem_cache_alloc", kRequired, kAnyOrder},
    {&Progs::st_raw_cache_free, Flavour::RawTp, Group::Kmem, "kmem", "kmem_cache_free", kRequired, kFirst},
    {&Progs::st_raw_kmalloc, Flavour::RawTp, Group::Kmem, "kmem", "kmalloc", kRequired, kAnyOrder},
    {&Progs::st_raw_kfree, Flavour::RawTp, Group::Kmem, "kmem", "kfree", kRequired, kFirst},
    // Separate events before 6.1 ("mm/slab_common: unify NUMA and UMA version of tracepoints").
    {&Progs::st_raw_cache_alloc_node, Flavour::RawTp, Group::Kmem, "kmem", "kmem_cache_alloc_node", kOptional, kAnyOrder},
    {&Progs::st_raw_kmalloc_node, Flavour::RawTp, Group::Kmem, "kmem", "kmalloc_node", kOptional, kAnyOrder},
    {&Progs::st_tp_cache_alloc, Flavour::Tracepoint, Group::Kmem, "kmem", "kmem_cache_alloc", kRequired, kAnyOrder},
    {&Progs::st_tp_cache_free, Flavour::Tracepoint, Group::Kmem, "kmem", "kmem_cache_free", kRequired, kFirst},
    {&Progs::st_tp_kmalloc, Flavour::Tracepoint, Group::Kmem, "kmem", "kmalloc", kRequired, kAnyOrder},
    {&Progs::st_tp_kfree, Flavour::Tracepoint, Group::Kmem, "kmem", "kfree", kRequired, kFirst},
    {&Progs::st_tp_cache_alloc_node, Flavour::Tracepoint, Group::Kmem, "kmem", "kmem_cache_alloc_node", kOptional, kAnyOrder},
    {&Progs::st_tp_kmalloc_node, Flavour::Tracepoint, Group::Kmem, "kmem", "kmalloc_node", kOptional, kAnyOrder},
    {&Progs::st_btf_softirq_entry, Flavour::TpBtf, Group::Irq, "irq", "softirq_entry", kOptional, kAnyOrder},
    {&Progs::st_btf_softirq_exit, Flavour::TpBtf, Group::Irq, "irq", "softirq_exit", kOptional, kFirst},
    {&Progs::st_btf_irq_entry, Flavour::TpBtf, Group::Irq, "irq", "irq_handler_entry", kOptional, kAnyOrder},
    {&Progs::st_btf_irq_exit, Flavour::TpBtf, Group::Irq, "irq", "irq_handler_exit", kOptional, kFirst},
    {&Progs::st_tp_softirq_entry, Flavour::Tracepoint, Group::Irq, "irq", "softirq_entry", kOptional, kAnyOrder},
    {&Progs::st_tp_softirq_exit, Flavour::Tracepoint, Group::Irq, "irq", "softirq_exit", kOptional, kFirst},
    {&Progs::st_tp_irq_entry, Flavour::Tracepoint, Group::Irq, "irq", "irq_handler_entry", kOptional, kAnyOrder},
    {&Progs::st_tp_irq_exit, Flavour::Tracepoint, Group::Irq, "irq", "irq_handler_exit", kOptional, kFirst},
    {&Progs::st_btf_consume_skb, Flavour::TpBtf, Group::Skb, "skb", "consume_skb", kOptional, kFirst},
    {&Progs::st_btf_kfree_skb, Flavour::TpBtf, Group::Skb, "skb", "kfree_skb", kOptional, kFirst},
    {&Progs::st_btf_skb_read, Flavour::TpBtf, Group::Skb, "skb", "skb_copy_datagram_iovec", kOptional, kAnyOrder},
    {&Progs::st_btf_data_ready, Flavour::TpBtf, Group::Skb, "sock", "sk_data_ready", kOptional, kAnyOrder},
    {&Progs::st_tp_consume_skb, Flavour::Tracepoint, Group::Skb, "skb", "consume_skb", kOptional, kFirst},
    {&Progs::st_tp_kfree_skb, Flavour::Tracepoint, Group::Skb, "skb", "kfree_skb", kOptional, kFirst},
    {&Progs::st_tp_skb_read, Flavour::Tracepoint, Group::Skb, "skb", "skb_copy_datagram_iovec", kOptional, kAnyOrder},
    {&Progs::st_tp_data_ready, Flavour::Tracepoint, Group::Skb, "sock", "sk_data_ready", kOptional, kAnyOrder},
    // NAPI heads adopted on the receive path (napi.bpf.h).
    {&Progs::st_btf_gro_frags, Flavour::TpBtf, Group::Skb, "net", "napi_gro_frags_entry", kOptional, kAnyOrder},
    {&Progs::st_btf_gro_receive, Flavour::TpBtf, Group::Skb, "net", "napi_gro_receive_entry", kOptional, kAnyOrder},
    {&Progs::st_tp_gro_frags, Flavour::Tracepoint, Group::Skb, "net", "napi_gro_frags_entry", kOptional, kAnyOrder},
    {&Progs::st_tp_gro_receive, Flavour::Tracepoint, Group::Skb, "net", "napi_gro_receive_entry", kOptional, kAnyOrder},
};

// The socket iterators that tie queued skb heads to their socket when user
// space asks (queue_walk.bpf.h), in place of the two per-packet programs.
struct TieWalker {
  bpf_program* Progs::*prog;
  const char* kernel_func;  // what the kernel registers the iterator as (5.9; unix 5.17)
  bool per_netns;           // sees the opening thread's network namespace only
};
const TieWalker kTieWalkers[] = {
    {&Progs::st_tie_udp, "bpf_iter_udp", true},
    {&Progs::st_tie_tcp, "bpf_iter_tcp", true},
    {&Progs::st_tie_unix, "bpf_iter_unix", true},
    {&Progs::st_tie_files, "bpf_iter_task_file", false},  // packet sockets, through every process's files
};

// What the queue walk replaces: with it, these events are not traced.
bool replaced_by_queue_walk(const ProgramSpec& p) {
  return std::string_view(p.event) == "sk_data_ready" || std::string_view(p.event) == "skb_copy_datagram_iovec";
}

// The raw tracepoint an event's tp_btf and raw_tp programs attach to, named
// by its BTF typedef btf_trace_EVENT: its type id in the running kernel's BTF
// (what libbpf_find_vmlinux_btf_id finds, without parsing the BTF again).
int raw_tracepoint_id(const btf* vmlinux, const char* event) {
  if (!vmlinux) return -1;
  return btf__find_by_name_kind(vmlinux, (std::string("btf_trace_") + event).c_str(), BTF_KIND_TYPEDEF);
}

bool kernel_has(const ProgramSpec& p, const btf* vmlinux) {
  if (p.flavour == Flavour::Tracepoint) return tracefs_has_event(p.category, p.event);
  return raw_tracepoint_id(vmlinux, p.event) > 0;
}

// ---- probes, once at start-up -------------------------------------------------

const btf_type* skip_modifiers(const btf* b, std::uint32_t id) {
  const btf_type* t = btf__type_by_id(b, id);
  while (t && (btf_is_mod(t) || btf_is_typedef(t))) t = btf__type_by_id(b, t->type);
  return t;
}

// Argument index (after the tracepoint's hidden first) of `struct NAME *` in
// a raw tracepoint's prototype (typedef btf_trace_EVENT), or -1.
int struct_arg_index(const btf* b, const char* event, const char* name) {
  int id = btf__find_by_name_kind(b, (std::string("btf_trace_") + event).c_str(), BTF_KIND_TYPEDEF);
  if (id <= 0) return -1;
  const btf_type* fn = skip_modifiers(b, btf__type_by_id(b, id)->type);
  if (!fn || !btf_is_ptr(fn)) return -1;
  fn = btf__type_by_id(b, fn->type);
  if (!fn || !btf_is_func_proto(fn)) return -1;
  const btf_param* p = btf_params(fn);
  for (int i = 1; i < btf_vlen(fn); ++i) {
    const btf_type* t = skip_modifiers(b, p[i].type);
    if (!t || !btf_is_ptr(t)) continue;
    const btf_type* target = skip_modifiers(b, t->type);
    if (target && btf_is_struct(target) && std::strcmp(btf__name_by_offset(b, target->name_off), name) == 0)
      return i - 1;
  }
  return -1;
}

// Does the verifier let a tp_btf program read a `const void *` argument
// directly (the kmem events' ptr)? 6.18 does; 6.1 and 6.12 refuse ("arg1 type
// UNKNOWN is not a struct"). Three instructions, loaded and closed.
bool tp_btf_reads_void_args(const btf* vmlinux) {
  int btf_id = raw_tracepoint_id(vmlinux, "kmem_cache_alloc");
  if (btf_id <= 0) return false;
  const bpf_insn insns[] = {
      {BPF_LDX | BPF_MEM | BPF_DW, BPF_REG_2, BPF_REG_1, 8, 0},  // r2 = ctx[1] (ptr)
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},          // r0 = 0
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_RAW_TP,
              .attach_btf_id = std::uint32_t(btf_id));
  int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "st_probe", "GPL", insns, 3, &opts);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// Does the kernel have a slab cache whose name begins with prefix? The
// allocator's sysfs lists every cache and alias; /proc/slabinfo is the fallback.
bool slab_cache_with_prefix(const std::string& prefix) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/kernel/slab", ec))
    if (entry.path().filename().string().rfind(prefix, 0) == 0) return true;
  if (!ec) return false;
  std::ifstream in("/proc/slabinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return true;
  return false;
}

// The gfp bits that choose a kmalloc cache (kmalloc_key on the BPF side), as
// this kernel defines them (the tracepoint's print fmt), and 0 for a kind of
// kmalloc cache the kernel does not have: accounted allocations go to
// kmalloc-N before 5.14 ("mm: memcg/slab: create a new set of kmalloc-cg-<n>
// caches"), reclaimable ones to kmalloc-N where there are no kmalloc-rcl-*.
struct KmallocKinds {
  std::uint64_t account = 1ull << 22, reclaimable = 1ull << 4, dma = 1ull << 0;
};

KmallocKinds probe_kmalloc_kinds() {
  KmallocKinds k;
  k.account = procfs::read_gfp_flag("__GFP_ACCOUNT").value_or(k.account);
  k.reclaimable = procfs::read_gfp_flag("__GFP_RECLAIMABLE").value_or(k.reclaimable);
  // 5.10 lists it only as GFP_DMA (the zone mask: the same bit).
  k.dma = procfs::read_gfp_flag("__GFP_DMA").value_or(procfs::read_gfp_flag("GFP_DMA").value_or(k.dma));
  if (!slab_cache_with_prefix("kmalloc-cg-")) k.account = 0;
  if (!slab_cache_with_prefix("kmalloc-rcl-")) k.reclaimable = 0;
  if (!slab_cache_with_prefix("dma-kmalloc-")) k.dma = 0;
  spdlog::debug("kmalloc kinds: gfp account {:#x} reclaimable {:#x} dma {:#x}", k.account, k.reclaimable, k.dma);
  return k;
}

bool has_helper(bpf_func_id helper) { return libbpf_probe_bpf_helper(BPF_PROG_TYPE_RAW_TRACEPOINT, helper, nullptr) == 1; }

// Offset of a variable inside the kernel's static per-CPU section, from the
// BTF's .data..percpu DATASEC; -1 when BTF does not list it.
long long percpu_offset(const btf* vmlinux, const char* name) {
  int sec_id = btf__find_by_name_kind(vmlinux, ".data..percpu", BTF_KIND_DATASEC);
  if (sec_id <= 0) return -1;
  const btf_type* sec = btf__type_by_id(vmlinux, sec_id);
  const btf_var_secinfo* v = btf_var_secinfos(sec);
  for (int i = 0; i < btf_vlen(sec); ++i, ++v) {
    const char* var_name = btf__name_by_offset(vmlinux, btf__type_by_id(vmlinux, v->type)->name_off);
    if (var_name && std::strcmp(var_name, name) == 0) return v->offset;
  }
  return -1;
}

bool has_member(const btf* vmlinux, const char* type, const char* member) {
  int id = btf__find_by_name_kind(vmlinux, type, BTF_KIND_STRUCT);
  if (id <= 0) return false;
  const btf_type* t = btf__type_by_id(vmlinux, id);
  const btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++m)
    if (std::strcmp(btf__name_by_offset(vmlinux, m->name_off), member) == 0) return true;
  return false;
}

// Distance from a CPU's runqueue to its __preempt_count (see the BPF side),
// when the kernel's BTF has everything the method needs: x86's per-CPU
// __preempt_count (6.15+) directly followed by cpu_number, which the BPF side
// checks against the CPU it runs on, and a task's runqueue through its
// scheduling entity.
std::optional<long long> preempt_count_from_rq(const btf* vmlinux) {
  if (!vmlinux) return std::nullopt;
  long long pc = percpu_offset(vmlinux, "__preempt_count");
  long long cpu = percpu_offset(vmlinux, "cpu_number");
  long long rq = percpu_offset(vmlinux, "runqueues");
  bool usable = pc >= 0 && rq >= 0 && cpu == pc + 4 && has_member(vmlinux, "sched_entity", "cfs_rq") &&
                has_member(vmlinux, "cfs_rq", "rq");
  if (!usable) return std::nullopt;
  return pc - rq;
}

}  // namespace

void require_privileges() {
  if (geteuid() != 0)
    throw UserError("slabtrace needs root to load BPF programs (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN); run it with sudo");
}

std::string to_string(AttachMode mode) {
  switch (mode) {
    case AttachMode::TpBtf: return "tp_btf";
    case AttachMode::RawTp: return "raw_tp";
    case AttachMode::Tracepoint: return "tracepoint";
    case AttachMode::Auto: break;
  }
  return "auto";
}

AttachMode parse_attach_mode(const std::string& text) {
  if (text == "auto") return AttachMode::Auto;
  if (text == "tp_btf") return AttachMode::TpBtf;
  if (text == "raw_tp") return AttachMode::RawTp;
  if (text == "tracepoint") return AttachMode::Tracepoint;
  throw UserError(fmt::format("unknown attach mode '{}': use auto, tp_btf, raw_tp or tracepoint", text));
}

std::string to_string(IrqContext how) {
  return how == IrqContext::PreemptCount ? "preempt_count" : how == IrqContext::Programs ? "programs" : "auto";
}

IrqContext parse_irq_context(const std::string& text) {
  if (text == "auto") return IrqContext::Auto;
  if (text == "programs") return IrqContext::Programs;
  if (text == "preempt_count") return IrqContext::PreemptCount;
  throw UserError(fmt::format("unknown --irq-context '{}': use auto, programs or preempt_count", text));
}

std::string to_string(QueueTies how) {
  switch (how) {
    case QueueTies::Auto: return "auto";
    case QueueTies::Walk: return "walk";
    case QueueTies::Events: return "events";
  }
  return "?";
}

QueueTies parse_queue_ties(const std::string& text) {
  for (QueueTies how : {QueueTies::Auto, QueueTies::Walk, QueueTies::Events})
    if (text == to_string(how)) return how;
  throw UserError(fmt::format("--queue-ties {}: expected auto, walk or events", text));
}

WholeSkb split_whole_skb(const LiveObject& both, std::uint32_t head_bucket) {
  WholeSkb skb{both, both};
  skb.head.bucket = head_bucket ? head_bucket - 1 : ST_MAX_BUCKETS;  // no such bucket: the report skips it
  skb.head.flags = ST_OBJ_SKB_HEAD;
  skb.data.flags = ST_OBJ_SKB_DATA;
  skb.data.link = both.addr;  // its head: found again under this address (find_live)
  return skb;
}

void Tracer::SkelDeleter::operator()(::slabtrace_bpf* skel) const { slabtrace_bpf__destroy(skel); }

namespace {

// What the kernel offers, probed once before anything is loaded.
struct KernelFeatures {
  bool btf = false;               // vmlinux BTF (or --btf)
  bool tp_btf_void_args = false;  // see tp_btf_reads_void_args
  int alloc_cache_arg = -1;       // kmem_cache_alloc's struct kmem_cache * argument
  int free_cache_arg = -1;        // kmem_cache_free's (6.1+: 2)
  bool bpf_loop = false;          // 5.17; with it, atomic compare-and-swap (5.12)
  bool task_btf = false;          // bpf_get_current_task_btf, 5.11
  KmallocKinds kmalloc;           // gfp bits of the kmalloc caches this kernel has
  bool napi_frag_heads = false;   // small NAPI heads' data in page fragments (6.1 to 6.13)
  std::vector<bool> has_event;    // per kPrograms entry: the kernel has its event
  unsigned socket_iters = 0;      // kTieWalkers bits: BPF socket iterators this kernel registers
  // The bpf_rdonly_cast kfunc (6.2+), which the main object uses for direct
  // loads: in the running kernel's own BTF, where libbpf resolves kfuncs.
  bool rdonly_cast = false;
  std::optional<long long> preempt_count_from_rq;  // see preempt_count_from_rq(), from the described BTF
};

// The running kernel's BTF is parsed once here (megabytes; a second or more in
// an emulated guest): every program's event is looked up in it, once.
KernelFeatures probe_kernel(const TracerOptions& options, bool have_btf) {
  KernelFeatures f;
  f.btf = have_btf;
  btf* running = btf__load_vmlinux_btf();  // what tp_btf/raw_tp attach to, whatever --btf says
  btf* described = options.btf_path.empty() ? running : btf__parse(options.btf_path.c_str(), nullptr);
  if (described) f.alloc_cache_arg = struct_arg_index(described, "kmem_cache_alloc", "kmem_cache");
  if (described) f.free_cache_arg = struct_arg_index(described, "kmem_cache_free", "kmem_cache");
  f.preempt_count_from_rq = preempt_count_from_rq(described);
  f.rdonly_cast = running && btf__find_by_name_kind(running, "bpf_rdonly_cast", BTF_KIND_FUNC) > 0;
  f.tp_btf_void_args = have_btf && tp_btf_reads_void_args(running);
  for (const ProgramSpec& p : kPrograms) f.has_event.push_back(kernel_has(p, running));
  // dbae2b062824 ("net: skb: introduce and use a single page frag cache", 6.1;
  // reverted in 6.14): napi_alloc_skb puts a small head's data in a 1 KiB page
  // fragment, so a head from the NAPI cache has no traced allocation to adopt it by.
  f.napi_frag_heads = running && has_member(running, "napi_alloc_cache", "page_small");
  for (std::size_t i = 0; i < std::size(kTieWalkers); ++i)
    if (running && btf__find_by_name_kind(running, kTieWalkers[i].kernel_func, BTF_KIND_FUNC) >= 0)
      f.socket_iters |= 1u << i;
  if (described != running) btf__free(described);
  btf__free(running);
  f.bpf_loop = has_helper(BPF_FUNC_loop);
  f.task_btf = has_helper(BPF_FUNC_get_current_task_btf);
  f.kmalloc = probe_kmalloc_kinds();
  spdlog::debug("kernel: btf {} tp_btf void args {} kmem_cache_alloc cache arg {} bpf_loop {} task_btf {}", f.btf,
                f.tp_btf_void_args, f.alloc_cache_arg, f.bpf_loop, f.task_btf);
  return f;
}

// The attach modes to try, best first. tp_btf needs the cache pointer in the
// event and void * arguments the verifier lets it read.
std::vector<AttachMode> modes_to_try(AttachMode wanted, const KernelFeatures& f) {
  if (wanted != AttachMode::Auto) return {wanted};
  std::vector<AttachMode> modes;
  if (f.btf && f.tp_btf_void_args && f.alloc_cache_arg == 2) modes.push_back(AttachMode::TpBtf);
  if (f.btf) modes.push_back(AttachMode::RawTp);
  modes.push_back(AttachMode::Tracepoint);
  return modes;
}

Flavour flavour_of(AttachMode mode) {
  return mode == AttachMode::TpBtf ? Flavour::TpBtf : mode == AttachMode::RawTp ? Flavour::RawTp : Flavour::Tracepoint;
}

}  // namespace

Tracer::Tracer(const TracerOptions& options) {
  g_verbose = options.verbose;
  libbpf_set_print(libbpf_print);
  require_privileges();
  bool have_btf = path_exists("/sys/kernel/btf/vmlinux") || !options.btf_path.empty();
  if (!have_btf)
    throw UserError("this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing); pass --btf PATH to a BTF file for this kernel");
  if (!options.btf_path.empty() && !path_exists(options.btf_path))
    throw UserError(fmt::format("--btf {}: no such file", options.btf_path));
  if (!tracefs_has_event("kmem", "kmalloc") && path_exists("/sys/kernel/tracing"))
    spdlog::debug("tracefs not mounted or kmem events missing; tp_btf may still work");

  ncpus_ = std::max(1, libbpf_num_possible_cpus());
  KernelFeatures features = probe_kernel(options, have_btf);
  legacy_ = !features.bpf_loop;
  task_btf_ = features.task_btf;
  alloc_cache_arg_ = features.alloc_cache_arg;
  free_cache_arg_ = features.free_cache_arg;
  rdonly_cast_ = !legacy_ && features.rdonly_cast;
  if (options.irq_context != IrqContext::Programs) {
    // The main object reads the count with bpf_rdonly_cast, the legacy one
    // with a probe_read. Asked for and not there: one line, before any load.
    preempt_count_from_rq_ = features.preempt_count_from_rq;
    if (!legacy_ && !rdonly_cast_) preempt_count_from_rq_.reset();
    if (!preempt_count_from_rq_ && options.irq_context == IrqContext::PreemptCount)
      throw UserError("--irq-context preempt_count: this kernel's BTF lacks the per-CPU __preempt_count layout "
                      "(or the bpf_rdonly_cast kfunc) it needs; use programs");
  }
  if (options.queue_ties != QueueTies::Events) walkers_ = legacy_ ? 0 : features.socket_iters;
  if (options.queue_ties == QueueTies::Walk && !walkers_)
    throw UserError(legacy_ ? "--queue-ties walk: this kernel has no bpf_loop (5.17); use events"
                            : "--queue-ties walk: this kernel registers no BPF socket iterators (5.9); use events");
  std::vector<AttachMode> modes = modes_to_try(options.attach_mode, features);
  std::string not_tp_btf;  // why the best mode was not used, when auto chose another
  if (options.attach_mode == AttachMode::Auto && modes.front() != AttachMode::TpBtf)
    not_tp_btf = features.alloc_cache_arg != 2 ? "kmem_cache_alloc carries no cache pointer (before 6.1)"
                                               : "this kernel's verifier refuses tp_btf reads of the kmem events' void * arguments";
  TracerOptions opts = options;
  const unsigned walkers_wanted = walkers_;
  std::string walkers_failed;  // why this mode loaded only without the queue walkers
  for (std::size_t i = 0; i < modes.size(); ++i) {
    try {
      open_and_load(opts, modes[i], features.has_event, {features.kmalloc.account, features.kmalloc.reclaimable,
                                                         features.kmalloc.dma});
      break;
    } catch (const PreemptCountUnreadable&) {
      // --irq-context auto: the layout looked right but the count did not
      // read back; the same mode again with the entry/exit programs.
      spdlog::info("the CPU's preempt count did not read back; counting softirq/irq entries instead");
      reset();
      opts.irq_context = IrqContext::Programs;
      --i;
    } catch (const UserError& e) {
      reset();
      if (walkers_ && options.queue_ties == QueueTies::Auto) {
        // The walkers are the newest code for an old verifier: the same mode
        // again without them (tying queued skbs per packet where it can).
        walkers_failed = e.what();
        walkers_ = 0;
        --i;
        continue;
      }
      if (i + 1 == modes.size()) throw;
      walkers_ = walkers_wanted;  // the mode failed without them too: they were not the cause
      walkers_failed.clear();
      spdlog::info("{} programs did not load ({}); trying {}", to_string(modes[i]), e.what(), to_string(modes[i + 1]));
      if (modes[i] == AttachMode::TpBtf) not_tp_btf = fmt::format("the tp_btf programs did not load ({})", e.what());
    }
  }
  if (!walkers_failed.empty())
    limitations_.push_back(fmt::format("the socket queue walkers did not load ({}): queued sk_buffs are tied to their "
                                       "socket per packet (sock:sk_data_ready, 6.3+)", walkers_failed));

  // One line for each thing this kernel cannot give.
  if (!not_tp_btf.empty()) limitations_.push_back(fmt::format("{} instead of tp_btf: {}", to_string(mode_), not_tp_btf));
  bool cache_from_page = skel_->bss->st_vmemmap != 0;
  if (mode_ == AttachMode::RawTp && features.alloc_cache_arg != 2)
    limitations_.push_back(cache_from_page
                               ? "kmem_cache_alloc carries no cache pointer on this kernel: caches found from each object's slab page"
                               : "kmem_cache_alloc carries no cache pointer and page_offset_base/vmemmap_base are not in kallsyms: such caches are named by object size only (size-N)");
  if (mode_ == AttachMode::Tracepoint && !cache_from_page && !tracefs_has_field("kmem", "kmem_cache_alloc", "name"))
    limitations_.push_back("classic kmem_cache_alloc carries no cache name and the slab layout is unknown: caches named by object size only (size-N)");
  if (legacy_)
    limitations_.push_back("no bpf_loop (5.17) on this kernel: live objects kept in a BPF hash map (more memory and cost per event)");
  if (!features.task_btf)
    limitations_.push_back("no bpf_get_current_task_btf (5.11): cgroups read through the helper");
  if (features.napi_frag_heads)
    limitations_.push_back("napi_alloc_skb puts small sk_buffs' data in page fragments on this kernel (napi_alloc_cache.page_small): "
                           "their heads, from the NAPI cache, are not seen; the socket census counts them in their queues");
  for (const auto& missing : missing_optional_)
    limitations_.push_back(fmt::format("tracepoint {} is not available on this kernel: {}", missing,
                                       missing == "sk_data_ready" ? "holders come from the socket census only"
                                       : missing == "kfree_skb" || missing == "consume_skb" ? "sk_buff ends are seen only as frees"
                                                                                           : "continuing without it"));
}

void Tracer::reset() {
  for (auto* link : links_) bpf_link__destroy(link);
  links_.clear();
  walker_links_.clear();
  if (live_slots_) munmap(const_cast<st_slot*>(live_slots_), live_map_bytes_);
  live_slots_ = nullptr;
  skel_.reset();
  missing_optional_.clear();
}

void Tracer::open_and_load(const TracerOptions& options, AttachMode mode, const std::vector<bool>& has_event,
                           const std::array<std::uint64_t, 3>& kmalloc_gfp) {
  LIBBPF_OPTS(bpf_object_open_opts, open_opts);
  if (!options.btf_path.empty()) open_opts.btf_custom_path = options.btf_path.c_str();
  // Both objects come from one source and have the same maps, programs and
  // globals (static_asserts above): one skeleton opens either.
  auto* skel = static_cast<::slabtrace_bpf*>(calloc(1, sizeof(::slabtrace_bpf)));
  if (!skel) throw UserError("out of memory opening the BPF object");
  skel_.reset(skel);
  if (int err = slabtrace_bpf__create_skeleton(skel); err)
    throw UserError(fmt::format("cannot open the BPF object: {}", errno_text(err)));
  if (legacy_) skel->skeleton->data = const_cast<void*>(slabtrace_legacy_bpf__elf_bytes(&skel->skeleton->data_sz));
  if (int err = bpf_object__open_skeleton(skel->skeleton, &open_opts); err)
    throw UserError(fmt::format("cannot open the BPF object: {}", errno_text(err)));

  std::optional<long long> pc_from_rq;
  if (options.irq_context != IrqContext::Programs) pc_from_rq = preempt_count_from_rq_;
  irq_context_ = pc_from_rq ? IrqContext::PreemptCount : IrqContext::Programs;

  // A program missing from the table would load and never attach: refuse.
  {
    // + st_clock, st_layout (run, never attached) and the queue walkers (iterators)
    std::size_t listed = std::size(kPrograms) + 2 + std::size(kTieWalkers);
    std::size_t in_object = 0;
    bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, skel_->obj) ++in_object;
    if (in_object != listed)
      throw UserError(fmt::format("internal: {} BPF programs in the object, {} in the loader's table", in_object, listed));
  }
  Flavour kmem = flavour_of(mode);
  Flavour others = mode == AttachMode::Tracepoint ? Flavour::Tracepoint : Flavour::TpBtf;
  for (std::size_t i = 0; i < std::size(kPrograms); ++i) {
    const ProgramSpec& p = kPrograms[i];
    bpf_program* prog = skel_->progs.*p.prog;
    bool ours = p.flavour == (p.group == Group::Kmem ? kmem : others);
    if (p.group == Group::Irq && irq_context_ == IrqContext::PreemptCount) ours = false;
    if (walkers_ && replaced_by_queue_walk(p)) ours = false;
    if (ours && !has_event[i]) {
      if (p.required)
        throw UserError(fmt::format("this kernel has no {} tracepoint {}:{}", to_string(mode), p.category, p.event));
      if (std::find(missing_optional_.begin(), missing_optional_.end(), p.event) == missing_optional_.end() &&
          std::string_view(p.event).find("_node") == std::string_view::npos)  // _node: gone since 6.1, by design
        missing_optional_.push_back(p.event);
      ours = false;
    }
    bpf_program__set_autoload(prog, ours);
  }
  for (std::size_t i = 0; i < std::size(kTieWalkers); ++i)
    bpf_program__set_autoload(skel_->progs.*kTieWalkers[i].prog, (walkers_ & (1u << i)) != 0);

  auto* ro = skel_->rodata;
  ro->sample_shift = options.sample_shift;
  ro->gfp_account = kmalloc_gfp[0];
  ro->gfp_reclaimable = kmalloc_gfp[1];
  ro->gfp_dma = kmalloc_gfp[2];
  ro->irq_from_preempt_count = pc_from_rq ? 1 : 0;
  ro->have_rdonly_cast = rdonly_cast_ ? 1 : 0;
  ro->preempt_count_from_rq = pc_from_rq.value_or(0);
  ro->stack_shift = options.stack_shift;
  ro->stack_budget = options.stack_budget;
  ro->nr_cpus = std::uint32_t(ncpus_);
  ro->have_task_btf = task_btf_ ? 1 : 0;
  ro->alloc_cache_arg = alloc_cache_arg_;
  ro->page_offset_base_addr = options.page_offset_base_addr;
  ro->vmemmap_base_addr = options.vmemmap_base_addr;
  start_ns_ = monotonic_ns();
  if (options.cache_names.size() + options.cache_keys.size() > ST_MAX_CACHE_FILTERS)
    throw UserError(fmt::format("at most {} --cache filters", ST_MAX_CACHE_FILTERS));
  std::size_t n = 0;
  for (const auto& name : options.cache_names) {
    std::strncpy(const_cast<char*>(ro->cache_filter_names[n]), name.c_str(), ST_CACHE_NAME_LEN - 1);
    ++n;
  }
  for (auto key : options.cache_keys) ro->cache_filter_keys[n++] = key;
  ro->cache_filter_count = std::uint32_t(n);
  for (std::size_t i = 0; i < options.skb_alloc_ranges.size() && i < ST_MAX_SKB_RANGES; ++i) {
    ro->skb_alloc_ranges[i].start = options.skb_alloc_ranges[i].start;
    ro->skb_alloc_ranges[i].end = options.skb_alloc_ranges[i].end;
  }
  for (std::size_t i = 0; i < options.ignore_ranges.size() && i < ST_MAX_IGNORE_RANGES; ++i) {
    ro->ignore_ranges[i].start = options.ignore_ranges[i].start;
    ro->ignore_ranges[i].end = options.ignore_ranges[i].end;
  }
  ro->skb_data_site_is_caller = options.skb_data_site_is_caller ? 1 : 0;
  // A head freed before its data is told by the free event's cache (typed
  // attachments: classic events carry a name at most).
  skb_one_slot_ = options.skb_one_slot && free_cache_arg_ == 2 && mode != AttachMode::Tracepoint;
  ro->skb_one_slot = skb_one_slot_ ? 1 : 0;
  ro->skb_clone_range.start = options.skb_clone_range.start;
  ro->skb_clone_range.end = options.skb_clone_range.end;

  // Two slots per object the user asked room for, a power of two: linear
  // probing stays short below half full. The legacy object's hash map has one
  // entry per object, and the unused map of each object one entry.
  std::uint32_t slots = 1024;
  while (slots < options.max_objects) slots <<= 1;
  slots <<= 1;
  bpf_map__set_max_entries(skel_->maps.st_live, legacy_ ? 1 : slots);
  bpf_map__set_max_entries(skel_->maps.st_live_hash, legacy_ ? options.max_objects : 1);
  ro->live_mask = slots - 1;

  bucket_limit_ = std::clamp<std::uint32_t>(options.max_buckets, 64, ST_MAX_BUCKETS);
  ro->bucket_limit = bucket_limit_;
  for (bpf_map* m : {skel_->maps.st_bucket_ids, skel_->maps.st_buckets, skel_->maps.st_counts,
                     skel_->maps.st_free_buckets})
    bpf_map__set_max_entries(m, bucket_limit_);

  if (int err = slabtrace_bpf__load(skel_.get()); err) {
    std::string why = last_libbpf_line();
    throw UserError(fmt::format("loading the {} BPF programs failed: {}{}", to_string(mode), errno_text(err),
                                why.empty() ? "" : " (" + why + ")"));
  }
  {
    // Where the slab pages are: before any event, so none misses it.
    LIBBPF_OPTS(bpf_test_run_opts, run);
    if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.st_layout), &run) != 0)
      spdlog::debug("st_layout did not run: {}", errno_text(errno));
  }
  if (irq_context_ == IrqContext::PreemptCount) {
    // Read the count once on this CPU before anything is attached.
    LIBBPF_OPTS(bpf_test_run_opts, run);
    bool ok = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.st_clock), &run) == 0 &&
              skel_->bss->st_preempt_count_ok;
    if (!ok && options.irq_context == IrqContext::Auto) throw PreemptCountUnreadable{};
    if (!ok)
      throw UserError("--irq-context preempt_count: the CPU's preempt count did not read back at the address "
                      "the BTF gives; use programs");
  }
  // Ends before starts. Interrupt depth is counted by entry/exit pairs: every
  // exit is attached before any entry, so no entry is seen without its exit.
  // Frees and sk_buff ends before allocations: attached the other way round
  // (one tracepoint at a time), an object allocated in between was tracked,
  // its free was not seen, and it came back as an "address reused" (6.12
  // guest, UDP churn already running, 1 in 16: 5 % of the small-head data
  // buffers' frees and 1 % of the heads'; 0 with frees first).
  for (bool first : {true, false}) {
    for (const ProgramSpec& p : kPrograms) {
      bpf_program* prog = skel_->progs.*p.prog;
      if (p.attach_first != first || !bpf_program__autoload(prog)) continue;
      bpf_link* link = bpf_program__attach(prog);
      if (!link) {
        int err = errno;
        throw UserError(fmt::format("attaching {} to {} failed: {}", bpf_program__name(prog),
                                    bpf_program__section_name(prog), errno_text(err)));
      }
      links_.push_back(link);
    }
  }
  for (std::size_t i = 0; i < std::size(kTieWalkers); ++i) {
    if (!(walkers_ & (1u << i))) continue;
    bpf_program* prog = skel_->progs.*kTieWalkers[i].prog;
    bpf_link* link = bpf_program__attach_iter(prog, nullptr);
    if (!link)
      throw UserError(fmt::format("attaching the queue walker {} failed: {}", bpf_program__name(prog), errno_text(errno)));
    links_.push_back(link);
    walker_links_.push_back({bpf_program__name(prog), link, kTieWalkers[i].per_netns});
  }
  mode_ = mode;

  if (!legacy_) {
    long page = sysconf(_SC_PAGESIZE);
    live_slot_count_ = bpf_map__max_entries(skel_->maps.st_live);
    live_map_bytes_ =
        (live_slot_count_ * sizeof(st_slot) + std::size_t(page) - 1) / std::size_t(page) * std::size_t(page);
    void* view = mmap(nullptr, live_map_bytes_, PROT_READ, MAP_SHARED, bpf_map__fd(skel_->maps.st_live), 0);
    if (view == MAP_FAILED) throw UserError(fmt::format("cannot map the live-object table: {}", errno_text(errno)));
    live_slots_ = static_cast<const st_slot*>(view);
  }
  clock_at_start_ = read_clock();
}

Tracer::Clock Tracer::read_clock() const {
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.st_clock), &opts) != 0)
    throw UserError(fmt::format("cannot read the kernel's clock through BPF: {}", errno_text(errno)));
  return {skel_->bss->st_clock_jiffies, skel_->bss->st_clock_ns};
}

// The kernel's HZ, from jiffies against the monotonic clock over at least
// 100 ms since start-up, rounded to the nearest value kernels are built with.
std::uint32_t Tracer::hz() const {
  if (hz_) return hz_;
  Clock now = read_clock();
  constexpr std::uint64_t kMinSpanNs = 100'000'000;
  if (now.ns - clock_at_start_.ns < kMinSpanNs) {
    struct timespec pause {0, long(kMinSpanNs - (now.ns - clock_at_start_.ns))};
    nanosleep(&pause, nullptr);
    now = read_clock();
  }
  double measured = double(now.jiffies - clock_at_start_.jiffies) * 1e9 / double(now.ns - clock_at_start_.ns);
  std::uint32_t best = 250;
  for (std::uint32_t candidate : {100u, 200u, 250u, 300u, 500u, 1000u, 1024u})
    if (std::abs(double(candidate) - measured) < std::abs(double(best) - measured)) best = candidate;
  hz_ = best;
  spdlog::debug("kernel HZ {} (measured {:.1f})", hz_, measured);
  return hz_;
}

Tracer::~Tracer() {
  for (auto* link : links_) bpf_link__destroy(link);
  links_.clear();
  if (live_slots_) munmap(const_cast<st_slot*>(live_slots_), live_map_bytes_);
  skel_.reset();
  if (stats_fd_ >= 0) close(stats_fd_);
}

namespace {

[[noreturn]] void map_read_failed(const char* map, int err) {
  throw UserError(fmt::format("reading BPF map {} failed: {}", map, errno_text(err)));
}

[[noreturn]] void map_write_failed(const char* map, int err) {
  throw UserError(fmt::format("updating BPF map {} failed: {}", map, errno_text(err)));
}

}  // namespace

int Tracer::sum_percpu(int map_fd, std::uint32_t key, void* out, std::size_t value_size) const {
  std::size_t stride = (value_size + 7) & ~std::size_t(7);
  std::vector<std::uint64_t> raw(stride / 8 * std::size_t(ncpus_));
  if (bpf_map_lookup_elem(map_fd, &key, raw.data()) != 0) return -errno;
  auto* sum = static_cast<std::uint64_t*>(out);
  std::fill(sum, sum + value_size / 8, 0);
  for (int cpu = 0; cpu < ncpus_; ++cpu)
    for (std::size_t i = 0; i < value_size / 8; ++i) sum[i] += raw[cpu * stride / 8 + i];
  return 0;
}

namespace {

// Reads entries [0, count) of an array map into `values` (value_size bytes
// each; for a per-CPU map, all CPUs' values) in as few syscalls as the kernel
// allows: batches (5.6+), or one lookup per entry where it has none.
constexpr int kKernelENOTSUPP = 524;  // include/linux/errno.h, not in libc's

void read_array(int fd, const char* map, std::uint32_t count, std::size_t value_size, std::vector<std::uint64_t>& values) {
  values.assign((value_size + 7) / 8 * count, 0);
  auto* bytes = reinterpret_cast<unsigned char*>(values.data());
  std::vector<std::uint32_t> keys(count);
  std::uint32_t done = 0, next = 0;
  bool batches = true;
  while (done < count && batches) {
    std::uint32_t n = count - done;
    int err = bpf_map_lookup_batch(fd, done ? &next : nullptr, &next, keys.data() + done, bytes + done * value_size, &n,
                                   nullptr);
    int e = err ? errno : 0;
    // The kernel's ENOTSUPP (524; 5.10 for per-CPU arrays) or EINVAL: no
    // batch lookup for this map type; the count it wrote back means nothing.
    if (err && done == 0 && (e == EINVAL || e == EOPNOTSUPP || e == kKernelENOTSUPP)) {
      batches = false;
      break;
    }
    if (err && e != ENOENT) map_read_failed(map, e);
    done += n;
    if (err) break;  // ENOENT: the end of the map
  }
  if (batches) return;
  for (std::uint32_t i = 0; i < count; ++i)
    if (bpf_map_lookup_elem(fd, &i, bytes + i * value_size) != 0) map_read_failed(map, errno);
}

}  // namespace

std::vector<BucketSnapshot> Tracer::buckets() const {
  // The legacy object numbers buckets per CPU (cpu, cpu + ncpus, ...): every
  // index may be in use.
  std::uint32_t used = legacy_ ? bucket_limit_ : std::min<std::uint32_t>(skel_->bss->st_next_bucket, bucket_limit_);
  std::vector<BucketSnapshot> out;
  if (used == 0) return out;
  // Two batch reads for the whole table: a long run on a busy node has
  // thousands of buckets, read on every refresh.
  std::vector<std::uint64_t> infos, counts;
  read_array(bpf_map__fd(skel_->maps.st_buckets), "st_buckets", used, sizeof(st_bucket), infos);
  const std::size_t stride = (sizeof(st_counters) + 7) & ~std::size_t(7);
  read_array(bpf_map__fd(skel_->maps.st_counts), "st_counts", used, stride * std::size_t(ncpus_), counts);
  static_assert(sizeof(st_bucket) % 8 == 0 && sizeof(st_counters) % 8 == 0);
  out.reserve(legacy_ ? 64 : used);
  for (std::uint32_t i = 0; i < used; ++i) {
    BucketSnapshot b;
    b.index = i;
    std::memcpy(&b.info, reinterpret_cast<const unsigned char*>(infos.data()) + i * sizeof(st_bucket), sizeof b.info);
    if (b.info.cache == 0 && b.info.cgroup == 0) continue;  // slot lost to a creation race, unused or retired
    const std::uint64_t* percpu = counts.data() + std::size_t(i) * std::size_t(ncpus_) * stride / 8;
    auto* sum = reinterpret_cast<std::uint64_t*>(&b.counters);
    for (int cpu = 0; cpu < ncpus_; ++cpu)
      for (std::size_t w = 0; w < sizeof(st_counters) / 8; ++w) sum[w] += percpu[cpu * stride / 8 + w];
    out.push_back(b);
  }
  return out;
}

std::vector<std::uint32_t> Tracer::retire_buckets(const std::vector<std::uint32_t>& indexes) {
  int ids_fd = bpf_map__fd(skel_->maps.st_bucket_ids);
  int info_fd = bpf_map__fd(skel_->maps.st_buckets);
  int counts_fd = bpf_map__fd(skel_->maps.st_counts);
  int free_fd = bpf_map__fd(skel_->maps.st_free_buckets);
  const std::size_t stride = (sizeof(st_counters) + 7) & ~std::size_t(7);
  std::vector<std::uint64_t> zeros(stride / 8 * std::size_t(ncpus_), 0);
  std::vector<std::uint32_t> retired;
  for (std::uint32_t i : indexes) {
    st_bucket info{};
    if (i >= bucket_limit_ || bpf_map_lookup_elem(info_fd, &i, &info) != 0) continue;
    if (info.cache == 0 && info.cgroup == 0) continue;
    // Forget the pair first, so that no new event finds this index; then
    // empty the slot, and only then offer it for reuse.
    st_bucket_key key{info.cache, info.cgroup};
    if (bpf_map_delete_elem(ids_fd, &key) != 0) continue;
    st_bucket empty{};
    if (bpf_map_update_elem(counts_fd, &i, zeros.data(), BPF_ANY) != 0 ||
        bpf_map_update_elem(info_fd, &i, &empty, BPF_ANY) != 0)
      map_write_failed("st_buckets", errno);
    // Nor may the index, once reused, inherit a whole sk_buff's head bucket:
    // forget it as a data bucket's entry and as any data bucket's head bucket.
    volatile std::uint32_t* head_of = skel_->bss->st_head_bucket_of;
    head_of[i] = 0;
    for (std::uint32_t j = 0; j < ST_MAX_BUCKETS; ++j)
      if (head_of[j] == i + 1) head_of[j] = 0;
    if (bpf_map_update_elem(free_fd, nullptr, &i, BPF_ANY) != 0) map_write_failed("st_free_buckets", errno);
    retired.push_back(i);
  }
  return retired;
}

st_stats Tracer::stats() const {
  st_stats s{};
  if (int err = sum_percpu(bpf_map__fd(skel_->maps.st_stat), 0, &s, sizeof s)) map_read_failed("st_stat", err);
  return s;
}

namespace {

// Walks a hash map in batches (one syscall per few thousand entries); falls
// back to key-by-key iteration where the kernel lacks batch operations.
// Throws on a read error other than the end of the map.
template <typename Key, typename Value, typename Fn>
void walk_hash(int fd, const char* map, Fn&& fn) {
  constexpr std::uint32_t kBatch = 4096;
  std::vector<Key> keys(kBatch);
  std::vector<Value> values(kBatch);
  std::uint64_t token = 0;
  bool first = true;
  for (;;) {
    std::uint32_t count = kBatch;
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data(), values.data(), &count,
                                   nullptr);
    int e = err ? errno : 0;
    if (err && e == EINVAL && first) break;  // no batch support: iterate below
    for (std::uint32_t i = 0; i < count; ++i) fn(keys[i], values[i]);
    if (err && e == ENOENT) return;  // the end
    if (err) map_read_failed(map, e);
    first = false;
  }
  Key key{}, next{};
  Value value{};
  bool have = false;
  while (bpf_map_get_next_key(fd, have ? &key : nullptr, &next) == 0) {
    // ENOENT: deleted between the two calls; anything else is an error.
    if (bpf_map_lookup_elem(fd, &next, &value) == 0)
      fn(next, value);
    else if (errno != ENOENT)
      map_read_failed(map, errno);
    key = next;
    have = true;
  }
  if (errno != ENOENT) map_read_failed(map, errno);
}

}  // namespace

// A plain read of shared memory the BPF programs write: a slot may change
// while we copy it, and then reads as the object before or after (an object
// freed in between is at worst reported once more).
namespace {

LiveObject unpack(std::uint64_t addr, const volatile st_slot& slot) {
  std::uint32_t packed = slot.obj.packed;
  LiveObject o;
  o.addr = addr;
  o.bucket = ST_OBJ_BUCKET(packed);
  std::uint32_t stack = ST_OBJ_STACK(packed);
  o.stack_id = stack == ST_OBJ_NO_STACK ? -1 : std::int32_t(stack);
  o.stack_throttled = o.stack_id >= 0 && (packed & ST_OBJ_STACK_THROTTLED);
  o.flags = packed & ST_OBJ_FLAGS;
  o.alloc_tick = slot.obj.alloc_tick;
  o.link = slot.obj.link;
  return o;
}

}  // namespace

// The head bucket (+ 1) of a whole sk_buff in data bucket `bucket`.
std::uint32_t Tracer::head_bucket_of(std::uint32_t bucket) const {
  return skel_->bss->st_head_bucket_of[bucket & ST_OBJ_BUCKET_MASK];
}

LiveObject Tracer::head_view(const LiveObject& both) const {
  return split_whole_skb(both, head_bucket_of(both.bucket)).head;
}

void Tracer::for_each_live(const std::function<void(const LiveObject&)>& fn) const {
  auto now = std::uint32_t(read_clock().jiffies);
  std::uint32_t ticks_per_s = hz();
  auto visit = [&](std::uint64_t addr, const volatile st_slot& slot) {
    LiveObject o = unpack(addr, slot);
    auto ticks = std::int32_t(now - o.alloc_tick);  // wraps; an object newer than `now` is 0 old
    o.age_ms = ticks > 0 ? std::uint64_t(ticks) * 1000 / ticks_per_s : 0;
    if ((o.flags & ST_OBJ_SKB_BOTH) != ST_OBJ_SKB_BOTH) {
      fn(o);
      return;
    }
    WholeSkb skb = split_whole_skb(o, head_bucket_of(o.bucket));
    fn(skb.head);
    fn(skb.data);
  };
  if (legacy_) {
    walk_hash<std::uint64_t, st_slot>(bpf_map__fd(skel_->maps.st_live_hash), "st_live_hash",
                                      [&](std::uint64_t addr, const st_slot& slot) { visit(addr, slot); });
    return;
  }
  std::size_t used = 0, whole_skbs = 0;
  for (std::size_t i = 0; i < live_slot_count_; ++i) {
    const volatile st_slot& slot = live_slots_[i];
    std::uint64_t addr = slot.addr;
    if (addr == ST_SLOT_EMPTY || addr == ST_SLOT_DEAD) continue;
    ++used;
    if ((slot.obj.packed & ST_OBJ_SKB_BOTH) == ST_OBJ_SKB_BOTH) ++whole_skbs;
    visit(addr, slot);
  }
  spdlog::debug("live table: {} slots in use, {} of them whole sk_buffs (skb_one_slot {})", used, whole_skbs,
                skb_one_slot_);
}

// By address, a whole sk_buff is its head (the data view's link points here).
LiveObject Tracer::as_found(const LiveObject& o) const {
  return (o.flags & ST_OBJ_SKB_BOTH) == ST_OBJ_SKB_BOTH ? head_view(o) : o;
}

std::optional<LiveObject> Tracer::find_live(std::uint64_t addr) const {
  if (legacy_) {
    st_slot slot{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.st_live_hash), &addr, &slot) == 0) return as_found(unpack(addr, slot));
    if (errno != ENOENT) map_read_failed("st_live_hash", errno);
    return std::nullopt;
  }
  if (live_slot_count_ == 0 || addr == ST_SLOT_EMPTY || addr == ST_SLOT_DEAD) return std::nullopt;
  auto mask = std::uint32_t(live_slot_count_ - 1);
  std::uint32_t home = st_home_slot(addr, mask);
  for (std::uint32_t k = 0; k < ST_LIVE_PROBES; ++k) {
    const volatile st_slot& slot = live_slots_[(home + k) & mask];
    std::uint64_t a = slot.addr;
    if (a == addr) return as_found(unpack(addr, slot));
    if (a == ST_SLOT_EMPTY) break;
  }
  return std::nullopt;
}

std::vector<std::uint64_t> Tracer::stack(std::int32_t stack_id) const {
  std::vector<std::uint64_t> frames(ST_MAX_STACK_DEPTH);
  if (stack_id < 0) return {};
  std::uint32_t id = std::uint32_t(stack_id);
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.st_stacks), &id, frames.data()) != 0) {
    if (errno != ENOENT) map_read_failed("st_stacks", errno);
    return {};  // the id was never filled
  }
  auto end = std::find(frames.begin(), frames.end(), 0ull);
  frames.erase(end, frames.end());
  return frames;
}

std::vector<std::string> Tracer::tie_queues(bool whole_node) const {
  std::vector<std::string> warnings;
  for (const auto& [name, link, per_netns] : walker_links_) {
    if (!per_netns && !whole_node) continue;
    // The walkers write nothing: reading runs them over every socket.
    if (int error = run_bpf_iterator(bpf_link__fd(link), nullptr); error != 0)
      warnings.push_back(fmt::format("queue walk {}: {}; its sockets' queued sk_buffs keep their last ties",
                                     name, errno_text(error)));
  }
  return warnings;
}

std::vector<std::pair<std::uint64_t, st_sock>> Tracer::sockets() const {
  std::vector<std::pair<std::uint64_t, st_sock>> out;
  walk_hash<std::uint64_t, st_sock>(bpf_map__fd(skel_->maps.st_socks), "st_socks",
                                    [&](std::uint64_t sk, const st_sock& s) { out.emplace_back(sk, s); });
  return out;
}

void Tracer::measure_cost(bool on) {
  if (on && stats_fd_ < 0) stats_fd_ = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (!on && stats_fd_ >= 0) {
    close(stats_fd_);
    stats_fd_ = -1;
  }
}

std::optional<st_sock> Tracer::socket(std::uint64_t sk) const {
  st_sock s{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.st_socks), &sk, &s) != 0) {
    if (errno != ENOENT) map_read_failed("st_socks", errno);
    return std::nullopt;
  }
  return s;
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> Tracer::drops() const {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
  int fd = bpf_map__fd(skel_->maps.st_drops);
  for (std::uint32_t reason = 0; reason < ST_MAX_DROP_REASONS; ++reason) {
    std::uint64_t n = 0;
    if (int err = sum_percpu(fd, reason, &n, sizeof n)) map_read_failed("st_drops", err);
    if (n) out.emplace_back(reason, n);
  }
  return out;
}

std::vector<std::pair<st_drop_key, std::uint64_t>> Tracer::drops_by_socket() const {
  std::vector<std::pair<st_drop_key, std::uint64_t>> out;
  walk_hash<st_drop_key, std::uint64_t>(bpf_map__fd(skel_->maps.st_drop_socks), "st_drop_socks",
                                        [&](const st_drop_key& k, std::uint64_t n) { out.emplace_back(k, n); });
  return out;
}

std::vector<std::pair<st_adopt_key, st_adopt_dev>> Tracer::adopted() const {
  std::vector<std::pair<st_adopt_key, st_adopt_dev>> out;
  walk_hash<st_adopt_key, st_adopt_dev>(bpf_map__fd(skel_->maps.st_adopted), "st_adopted",
                                        [&](const st_adopt_key& k, const st_adopt_dev& d) { out.emplace_back(k, d); });
  return out;
}

namespace {

// The kernel's info of every program of the object that is loaded; one the
// kernel will not describe is passed over, as one not loaded is.
template <typename Fn>
void for_each_loaded_program(bpf_object* obj, Fn&& fn) {
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, obj) {
    int fd = bpf_program__fd(prog);
    if (fd < 0) continue;
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) fn(prog, info);
  }
}

}  // namespace

std::vector<ProgramCost> Tracer::program_costs() const {
  std::vector<ProgramCost> out;
  for_each_loaded_program(skel_->obj, [&](const bpf_program* prog, const bpf_prog_info& info) {
    out.push_back({bpf_program__name(prog), info.run_cnt, info.run_time_ns});
  });
  return out;
}

std::vector<std::uint32_t> Tracer::program_ids() const {
  std::vector<std::uint32_t> out;
  for_each_loaded_program(skel_->obj, [&](const bpf_program*, const bpf_prog_info& info) { out.push_back(info.id); });
  return out;
}

std::uint32_t Tracer::live_capacity() const {
  return legacy_ ? bpf_map__max_entries(skel_->maps.st_live_hash) : std::uint32_t(live_slot_count_ / 2);
}

}  // namespace slabtrace::bpf
