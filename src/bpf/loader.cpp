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
#include <mutex>
#include <optional>

#include "slabtrace/bpf_shared.h"
#include "slabtrace.skel.h"
#include "slabtrace/error.hpp"
#include "slabtrace/tracer.hpp"

// The contract header is shared with BPF: catch layout drift at compile time.
static_assert(sizeof(st_object) == 16, "live-object value: every byte is megabytes at scale");
static_assert(sizeof(st_bucket_key) == 16);
static_assert(sizeof(st_bucket) == 56);
static_assert(sizeof(st_counters) == (4 + ST_END_REASONS) * 8);
static_assert(sizeof(st_sock) == 48);
static_assert(sizeof(st_drop_key) == 24);
static_assert(sizeof(st_stats) == ST_STAT_COUNT * 8);
static_assert(sizeof(st_slot) == 24, "a live-object slot is 24 bytes: the table's memory is slots x 24");
static_assert((ST_MAX_BUCKETS & (ST_MAX_BUCKETS - 1)) == 0 && ST_MAX_BUCKETS <= (1u << ST_OBJ_STACK_SHIFT));
static_assert(ST_MAX_STACKS <= ST_OBJ_NO_STACK);

namespace slabtrace::bpf {
namespace {

// libbpf's own log: shown with -v; otherwise only its last line is kept, to
// explain a failure in one line instead of a verifier dump.
bool g_verbose = false;
std::mutex g_log_mutex;
std::string g_last_libbpf_line;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, format, args);
  std::string line(buf);
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

bool tracefs_has_event(const std::string& category, const std::string& event) {
  for (const char* base : {"/sys/kernel/tracing/events/", "/sys/kernel/debug/tracing/events/"})
    if (path_exists(std::string(base) + category + "/" + event)) return true;
  return false;
}

// A BPF program's tracepoint, from its section name: "tp_btf/kfree" or
// "tracepoint/kmem/kfree".
struct ProgramTarget {
  bool btf = false;
  std::string category;  // classic tracepoints only
  std::string event;
};

ProgramTarget target_of(const bpf_program* prog) {
  std::string sec = bpf_program__section_name(prog);
  ProgramTarget t;
  if (sec.rfind("tp_btf/", 0) == 0) {
    t.btf = true;
    t.event = sec.substr(7);
  } else {
    auto rest = sec.substr(sec.find('/') + 1);
    auto slash = rest.find('/');
    t.category = rest.substr(0, slash);
    t.event = rest.substr(slash + 1);
  }
  return t;
}

bool kernel_has(const ProgramTarget& t) {
  if (t.btf) return libbpf_find_vmlinux_btf_id(t.event.c_str(), BPF_TRACE_RAW_TP) > 0;
  return tracefs_has_event(t.category, t.event);
}

// The kmem events are the job; the rest improve it and may be absent on older
// kernels (sk_data_ready is 6.3+).
bool is_required(const ProgramTarget& t) {
  return t.event == "kmem_cache_alloc" || t.event == "kmem_cache_free" || t.event == "kmalloc" ||
         t.event == "kfree";
}

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

bool is_irq_depth_program(const ProgramTarget& t) {
  return t.event == "softirq_entry" || t.event == "softirq_exit" || t.event == "irq_handler_entry" ||
         t.event == "irq_handler_exit";
}

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
std::optional<long long> preempt_count_from_rq(const std::string& btf_path) {
  btf* vmlinux = btf_path.empty() ? btf__load_vmlinux_btf() : btf__parse(btf_path.c_str(), nullptr);
  if (!vmlinux) return std::nullopt;
  long long pc = percpu_offset(vmlinux, "__preempt_count");
  long long cpu = percpu_offset(vmlinux, "cpu_number");
  long long rq = percpu_offset(vmlinux, "runqueues");
  bool usable = pc >= 0 && rq >= 0 && cpu == pc + 4 && has_member(vmlinux, "sched_entity", "cfs_rq") &&
                has_member(vmlinux, "cfs_rq", "rq");
  btf__free(vmlinux);
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
    case AttachMode::Tracepoint: return "tracepoint";
    case AttachMode::Auto: break;
  }
  return "auto";
}

