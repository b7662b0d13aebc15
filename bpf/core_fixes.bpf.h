/* Kernel differences the BPF code must survive, in one place: CO-RE flavours
 * (struct X___suffix matches the kernel's struct X by name, with only the
 * fields listed), tested with bpf_core_type_exists / bpf_core_field_exists,
 * which libbpf resolves against the running kernel's BTF at load time. Each
 * says which kernel changed it.
 *
 * A field the running kernel lacks gets its relocated instruction replaced by
 * an invalid one, harmless only where the verifier never goes. The compiler
 * hoists offset arithmetic above the test that guards it, so every access
 * through a flavour that may not exist sits in a __noinline function of its
 * own, called only under the test. What user space must probe before load (a
 * helper, the shape of a tracepoint's arguments, what the verifier accepts)
 * arrives as .rodata flags instead (config.bpf.h). */
#ifndef SLABTRACE_CORE_FIXES_BPF_H
#define SLABTRACE_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* ---- cgroups ------------------------------------------------------------- */

/* 6.18 renamed kernfs_node.parent to __parent; only the id is needed here, but
 * keep both spellings known to CO-RE for any future walk up the tree. */
struct kernfs_node___old {
  struct kernfs_node___old *parent;
} __attribute__((preserve_access_index));

/* cgroup-v2 id of the cgroup that created a socket (what cgroup BPF filters
 * and memory.stat "sock" use), or 0 when the kernel keeps none.
 * Before 5.15 ("bpf, cgroups: Fix cgroup v2 fallback on v1/v2 mixed mode")
 * sk_cgrp_data was a union whose u64 `val` held the struct cgroup pointer
 * when its low two bits were clear (else v1 net_prio/net_cls data); since, it
 * is a struct led by `struct cgroup *cgroup`. Both are its first 8 bytes. */
static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
  __u64 val = 0;
  bpf_probe_read_kernel(&val, sizeof(val), (void *)sk + bpf_core_field_offset(struct sock, sk_cgrp_data));
  if (!bpf_core_field_exists(sk->sk_cgrp_data.cgroup) && (val & 3))
    return 0;
  struct cgroup *cg = (struct cgroup *)val;
  if (!cg)
    return 0;
  return BPF_CORE_READ(cg, kn, id);
}

/* ---- kmem tracepoint formats (classic tracepoints) ----------------------- */

/* Before 6.1 ("mm/slab_common: drop kmem_alloc & avoid dereferencing fields
 * when not using") kmalloc and kmem_cache_alloc shared the kmem_alloc class,
 * and their _node twins kmem_alloc_node, with the same leading fields; there
 * was no struct trace_event_raw_kmem_cache_alloc / _kmalloc. gfp_flags was a
 * gfp_t (4 bytes) then, an unsigned long since. */
struct trace_event_raw_kmem_alloc___x {
  unsigned long call_site;
  const void *ptr;
  size_t bytes_req;
  size_t bytes_alloc;
  gfp_t gfp_flags;
} __attribute__((preserve_access_index));

/* Before 5.12 ("mm, tracing: record slab name for kmem_cache_free()") kfree
 * and kmem_cache_free shared the kmem_free class: no struct
 * trace_event_raw_kfree / _kmem_cache_free, and no cache name. */
struct trace_event_raw_kmem_free___x {
  unsigned long call_site;
  const void *ptr;
} __attribute__((preserve_access_index));

/* What an allocation event says, whatever its format. name_loc is the
 * __data_loc of the cache name (kmem_cache_alloc has one since after 6.12;
 * present on 6.18, absent on 6.1 and 6.12), 0 when absent. */
struct st_alloc_event {
  __u64 call_site;
  __u64 ptr;
  __u64 bytes_req; /* kmem_cache_alloc: the cache's object size */
  __u64 bytes_alloc;
  __u64 gfp;
  __u32 name_loc;
};

/* The five fields every allocation event has, read through format T. */
#define ST_READ_ALLOC_FIELDS(T, ctx, e)                        \
  do {                                                         \
    T *ev_ = (ctx);                                            \
    (e)->call_site = BPF_CORE_READ(ev_, call_site);            \
    (e)->ptr = (__u64)BPF_CORE_READ(ev_, ptr);                 \
    (e)->bytes_req = BPF_CORE_READ(ev_, bytes_req);            \
    (e)->bytes_alloc = BPF_CORE_READ(ev_, bytes_alloc);        \
    (e)->gfp = BPF_CORE_READ(ev_, gfp_flags);                  \
  } while (0)

static __noinline void read_kmem_cache_alloc_tp(void *ctx, struct st_alloc_event *e)
{
  ST_READ_ALLOC_FIELDS(struct trace_event_raw_kmem_cache_alloc, ctx, e);
  struct trace_event_raw_kmem_cache_alloc *c = ctx;
  if (bpf_core_field_exists(c->__data_loc_name))
    e->name_loc = BPF_CORE_READ(c, __data_loc_name);
}

static __noinline void read_kmalloc_tp_new(void *ctx, struct st_alloc_event *e)
{
  ST_READ_ALLOC_FIELDS(struct trace_event_raw_kmalloc, ctx, e);
}

static __noinline void read_kmem_alloc_tp_old(void *ctx, struct st_alloc_event *e)
{
  ST_READ_ALLOC_FIELDS(struct trace_event_raw_kmem_alloc___x, ctx, e);
}

