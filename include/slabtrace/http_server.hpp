#pragma once
// The small HTTP/1.1 server behind `serve`: one thread, non-blocking sockets
// under poll(2), a fixed number of connections, a deadline on every phase of
// a connection. A scrape is a GET of a page that is already rendered; nothing
// a client sends or fails to send can hold a thread, and memory is bounded by
// the connection limit times the request limit (response bodies are shared).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace slabtrace::http {

// --- requests (pure, fuzzed) -------------------------------------------------

struct Request {
  std::string method;   // "GET"
  std::string target;   // as sent: "/metrics?x=1"
  std::string path;     // target without query, origin-form: "/metrics"
  int minor_version = 1;  // HTTP/1.<minor>
  bool keep_alive = true;
  bool has_body = false;  // Content-Length > 0 or Transfer-Encoding: we never read bodies
};

enum class ParseStatus {
  incomplete,  // the head has not ended yet: read more
  complete,    // `request` is filled; `consumed` bytes were the head
  bad,         // not HTTP: answer 400 and close
  too_large,   // head longer than the limit: answer 431 and close
};

struct ParseResult {
  ParseStatus status = ParseStatus::incomplete;
  Request request;
  std::size_t consumed = 0;
  std::string reason;  // why it is bad, for the 400 body and -v
};

// Parses one request head (request line and header fields, up to the empty
// line) from the start of `buffer`. `max_head` bounds what is looked at.
ParseResult parse_request(std::string_view buffer, std::size_t max_head);

// --- responses ---------------------------------------------------------------

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::shared_ptr<const std::string> body;  // shared with the page; may be null (empty)
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // close the connection after this response

  static Response text(int status, std::string body);
};

const char* reason_phrase(int status);
// The status line and header fields of `r` for a body of `body_size` bytes.
std::string response_head(const Response& r, std::size_t body_size, bool keep_alive);

// --- the server --------------------------------------------------------------

struct Limits {
  std::size_t max_connections = 256;  // at once; a full table evicts the longest-waiting idle one
  std::size_t max_request_head = 8192;
  double request_timeout_s = 10;  // from connect (or the last response) to a complete request head
  double idle_timeout_s = 90;     // keep-alive between requests (Prometheus scrapes every 5-60 s)
  double write_timeout_s = 30;    // to write one whole response
  std::size_t accepts_per_round = 64;  // so a flood of connects cannot starve the ones already in
};

struct Stats {
  std::atomic<std::uint64_t> accepted{0}, requests{0}, timed_out{0}, evicted{0}, bad_requests{0};
  std::atomic<std::uint64_t> open{0};
};

using Handler = std::function<Response(const Request&)>;

class Server {
 public:
  // Binds and listens at once, so a taken port is an error before anything
  // else starts (throws UserError naming the address).
  Server(const std::string& host, int port, Limits limits = {});
  ~Server();  // stops and joins
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves on a thread of its own until stop() or destruction. The handler
  // runs on that thread: it must be quick (hand out a ready page).
  void start(Handler handler);
  void stop();

  int port() const { return port_; }
  const Stats& stats() const { return stats_; }

 private:
  void run();

  Limits limits_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stop() wakes poll
  int port_ = 0;
  Handler handler_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  Stats stats_;
};

// --- serve's two endpoints ----------------------------------------------------

// The latest exposition, shared between the refreshing thread and the server.
// The server copies a pointer under the lock, never the text.
class SharedPage {
 public:
  void publish(std::string text) {
    auto page = std::make_shared<const std::string>(std::move(text));
    std::lock_guard<std::mutex> lock(mutex_);
    page_ = std::move(page);
  }
  std::shared_ptr<const std::string> latest() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return page_;
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const std::string> page_ = std::make_shared<const std::string>();
};

// GET/HEAD /metrics (the page) and /healthz (`health_line`); 405 for other
// methods on those paths, 404 for every other path.
Response route_exporter(const Request& request, const SharedPage& metrics, const std::string& metrics_type,
                        const std::string& health_line);

}  // namespace slabtrace::http
