// serve's HTTP server on loopback (no root needed): request heads, and what
// slow, hostile and numerous clients can and cannot do to it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "slabtrace/http_server.hpp"

using namespace slabtrace::http;
using Clock = std::chrono::steady_clock;

namespace {

ParseResult parse(const std::string& s) { return parse_request(s, 8192); }

// A raw TCP client of the server on 127.0.0.1.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }
  RawClient(RawClient&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  RawClient(const RawClient&) = delete;

  bool send(const std::string& s) { return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size()); }
  // Everything until the peer closes, or until `timeout_s` passes, or until a
  // whole response has arrived when `one_response` (Content-Length counted).
  std::string receive(double timeout_s, bool one_response = true) {
    std::string got;
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
      if (one_response && complete(got)) return got;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return got;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, int(left)) <= 0) continue;
      char buf[65536];
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) {
        closed_ = true;
        return got;
      }
      got.append(buf, std::size_t(n));
    }
  }
  bool closed() const { return closed_; }

 private:
  static bool complete(const std::string& s) {
    auto end = s.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    auto cl = s.find("Content-Length: ");
    if (cl == std::string::npos || cl > end) return true;
    return s.size() >= end + 4 + std::stoul(s.substr(cl + 16));
  }
  int fd_ = -1;
  bool closed_ = false;
};

// The server as serve runs it, on a port of its own, with a 100 KiB page.
struct Exporter {
  SharedPage page;
  Server server;
  explicit Exporter(Limits limits = {}) : server("127.0.0.1", 0, limits) {
    page.publish(std::string(100 * 1024, 'm'));
    server.start([this](const Request& r) { return route_exporter(r, page, "text/plain; version=0.0.4", "ok tp_btf\n"); });
  }
};

// Time for one GET /healthz on a fresh connection, or a negative number if it failed.
double healthz_seconds(int port, double timeout_s = 5) {
  auto t = Clock::now();
  RawClient c(port);
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string reply = c.receive(timeout_s);
  double s = std::chrono::duration<double>(Clock::now() - t).count();
  return reply.rfind("HTTP/1.1 200 OK", 0) == 0 && reply.find("ok tp_btf") != std::string::npos ? s : -1;
}

int thread_count() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  return -1;
}

}  // namespace

