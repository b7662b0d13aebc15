/* Workloads for slabtrace's root tests and benchmarks: real sockets producing
 * real sk_buff leaks or churn. Every mode can first move itself into a cgroup
 * (--cgroup DIR writes its own pid to DIR/cgroup.procs), so a test only ever
 * moves processes it started.
 *
 *   st_workload udp-hold   [--cgroup D] [--rcvbuf B] bind 127.0.0.1:0, never read; prints "ready PORT"
 *   st_workload udp-send   [--cgroup D] --port P --count N [--size B]
 *   st_workload udp-churn  [--cgroup D] --seconds S [--count N] [--size B] [--batch K]   send and read at once
 *                          (K datagrams in flight, default 1: more distinct sk_buff addresses),
 *                                                   for S seconds or until N messages
 *   st_workload unix-leak  [--cgroup D] --count N [--size B]     socketpair, never read
 *   st_workload packet-hold [--cgroup D]           AF_PACKET on lo, never read
 *   st_workload udp-read   [--cgroup D]            bind, read everything; prints "ready PORT"
 *   st_workload exec-churn [--cgroup D] --seconds S   fork + exec /bin/true, one at a time; prints "execs N"
 *   st_workload fs-walk    [--cgroup D] --seconds S --dir D   stat every entry under D, again and again;
 *                                                   prints "entries N"
 *   st_workload unix-fork-leak [--cgroup D] --child-cgroup C --count N [--size B]
 *       socketpair, N datagrams never read; then forks: the child (moved to C)
 *       and the parent both keep the receiving end open (a supervisor and the
 *       worker that should read); prints "ready SENT CHILD_PID"
 *
 * Holding modes print "ready ..." then wait until stdin closes or SIGTERM.
 * --new-netns: first enter a new network namespace (with lo up);
 * --join-netns PID: first enter the network namespace of PID. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/wait.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOOL_NAME "st_workload"
#include "tool_common.h"

/* Keep the queue's owner alive until the test is done with it. */
static void enter_netns(int argc, char **argv)
{
  const char *join = opt(argc, argv, "--join-netns", NULL);
  if (join) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/ns/net", join);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
      die(path);
    close(fd);
  }
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--new-netns") != 0)
      continue;
    if (unshare(CLONE_NEWNET) != 0)
      die("unshare(CLONE_NEWNET)");
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    if (s < 0 || ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
      die("bringing up lo");
    close(s);
  }
}

static void hold(void)
{
  struct pollfd p = {.fd = 0, .events = POLLIN};
  char buf[64];
  for (;;) {
    int n = poll(&p, 1, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (read(0, buf, sizeof buf) <= 0)
      return;
  }
}

static int udp_bound(void)
{
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0)
    die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
    die("bind");
  return fd;
}

static int port_of(int fd)
{
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

static void send_udp(int port, long count, int size)
{
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
    die("connect");
  char *buf = calloc(1, size);
  for (long i = 0; i < count; i++)
    if (send(fd, buf, size, 0) < 0 && errno != ECONNREFUSED)
      die("send");
  free(buf);
  close(fd);
}

/* A unix datagram socketpair with `count` datagrams queued at sv[1], never
 * read; returns how many fit (the receiver's queue limit may stop it). */
static long unix_queue(int sv[2], long count, int size)
{
  if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0)
    die("socketpair");
  big_rcvbuf(sv[1]);
  int sndbuf = 1 << 30;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
  char *buf = calloc(1, size);
  long sent = 0;
  for (; sent < count; sent++)
    if (send(sv[0], buf, size, MSG_DONTWAIT) < 0)
      break;
  free(buf);
  return sent;
}

