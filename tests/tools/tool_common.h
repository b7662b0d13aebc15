/* What every workload tool needs: options, a one-line death, moving itself
 * into a cgroup the test created, a monotonic clock, and the never-read
 * sockets they leak into. Define TOOL_NAME (and _GNU_SOURCE) before including. */
#ifndef SLABTRACE_TOOL_COMMON_H
#define SLABTRACE_TOOL_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The value after `name` on the command line, or `def`. From argv[1]: a
 * tool's mode word never starts with "--", so it is never taken for a name. */
static const char *opt(int argc, char **argv, const char *name, const char *def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return argv[i + 1];
  return def;
}

static void die(const char *what)
{
  fprintf(stderr, TOOL_NAME ": %s: %s\n", what, strerror(errno));
  exit(1);
}

static void join_cgroup(const char *dir)
{
  if (!dir)
    return;
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "w");
  if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f) != 0)
    die(path);
}

static inline double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SO_RCVBUFFORCE ignores rmem_max: the queue must not drop what we leak.
 * Without CAP_NET_ADMIN, as much as rmem_max allows. */
static inline void big_rcvbuf(int fd)
{
  int size = 1 << 30;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) != 0)
    die("SO_RCVBUF");
}

/* An AF_PACKET socket taking every frame of interface `ifname`, never read
 * (a stuck capture tool): it keeps a clone of each skb. */
static inline int capture_socket(const char *ifname)
{
  int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (fd < 0)
    die("socket(AF_PACKET)");
  big_rcvbuf(fd);
  struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                           .sll_ifindex = (int)if_nametoindex(ifname)};
  if (bind(fd, (struct sockaddr *)&ll, sizeof ll) != 0)
    die("bind(AF_PACKET)");
  return fd;
}

#endif
