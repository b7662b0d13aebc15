// slabtrace top in a real terminal: tmux gives it an 80x24 pty; the test reads
// the screen with capture-pane and presses keys with send-keys while a UDP leak
// runs in a test cgroup. Piped, top writes plain blocks.
#include <fmt/format.h>

#include <regex>
#include <set>
#include <sstream>

#include "../unit/temp_dir.hpp"
#include "root_helpers.hpp"
#include "slabtrace/top_view.hpp"

using namespace roottest;

namespace {

// tmux through env, so Child (execv) finds it on PATH; 127 when it is missing.
std::pair<int, std::string> run_tmux(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/env", "tmux"};
  argv.insert(argv.end(), args.begin(), args.end());
  Child tmux(argv);
  int rc = tmux.finish(10);
  return {rc, tmux.out()};
}

bool have_tmux() { return run_tmux({"-V"}).first == 0; }

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// One command in a detached 80x24 tmux session on a server of its own (its
// socket in the test's directory), killed with the server whatever way the test
// ends. A pane whose
// command died early stays, so a failure can show its last screen.
class TmuxSession {
 public:
  TmuxSession(const std::filesystem::path& socket, const std::vector<std::string>& command) : socket_(socket.string()) {
    std::vector<std::string> args{"new-session", "-d", "-x", "80", "-y", "24", "-s", "top"};
    args.insert(args.end(), command.begin(), command.end());
    args.insert(args.end(), {";", "set-option", "-t", "top", "remain-on-exit", "on"});
    auto [rc, out] = tmux(args);
    INFO(out);
    REQUIRE(rc == 0);
  }
  TmuxSession(const TmuxSession&) = delete;
  TmuxSession& operator=(const TmuxSession&) = delete;
  ~TmuxSession() { tmux({"kill-server"}); }

