/* Which socket holds each queued sk_buff, found when user space asks instead
 * of on every packet.
 *
 * The per-packet way (skb.bpf.h: a program on sock:sk_data_ready, 6.3+, and
 * one on skb_copy_datagram_iovec) costs a program run and a table search for
 * every packet any socket receives, although almost every packet is read at
 * once and a leak is a queue that stays. Here BPF socket iterators, which
 * user space runs before each report or refresh (in every network namespace,
 * with the census), walk each socket's receive queues from the oldest skb,
 * tie every tracked head in them to the socket (its link, as the per-packet
 * way does) and set the socket's queued count. A head read since
 * the last walk keeps its link until it is freed, which is at most the
 * reader's own few microseconds (its free takes it off the count).
 *
 * Packet sockets, which have no iterator, are found through every process's
 * files. Works wherever the iterators and bpf_loop are (5.17+: 6.1 has them, where
 * sock:sk_data_ready is missing); not in the ST_LEGACY object (5.10), whose
 * programs here are empty and never loaded. */
#ifndef SLABTRACE_QUEUE_WALK_BPF_H
#define SLABTRACE_QUEUE_WALK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "config.bpf.h"
#include "percpu.bpf.h"
#include "live_table.bpf.h"
#include "sockets.bpf.h"

/* bpf_loop's own limit: a queue longer than 8 M skbs is walked in part. */
#define ST_TIE_WALK_MAX (1u << 23)
/* Steps past the queue's length: skbs queued while we walk. */
#define ST_TIE_WALK_SLACK 64

#ifndef ST_LEGACY

struct st_tie_walk {
  __u64 sk_addr;
  __u64 queue_head; /* the list's own head: the walk is round */
  __u64 next;
  __u32 found;
  __u32 last_truesize;
};

/* skb->next and skb->truesize: direct loads where the kernel has
 * bpf_rdonly_cast (6.2+), else probe reads (~35 ns each: 1.7 M queued skbs
 * are walked at each report). */
static __always_inline __u64 skb_next(__u64 addr)
{
  if (have_rdonly_cast) {
    struct st_cpu_state *cpu = cpu_state();
    const struct sk_buff *skb = bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct sk_buff));
    return cpu ? as_number(cpu, skb->next) : 0;
  }
  return (__u64)BPF_CORE_READ((const struct sk_buff *)addr, next);
}

static __always_inline __u32 skb_truesize(__u64 addr)
{
  if (have_rdonly_cast) {
    const struct sk_buff *skb = bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct sk_buff));
    return skb->truesize;
  }
  return BPF_CORE_READ((const struct sk_buff *)addr, truesize);
}

/* One skb of the queue. The queue changes under the walk (no lock is held on
 * it): every read is fault-safe, and a walk that leaves the list ends at a
 * NULL or after its bounded steps. */
static long tie_step(__u64 i, void *data)
{
  struct st_tie_walk *w = data;
  __u64 addr = w->next;
  if (!addr || addr == w->queue_head)
    return 1;
  w->next = skb_next(addr);
  if (!head_in_sample(addr))
    return 0;
  struct st_slot *s = head_slot(addr);
  if (!s || !(s->obj.packed & ST_OBJ_SKB_HEAD))
    return 0;
  /* Counted absolutely below: a head moved from another socket's queue
   * leaves that socket's count to its next walk. */
  s->obj.link = w->sk_addr;
  w->found += 1;
  w->last_truesize = skb_truesize(addr);
  return 0;
}

static __always_inline void tie_queue(struct st_tie_walk *w, __u64 head_offset, __u64 first, __u32 qlen)
{
  if (!qlen || !first)
    return;
  w->queue_head = w->sk_addr + head_offset;
  w->next = first;
  __u32 steps = qlen + ST_TIE_WALK_SLACK;
  bpf_loop(steps < ST_TIE_WALK_MAX ? steps : ST_TIE_WALK_MAX, tie_step, w, 0);
}

