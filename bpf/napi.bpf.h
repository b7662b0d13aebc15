/* sk_buff heads that no allocation event announced: the per-CPU NAPI skb cache
 * hands heads out (napi_skb_cache_get) and refills with kmem_cache_alloc_bulk,
 * neither traced. Real NIC drivers and a NAPI TAP build received skbs there.
 * Such a head is adopted when a traced path first shows it: the NAPI receive
 * entry points and the sk_data_ready queue walk (skb.bpf.h). It goes into the
 * skb head cache's bucket of the receiving context, tied to its traced data
 * buffer (skb->head), so that the data's free ends it as for any head.
 * Only heads whose data buffer was seen allocated are adopted: their data
 * proves they are of this run, not queued before it started, and its free
 * ends them even where the head itself leaves without an event (GRO, the
 * NAPI cache). Page-frag and page-pool data buffers are not slab objects, so
 * their heads stay unseen (counted by the census in their socket's queue). */
#ifndef SLABTRACE_NAPI_BPF_H
#define SLABTRACE_NAPI_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "config.bpf.h"
#include "percpu.bpf.h"
#include "irq_context.bpf.h"
#include "buckets.bpf.h"
#include "live_table.bpf.h"
#include "alloc.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 256);
  __type(key, struct st_adopt_key);
  __type(value, struct st_adopt_dev);
} st_adopted SEC(".maps");

static __always_inline void count_adopted(const struct sk_buff *skb)
{
  struct net_device *dev = BPF_CORE_READ(skb, dev);
  struct st_adopt_key key = {};
  if (dev) {
    key.ifindex = BPF_CORE_READ(dev, ifindex);
    key.netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
  }
  struct st_adopt_dev *d = bpf_map_lookup_elem(&st_adopted, &key);
  if (d) {
    __sync_fetch_and_add(&d->heads, 1);
    return;
  }
  struct st_adopt_dev fresh = {.heads = 1};
  if (dev)
    bpf_probe_read_kernel_str(fresh.name, sizeof(fresh.name), dev->name);
  if (bpf_map_update_elem(&st_adopted, &key, &fresh, BPF_NOEXIST) != 0) {
    d = bpf_map_lookup_elem(&st_adopted, &key);
    if (d)
      __sync_fetch_and_add(&d->heads, 1);
  }
}

/* Adopts the head at `addr` (with data buffer `head`) unless it is tracked
 * already. Returns 1 if it adopted it. */
static __always_inline int adopt_head(void *ctx, __u64 addr, __u64 head, const struct sk_buff *skb, int typed)
{
  /* Drawn by its data buffer's address, as a head allocated with its data. */
  if (!addr || !head || !sampled(head))
    return 0;
  if (live_find(addr))
    return 0; /* seen allocated, or adopted already */
  struct st_slot *data = live_find(head);
  /* A head, or a whole sk_buff (tracked already): nothing to adopt. */
  if (!data || (data->obj.packed & ST_OBJ_SKB_HEAD))
    return 0;
  if (!st_skb_head_cache) {
    stat_add(ST_STAT_ADOPT_NO_CACHE, 1);
    return 0;
  }
  struct st_cpu_state *cpu = cpu_state();
  struct st_bucket_key key = {.cache = st_skb_head_cache, .cgroup = st_current_cgroup(typed)};
  __u32 idx = 0, bucket_flags = 0, size = 0;
  struct st_cache_ref ref = {.name = st_skb_head_name, .size = st_skb_head_size};
  if (bucket_for(cpu, &key, &ref, &idx, &bucket_flags, &size) != 0 ||
      (bucket_flags & ST_BUCKET_IGNORED))
    return 0;
  struct st_counters *c = bpf_map_lookup_elem(&st_counts, &idx);
  if (!c)
    return 0;
  /* Aged as its data buffer: end_linked_head takes a head younger than its
   * data for a new skb at a reused address. */
  struct st_object obj = {
      .packed = (idx & ST_OBJ_BUCKET_MASK) | (ST_OBJ_NO_STACK << ST_OBJ_STACK_SHIFT) | ST_OBJ_SKB_HEAD |
                ST_OBJ_SKB_ADOPTED,
      .alloc_tick = data->obj.alloc_tick,
  };
  obj.packed = (obj.packed & ~ST_OBJ_STACK_BITS) | stack_bits_of(ctx, stack_draw(cpu));
  if (live_insert_settle(addr, &obj, live_try_insert(addr, &obj)))
    return 0;
  c->allocs += 1;
  c->tracked += 1;
  if (!(data->obj.packed & ST_OBJ_SKB_DATA)) {
    data->obj.link = addr;
    data->obj.packed |= ST_OBJ_SKB_DATA;
  }
  count_adopted(skb);
  return 1;
}

/* The NAPI receive entry points: napi_gro_frags (napi_get_frags: drivers that
 * receive into pages, a TAP with IFF_NAPI_FRAGS) and napi_gro_receive.
 * The address as a number (as_number): older verifiers (6.12) refuse a typed
 * pointer as an argument of the live table's global functions; skb->head is
 * read directly (a probe_read per received packet otherwise), and made a
 * number too (6.18 types it as untrusted memory). */
static __always_inline int adopt_typed(void *ctx, const struct sk_buff *skb)
{
  struct st_cpu_state *cpu = cpu_state();
  if (!cpu)
    return 0;
  __u64 addr = as_number(cpu, skb);
  adopt_head(ctx, addr, as_number(cpu, skb->head), skb, 1);
  return 0;
}

SEC("tp_btf/napi_gro_frags_entry")
int BPF_PROG(st_btf_gro_frags, const struct sk_buff *skb)
{
  return adopt_typed(ctx, skb);
}

SEC("tp_btf/napi_gro_receive_entry")
int BPF_PROG(st_btf_gro_receive, const struct sk_buff *skb)
{
  return adopt_typed(ctx, skb);
}

SEC("tracepoint/net/napi_gro_frags_entry")
int st_tp_gro_frags(struct trace_event_raw_net_dev_rx_verbose_template *ctx)
{
  const struct sk_buff *skb = (const void *)BPF_CORE_READ(ctx, skbaddr);
  adopt_head(ctx, (__u64)skb, (__u64)BPF_CORE_READ(skb, head), skb, 0);
  return 0;
}

SEC("tracepoint/net/napi_gro_receive_entry")
int st_tp_gro_receive(struct trace_event_raw_net_dev_rx_verbose_template *ctx)
{
  const struct sk_buff *skb = (const void *)BPF_CORE_READ(ctx, skbaddr);
  adopt_head(ctx, (__u64)skb, (__u64)BPF_CORE_READ(skb, head), skb, 0);
  return 0;
}

#endif