  std::string screen() { return tmux({"capture-pane", "-p", "-t", "top"}).second; }
  // A tmux format about the pane: "#{pane_dead}", "#{alternate_on}", ...
  std::string pane(const std::string& format) {
    std::string out = tmux({"display-message", "-p", "-t", "top", format}).second;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  void keys(const std::string& key) { REQUIRE(tmux({"send-keys", "-t", "top", key}).first == 0); }

  // Polls the screen until `seen` says yes; the last screen is in `last_screen`.
  template <typename Pred>
  bool wait_for_screen(Pred seen, double timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    do {
      last_screen = screen();
      if (seen(last_screen)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }
  std::string last_screen;

 private:
  std::pair<int, std::string> tmux(std::vector<std::string> args) {
    args.insert(args.begin(), {"-S", socket_});
    return run_tmux(args);
  }
  std::string socket_;
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A screen line naming the cgroup (its path may be cut at the front) with growth.
bool shows_growth(const std::string& screen, const std::string& cgroup_tail) {
  static const std::regex growth(R"(\s\+[0-9][0-9,.]*[kMG]?\s)");
  std::istringstream lines(screen);
  for (std::string line; std::getline(lines, line);)
    if (contains(line, cgroup_tail) && std::regex_search(line, growth)) return true;
  return false;
}

// `slabtrace top --interval 1` in the pane, inside a bash that, once top has
// exited, writes its exit status and `stty -a`, then keeps the pane alive so
// the test sees tmux's view of the terminal top left behind. (bash, not dash:
// dash dies of the Ctrl-C that top handles.)
class TopInTmux {
 public:
  TopInTmux()
      : dir_("slabtrace-top"),
        rc_(dir_.path() / "rc"),
        stty_(dir_.path() / "stty"),
        log_(dir_.path() / "stderr"),
        tmux_(dir_.path() / "tmux.socket",
              std::vector<std::string>{
                  "/bin/bash", "-c",
                  fmt::format("{} top --interval 1 2>{}; echo $? >{}; stty -a >{}.part && mv {}.part {}; sleep 120",
                              slabtrace_bin(), log_.string(), rc_.string(), stty_.string(), stty_.string(),
                              stty_.string())}) {}

  TmuxSession& tmux() { return tmux_; }

  void require_started() {
    bool started = tmux_.wait_for_screen(
        [&](const std::string& s) {
          return (contains(s, "sorted by growth") && contains(s, "CGROUP")) || std::filesystem::exists(rc_);
        },
        300);  // loading takes minutes in an emulated guest; rc_ appears if top exited
    INFO("screen:\n" << tmux_.last_screen << "stderr:\n" << read_file(log_));
    REQUIRE(started);
    CHECK(tmux_.pane("#{alternate_on} #{cursor_flag}") == "1 0");
  }

  // The process top runs as: the child of the pane's bash.
  pid_t top_pid() {
    const std::string shell = tmux_.pane("#{pane_pid}");
    std::istringstream children(read_file("/proc/" + shell + "/task/" + shell + "/children"));
    pid_t pid = 0;
    children >> pid;
    REQUIRE(pid > 0);
    return pid;
  }

  // Waits for top to exit, then checks it exited 0 and put the terminal back:
  // normal screen, cursor shown, line editing, echo and signals on again.
  void check_exited_and_restored() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::filesystem::exists(stty_) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    INFO("screen:\n" << tmux_.screen() << "stderr:\n" << read_file(log_));
    REQUIRE(std::filesystem::exists(stty_));
    CHECK(read_file(rc_) == "0\n");
    CHECK(tmux_.pane("#{pane_dead} #{alternate_on} #{cursor_flag}") == "0 0 1");
    const std::string stty = read_file(stty_);
    INFO("stty -a after top:\n" << stty);
    static const std::regex token(R"([^\s;]+)");
    std::set<std::string> modes;
    for (auto it = std::sregex_iterator(stty.begin(), stty.end(), token); it != std::sregex_iterator(); ++it)
      modes.insert(it->str());
    CHECK(modes.count("icanon") == 1);
    CHECK(modes.count("echo") == 1);
    CHECK(modes.count("isig") == 1);
    CHECK(contains(stty, "susp = ^Z"));
  }

 private:
  slabtrace::testing::TempDir dir_;
  std::filesystem::path rc_, stty_, log_;
  TmuxSession tmux_;
};

}  // namespace

TEST_CASE("top in an 80x24 tmux pane: the leaking cgroup shows up, keys sort and quit, the terminal is restored",
          "[root][top]") {
  REQUIRE_ROOT_OR_SKIP();
  if (!have_tmux()) {
    WARN("skipped: tmux is not installed (apt-get install tmux)");
    return;
  }
  TestCgroup holder_cg("top-holder");
  TestCgroup sender_cg("top-sender");
  UdpHolder holder(holder_cg);
  TopInTmux top;
  top.require_started();

  // The path may be cut at the front on 80 columns; its end names the test.
  const std::string sender_tail = std::to_string(getpid()) + "-top-sender";
  bool seen = false;
  for (int batch = 0; batch < 15 && !seen; ++batch) {
    udp_send(sender_cg, holder.port, 3000);
    seen = top.tmux().wait_for_screen([&](const std::string& s) { return shows_growth(s, sender_tail); }, 2.5);
  }
  INFO("screen:\n" << top.tmux().last_screen);
  REQUIRE(seen);
  const std::string growth_screen = top.tmux().last_screen;
  CHECK(contains(growth_screen, "SUnreclaim "));
  CHECK(contains(growth_screen, "MemAvailable "));
  CHECK(contains(growth_screen, "skbuff_head_cache"));
  std::istringstream lines(growth_screen);
  int line_count = 0;
  for (std::string line; std::getline(lines, line); ++line_count) CHECK(slabtrace::output::display_width(line) <= 80);
  CHECK(line_count <= 24);

  top.tmux().keys("o");
  CHECK(top.tmux().wait_for_screen([](const std::string& s) { return contains(s, "sorted by outstanding"); }, 5));
  CHECK(contains(top.tmux().last_screen, sender_tail));
  top.tmux().keys("c");
  CHECK(top.tmux().wait_for_screen([](const std::string& s) { return contains(s, "caches only"); }, 5));

  top.tmux().keys("q");
  top.check_exited_and_restored();
  holder.exit();
}

TEST_CASE("top in tmux: Ctrl-C and SIGTERM also restore the terminal", "[root][top]") {
  REQUIRE_ROOT_OR_SKIP();
  if (!have_tmux()) {
    WARN("skipped: tmux is not installed (apt-get install tmux)");
    return;
  }
  TopInTmux top;
  top.require_started();
  SECTION("Ctrl-C") { top.tmux().keys("C-c"); }
  SECTION("SIGTERM") { REQUIRE(kill(top.top_pid(), SIGTERM) == 0); }
  top.check_exited_and_restored();
}

TEST_CASE("top piped: plain blocks, no escape codes", "[root][top]") {
  REQUIRE_ROOT_OR_SKIP();
  Child top({slabtrace_bin(), "top", "--interval", "1", "--duration", "2", "--rows", "3"});
  int rc = top.finish(60);
  INFO("stderr: " << top.err() << "\nstdout:\n" << top.out());
  REQUIRE(rc == 0);
  const std::string& out = top.out();
  CHECK(out.find('\x1b') == std::string::npos);
  // One block a second for two seconds.
  const std::regex title("slabtrace top — [0-9]+s, every 1s, sorted by growth\n");
  CHECK(std::distance(std::sregex_iterator(out.begin(), out.end(), title), std::sregex_iterator()) == 2);
  CHECK(contains(out, "SUnreclaim "));
  CHECK(contains(out, "CACHE"));
  CHECK(contains(out, "CGROUP"));
  CHECK(!contains(out, "q quit"));
}
