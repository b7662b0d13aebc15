// top: caches and cgroups by growth, refreshed every interval. On a terminal a
// full-screen view with keys; piped, the same view as plain blocks.
#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "slabtrace/commands.hpp"
#include "slabtrace/top_view.hpp"

namespace slabtrace::commands {

namespace {

output::TopSockets top_sockets(const census::Census& now) {
  output::TopSockets s;
  s.queued_bytes = now.queued_bytes;
  s.queues = now.sockets.size();
  if (!now.sockets.empty()) {
    s.largest = census::describe(census::label_of(now.sockets.front()), now.home_netns);
    s.largest_bytes = now.sockets.front().queued_bytes();
  }
  return s;
}

}  // namespace

namespace {

using Clock = std::chrono::steady_clock;

struct ScreenSize {
  std::size_t width = 80;
  std::size_t height = 24;
  bool operator!=(const ScreenSize& o) const { return width != o.width || height != o.height; }
};

// The terminal while top runs: the alternate screen without a cursor and, when
// stdin is a terminal too, keys read one at a time without echo. The destructor
// puts everything back; it runs on q, on Ctrl-C and SIGTERM (their handlers only
// end the loop) and while an exception unwinds.
class TerminalScreen {
 public:
  TerminalScreen() {
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= ~tcflag_t(ICANON | ECHO);
      // ISIG stays so Ctrl-C still stops us cleanly; Ctrl-Z would stop the
      // process with the terminal raw and nothing to restore it, so it is off.
      raw.c_cc[VSUSP] = _POSIX_VDISABLE;
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      keys_ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0;
    }
    write_out("\x1b[?1049h\x1b[?25l");
  }
  TerminalScreen(const TerminalScreen&) = delete;
  TerminalScreen& operator=(const TerminalScreen&) = delete;
  ~TerminalScreen() {
    write_out("\x1b[?25h\x1b[?1049l");
    if (keys_) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }

  bool reads_keys() const { return keys_; }

  static ScreenSize size() {
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0 || ws.ws_row == 0) return {};
    return {ws.ws_col, ws.ws_row};
  }

  // Draws from the top-left corner over what was there; no newline after the
  // last line, so a screenful does not scroll.
  void draw(const std::vector<std::string>& lines) {
    std::string out = "\x1b[H";
    for (std::size_t i = 0; i < lines.size(); ++i) {
      out += lines[i];
      out += "\x1b[K";
      if (i + 1 < lines.size()) out += "\r\n";
    }
    out += "\x1b[J";
    write_out(out);
  }

  // A key pressed within `timeout`, if any (without keys, just waits).
  std::optional<char> key(std::chrono::milliseconds timeout) {
    if (!keys_) {
      std::this_thread::sleep_for(timeout);
      return std::nullopt;
    }
    pollfd p{STDIN_FILENO, POLLIN, 0};
    if (poll(&p, 1, int(timeout.count())) <= 0) return std::nullopt;
    char c = 0;
    if (read(STDIN_FILENO, &c, 1) != 1) return std::nullopt;
    return c;
  }

 private:
  static void write_out(std::string_view text) {
    while (!text.empty()) {
      ssize_t n = write(STDOUT_FILENO, text.data(), text.size());
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return;
      }
      text.remove_prefix(std::size_t(n));
    }
  }

  termios saved_{};
  bool keys_ = false;
};

node::Meminfo meminfo_or_empty() {
  try {
    return node::read_meminfo();
  } catch (const std::exception& e) {
    spdlog::debug("top: {}", e.what());
    return {};
  }
}

enum class KeyAction { none, redraw, refresh, quit };

// What a key does: q quits, o/g/a sort, c moves the rows between the tables,
// space reads the counters now. Anything else is ignored.
KeyAction apply_key(char key, output::TopLayout& layout) {
  switch (key) {
    case 'q':
    case 'Q':
      return KeyAction::quit;
    case 'o':
      layout.sort = output::TopSort::outstanding;
      return KeyAction::redraw;
    case 'g':
      layout.sort = output::TopSort::growth;
      return KeyAction::redraw;
    case 'a':
      layout.sort = output::TopSort::allocs;
      return KeyAction::redraw;
    case 'c':
      layout.focus = output::next_focus(layout.focus);
      return KeyAction::redraw;
    case ' ':
      return KeyAction::refresh;
    default:
      return KeyAction::none;
  }
}

}  // namespace

int top(const TopOptions& o) {
  Session session(session_options(o.common));
  install_stop_handlers();
  const bool interactive = isatty(STDOUT_FILENO);
  spdlog::info("tracing ({}); {}", bpf::to_string(session.tracer().attach_mode()),
               interactive ? "q quits" : fmt::format("a table every {}s", o.interval_s));

  output::TopFrame frame;
  frame.interval_s = o.interval_s;
  frame.meminfo_start = meminfo_or_empty();
  frame.meminfo = frame.meminfo_start;
  output::TopLayout layout;
  layout.sort = output::parse_top_sort(o.sort);
  layout.max_rows = o.rows;
  layout.keys_line = interactive;
  if (!interactive) {
    layout.width = 100;
    layout.height = 0;
    if (layout.max_rows == 0) layout.max_rows = 8;
  }

  std::optional<TerminalScreen> screen;
  if (interactive) screen.emplace();
  auto draw = [&] {
    if (screen) {
      const ScreenSize size = TerminalScreen::size();
      layout.width = size.width;
      layout.height = size.height;
      screen->draw(output::render_top(frame, layout));
      return true;
    }
    for (const auto& line : output::render_top(frame, layout)) std::cout << line << "\n";
    std::cout << "\n";
    std::cout.flush();
    return bool(std::cout);  // false: the reader went away
  };

  model::RateTracker rates_since(session.scale());
  const auto started = Clock::now();
  const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.interval_s));
  const auto deadline =
      o.duration_s > 0
          ? started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s))
          : Clock::time_point::max();
  auto next_refresh = started + interval;
  ScreenSize drawn_size = TerminalScreen::size();
  if (screen) draw();

  while (!stop_requested()) {
    bool refresh = false, redraw = false;
    if (screen) {
      if (auto key = screen->key(std::chrono::milliseconds(50))) {
        const KeyAction action = apply_key(*key, layout);
        if (action == KeyAction::quit) return 0;
        redraw = action == KeyAction::redraw;
        refresh = action == KeyAction::refresh;
      }
      if (TerminalScreen::size() != drawn_size) {
        drawn_size = TerminalScreen::size();
        redraw = true;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const auto now = Clock::now();
    const bool last = now >= deadline;
    if (refresh || last || now >= next_refresh) {
      frame.history.push_back(rates_since.next(session.snapshot_recycling()));
      if (frame.history.size() > output::kSparklineIntervals) frame.history.erase(frame.history.begin());
      for (const auto& g : frame.history.back().cgroups)
        frame.cgroup_paths[g.cgroup_id] = session.cgroup_path(g.cgroup_id);
      frame.meminfo = meminfo_or_empty();
      frame.elapsed_s = session.elapsed_s();
      frame.sockets = top_sockets(session.take_census());
      next_refresh = now + interval;
      redraw = true;
    }
    if (redraw && !draw()) return 0;
    if (last) break;
  }
  return 0;
}

}  // namespace slabtrace::commands