AttachMode parse_attach_mode(const std::string& text) {
  if (text == "auto") return AttachMode::Auto;
  if (text == "tp_btf") return AttachMode::TpBtf;
  if (text == "tracepoint") return AttachMode::Tracepoint;
  throw UserError(fmt::format("unknown attach mode '{}': use auto, tp_btf or tracepoint", text));
}

void Tracer::SkelDeleter::operator()(::slabtrace_bpf* skel) const { slabtrace_bpf__destroy(skel); }

Tracer::Tracer(const TracerOptions& options) {
  g_verbose = options.verbose;
  libbpf_set_print(libbpf_print);
  require_privileges();
  bool have_btf = path_exists("/sys/kernel/btf/vmlinux");
  if (!have_btf && options.btf_path.empty())
    throw UserError("this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing); pass --btf PATH to a BTF file for this kernel");
  if (!options.btf_path.empty() && !path_exists(options.btf_path))
    throw UserError(fmt::format("--btf {}: no such file", options.btf_path));
  if (!tracefs_has_event("kmem", "kmalloc") && path_exists("/sys/kernel/tracing"))
    spdlog::debug("tracefs not mounted or kmem events missing; tp_btf may still work");

  ncpus_ = std::max(1, libbpf_num_possible_cpus());
  AttachMode wanted = options.attach_mode;
  if (wanted == AttachMode::Auto) wanted = have_btf ? AttachMode::TpBtf : AttachMode::Tracepoint;
  try {
    open_and_load(options, wanted);
  } catch (const UserError& e) {
    if (options.attach_mode != AttachMode::Auto || wanted != AttachMode::TpBtf) throw;
    spdlog::info("tp_btf programs did not load ({}); falling back to classic tracepoints", e.what());
    skel_.reset();
    for (auto* link : links_) bpf_link__destroy(link);
    links_.clear();
    missing_optional_.clear();
    open_and_load(options, AttachMode::Tracepoint);
  }
}

