// SPDX-License-Identifier: GPL-2.0
/* slabtrace census: exact sk_buff counts per socket, from BPF socket iterators.
 *
 * sock_diag gives the kernel's bytes for every socket but no count of the skbs
 * behind them (unix datagram sockets only the length of the first one). The
 * iterators walk the kernel's own socket tables and read each queue's qlen:
 * one record (slabtrace/census_iter.h) per socket with anything queued.
 *
 * Its own object, apart from the tracer: the census runs in commands that
 * trace nothing (doctor, serve while it watches), and a kernel that lacks an
 * iterator loses only that family's counts. Each iterator sees the network
 * namespace of the thread that opens it; user space opens one per namespace.
 * Needs: bpf_seq_write (5.8), iter/netlink (5.8), iter/tcp and iter/udp (5.9),
 * iter/unix (5.17, probed: without it, unix counts stay sock_diag's). CO-RE
 * reads only, no bpf_loop, so it loads on 5.10. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/census_iter.h"
#include "socket_inode.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* The backlog is a list with bytes (sk_backlog.len) but no count. */
static __always_inline __u32 backlog_skbs(const struct sock *sk, __u32 *flags)
{
  struct sk_buff *skb = BPF_CORE_READ(sk, sk_backlog.head);
  __u32 n = 0;
  for (int i = 0; i < ST_ITER_BACKLOG_WALK && skb; i++) {
    n++;
    skb = BPF_CORE_READ(skb, next);
  }
  if (skb)
    *flags |= ST_ITER_INEXACT;
  return n;
}

/* Fills what every socket has; the caller adds its family's own queues. */
static __always_inline void common_queues(const struct sock *sk, __u32 kind, struct st_iter_socket *rec)
{
  rec->kind = kind;
  rec->receive_skbs = BPF_CORE_READ(sk, sk_receive_queue.qlen);
  rec->write_skbs = BPF_CORE_READ(sk, sk_write_queue.qlen);
  rec->backlog_skbs = backlog_skbs(sk, &rec->flags);
}

static __always_inline int emit(struct seq_file *seq, const struct sock *sk, struct st_iter_socket *rec)
{
  if (!rec->receive_skbs && !rec->backlog_skbs && !rec->write_skbs && !rec->flags)
    return 0; /* nothing queued: user space reads the socket's absence as 0 */
  rec->inode = socket_inode(sk);
  if (!rec->inode)
    return 0; /* a kernel socket: sock_diag lists it with inode 0 and the census skips it */
  rec->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
  bpf_seq_write(seq, rec, sizeof(*rec));
  return 0;
}

SEC("iter/udp")
int st_iter_udp(struct bpf_iter__udp *ctx)
{
  struct udp_sock *up = ctx->udp_sk;
  if (!up)
    return 0;
  const struct sock *sk = (const struct sock *)up;
  struct st_iter_socket rec = {};
  common_queues(sk, ST_ITER_UDP, &rec);
  /* A reader moves the receive queue to its own reader_queue in one splice. */
  rec.receive_skbs += BPF_CORE_READ(up, reader_queue.qlen);
  return emit(ctx->meta->seq, sk, &rec);
}

SEC("iter/tcp")
int st_iter_tcp(struct bpf_iter__tcp *ctx)
{
  struct sock_common *skc = ctx->sk_common;
  if (!skc)
    return 0;
  unsigned char state = BPF_CORE_READ(skc, skc_state);
  if (!full_tcp_socket(state))
    return 0;
  const struct sock *sk = (const struct sock *)skc;
  struct st_iter_socket rec = {};
  common_queues(sk, ST_ITER_TCP, &rec);
  /* Sent-but-unacked and out-of-order skbs sit in rbtrees without a count:
   * sock_diag's bytes include them, a count without them would be wrong. */
  const struct tcp_sock *tp = (const struct tcp_sock *)sk;
  if (BPF_CORE_READ(sk, tcp_rtx_queue.rb_node) || BPF_CORE_READ(tp, out_of_order_queue.rb_node))
    rec.flags |= ST_ITER_INEXACT;
  return emit(ctx->meta->seq, sk, &rec);
}

/* Unix and netlink sockets keep their skbs in the common queues only. */
static __always_inline int count_common(struct seq_file *seq, const struct sock *sk, __u32 kind)
{
  if (!sk)
    return 0;
  struct st_iter_socket rec = {};
  common_queues(sk, kind, &rec);
  return emit(seq, sk, &rec);
}

SEC("iter/unix")
int st_iter_unix(struct bpf_iter__unix *ctx)
{
  return count_common(ctx->meta->seq, (const struct sock *)ctx->unix_sk, ST_ITER_UNIX);
}

SEC("iter/netlink")
int st_iter_netlink(struct bpf_iter__netlink *ctx)
{
  return count_common(ctx->meta->seq, (const struct sock *)ctx->sk, ST_ITER_NETLINK);
}
