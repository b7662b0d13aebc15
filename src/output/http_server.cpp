// serve's HTTP server: one thread, poll(2) over non-blocking sockets.
//
// cpp-httplib 0.11 gives each connection a pool thread for as long as the
// client takes to send its request (up to the read timeout): eight clients
// that send half a request line held all four threads, and /healthz timed out.
// Here a connection holds only a slot and its bytes: every phase has a
// deadline, the table has a fixed size and evicts the longest-waiting idle
// connection when full, and a response body is the shared, already rendered
// page, so a slow reader costs no copy.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>

#include "slabtrace/error.hpp"
#include "slabtrace/http_server.hpp"

namespace slabtrace::http {

namespace {

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

struct Connection {
  enum class State { reading, writing, draining };
  int fd = -1;
  State state = State::reading;
  std::string in;                           // bytes of the request head so far (bounded)
  std::string head;                         // response status line and fields
  std::shared_ptr<const std::string> body;  // response body (shared page)
  std::size_t sent = 0;                     // of head + body
  bool close_after = false;
  bool head_only = false;   // HEAD: no body bytes
  Clock::time_point deadline;
  Clock::time_point waiting_since;  // for eviction: who has waited longest without a request

  std::size_t to_send() const { return head.size() + (head_only || !body ? 0 : body->size()); }
};

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

std::string printable_address(const std::string& host, int port) {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

}  // namespace

Server::Server(const std::string& host, int port, Limits limits) : limits_(limits) {
  // Never more connections than a quarter of the fds the process may open:
  // the tracer needs its own (maps, programs, /proc walks).
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
    limits_.max_connections = std::max<std::size_t>(8, std::min<std::size_t>(limits_.max_connections, nofile.rlim_cur / 4));

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string where = printable_address(host, port);
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    throw UserError(fmt::format("cannot listen on {}: {}", where, gai_strerror(rc)));
  int saved_errno = 0;
  for (addrinfo* a = found; a && listen_fd_ < 0; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      saved_errno = errno;
      continue;
    }
    // SO_REUSEADDR allows a quick restart; no SO_REUSEPORT, which would let a
    // second exporter share the port and answer half the scrapes.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
      saved_errno = errno;
      ::close(fd);
      continue;
    }
    listen_fd_ = fd;
  }
  freeaddrinfo(found);
  if (listen_fd_ < 0) throw UserError(fmt::format("cannot listen on {}: {}", where, std::strerror(saved_errno)));

  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    close_fd(listen_fd_);
    throw std::runtime_error(fmt::format("eventfd: {}", std::strerror(errno)));
  }
}

Server::~Server() {
  stop();
  close_fd(listen_fd_);
  close_fd(wake_fd_);
}

void Server::start(Handler handler) {
  handler_ = std::move(handler);
  thread_ = std::thread([this] { run(); });
}

void Server::stop() {
  stopping_.store(true);
  if (wake_fd_ >= 0) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
}

