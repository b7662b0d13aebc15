/* sk_buffs: skb end events, and which socket queue holds a queued skb head. */
#ifndef SLABTRACE_SKB_BPF_H
#define SLABTRACE_SKB_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "percpu.bpf.h"
#include "live_table.bpf.h"
#include "sockets.bpf.h"
#include "alloc.bpf.h"
#include "napi.bpf.h"

/* skb: the sk_buff's address; data: its skb->head, which typed programs read
 * directly (a probe_read was two of the helper calls of every consumed
 * sk_buff, with the one that turned the typed argument into a number). Both
 * numbers by as_number: 6.18 types skb->head as untrusted memory. */
static __always_inline int on_skb_end(__u64 skb, __u64 data, __u32 reason, int dropped)
{
  if (dropped) {
    __u32 r = reason < ST_MAX_DROP_REASONS ? reason : ST_MAX_DROP_REASONS - 1;
    __u64 *n = bpf_map_lookup_elem(&st_drops, &r);
    if (n)
      *n += 1;
  }
  if (!skb || !(sampled(skb) || sampled(data)))
    return 0;
  __u64 link = 0;
  __u32 ms = 0;
  if (end_object(skb, ST_END_SKB_EVENT, &link, &ms))
    return 0;
  struct st_slot *s = one_slot_at(data);
  if (s)
    end_head_of_slot(s, ST_END_SKB_EVENT);
  return 0;
}

