/* The contract between bpf/census_iter.bpf.c (BPF socket iterators) and the
 * census (src/node/census_iter.cpp): one record per socket that has sk_buffs
 * queued, written with bpf_seq_write. Fixed-width types only; compiles in both
 * worlds (C++ checks the size with static_assert). */
#ifndef SLABTRACE_CENSUS_ITER_H
#define SLABTRACE_CENSUS_ITER_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Which iterator wrote the record (what the socket is). */
#define ST_ITER_UDP 1     /* iter/udp: udp_table, IPv4 and IPv6 (not UDP-Lite) */
#define ST_ITER_TCP 2     /* iter/tcp: full sockets, IPv4 and IPv6 */
#define ST_ITER_UNIX 3    /* iter/unix (5.17+) */
#define ST_ITER_NETLINK 4 /* iter/netlink */

/* The counts are a lower bound, not the queue: TCP retransmit or out-of-order
 * skbs (kept in rbtrees that carry no count), or a backlog longer than the
 * iterator walks. */
#define ST_ITER_INEXACT 1u

/* Backlog skbs are a list without a count: walked up to this many. */
#define ST_ITER_BACKLOG_WALK 64

struct st_iter_socket {
  __u64 inode;         /* sock_i_ino(): the socket's sockfs inode */
  __u64 netns;         /* inode of the socket's network namespace */
  __u32 kind;          /* ST_ITER_* */
  __u32 flags;         /* ST_ITER_INEXACT */
  __u32 receive_skbs;  /* sk_receive_queue (+ UDP's reader_queue) */
  __u32 backlog_skbs;  /* sk_backlog, the list filled while a user holds the socket */
  __u32 write_skbs;    /* sk_write_queue */
  __u32 pad;
};

#endif