void Server::run() {
  std::list<Connection> conns;
  std::vector<pollfd> fds;
  std::vector<Connection*> polled;
  Clock::time_point accept_paused_until{};

  auto finish = [&](std::list<Connection>::iterator it) {
    close_fd(it->fd);
    stats_.open.fetch_sub(1);
    return conns.erase(it);
  };

  // Sends `r` on `c`, or, for a request that keeps the connection, reads on.
  auto respond = [&](Connection& c, Response r, bool keep_alive, bool head_only) {
    keep_alive = keep_alive && !r.close;
    std::size_t body_size = r.body ? r.body->size() : 0;
    c.head = response_head(r, body_size, keep_alive);
    c.body = std::move(r.body);
    c.head_only = head_only;
    c.sent = 0;
    c.close_after = !keep_alive;
    c.state = Connection::State::writing;
    c.deadline = Clock::now() + seconds(limits_.write_timeout_s);
  };

  // Parses what has arrived on `c`; answers a complete (or hopeless) head.
  auto handle_input = [&](Connection& c) {
    ParseResult p = parse_request(c.in, limits_.max_request_head);
    switch (p.status) {
      case ParseStatus::incomplete:
        return;
      case ParseStatus::bad:
        stats_.bad_requests.fetch_add(1);
        spdlog::debug("http: bad request: {}", p.reason);
        respond(c, Response::text(400, "bad request: " + p.reason + "\n"), false, false);
        return;
      case ParseStatus::too_large:
        stats_.bad_requests.fetch_add(1);
        respond(c, Response::text(431, p.reason + "\n"), false, false);
        return;
      case ParseStatus::complete:
        break;
    }
    stats_.requests.fetch_add(1);
    c.in.erase(0, p.consumed);
    Response r;
    try {
      r = handler_(p.request);
    } catch (const std::exception& e) {
      spdlog::warn("http: {} {}: {}", p.request.method, p.request.path, e.what());
      r = Response::text(500, "internal error\n");
    }
    spdlog::debug("http: {} {} -> {}", p.request.method, p.request.target, r.status);
    // A body we will not read would be taken for the next request: close after.
    respond(c, std::move(r), p.request.keep_alive && !p.request.has_body, p.request.method == "HEAD");
  };

  while (!stopping_.load()) {
    auto now = Clock::now();
    // Deadlines first: whatever has run out of time is dropped.
    for (auto it = conns.begin(); it != conns.end();) {
      if (now >= it->deadline) {
        if (it->state != Connection::State::draining) stats_.timed_out.fetch_add(1);
        it = finish(it);
      } else {
        ++it;
      }
    }

    fds.clear();
    polled.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    const bool accepting = now >= accept_paused_until;
    if (accepting) fds.push_back({listen_fd_, POLLIN, 0});
    Clock::time_point next_deadline = now + std::chrono::seconds(1);
    for (auto& c : conns) {
      fds.push_back({c.fd, short(c.state == Connection::State::writing ? POLLOUT : POLLIN), 0});
      polled.push_back(&c);
      next_deadline = std::min(next_deadline, c.deadline);
    }
    if (!accepting) next_deadline = std::min(next_deadline, accept_paused_until);
    int wait_ms = int(std::chrono::duration_cast<std::chrono::milliseconds>(next_deadline - now).count()) + 1;
    int ready = poll(fds.data(), fds.size(), std::max(wait_ms, 1));
    if (ready < 0) {
      if (errno == EINTR) continue;
      spdlog::error("http: poll: {}", std::strerror(errno));
      break;
    }
    if (stopping_.load()) break;
    now = Clock::now();

    // Connections already in go before new ones.
    const std::size_t first_conn = accepting ? 2 : 1;
    for (std::size_t i = first_conn; i < fds.size(); ++i) {
      Connection& c = *polled[i - first_conn];
      short ev = fds[i].revents;
      if (!ev) continue;
      if (c.state == Connection::State::writing && (ev & (POLLOUT | POLLERR | POLLHUP))) {
        std::size_t head_left = c.sent < c.head.size() ? c.head.size() - c.sent : 0;
        iovec iov[2];
        int n_iov = 0;
        if (head_left) iov[n_iov++] = {c.head.data() + c.sent, head_left};
        if (!c.head_only && c.body && c.to_send() > c.sent) {
          std::size_t body_off = c.sent > c.head.size() ? c.sent - c.head.size() : 0;
          iov[n_iov++] = {const_cast<char*>(c.body->data()) + body_off, c.body->size() - body_off};
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = std::size_t(n_iov);
        ssize_t n = n_iov ? sendmsg(c.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          c.deadline = now;  // peer gone
          continue;
        }
        if (n > 0) c.sent += std::size_t(n);
        if (c.sent < c.to_send()) continue;
        c.head.clear();
        c.body.reset();
        if (c.close_after) {
          // Lingering close: stop sending, swallow what the client still sends
          // for a moment, so its unread bytes do not turn our close into a
          // reset that destroys the response before it reads it.
          shutdown(c.fd, SHUT_WR);
          c.state = Connection::State::draining;
          c.deadline = now + std::chrono::seconds(2);
          continue;
        }
        c.state = Connection::State::reading;
        c.waiting_since = now;
        c.deadline = now + seconds(c.in.empty() ? limits_.idle_timeout_s : limits_.request_timeout_s);
        if (!c.in.empty()) handle_input(c);  // a pipelined request
        continue;
      }
      if (ev & (POLLIN | POLLERR | POLLHUP)) {
        char chunk[4096];
        ssize_t n = ::read(c.fd, chunk, sizeof chunk);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          c.deadline = now;  // closed by the peer: dropped next round
          if (c.state != Connection::State::draining) c.state = Connection::State::draining;
          continue;
        }
        if (n < 0 || c.state == Connection::State::draining) continue;
        if (c.in.empty()) c.deadline = std::min(c.deadline, now + seconds(limits_.request_timeout_s));
        std::size_t room = limits_.max_request_head + 1 - std::min(c.in.size(), limits_.max_request_head + 1);
        c.in.append(chunk, std::min<std::size_t>(std::size_t(n), room));
        handle_input(c);
      }
    }

    if (accepting && (fds[1].revents & POLLIN)) {
      for (std::size_t i = 0; i < limits_.accepts_per_round; ++i) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            spdlog::debug("http: accept: {}; pausing 100 ms", std::strerror(errno));
            accept_paused_until = now + std::chrono::milliseconds(100);
          }
          break;
        }
        if (conns.size() >= limits_.max_connections) {
          // Full: the connection that has waited longest for a request makes room.
          auto victim = conns.end();
          for (auto it = conns.begin(); it != conns.end(); ++it)
            if (it->state != Connection::State::writing && (victim == conns.end() || it->waiting_since < victim->waiting_since))
              victim = it;
          if (victim == conns.end()) {  // every one is being answered: refuse the newcomer
            ::close(fd);
            stats_.evicted.fetch_add(1);
            continue;
          }
          finish(victim);
          stats_.evicted.fetch_add(1);
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Connection c;
        c.fd = fd;
        c.waiting_since = now;
        c.deadline = now + seconds(limits_.request_timeout_s);
        conns.push_back(std::move(c));
        stats_.accepted.fetch_add(1);
        stats_.open.fetch_add(1);
      }
    }
  }
  for (auto it = conns.begin(); it != conns.end();) it = finish(it);
}

}  // namespace slabtrace::http