static __always_inline void read_cache_alloc_tp(void *ctx, struct st_alloc_event *e)
{
  if (bpf_core_type_exists(struct trace_event_raw_kmem_cache_alloc))
    read_kmem_cache_alloc_tp(ctx, e);
  else
    read_kmem_alloc_tp_old(ctx, e);
}

/* kmalloc, and before 6.1 also kmalloc_node / kmem_cache_alloc_node (whose
 * class has the same leading fields). */
static __always_inline void read_kmalloc_tp(void *ctx, struct st_alloc_event *e)
{
  if (bpf_core_type_exists(struct trace_event_raw_kmalloc))
    read_kmalloc_tp_new(ctx, e);
  else
    read_kmem_alloc_tp_old(ctx, e);
}

static __noinline __u64 read_kfree_tp_ptr(void *ctx)
{
  struct trace_event_raw_kfree *k = ctx;
  return (__u64)BPF_CORE_READ(k, ptr);
}

static __noinline __u64 read_kmem_free_tp_ptr_old(void *ctx)
{
  struct trace_event_raw_kmem_free___x *f = ctx;
  return (__u64)BPF_CORE_READ(f, ptr);
}

/* call_site and ptr lead every free event's format, old and new. */
static __always_inline __u64 read_free_tp_ptr(void *ctx)
{
  if (bpf_core_type_exists(struct trace_event_raw_kfree))
    return read_kfree_tp_ptr(ctx);
  return read_kmem_free_tp_ptr_old(ctx);
}

/* ---- skb tracepoints ----------------------------------------------------- */

/* skb:kfree_skb gained `reason` in 5.17 ("net: skb: introduce
 * kfree_skb_reason()") and `rx_sk` in 6.11 ("net: add rx_sk to
 * trace_kfree_skb"). The tp_btf arguments follow the same history:
 * (skb, location[, reason[, rx_sk]]). */
static __always_inline int kfree_skb_has_reason(void)
{
  return bpf_core_field_exists(struct trace_event_raw_kfree_skb, reason);
}

static __always_inline int kfree_skb_has_rx_sk(void)
{
  return bpf_core_field_exists(struct trace_event_raw_kfree_skb, rx_sk);
}

static __noinline __u32 read_kfree_skb_tp_reason_field(struct trace_event_raw_kfree_skb *ctx)
{
  return BPF_CORE_READ(ctx, reason);
}

static __noinline __u64 read_kfree_skb_tp_rx_sk_field(struct trace_event_raw_kfree_skb *ctx)
{
  return (__u64)BPF_CORE_READ(ctx, rx_sk);
}

static __always_inline __u32 read_kfree_skb_tp_reason(struct trace_event_raw_kfree_skb *ctx)
{
  return kfree_skb_has_reason() ? read_kfree_skb_tp_reason_field(ctx) : 0;
}

static __always_inline const struct sock *read_kfree_skb_tp_rx_sk(struct trace_event_raw_kfree_skb *ctx)
{
  return kfree_skb_has_rx_sk() ? (const struct sock *)read_kfree_skb_tp_rx_sk_field(ctx) : NULL;
}

/* ---- an object's cache, from its slab page -------------------------------- */

/* Before 5.17 ("mm: Split slab into its own type") struct page carried the
 * slab fields; since, struct slab overlays struct page and has them. Either
 * way a tail page of a compound (multi-page) slab points to its head with
 * bit 0 of compound_head set. */
struct page___pre517 {
  struct kmem_cache *slab_cache;
} __attribute__((preserve_access_index));

struct slab___x {
  struct kmem_cache *slab_cache;
} __attribute__((preserve_access_index));

static __noinline __u64 page_slab_cache_pre517(__u64 page)
{
  __u64 cache = 0;
  bpf_probe_read_kernel(&cache, sizeof(cache), (void *)(page + bpf_core_field_offset(struct page___pre517, slab_cache)));
  return cache;
}

static __noinline __u64 slab_slab_cache(__u64 page)
{
  __u64 cache = 0;
  bpf_probe_read_kernel(&cache, sizeof(cache), (void *)(page + bpf_core_field_offset(struct slab___x, slab_cache)));
  return cache;
}

/* The direct map's base (page_offset_base) and the struct page array's
 * (vmemmap_base), both randomised by KASLR: read once at start-up by st_layout
 * from the addresses user space found in /proc/kallsyms. 0: unknown. */
__u64 st_page_offset = 0;
__u64 st_vmemmap = 0;

#define ST_PAGE_SHIFT 12

/* The struct kmem_cache an object belongs to, from its slab page (what
 * virt_to_slab() does), or 0 when the layout is unknown. Costs three probe
 * reads: only events that carry no cache pointer use it. */
static __always_inline __u64 object_cache(__u64 ptr)
{
  __u64 base = st_page_offset, vmemmap = st_vmemmap;
  if (!vmemmap || !base || ptr < base)
    return 0;
  __u64 page = vmemmap + ((ptr - base) >> ST_PAGE_SHIFT) * bpf_core_type_size(struct page);
  unsigned long head = 0;
  if (bpf_probe_read_kernel(&head, sizeof(head), (void *)(page + bpf_core_field_offset(struct page, compound_head))))
    return 0;
  if (head & 1)
    page = head - 1;
  __u64 cache = 0;
  if (bpf_core_field_exists(struct page___pre517, slab_cache))
    cache = page_slab_cache_pre517(page);
  else if (bpf_core_type_exists(struct slab___x))
    cache = slab_slab_cache(page);
  /* A kernel pointer or nothing: a page that is no slab yields no name. */
  return (cache >> 63) ? cache : 0;
}

#endif
