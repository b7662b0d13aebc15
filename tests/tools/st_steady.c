/* Steady workloads for the verdict tests: leaks that grow at a set rate for
 * as long as the test says, so a recording sees them rise through its
 * intervals, as a real leak does. Every mode can first move itself into a
 * cgroup (--cgroup DIR), so a test only ever moves processes it started.
 *
 *   st_steady files      [--cgroup D] --count N --rate R   open /dev/null N times, keep them open
 *   st_steady udp-send   [--cgroup D] --port P --count N --rate R [--size B]
 *   st_steady unix-leak  [--cgroup D] --count N --rate R [--size B]   socketpair, never read
 *   st_steady fork-churn [--cgroup D] --count N            N short-lived child processes
 *
 * Leaking modes print "done N" once they have made N, then keep what they made
 * until stdin closes or SIGTERM. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOOL_NAME "st_steady"
#include "tool_common.h"

/* Calls make(i) for i in [0, count) at `rate` per second, in 10 ms steps. */
static long paced(long count, double rate, int (*make)(long i, void *ctx), void *ctx)
{
  double start = now_s();
  long made = 0;
  while (made < count) {
    long due = rate > 0 ? (long)((now_s() - start) * rate) + 1 : count;
    if (due > count)
      due = count;
    for (; made < due; made++)
      if (make(made, ctx) != 0)
        return made;
    if (made < count)
      usleep(10000);
  }
  return made;
}

static void hold(void)
{
  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
}

static int open_one(long i, void *ctx)
{
  (void)i;
  (void)ctx;
  return open("/dev/null", O_RDONLY) < 0 ? -1 : 0;
}

struct sender {
  int fd;
  char *buf;
  int size;
};

static int send_one(long i, void *ctx)
{
  (void)i;
  struct sender *s = ctx;
  return send(s->fd, s->buf, (size_t)s->size, 0) < 0 ? -1 : 0;
}

/* Never blocks: a full receiver (net.unix.max_dgram_qlen) ends the leak early. */
static int send_nowait(long i, void *ctx)
{
  (void)i;
  struct sender *s = ctx;
  return send(s->fd, s->buf, (size_t)s->size, MSG_DONTWAIT) < 0 ? -1 : 0;
}

static int fork_one(long i, void *ctx)
{
  (void)i;
  (void)ctx;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0)
    _exit(0);
  return waitpid(pid, NULL, 0) == pid ? 0 : -1;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: st_steady MODE [options] (see the source)\n");
    return 2;
  }
  const char *mode = argv[1];
  join_cgroup(opt(argc, argv, "--cgroup", NULL));
  long count = atol(opt(argc, argv, "--count", "10000"));
  double rate = atof(opt(argc, argv, "--rate", "0"));
  int size = atoi(opt(argc, argv, "--size", "200"));
  setvbuf(stdout, NULL, _IONBF, 0);
  signal(SIGTERM, SIG_DFL);
  long made = 0;

  if (strcmp(mode, "files") == 0) {
    /* Up to the hard limit: raising that takes CAP_SYS_RESOURCE, which a
     * container's root may lack. */
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0)
      die("getrlimit");
    if (r.rlim_max != RLIM_INFINITY && (rlim_t)count + 16 > r.rlim_max) {
      fprintf(stderr, "st_steady: --count %ld files is more than RLIMIT_NOFILE allows (%lu)\n", count,
              (unsigned long)r.rlim_max);
      return 2;
    }
    r.rlim_cur = r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &r) != 0)
      die("setrlimit(RLIMIT_NOFILE)");
    made = paced(count, rate, open_one, NULL);
    if (made < count)
      die("open");
  } else if (strcmp(mode, "udp-send") == 0) {
    struct sender s = {.fd = socket(AF_INET, SOCK_DGRAM, 0), .buf = calloc(1, (size_t)size), .size = size};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(opt(argc, argv, "--port", "0"))),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s.fd < 0 || connect(s.fd, (struct sockaddr *)&a, sizeof a) != 0)
      die("connect");
    made = paced(count, rate, send_one, &s);
    free(s.buf);
    printf("done %ld\n", made);
    return made == count ? 0 : 1;
  } else if (strcmp(mode, "unix-leak") == 0) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0)
      die("socketpair");
    int big = 1 << 30;
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    struct sender s = {.fd = sv[0], .buf = calloc(1, (size_t)size), .size = size};
    made = paced(count, rate, send_nowait, &s);
    free(s.buf);
  } else if (strcmp(mode, "fork-churn") == 0) {
    made = paced(count, rate, fork_one, NULL);
    printf("done %ld\n", made);
    return made == count ? 0 : 1;
  } else {
    fprintf(stderr, "st_steady: unknown mode %s\n", mode);
    return 2;
  }
  printf("done %ld\n", made);
  hold();
  return 0;
}
