/* The NIC receive path without a NIC, for slabtrace's root tests: a TAP device
 * in NAPI mode inside a network namespace of its own, fed Ethernet frames from
 * user space, so received skbs are built the way real drivers build them
 * (napi_alloc_skb / napi_get_frags, heads from the per-CPU NAPI skb cache).
 *
 *   st_tap [--cgroup D] [--frags] [--no-napi] [--count N] [--size B]
 *          [--capture] [--read] [--no-udp]
 *
 * --frags: IFF_NAPI_FRAGS (napi_get_frags); default IFF_NAPI alone.
 * --capture: an AF_PACKET socket bound to the TAP, never read (a stuck
 *   capture tool); --no-udp: no UDP socket listens (the datagrams are dropped
 *   after the capture took its clone).
 * --read: a forked reader drains the UDP socket as datagrams arrive.
 *
 * Prints "ready PID" once set up (PID: the process holding the sockets), then
 * reads a line from stdin, sends --count datagrams of --size bytes to its own
 * UDP socket through the TAP, prints "sent N" (with --read once the reader has
 * them all or none came for 3 s, "read N"), and holds everything until stdin
 * closes. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT 9999
#define TOOL_NAME "st_tap"
#include "tool_common.h"

static int has(int argc, char **argv, const char *name)
{
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return 1;
  return 0;
}

static void if_up(int s, const char *name, const char *address)
{
  struct ifreq ifr = {0};
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (address) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ifr.ifr_addr;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, address, &a->sin_addr);
    if (ioctl(s, SIOCSIFADDR, &ifr) != 0)
      die("SIOCSIFADDR");
    inet_pton(AF_INET, "255.255.255.0", &a->sin_addr);
    if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0)
      die("SIOCSIFNETMASK");
  }
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
    die("SIOCGIFFLAGS");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
    die("SIOCSIFFLAGS");
}

static uint16_t ip_checksum(const void *data, size_t len)
{
  const uint16_t *p = data;
  uint32_t sum = 0;
  for (; len > 1; len -= 2)
    sum += *p++;
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* An Ethernet frame carrying one UDP datagram from 10.77.0.2 to 10.77.0.1. */
static size_t build_frame(unsigned char *frame, const unsigned char *dst_mac, int size)
{
  struct ethhdr *eth = (struct ethhdr *)frame;
  memcpy(eth->h_dest, dst_mac, ETH_ALEN);
  const unsigned char src_mac[ETH_ALEN] = {0x02, 0x00, 0x00, 0x77, 0x00, 0x02};
  memcpy(eth->h_source, src_mac, ETH_ALEN);
  eth->h_proto = htons(ETH_P_IP);
  struct iphdr *ip = (struct iphdr *)(eth + 1);
  ip->ihl = 5;
  ip->version = 4;
  ip->ttl = 64;
  ip->protocol = IPPROTO_UDP;
  ip->tot_len = htons((uint16_t)(sizeof *ip + sizeof(struct udphdr) + (size_t)size));
  inet_pton(AF_INET, "10.77.0.2", &ip->saddr);
  inet_pton(AF_INET, "10.77.0.1", &ip->daddr);
  ip->check = ip_checksum(ip, sizeof *ip);
  struct udphdr *udp = (struct udphdr *)(ip + 1);
  udp->source = htons(PORT + 1);
  udp->dest = htons(PORT);
  udp->len = htons((uint16_t)(sizeof *udp + (size_t)size));
  udp->check = 0; /* none: allowed for IPv4 */
  memset(udp + 1, 'x', (size_t)size);
  return sizeof *eth + sizeof *ip + sizeof *udp + (size_t)size;
}

static void wait_line(void)
{
  char c;
  while (read(0, &c, 1) == 1 && c != '\n') {
  }
}

static void hold(void)
{
  char buf[64];
  while (read(0, buf, sizeof buf) > 0) {
  }
}