static long walked;
static double walk_end;
static int count_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  (void)path, (void)st, (void)type, (void)ftw;
  /* A walk of /usr takes about a second: stop within the window, not after it. */
  return ++walked % 1024 == 0 && now_s() >= walk_end;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: st_workload MODE [options] (see the source)\n");
    return 2;
  }
  const char *mode = argv[1];
  join_cgroup(opt(argc, argv, "--cgroup", NULL));
  enter_netns(argc, argv);
  int size = atoi(opt(argc, argv, "--size", "200"));
  long count = atol(opt(argc, argv, "--count", "10000"));
  setvbuf(stdout, NULL, _IONBF, 0);
  signal(SIGTERM, SIG_DFL);

  if (strcmp(mode, "udp-hold") == 0) {
    int fd = udp_bound();
    const char *rcvbuf = opt(argc, argv, "--rcvbuf", NULL);
    if (rcvbuf) {
      int bytes = atoi(rcvbuf); /* a small queue: what does not fit is dropped */
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes);
    } else {
      big_rcvbuf(fd);
    }
    printf("ready %d\n", port_of(fd));
    hold();
  } else if (strcmp(mode, "udp-send") == 0) {
    send_udp(atoi(opt(argc, argv, "--port", "0")), count, size);
    printf("sent %ld\n", count);
  } else if (strcmp(mode, "udp-churn") == 0) {
    double seconds = atof(opt(argc, argv, "--seconds", "1"));
    long count = atol(opt(argc, argv, "--count", "0"));  /* 0: no limit */
    int rx = udp_bound();
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port_of(rx)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(tx, (struct sockaddr *)&a, sizeof a) != 0)
      die("connect");
    int batch = atoi(opt(argc, argv, "--batch", "1"));
    if (batch < 1 || batch > 256)
      die("--batch: 1 to 256");
    char *buf = calloc(1, size > 0 ? size : 1);
    long n = 0;
    double end = now_s() + seconds;
    while (now_s() < end && (count <= 0 || n < count)) {
      for (int i = 0; i < 256; i += batch, n += batch) {
        for (int k = 0; k < batch; k++)
          if (send(tx, buf, size, 0) < 0)
            die("send");
        for (int k = 0; k < batch; k++)
          if (recv(rx, buf, size, 0) < 0)
            die("recv");
      }
    }
    free(buf);
    printf("messages %ld\n", n);
  } else if (strcmp(mode, "unix-leak") == 0) {
    int sv[2];
    printf("ready %ld\n", unix_queue(sv, count, size));
    hold();
  } else if (strcmp(mode, "unix-fork-leak") == 0) {
    int sv[2];
    long sent = unix_queue(sv, count, size);
    int started[2];
    if (pipe(started) != 0)
      die("pipe");
    pid_t child = fork();
    if (child < 0)
      die("fork");
    if (child == 0) {
      close(sv[0]); /* the worker only receives */
      join_cgroup(opt(argc, argv, "--child-cgroup", NULL));
      close(started[0]);
      if (write(started[1], "x", 1) != 1)
        die("write");
      hold();
      _exit(0);
    }
    close(started[1]);
    char c;
    if (read(started[0], &c, 1) != 1)
      die("child did not start");
    printf("ready %ld %d\n", sent, (int)child);
    hold();
    waitpid(child, NULL, 0);
  } else if (strcmp(mode, "packet-hold") == 0) {
    capture_socket("lo");
    printf("ready 0\n");
    hold();
  } else if (strcmp(mode, "udp-read") == 0) {
    int fd = udp_bound();
    printf("ready %d\n", port_of(fd));
    char buf[65536];
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    for (;;) {
      if (poll(p, 2, -1) < 0 && errno != EINTR)
        die("poll");
      if (p[1].revents & POLLIN)
        while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
        }
      if (p[0].revents & (POLLIN | POLLHUP)) {
        if (read(0, buf, sizeof buf) <= 0)
          break;
      }
    }
  } else if (strcmp(mode, "exec-churn") == 0) {
    /* Process churn: each run allocates a task, mm, files, signal handlers... */
    double end = now_s() + atof(opt(argc, argv, "--seconds", "1"));
    long n = 0;
    char *const child_argv[] = {"/bin/true", NULL};
    while (now_s() < end) {
      pid_t pid = fork();
      if (pid < 0)
        die("fork");
      if (pid == 0) {
        execv("/bin/true", child_argv);
        _exit(127);
      }
      int status;
      if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("/bin/true");
      n++;
    }
    printf("execs %ld\n", n);
  } else if (strcmp(mode, "fs-walk") == 0) {
    const char *dir = opt(argc, argv, "--dir", "/usr");
    walk_end = now_s() + atof(opt(argc, argv, "--seconds", "1"));
    while (now_s() < walk_end)
      if (nftw(dir, count_entry, 64, FTW_PHYS) < 0)
        die(dir);
    printf("entries %ld\n", walked);
  } else {
    fprintf(stderr, "st_workload: unknown mode %s\n", mode);
    return 2;
  }
  return 0;
}