/* Typed: the address as a number by as_number, skb->head read directly. */
SEC("tp_btf/consume_skb")
int BPF_PROG(st_btf_consume_skb, struct sk_buff *skb)
{
  struct st_cpu_state *cpu = cpu_state();
  if (!cpu)
    return 0;
  return on_skb_end(as_number(cpu, skb), as_number(cpu, skb->head), 0, 0);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(st_btf_kfree_skb, struct sk_buff *skb)
{
  /* (skb, location[, reason[, rx_sk]]): see kfree_skb_has_*. An argument the
   * kernel lacks must not even be read, so only under the CO-RE test. */
  __u32 reason = 0;
  if (kfree_skb_has_reason())
    reason = (__u32)ctx[2];
  const struct sock *sk = NULL;
  if (kfree_skb_has_rx_sk())
    sk = (const struct sock *)raw_arg(ctx, 3);
  if (!sk)
    sk = BPF_CORE_READ(skb, sk);
  count_drop(reason, sk);
  struct st_cpu_state *cpu = cpu_state();
  if (!cpu)
    return 0;
  return on_skb_end(as_number(cpu, skb), as_number(cpu, skb->head), reason, 1);
}

SEC("tracepoint/skb/consume_skb")
int st_tp_consume_skb(struct trace_event_raw_consume_skb *ctx)
{
  const struct sk_buff *skb = (const void *)BPF_CORE_READ(ctx, skbaddr);
  return on_skb_end((__u64)skb, (__u64)BPF_CORE_READ(skb, head), 0, 0);
}

SEC("tracepoint/skb/kfree_skb")
int st_tp_kfree_skb(struct trace_event_raw_kfree_skb *ctx)
{
  __u32 reason = read_kfree_skb_tp_reason(ctx);
  const struct sock *sk = read_kfree_skb_tp_rx_sk(ctx);
  count_drop(reason, sk);
  const struct sk_buff *skb = (const void *)BPF_CORE_READ(ctx, skbaddr);
  return on_skb_end((__u64)skb, (__u64)BPF_CORE_READ(skb, head), reason, 1);
}


/* sk_data_ready fires after skbs are queued on a socket: the queue's tail end
 * holds them, which ties each to the socket that now holds it (skb->sk cannot:
 * it is NULL on queued UDP skbs and the sender on unix ones). UDP on 6.17+
 * splices batches from per-NUMA producer queues and signals once per batch, so
 * walk back from the tail until an skb already tied to this socket. */
#define ST_QUEUE_WALK 32

/* Ties one queued skb to the socket whose queue holds it. Returns 1 when the
 * walk can stop: the skb was tied to this socket already, or no room. */
static __always_inline int tie_queued(void *ctx, __u64 addr, const struct sock *sk, __u64 sk_addr,
                                      struct st_sock **so, __u32 truesize, const struct sk_buff *skb, int typed)
{
  if (!head_in_sample(addr))
    return 0;
  struct st_slot *s = head_slot(addr);
  /* A head from the NAPI cache that no receive entry point showed. */
  if (!s && adopt_head(ctx, addr, (__u64)BPF_CORE_READ(skb, head), skb, typed))
    s = live_find(addr);
  if (!s || !(s->obj.packed & ST_OBJ_SKB_HEAD))
    return 0;
  struct st_object *o = &s->obj;
  if (o->link == sk_addr)
    return 1;
  if (!*so)
    *so = socket_entry(sk);
  if (!*so)
    return 1;
  if (o->link)
    unqueue(o->link); /* moved from another socket's queue */
  o->link = sk_addr;
  __sync_fetch_and_add(&(*so)->queued, 1);
  (*so)->last_truesize = truesize;
  return 0;
}

/* Classic tracepoint: every pointer read is a probe_read. */
static __always_inline int on_data_ready(void *ctx, const struct sock *sk)
{
  if (!sk)
    return 0;
  __u64 sk_addr = (__u64)sk;
  __u64 queue_head = (__u64)&sk->sk_receive_queue;
  struct sk_buff *skb = BPF_CORE_READ(sk, sk_receive_queue.prev);
  struct st_sock *so = NULL;
  for (int i = 0; i < ST_QUEUE_WALK; i++) {
    __u64 addr = (__u64)skb;
    if (!addr || addr == queue_head)
      break;
    if (tie_queued(ctx, addr, sk, sk_addr, &so, BPF_CORE_READ(skb, truesize), skb, 0))
      break;
    skb = BPF_CORE_READ(skb, prev);
  }
  return 0;
}

/* tp_btf: the same walk with direct loads, each a few ns where a probe_read
 * costs ~35; addresses are hashed and compared through as_number. */
static __always_inline int on_data_ready_typed(void *ctx, const struct sock *sk)
{
  struct st_cpu_state *cpu = cpu_state();
  if (!sk || !cpu)
    return 0;
  __u64 sk_addr = as_number(cpu, sk);
  __u64 queue_head = sk_addr + bpf_core_field_offset(struct sock, sk_receive_queue);
  struct sk_buff *skb = sk->sk_receive_queue.prev;
  struct st_sock *so = NULL;
  for (int i = 0; i < ST_QUEUE_WALK; i++) {
    __u64 addr = as_number(cpu, skb);
    if (!addr || addr == queue_head)
      break;
    if (tie_queued(ctx, addr, sk, sk_addr, &so, skb->truesize, skb, 1))
      break;
    skb = skb->prev;
  }
  return 0;
}

/* Data copied to the reader: the skb has left the queue (it may still wait in
 * a per-CPU defer list before it is freed), so its socket no longer holds it.
 * UDP's linear copy (copy_linear_skb) fires no event, so for UDP the report's
 * cross-check with the socket's own queue accounting does this job.
 * A MSG_PEEK or a partial TCP read leaves it queued; the next sk_data_ready
 * walk ties such skbs to their socket again only if they are at the tail, so
 * a peeking reader can hide a few: the kernel's queue accounting is beside
 * every holder to catch that. */
static __always_inline int on_read(__u64 skb)
{
  if (!skb || !head_in_sample(skb))
    return 0;
  struct st_slot *s = head_slot(skb);
  struct st_object *o = s ? &s->obj : NULL;
  if (o && (o->packed & ST_OBJ_SKB_HEAD) && o->link) {
    __u64 sk = o->link;
    o->link = 0;
    unqueue(sk);
  }
  return 0;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(st_btf_skb_read, const struct sk_buff *skb)
{
  return on_read(raw_arg(ctx, 0));
}

SEC("tracepoint/skb/skb_copy_datagram_iovec")
int st_tp_skb_read(struct trace_event_raw_skb_copy_datagram_iovec *ctx)
{
  return on_read((__u64)BPF_CORE_READ(ctx, skbaddr));
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(st_btf_data_ready, const struct sock *sk)
{
  return on_data_ready_typed(ctx, sk);
}

SEC("tracepoint/sock/sk_data_ready")
int st_tp_data_ready(struct trace_event_raw_sk_data_ready *ctx)
{
  return on_data_ready(ctx, (const struct sock *)BPF_CORE_READ(ctx, skaddr));
}

#endif
