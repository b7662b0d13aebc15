/* Configuration: the tunables user space sets in .rodata before load, and the
 * pure predicates over them (sampling, code ranges, cache filters). Branches
 * on them are pruned by the verifier when a feature is off. */
#ifndef SLABTRACE_CONFIG_BPF_H
#define SLABTRACE_CONFIG_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "core_fixes.bpf.h"

/* Set by user space before load. */
const volatile __u32 sample_shift = 0;          /* track 1 in 2^shift addresses */
/* Stacks for 1 in 2^stack_shift tracked objects (ST_STACK_NONE: none), drawn
 * at random (see stack_draw): unbiased, and scaled in the report. */
const volatile __u32 stack_shift = 0;
/* Stack captures per CPU per ST_STACK_WINDOW_NS at the full rate; 0: no limit. */
const volatile __u32 stack_budget = 0;
const volatile __u32 kmalloc_max_cache_size = 8192;
/* Buckets the maps have room for (user space sizes them; <= ST_MAX_BUCKETS). */
const volatile __u32 bucket_limit = ST_MAX_BUCKETS;
/* The gfp bits that pick a kmalloc cache kind (kmalloc_key), as the running
 * kernel defines them (read from its kmem print fmt by user space), 0 where it
 * has no such caches (no kmalloc-cg-* before 5.14). */
const volatile __u64 gfp_account = 1ull << 22;
const volatile __u64 gfp_reclaimable = 1ull << 4;
const volatile __u64 gfp_dma = 1ull << 0;
const volatile __u32 cache_filter_count = 0;
const volatile char cache_filter_names[ST_MAX_CACHE_FILTERS][ST_CACHE_NAME_LEN] = {};
const volatile __u64 cache_filter_keys[ST_MAX_CACHE_FILTERS] = {};
/* Code ranges that allocate sk_buffs: [0] where heads and data are allocated
 * (__alloc_skb, kmalloc_reserve), [1] skb_clone. Empty ranges disable pairing. */
const volatile struct st_addr_range skb_alloc_ranges[ST_MAX_SKB_RANGES] = {};
const volatile struct st_addr_range skb_clone_range = {};
/* The BPF memory allocator refills map elements from irq_work with kmalloc:
 * tracing those would make the tracer feed on itself (every tracked object
 * allocates a map element, which is a new object to track). */
const volatile struct st_addr_range ignore_ranges[ST_MAX_IGNORE_RANGES] = {};
/* Interrupt context from the CPU's preempt count, where x86 keeps it in the
 * per-CPU variable __preempt_count (6.15+), followed by cpu_number. A typed
 * ksym would be the direct way, but kernels without CONFIG_KALLSYMS_ALL (this
 * project's own CI) cannot resolve data symbols. Every static per-CPU
 * variable sits at the same distance from every other one on each CPU, and
 * the CPU's runqueue (a per-CPU variable too) is reachable from the current
 * task: user space reads the distance from the BTF's .data..percpu section.
 * When set, the softirq/irq entry and exit programs stay unattached: they
 * cost two program runs per softirq, this costs one 8-byte read per
 * allocation. */
const volatile __u32 irq_from_preempt_count = 0;
/* What the kernel offers, probed by user space at start-up (never guessed
 * from a version number: distributions backport). */
/* Argument index of the struct kmem_cache pointer in the kmem_cache_alloc
 * tracepoint (6.1+: 2), or -1 when the event has none (then the cache is
 * found from the object's slab page, see object_cache). */
const volatile __s32 alloc_cache_arg = 2;
/* bpf_get_current_task_btf (5.11+): the cgroup by direct loads. */
const volatile __u32 have_task_btf = 1;
/* Addresses of page_offset_base and vmemmap_base (from /proc/kallsyms; 0 when
 * the kernel does not list them): where the direct map and struct pages are,
 * which turns an object into its slab page (see st_layout, object_cache). */
const volatile __u64 page_offset_base_addr = 0;
const volatile __u64 vmemmap_base_addr = 0;
/* kmalloc_reserve is a macro (before 6.3): the data buffer's kmalloc reports
 * __alloc_skb's return address as its call site, not a site inside it. */
const volatile __u32 skb_data_site_is_caller = 0;
/* One table slot per sk_buff from __alloc_skb, head and data together
 * (ST_OBJ_SKB_BOTH): one insert and one release per packet instead of two.
 * Set where the kmem_cache_free event carries the cache (6.1+, typed
 * attachment), which a head freed before its data (a clone's original) is
 * told by. */
const volatile __u32 skb_one_slot = 0;
const volatile __u32 nr_cpus = 1; /* possible CPUs (ST_LEGACY bucket numbers) */
const volatile __u32 live_mask = (1 << 21) - 1;
const volatile __s64 preempt_count_from_rq = 0;

/* bpf_rdonly_cast (6.2+) is in this kernel (user space looks in its BTF). */
const volatile __u32 have_rdonly_cast = 0;

#ifndef ST_LEGACY
/* A number as a read-only typed pointer: loads through it are direct loads
 * the kernel guards against faults (a fault reads 0), where a probe_read is
 * a helper call (~35 ns here). The verifier turns the call into a move.
 * Weak, so that the object loads where the kernel lacks it: every call is
 * under have_rdonly_cast (or irq_from_preempt_count, which implies it), so
 * the verifier prunes it there. */
extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id) __ksym __weak;
#endif

/* Address-hash sampling: alloc and free of one object always decide alike, so
 * the sample is unbiased and scaling by 2^shift estimates the population. */
static __always_inline int sampled(__u64 ptr)
{
  if (sample_shift == 0)
    return 1;
  __u64 h = (ptr >> 3) * 0x9E3779B97F4A7C15ull;
  return (h >> (64 - sample_shift)) == 0;
}

/* An sk_buff head is in the sample by its own address (clones, heads on
 * classic tracepoints) or by its data buffer's, skb->head (heads allocated
 * with their data: see on_alloc). Read only where its own address is out. */
static __always_inline int head_in_sample(__u64 addr)
{
  if (sampled(addr))
    return 1;
  return sampled((__u64)BPF_CORE_READ((const struct sk_buff *)addr, head));
}

static __always_inline int in_range(__u64 addr, const volatile struct st_addr_range *r)
{
  return addr >= r->start && addr < r->end;
}

static __always_inline int in_skb_alloc(__u64 call_site)
{
  for (int i = 0; i < ST_MAX_SKB_RANGES; i++)
    if (in_range(call_site, &skb_alloc_ranges[i]))
      return 1;
  return 0;
}

static __always_inline int ignored_site(__u64 call_site)
{
  for (int i = 0; i < ST_MAX_IGNORE_RANGES; i++)
    if (in_range(call_site, &ignore_ranges[i]))
      return 1;
  return 0;
}

static __always_inline int name_matches(const char *name, const volatile char *want)
{
  for (int i = 0; i < ST_CACHE_NAME_LEN; i++) {
    if (name[i] != want[i])
      return 0;
    if (name[i] == 0)
      return 1;
  }
  return 1;
}

static __always_inline int cache_wanted(__u64 key, const char *name)
{
  if (cache_filter_count == 0)
    return 1;
  for (int i = 0; i < ST_MAX_CACHE_FILTERS; i++) {
    if (i >= cache_filter_count)
      break;
    if (cache_filter_keys[i] == key || name_matches(name, cache_filter_names[i]))
      return 1;
  }
  return 0;
}

#endif
