// HTTP/1.x request heads and response heads: pure functions, fuzzed
// (tests/fuzz/fuzz_http_request.cpp). Strict where strictness is cheap: a
// request that is not plainly HTTP/1.0 or 1.1 is refused, never guessed at.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "slabtrace/http_server.hpp"

namespace slabtrace::http {

namespace {

// RFC 9110 tchar: the characters of a method or a header name.
bool is_tchar(unsigned char c) {
  if (std::isalnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One line without its end (CRLF or a bare LF, which RFC 9112 lets servers accept).
std::string_view strip_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

ParseResult bad(std::string reason) {
  ParseResult r;
  r.status = ParseStatus::bad;
  r.reason = std::move(reason);
  return r;
}

// "GET /metrics HTTP/1.1" into `req`; an empty string when it is well formed.
std::string parse_request_line(std::string_view line, Request& req) {
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return "no request target";
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return "no HTTP version";
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return "malformed method";
  if (target.empty()) return "empty request target";
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return "malformed request target";
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || (version[7] != '0' && version[7] != '1'))
    return "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 are served)";

  req.method = std::string(method);
  req.target = std::string(target);
  req.minor_version = version[7] - '0';
  req.keep_alive = req.minor_version == 1;

  std::string_view path = target;
  if (path.front() != '/') {
    // absolute-form (http://host:port/path) is allowed; "*" and the rest have no path we serve.
    auto scheme = path.find("://");
    if (scheme == std::string_view::npos) {
      req.path = std::string(path);
      return {};
    }
    auto slash = path.find('/', scheme + 3);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  path = path.substr(0, std::min(path.find('?'), path.find('#')));
  req.path = std::string(path);
  return {};
}

// A header field into `req`; an empty string when it is well formed.
std::string parse_field(std::string_view line, Request& req) {
  if (line.front() == ' ' || line.front() == '\t') return "obsolete line folding";
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return "header field without ':'";
  std::string_view name = line.substr(0, colon);
  std::string_view value = trim(line.substr(colon + 1));
  if (!is_token(name)) return "malformed header field name";
  if (iequals(name, "Connection")) {
    while (!value.empty()) {
      auto comma = value.find(',');
      std::string_view option = trim(value.substr(0, comma));
      if (iequals(option, "close")) req.keep_alive = false;
      if (iequals(option, "keep-alive")) req.keep_alive = true;
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  } else if (iequals(name, "Content-Length")) {
    if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) return "malformed Content-Length";
    if (value.find_first_not_of('0') != std::string_view::npos) req.has_body = true;
  } else if (iequals(name, "Transfer-Encoding")) {
    req.has_body = true;
  }
  return {};
}

}  // namespace

ParseResult parse_request(std::string_view buffer, std::size_t max_head) {
  std::string_view window = buffer.substr(0, std::min(buffer.size(), max_head));
  // Empty lines before the request line are to be ignored (RFC 9112 2.2).
  std::size_t start = 0;
  while (start < window.size() && (window[start] == '\r' || window[start] == '\n')) ++start;

  ParseResult result;
  std::size_t pos = start;
  bool first = true;
  for (;;) {
    auto nl = window.find('\n', pos);
    if (nl == std::string_view::npos) {
      // A request line that cannot be HTTP is refused before it ends: garbage
      // gets its 400 at once, not after the request timeout.
      if (first) {
        std::string_view partial = window.substr(pos);
        auto sp = partial.find(' ');
        if (!is_token(partial.substr(0, sp == std::string_view::npos ? partial.size() : sp)) &&
            !(sp == std::string_view::npos && partial.empty()))
          return bad("malformed method");
      }
      if (buffer.size() >= max_head) {
        result.status = ParseStatus::too_large;
        result.reason = fmt::format("request head longer than {} bytes", max_head);
      }
      return result;
    }
    std::string_view line = strip_cr(window.substr(pos, nl - pos));
    pos = nl + 1;
    if (first) {
      if (std::string why = parse_request_line(line, result.request); !why.empty()) return bad(why);
      first = false;
      continue;
    }
    if (line.empty()) break;  // the end of the head
    if (std::string why = parse_field(line, result.request); !why.empty()) return bad(why);
  }
  result.status = ParseStatus::complete;
  result.consumed = pos;
  return result;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::make_shared<const std::string>(std::move(body));
  return r;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string response_head(const Response& r, std::size_t body_size, bool keep_alive) {
  std::string head = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
                                 r.status, reason_phrase(r.status), r.content_type, body_size,
                                 keep_alive ? "keep-alive" : "close");
  for (const auto& [name, value] : r.headers) head += fmt::format("{}: {}\r\n", name, value);
  head += "\r\n";
  return head;
}

Response route_exporter(const Request& request, const SharedPage& metrics, const std::string& metrics_type,
                        const std::string& health_line) {
  const bool served = request.path == "/metrics" || request.path == "/healthz";
  if (request.method != "GET" && request.method != "HEAD") {
    if (!served) return Response::text(404, "not found: slabtrace serves /metrics and /healthz\n");
    Response r = Response::text(405, "method not allowed: use GET\n");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  if (request.path == "/metrics") {
    Response r;
    r.content_type = metrics_type;
    r.body = metrics.latest();
    return r;
  }
  if (request.path == "/healthz") return Response::text(200, health_line);
  return Response::text(404, "not found: slabtrace serves /metrics and /healthz\n");
}

}  // namespace slabtrace::http