int main(int argc, char **argv)
{
  join_cgroup(opt(argc, argv, "--cgroup", NULL));
  long count = atol(opt(argc, argv, "--count", "30000"));
  int size = atoi(opt(argc, argv, "--size", "200"));
  setvbuf(stdout, NULL, _IONBF, 0);
  signal(SIGPIPE, SIG_IGN);

  if (unshare(CLONE_NEWNET) != 0)
    die("unshare(CLONE_NEWNET)");
  int tap = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (tap < 0)
    die("/dev/net/tun");
  struct ifreq ifr = {0};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (!has(argc, argv, "--no-napi"))
    ifr.ifr_flags |= IFF_NAPI;
  if (has(argc, argv, "--frags"))
    ifr.ifr_flags |= IFF_NAPI_FRAGS;
  strcpy(ifr.ifr_name, "sttap0");
  if (ioctl(tap, TUNSETIFF, &ifr) != 0)
    die("TUNSETIFF");

  int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (ctl < 0)
    die("socket");
  if_up(ctl, "lo", NULL);
  if_up(ctl, "sttap0", "10.77.0.1");
  struct ifreq hw = {0};
  strcpy(hw.ifr_name, "sttap0");
  if (ioctl(ctl, SIOCGIFHWADDR, &hw) != 0)
    die("SIOCGIFHWADDR");

  int udp = -1;
  if (!has(argc, argv, "--no-udp")) {
    udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    inet_pton(AF_INET, "10.77.0.1", &a.sin_addr);
    if (udp < 0 || bind(udp, (struct sockaddr *)&a, sizeof a) != 0)
      die("bind udp");
    big_rcvbuf(udp);
  }
  if (has(argc, argv, "--capture"))
    capture_socket("sttap0");

  /* The reader drains the socket and reports how much it read on a pipe. */
  int done[2] = {-1, -1}, go[2] = {-1, -1};
  pid_t reader = -1;
  if (has(argc, argv, "--read")) {
    if (udp < 0 || pipe(done) != 0 || pipe(go) != 0)
      die("--read needs the UDP socket");
    reader = fork();
    if (reader < 0)
      die("fork");
    if (reader == 0) {
      close(done[0]);
      close(go[1]);
      char buf[65536];
      long got = 0;
      /* The idle clock starts with the sending, not at "ready": the test may
       * take its time (a tracer loading in a slow guest) before it says go. */
      char c;
      if (read(go[0], &c, 1) != 1)
        _exit(0);
      /* Until all arrived, or nothing came for 3 s (what the device dropped
       * never comes: the count says how much did). */
      struct timeval idle = {.tv_sec = 3};
      setsockopt(udp, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
      while (got < count) {
        if (recv(udp, buf, sizeof buf, 0) >= 0)
          got++;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
          break;
        else if (errno != EINTR)
          die("recv");
      }
      if (write(done[1], &got, sizeof got) != sizeof got)
        die("write");
      _exit(0);
    }
    close(done[1]);
    close(go[0]);
  }

  printf("ready %d\n", getpid());
  wait_line();
  if (reader > 0 && write(go[1], "g", 1) != 1)
    die("write");
  /* Two bytes before the frame (the kernel's NET_IP_ALIGN): its IP and UDP
   * headers, 14 bytes in, land 4-byte aligned as their types need (UBSan). */
  _Alignas(4) unsigned char buffer[2 + ETH_FRAME_LEN + 64] = {0};
  unsigned char *frame = buffer + 2;
  size_t len = build_frame(frame, (const unsigned char *)hw.ifr_hwaddr.sa_data, size);
  for (long i = 0; i < count; i++)
    if (write(tap, frame, len) != (ssize_t)len)
      die("write(tap)");
  printf("sent %ld\n", count);
  if (reader > 0) {
    long got = 0;
    if (read(done[0], &got, sizeof got) != sizeof got)
      die("reader");
    waitpid(reader, NULL, 0);
    printf("read %ld\n", got);
  }
  hold();
  return 0;
}