void Tracer::open_and_load(const TracerOptions& options, AttachMode mode) {
  LIBBPF_OPTS(bpf_object_open_opts, open_opts);
  if (!options.btf_path.empty()) open_opts.btf_custom_path = options.btf_path.c_str();
  skel_.reset(slabtrace_bpf__open_opts(&open_opts));
  if (!skel_) throw UserError(fmt::format("cannot open the BPF object: {}", errno_text(errno)));

  bool want_btf = mode == AttachMode::TpBtf;
  if (options.irq_context != "preempt_count" && options.irq_context != "programs")
    throw UserError(fmt::format("unknown --irq-context '{}': use programs or preempt_count", options.irq_context));
  std::optional<long long> pc_from_rq;
  if (options.irq_context == "preempt_count") pc_from_rq = preempt_count_from_rq(options.btf_path);
  bool use_preempt_count = pc_from_rq.has_value();
  if (options.irq_context == "preempt_count" && !use_preempt_count)
    throw UserError("--irq-context preempt_count: this kernel's BTF lacks the per-CPU __preempt_count layout it needs; use programs");
  irq_context_ = use_preempt_count ? "preempt_count" : "programs";
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (prog == skel_->progs.st_clock) continue;  // loaded, never attached
    ProgramTarget t = target_of(prog);
    bool ours = t.btf == want_btf;
    if (ours && !kernel_has(t)) {
      if (is_required(t))
        throw UserError(fmt::format("this kernel has no {} tracepoint {}{}", want_btf ? "BTF" : "classic",
                                    t.category.empty() ? "" : t.category + ":", t.event));
      missing_optional_.push_back(t.event);
      ours = false;
    }
    if (use_preempt_count && is_irq_depth_program(t)) ours = false;
    bpf_program__set_autoload(prog, ours);
  }

  auto* ro = skel_->rodata;
  ro->sample_shift = options.sample_shift;
  ro->irq_from_preempt_count = use_preempt_count ? 1 : 0;
  ro->preempt_count_from_rq = pc_from_rq.value_or(0);
  ro->stack_shift = options.stack_shift;
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
  ro->skb_clone_range.start = options.skb_clone_range.start;
  ro->skb_clone_range.end = options.skb_clone_range.end;

  // Two slots per object the user asked room for, a power of two: linear
  // probing stays short below half full.
  std::uint32_t slots = 1024;
  while (slots < options.max_objects) slots <<= 1;
  slots <<= 1;
  bpf_map__set_max_entries(skel_->maps.st_live, slots);
  ro->live_mask = slots - 1;

  if (int err = slabtrace_bpf__load(skel_.get()); err) {
    std::string why = last_libbpf_line();
    throw UserError(fmt::format("loading the {} BPF programs failed: {}{}", to_string(mode), errno_text(err),
                                why.empty() ? "" : " (" + why + ")"));
  }
  // Interrupt depth is counted by entry/exit pairs: attach every exit before
  // any entry, so no entry is ever seen without its exit.
  std::vector<bpf_program*> order;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (bpf_program__autoload(prog) && prog != skel_->progs.st_clock) order.push_back(prog);
  }
  std::stable_partition(order.begin(), order.end(), [](bpf_program* p) {
    return std::string(bpf_program__section_name(p)).find("_exit") != std::string::npos;
  });
  for (bpf_program* prog : order) {
    bpf_link* link = bpf_program__attach(prog);
    if (!link) {
      int err = errno;
      throw UserError(fmt::format("attaching {} to {} failed: {}", bpf_program__name(prog),
                                  bpf_program__section_name(prog), errno_text(err)));
    }
    links_.push_back(link);
  }
  mode_ = mode;

  long page = sysconf(_SC_PAGESIZE);
  live_slot_count_ = bpf_map__max_entries(skel_->maps.st_live);
  live_map_bytes_ = (live_slot_count_ * sizeof(st_slot) + std::size_t(page) - 1) / std::size_t(page) * std::size_t(page);
  void* view = mmap(nullptr, live_map_bytes_, PROT_READ, MAP_SHARED, bpf_map__fd(skel_->maps.st_live), 0);
  if (view == MAP_FAILED) throw UserError(fmt::format("cannot map the live-object table: {}", errno_text(errno)));
  live_slots_ = static_cast<const st_slot*>(view);
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

std::vector<BucketSnapshot> Tracer::buckets() const {
  std::uint32_t used = std::min<std::uint32_t>(skel_->bss->st_next_bucket, ST_MAX_BUCKETS);
  int info_fd = bpf_map__fd(skel_->maps.st_buckets);
  int counts_fd = bpf_map__fd(skel_->maps.st_counts);
  std::vector<BucketSnapshot> out;
  out.reserve(used);
  for (std::uint32_t i = 0; i < used; ++i) {
    BucketSnapshot b;
    b.index = i;
    if (bpf_map_lookup_elem(info_fd, &i, &b.info) != 0) continue;
    if (b.info.cache == 0 && b.info.cgroup == 0) continue;  // slot lost to a creation race
    if (sum_percpu(counts_fd, i, &b.counters, sizeof b.counters) != 0) continue;
    out.push_back(b);
  }
  return out;
}

st_stats Tracer::stats() const {
  st_stats s{};
  sum_percpu(bpf_map__fd(skel_->maps.st_stat), 0, &s, sizeof s);
  return s;
}

namespace {

// Walks a hash map in batches (one syscall per few thousand entries); falls
// back to key-by-key iteration where the kernel lacks batch operations.
template <typename Key, typename Value, typename Fn>
void walk_hash(int fd, Fn&& fn) {
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
    if (err) return;  // ENOENT: the end
    first = false;
  }
  Key key{}, next{};
  Value value{};
  bool have = false;
  while (bpf_map_get_next_key(fd, have ? &key : nullptr, &next) == 0) {
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) fn(next, value);
    key = next;
    have = true;
  }
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
  o.flags = packed & ST_OBJ_FLAGS;
  o.alloc_tick = slot.obj.alloc_tick;
  o.link = slot.obj.link;
  return o;
}

}  // namespace