/* After its queues were walked: the socket's count is what the walk found. */
static __always_inline void tie_done(const struct sock *sk, struct st_tie_walk *w)
{
  struct st_sock *so;
  if (!w->found) {
    so = bpf_map_lookup_elem(&st_socks, &w->sk_addr);
    if (so)
      so->queued = 0;
    return;
  }
  so = socket_entry(sk);
  if (!so)
    return;
  so->queued = w->found;
  so->last_truesize = w->last_truesize;
}

static __always_inline void tie_receive_queue(const struct sock *sk, struct st_tie_walk *w)
{
  struct st_cpu_state *cpu = cpu_state();
  if (!cpu)
    return;
  w->sk_addr = as_number(cpu, sk);
  tie_queue(w, bpf_core_field_offset(struct sock, sk_receive_queue), (__u64)BPF_CORE_READ(sk, sk_receive_queue.next),
            BPF_CORE_READ(sk, sk_receive_queue.qlen));
}

/* A socket whose skbs wait in its receive queue only (TCP, unix, packet). */
static __always_inline int tie_socket(const struct sock *sk)
{
  struct st_tie_walk w = {};
  tie_receive_queue(sk, &w);
  if (w.sk_addr)
    tie_done(sk, &w);
  return 0;
}

SEC("iter/udp")
int st_tie_udp(struct bpf_iter__udp *ctx)
{
  struct udp_sock *up = ctx->udp_sk;
  if (!up)
    return 0;
  const struct sock *sk = (const struct sock *)up;
  struct st_tie_walk w = {};
  tie_receive_queue(sk, &w);
  if (!w.sk_addr)
    return 0;
  /* A reader moves the receive queue to its own reader_queue in one splice. */
  tie_queue(&w, bpf_core_field_offset(struct udp_sock, reader_queue), (__u64)BPF_CORE_READ(up, reader_queue.next),
            BPF_CORE_READ(up, reader_queue.qlen));
  tie_done(sk, &w);
  return 0;
}

SEC("iter/tcp")
int st_tie_tcp(struct bpf_iter__tcp *ctx)
{
  struct sock_common *skc = ctx->sk_common;
  if (!skc)
    return 0;
  unsigned char state = BPF_CORE_READ(skc, skc_state);
  if (!full_tcp_socket(state))
    return 0;
  return tie_socket((const struct sock *)skc);
}

SEC("iter/unix")
int st_tie_unix(struct bpf_iter__unix *ctx)
{
  const struct sock *sk = (const struct sock *)ctx->unix_sk;
  return sk ? tie_socket(sk) : 0;
}

#define ST_TIE_AF_PACKET 17
#define ST_TIE_S_IFMT 00170000
#define ST_TIE_S_IFSOCK 0140000

/* Packet sockets have no iterator of their own: found through the files of
 * every process (task_file, 5.8), once per walk, whatever the namespace. A
 * socket open in several processes is walked once for each, to the same
 * result. */
SEC("iter/task_file")
int st_tie_files(struct bpf_iter__task_file *ctx)
{
  struct file *file = ctx->file;
  if (!file)
    return 0;
  umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
  if ((mode & ST_TIE_S_IFMT) != ST_TIE_S_IFSOCK)
    return 0;
  struct socket *sock = BPF_CORE_READ(file, private_data);
  const struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
  if (!sk || BPF_CORE_READ(sk, __sk_common.skc_family) != ST_TIE_AF_PACKET)
    return 0;
  return tie_socket(sk);
}

#else /* ST_LEGACY: no bpf_loop; the programs exist so both skeletons match */

SEC("iter/udp")
int st_tie_udp(void *ctx)
{
  return 0;
}

SEC("iter/tcp")
int st_tie_tcp(void *ctx)
{
  return 0;
}

SEC("iter/unix")
int st_tie_unix(void *ctx)
{
  return 0;
}

SEC("iter/task_file")
int st_tie_files(void *ctx)
{
  return 0;
}

#endif /* ST_LEGACY */

#endif