TEST_CASE("HTTP request heads are parsed, strictly", "[unit][http]") {
  auto p = parse("GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
  REQUIRE(p.status == ParseStatus::complete);
  CHECK(p.request.method == "GET");
  CHECK(p.request.path == "/metrics");
  CHECK(p.request.keep_alive);
  CHECK_FALSE(p.request.has_body);
  CHECK(p.consumed == 47);

  CHECK(parse("GET /metrics?name[]=x HTTP/1.1\r\n\r\n").request.path == "/metrics");
  CHECK(parse("GET http://node:9464/healthz HTTP/1.1\r\n\r\n").request.path == "/healthz");
  CHECK(parse("GET /metrics HTTP/1.0\r\n\r\n").request.keep_alive == false);
  CHECK(parse("GET /metrics HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").request.keep_alive == true);
  CHECK(parse("GET /metrics HTTP/1.1\r\nconnection: foo, close\r\n\r\n").request.keep_alive == false);
  CHECK(parse("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").request.has_body);
  CHECK(parse("POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").request.has_body);
  CHECK(parse("\r\n\r\nGET / HTTP/1.1\n\n").status == ParseStatus::complete);  // bare LF and leading empty lines

  // Incomplete until the empty line; too large past the limit.
  CHECK(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n").status == ParseStatus::incomplete);
  CHECK(parse("GET /met").status == ParseStatus::incomplete);
  CHECK(parse("").status == ParseStatus::incomplete);
  CHECK(parse("GET /" + std::string(9000, 'a')).status == ParseStatus::too_large);
  CHECK(parse("GET / HTTP/1.1\r\n" + std::string(9000, 'h')).status == ParseStatus::too_large);

  // Garbage is refused as soon as it cannot be HTTP.
  for (const std::string& bad : std::vector<std::string>{"GARBAGE\r\n\r\n", "GET /metrics HTTP/9.9\r\n\r\n", "GET /metrics\r\n\r\n",
                                "GET  /metrics HTTP/1.1\r\n\r\n", "GET /a b HTTP/1.1\r\n\r\n",
                                std::string("\x00\x01\x02\xff", 4), " GET", "G\tT / HTTP/1.1\r\n\r\n",
                                "GET / HTTP/1.1\r\nNo colon\r\n\r\n", "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
                                "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                                "GET /\x7f HTTP/1.1\r\n\r\n"}) {
    INFO(bad);
    CHECK(parse(bad).status == ParseStatus::bad);
    CHECK_FALSE(parse(bad).reason.empty());
  }
}

TEST_CASE("serve's routes: /metrics and /healthz for GET and HEAD, 405 and 404 otherwise", "[unit][http]") {
  SharedPage page;
  page.publish("slabtrace_up 1\n");
  auto route = [&](const std::string& head) {
    auto p = parse(head);
    REQUIRE(p.status == ParseStatus::complete);
    return route_exporter(p.request, page, "text/plain; version=0.0.4", "ok tp_btf\n");
  };
  CHECK(*route("GET /metrics HTTP/1.1\r\n\r\n").body == "slabtrace_up 1\n");
  CHECK(route("GET /metrics HTTP/1.1\r\n\r\n").content_type == "text/plain; version=0.0.4");
  CHECK(*route("HEAD /healthz HTTP/1.1\r\n\r\n").body == "ok tp_btf\n");
  CHECK(route("GET / HTTP/1.1\r\n\r\n").status == 404);
  CHECK(route("GET /metrics/../etc/passwd HTTP/1.1\r\n\r\n").status == 404);
  CHECK(route("GET /metricsx HTTP/1.1\r\n\r\n").status == 404);
  CHECK(route("GET * HTTP/1.1\r\n\r\n").status == 404);
  auto post = route("POST /metrics HTTP/1.1\r\nContent-Length: 1\r\n\r\n");
  CHECK(post.status == 405);
  CHECK(post.headers == decltype(post.headers){{"Allow", "GET, HEAD"}});
  CHECK(route("DELETE /healthz HTTP/1.1\r\n\r\n").status == 405);
  CHECK(route("POST /elsewhere HTTP/1.1\r\n\r\n").status == 404);
  CHECK(response_head(post, 3, false) ==
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
        "Connection: close\r\nAllow: GET, HEAD\r\n\r\n");
}

TEST_CASE("clients that send half a request line do not blind /healthz", "[unit][http]") {
  Exporter e;
  const int threads_before = thread_count();
  // The attack that timed /healthz out for 5 s with cpp-httplib: 8 clients,
  // then 300 (more than the connection table holds).
  for (int attackers : {8, 300}) {
    std::vector<RawClient> slow;
    for (int i = 0; i < attackers; ++i) {
      slow.emplace_back(e.server.port());
      slow.back().send("GET /metr");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (int i = 0; i < 5; ++i) {
      double s = healthz_seconds(e.server.port());
      INFO(attackers << " half-open clients: /healthz took " << s << " s");
      CHECK(s >= 0);
      CHECK(s < 0.5);
    }
    CHECK(e.server.stats().open.load() <= 256);
  }
  CHECK(thread_count() == threads_before);  // one server thread, whatever comes
  CHECK(e.server.stats().evicted.load() > 0);
}

TEST_CASE("200 concurrent scrapers all get the whole page", "[unit][http]") {
  Exporter e;
  std::vector<RawClient> scrapers;
  for (int i = 0; i < 200; ++i) scrapers.emplace_back(e.server.port());
  for (auto& c : scrapers) REQUIRE(c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  int whole = 0;
  for (auto& c : scrapers) {
    std::string reply = c.receive(10);
    if (reply.rfind("HTTP/1.1 200 OK", 0) == 0 && reply.size() > 100 * 1024) ++whole;
  }
  CHECK(whole == 200);
  // Keep-alive: the same connections scrape again.
  for (auto& c : scrapers) REQUIRE(c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  whole = 0;
  for (auto& c : scrapers)
    if (c.receive(10).size() > 100 * 1024) ++whole;
  CHECK(whole == 200);
  CHECK(e.server.stats().requests.load() == 400);
}

TEST_CASE("slow, oversize and garbage clients are cut off, others are served meanwhile", "[unit][http]") {
  Limits limits;
  limits.request_timeout_s = 1.5;
  Exporter e(limits);

  SECTION("one byte a second is dropped at the request deadline") {
    RawClient slow(e.server.port());
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    auto t = Clock::now();
    std::size_t sent = 0;
    while (sent < request.size() && slow.send(request.substr(sent, 1))) {
      ++sent;
      CHECK(healthz_seconds(e.server.port()) >= 0);
      std::string got = slow.receive(1.0, false);
      if (slow.closed()) break;
    }
    double s = std::chrono::duration<double>(Clock::now() - t).count();
    CHECK(slow.closed());
    CHECK(s < 4);
    CHECK(sent < request.size());
    CHECK(e.server.stats().timed_out.load() >= 1);
  }
  SECTION("an oversize head gets 431 and the connection closes") {
    RawClient big(e.server.port());
    big.send("GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n");
    std::string reply = big.receive(5, false);
    CHECK(reply.rfind("HTTP/1.1 431 ", 0) == 0);
    CHECK(big.closed());
  }
  SECTION("an endless stream of headers gets 431") {
    RawClient big(e.server.port());
    big.send("GET / HTTP/1.1\r\n");
    for (int i = 0; i < 1000 && big.send("X-Filler: " + std::string(100, 'f') + "\r\n"); ++i) {
    }
    CHECK(big.receive(5, false).rfind("HTTP/1.1 431 ", 0) == 0);
  }
  SECTION("garbage gets 400 at once") {
    for (const std::string& garbage : {std::string("GARBAGE\r\n\r\n"), std::string("\x00\x01\x02\xff\r\n\r\n", 8),
                                      std::string("GET /metrics HTTP/9.9\r\n\r\n")}) {
      RawClient c(e.server.port());
      c.send(garbage);
      std::string reply = c.receive(2, false);
      INFO(garbage);
      CHECK(reply.rfind("HTTP/1.1 400 ", 0) == 0);
      CHECK(c.closed());
    }
  }
  SECTION("a client that never reads its response does not hold the server") {
    std::vector<RawClient> hogs;
    for (int i = 0; i < 20; ++i) {
      hogs.emplace_back(e.server.port());
      for (int j = 0; j < 50; ++j) hogs.back().send("GET /metrics HTTP/1.1\r\n\r\n");  // pipelined, never read
    }
    CHECK(healthz_seconds(e.server.port()) >= 0);
    CHECK(healthz_seconds(e.server.port()) < 0.5);
  }
  CHECK(healthz_seconds(e.server.port()) >= 0);
}

TEST_CASE("a taken port is one clear error", "[unit][http]") {
  Server first("127.0.0.1", 0);
  try {
    Server second("127.0.0.1", first.port());
    FAIL("the second server bound a taken port");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("Address already in use") != std::string::npos);
    CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(first.port())) != std::string::npos);
  }
  CHECK_THROWS(Server("no-such-host.invalid", 0));
}