void Tracer::for_each_live(const std::function<void(const LiveObject&)>& fn) const {
  auto now = std::uint32_t(read_clock().jiffies);
  std::uint32_t ticks_per_s = hz();
  for (std::size_t i = 0; i < live_slot_count_; ++i) {
    const volatile st_slot& slot = live_slots_[i];
    std::uint64_t addr = slot.addr;
    if (addr == ST_SLOT_EMPTY || addr == ST_SLOT_DEAD) continue;
    LiveObject o = unpack(addr, slot);
    auto ticks = std::int32_t(now - o.alloc_tick);  // wraps; an object newer than `now` is 0 old
    o.age_ms = ticks > 0 ? std::uint64_t(ticks) * 1000 / ticks_per_s : 0;
    fn(o);
  }
}

std::optional<LiveObject> Tracer::find_live(std::uint64_t addr) const {
  if (live_slot_count_ == 0 || addr == ST_SLOT_EMPTY || addr == ST_SLOT_DEAD) return std::nullopt;
  auto mask = std::uint32_t(live_slot_count_ - 1);
  std::uint32_t home = st_home_slot(addr, mask);
  for (std::uint32_t k = 0; k < ST_LIVE_PROBES; ++k) {
    const volatile st_slot& slot = live_slots_[(home + k) & mask];
    std::uint64_t a = slot.addr;
    if (a == addr) return unpack(addr, slot);
    if (a == ST_SLOT_EMPTY) break;
  }
  return std::nullopt;
}

std::vector<std::uint64_t> Tracer::stack(std::int32_t stack_id) const {
  std::vector<std::uint64_t> frames(ST_MAX_STACK_DEPTH);
  if (stack_id < 0) return {};
  std::uint32_t id = std::uint32_t(stack_id);
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.st_stacks), &id, frames.data()) != 0) return {};
  auto end = std::find(frames.begin(), frames.end(), 0ull);
  frames.erase(end, frames.end());
  return frames;
}

std::vector<std::pair<std::uint64_t, st_sock>> Tracer::sockets() const {
  std::vector<std::pair<std::uint64_t, st_sock>> out;
  walk_hash<std::uint64_t, st_sock>(bpf_map__fd(skel_->maps.st_socks),
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
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.st_socks), &sk, &s) != 0) return std::nullopt;
  return s;
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> Tracer::drops() const {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
  int fd = bpf_map__fd(skel_->maps.st_drops);
  for (std::uint32_t reason = 0; reason < ST_MAX_DROP_REASONS; ++reason) {
    std::uint64_t n = 0;
    if (sum_percpu(fd, reason, &n, sizeof n) == 0 && n) out.emplace_back(reason, n);
  }
  return out;
}

std::vector<std::pair<st_drop_key, std::uint64_t>> Tracer::drops_by_socket() const {
  std::vector<std::pair<st_drop_key, std::uint64_t>> out;
  walk_hash<st_drop_key, std::uint64_t>(bpf_map__fd(skel_->maps.st_drop_socks),
                                        [&](const st_drop_key& k, std::uint64_t n) { out.emplace_back(k, n); });
  return out;
}

std::vector<std::pair<st_adopt_key, st_adopt_dev>> Tracer::adopted() const {
  std::vector<std::pair<st_adopt_key, st_adopt_dev>> out;
  walk_hash<st_adopt_key, st_adopt_dev>(bpf_map__fd(skel_->maps.st_adopted),
                                        [&](const st_adopt_key& k, const st_adopt_dev& d) { out.emplace_back(k, d); });
  return out;
}

std::vector<ProgramCost> Tracer::program_costs() const {
  std::vector<ProgramCost> out;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel_->obj) {
    int fd = bpf_program__fd(prog);
    if (fd < 0) continue;
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
    out.push_back({bpf_program__name(prog), info.run_cnt, info.run_time_ns});
  }
  return out;
}

std::vector<std::uint32_t> Tracer::program_ids() const {
  std::vector<std::uint32_t> out;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel_->obj) {
    int fd = bpf_program__fd(prog);
    if (fd < 0) continue;
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) out.push_back(info.id);
  }
  return out;
}

std::uint32_t Tracer::live_capacity() const { return std::uint32_t(live_slot_count_ / 2); }

}  // namespace slabtrace::bpf
