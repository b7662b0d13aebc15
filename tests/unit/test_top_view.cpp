#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>

#include "slabtrace/error.hpp"
#include "slabtrace/top_view.hpp"

using namespace slabtrace;
using namespace slabtrace::output;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

model::GroupRate group(const std::string& key, std::uint64_t outstanding, std::uint64_t bytes, double growth,
                       double allocs) {
  model::GroupRate g;
  g.key = key;
  g.total.outstanding = outstanding;
  g.total.outstanding_bytes = bytes;
  g.total.growth_per_s = growth;
  g.total.allocs_per_s = allocs;
  g.total.allocs = std::uint64_t(allocs);
  g.active = allocs > 0;
  return g;
}

model::GroupRate cgroup(std::uint64_t id, std::uint64_t outstanding, std::uint64_t bytes, double growth,
                        double allocs) {
  auto g = group(std::to_string(id), outstanding, bytes, growth, allocs);
  g.cgroup_id = id;
  return g;
}

// The article's node: a UDP receiver that never reads, 1.6 M skbs queued.
TopFrame leaking_node(std::size_t intervals = 12) {
  TopFrame frame;
  frame.interval_s = 2;
  frame.elapsed_s = 2.0 * double(intervals);
  for (std::size_t i = 1; i <= intervals; ++i) {
    model::Rates r;
    r.interval_s = 2;
    const auto n = std::uint64_t(i) * 7000;
    r.caches.push_back(group("kmalloc-1k", n, n * 1024, 3500, 3510));
    r.caches.push_back(group("skbuff_head_cache", n, n * 224, 3500, 3500));
    r.caches.push_back(group("dentry", 900, 900 * 192, 0, 4));
    for (int c = 0; c < 40; ++c)
      r.caches.push_back(
          group("kmalloc-cg-" + std::to_string(8 << (c % 10)) + "-" + std::to_string(c), 10, 1000, 0, 1));
    r.cgroups.push_back(cgroup(101, 2 * n, n * 1248, 7000, 7010));
    r.cgroups.push_back(cgroup(1, 5000, 800000, 3, 900));
    for (std::uint64_t c = 200; c < 230; ++c) r.cgroups.push_back(cgroup(c, 3, 300, 0, 0.5));
    frame.history.push_back(std::move(r));
  }
  frame.cgroup_paths[101] =
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f0c2a.slice/cri-containerd-ab12cd34.scope";
  frame.cgroup_paths[1] = "/";
  std::ifstream meminfo(std::string(SLABTRACE_FIXTURES) + "/doctor/broken/proc/meminfo");
  REQUIRE(meminfo);
  frame.meminfo = node::parse_meminfo(meminfo);
  frame.meminfo_start = frame.meminfo;
  frame.meminfo_start["SUnreclaim"] -= 1024 * 1024 * 1024;  // grew by 1 GiB while watched
  return frame;
}

std::vector<std::string> row_names(const std::vector<std::string>& lines, const std::string& table_title) {
  std::vector<std::string> names;
  auto it = std::find_if(lines.begin(), lines.end(), [&](const auto& l) { return l.rfind(table_title, 0) == 0; });
  if (it == lines.end()) return names;
  for (++it; it != lines.end() && !it->empty() && it->rfind("q quit", 0) != 0; ++it)
    names.push_back(it->substr(0, it->find(' ')));
  return names;
}

}  // namespace

TEST_CASE("top view: fits an 80x24 terminal and shows node memory, both tables and the keys", "[unit][top]") {
  const auto lines = render_top(leaking_node(), TopLayout{});
  INFO([&] {
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    return all;
  }());
  REQUIRE(lines.size() == 24);
  for (const auto& line : lines) {
    CHECK(display_width(line) <= 80);
    CHECK(line.find('\x1b') == std::string::npos);
  }
  CHECK_THAT(lines[0], StartsWith("slabtrace top — 24s, every 2s, sorted by growth"));
  CHECK_THAT(lines[1], Contains("SUnreclaim 2.09 GiB (+1.00 GiB)"));
  CHECK_THAT(lines[1], Contains("SReclaimable 50.0 MiB"));
  CHECK_THAT(lines[1], Contains("MemAvailable 735 MiB"));
  CHECK_THAT(lines.back(), StartsWith("q quit"));
  auto caches = std::find_if(lines.begin(), lines.end(), [](const auto& l) { return l.rfind("CACHE (", 0) == 0; });
  auto cgroups = std::find_if(lines.begin(), lines.end(), [](const auto& l) { return l.rfind("CGROUP (", 0) == 0; });
  REQUIRE(caches != lines.end());
  REQUIRE(cgroups != lines.end());
  CHECK_THAT(*caches, Contains("of 43)"));
  CHECK_THAT(*cgroups, Contains("of 32)"));
  CHECK_THAT(*caches, Contains("growth/s"));
  CHECK_THAT(*caches, Contains("trend"));
}

TEST_CASE("top view: the leak comes first, with its figures", "[unit][top]") {
  const auto lines = render_top(leaking_node(), TopLayout{});
  const auto cache = std::find_if(lines.begin(), lines.end(), [](const auto& l) { return l.rfind("CACHE", 0) == 0; });
  REQUIRE(cache + 1 < lines.end());
  // kmalloc-1k and skbuff_head_cache tie on growth; bytes break the tie.
  CHECK_THAT(cache[1], StartsWith("kmalloc-1k "));
  CHECK_THAT(cache[1], Contains("84,000"));
  CHECK_THAT(cache[1], Contains("82.0 MiB"));
  CHECK_THAT(cache[1], Contains("+3,500"));
  CHECK_THAT(cache[1], Contains("██████████"));  // steady growth
  const auto cgroup = std::find_if(lines.begin(), lines.end(), [](const auto& l) { return l.rfind("CGROUP", 0) == 0; });
  REQUIRE(cgroup + 2 < lines.end());
  CHECK_THAT(cgroup[1], Contains("containerd-ab12cd34.scope"));
  CHECK_THAT(cgroup[1], Contains("+7,000"));
  CHECK_THAT(cgroup[2], StartsWith("/ "));
}

TEST_CASE("top view: rows fitted to small and tall terminals, and to --rows", "[unit][top]") {
  const auto frame = leaking_node();
  for (std::size_t height : {6u, 10u, 15u, 24u, 50u}) {
    for (std::size_t width : {40u, 60u, 80u, 132u}) {
      TopLayout layout;
      layout.width = width;
      layout.height = height;
      const auto lines = render_top(frame, layout);
      INFO(width << "x" << height);
      CHECK(lines.size() <= height);
      for (const auto& line : lines) CHECK(display_width(line) <= width);
    }
  }
  TopLayout tall;
  tall.height = 200;
  const auto everything = render_top(frame, tall);
  CHECK(row_names(everything, "CACHE").size() == 43);
  CHECK(row_names(everything, "CGROUP").size() == 32);

  TopLayout piped;
  piped.height = 0;
  piped.max_rows = 5;
  piped.keys_line = false;
  const auto capped = render_top(frame, piped);
  CHECK(row_names(capped, "CACHE").size() == 5);
  CHECK(row_names(capped, "CGROUP").size() == 5);
  CHECK_THAT(capped.back(), !StartsWith("q quit"));
}

TEST_CASE("top view: a narrow terminal drops columns before the names get unreadable", "[unit][top]") {
  TopLayout layout;
  layout.width = 50;
  const auto lines = render_top(leaking_node(), layout);
  const auto header = std::find_if(lines.begin(), lines.end(), [](const auto& l) { return l.rfind("CACHE", 0) == 0; });
  REQUIRE(header != lines.end());
  CHECK_THAT(*header, Contains("growth/s"));
  CHECK_THAT(*header, Contains("bytes"));
  CHECK_THAT(*header, !Contains("allocs/s"));
  CHECK_THAT(header[1], StartsWith("kmalloc-1k"));
}

TEST_CASE("top view: focus gives all rows to one table", "[unit][top]") {
  const auto frame = leaking_node();
  TopLayout layout;
  layout.focus = TopFocus::cgroups;
  const auto lines = render_top(frame, layout);
  CHECK(row_names(lines, "CACHE").empty());
  CHECK(row_names(lines, "CGROUP").size() == 24u - 5u);  // title, memory, blank, header, keys
  CHECK_THAT(lines[0], Contains("cgroups only"));
  CHECK(next_focus(TopFocus::both) == TopFocus::caches);
  CHECK(next_focus(TopFocus::caches) == TopFocus::cgroups);
  CHECK(next_focus(TopFocus::cgroups) == TopFocus::both);
}

TEST_CASE("top view: sort keys", "[unit][top]") {
  TopFrame frame;
  frame.interval_s = 1;
  model::Rates r;
  r.caches.push_back(group("big_but_still", 100, 9000000, 0, 10));
  r.caches.push_back(group("fast_grower", 50, 5000, 400, 410));
  r.caches.push_back(group("busy_churner", 10, 1000, -20, 90000));
  r.caches.push_back(group("idle_nothing", 0, 0, 0, 0));
  frame.history.push_back(r);
  TopLayout layout;
  const auto names = [&](TopSort sort) {
    layout.sort = sort;
    return row_names(render_top(frame, layout), "CACHE");
  };
  using V = std::vector<std::string>;
  CHECK(names(TopSort::growth) == V{"fast_grower", "big_but_still", "busy_churner"});
  CHECK(names(TopSort::outstanding) == V{"big_but_still", "fast_grower", "busy_churner"});
  CHECK(names(TopSort::allocs) == V{"busy_churner", "fast_grower", "big_but_still"});
  CHECK_THAT(render_top(frame, layout)[0], Contains("sorted by allocs"));

  CHECK(parse_top_sort("outstanding") == TopSort::outstanding);
  CHECK(parse_top_sort("growth") == TopSort::growth);
  CHECK(parse_top_sort("allocs") == TopSort::allocs);
  CHECK(to_string(TopSort::outstanding) == "outstanding");
  CHECK_THROWS_AS(parse_top_sort("bytes"), UserError);
}

TEST_CASE("top view: the sparkline follows the sort", "[unit][top]") {
  TopFrame frame;
  frame.interval_s = 1;
  // Outstanding climbs, growth slows down to a shrink: the two trends differ.
  const std::vector<std::pair<std::uint64_t, double>> steps = {{100, 100}, {180, 80}, {240, 60}, {220, -20}};
  for (auto [outstanding, growth] : steps) {
    model::Rates r;
    r.caches.push_back(group("kmalloc-1k", outstanding, outstanding * 1024, growth, 200));
    frame.history.push_back(r);
  }
  TopLayout layout;
  layout.sort = TopSort::outstanding;
  auto line = render_top(frame, layout)[4];
  CHECK_THAT(line, Contains("      ▄▆█▇"));
  layout.sort = TopSort::growth;
  line = render_top(frame, layout)[4];
  CHECK_THAT(line, Contains("      █▇▆▁"));
}

TEST_CASE("sparkline: scaling, all zero, negative growth, unknown intervals", "[unit][top]") {
  CHECK(sparkline({0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0}) == "▁▂▃▄▅▆▇█");
  CHECK(sparkline({0.0, 0.0, 0.0}) == "▁▁▁");
  CHECK(sparkline({5.0, 5.0}) == "██");  // steady at its own highest
  CHECK(sparkline({std::nullopt, std::nullopt, 1.0, 2.0}) == "  ▅█");
  CHECK(sparkline({}).empty());
  // Zero sits in the middle when growth went both ways, at the top when it only fell.
  CHECK(sparkline({-10.0, 0.0, 10.0}) == "▁▅█");
  CHECK(sparkline({-10.0, -5.0, 0.0}) == "▁▅█");
  CHECK(sparkline({-4.0, -4.0}) == "▁▁");
  CHECK(display_width(sparkline(std::vector<std::optional<double>>(kSparklineIntervals, 3.0))) == kSparklineIntervals);
}

TEST_CASE("fit_text: truncation by columns, keeping the end of cgroup paths", "[unit][top]") {
  CHECK(fit_text("kmalloc-1k", 20, false) == "kmalloc-1k");
  CHECK(fit_text("skbuff_head_cache", 10, false) == "skbuff_he…");
  CHECK(fit_text("/kubepods/burstable/pod1f0c/cri-containerd-ab12", 20, true) == "…cri-containerd-ab12");
  CHECK(display_width(fit_text("/kubepods/burstable/pod1f0c/cri-containerd-ab12", 20, true)) == 20);
  CHECK(fit_text("abc", 0, true).empty());
  // Multi-byte characters count once and are never cut in half.
  CHECK(display_width("▁▂▃ — …") == 7);
  CHECK(fit_text("ääääää", 4, false) == "äää…");
  // A cgroup name cannot smuggle escape codes onto the screen.
  CHECK(fit_text("/evil\x1b[2Jname", 40, true) == "/evil?[2Jname");
  CHECK(fit_text("/c1\xc2\x9b"
                 "31m",
                 40, true) == "/c1?31m");
  CHECK(fit_text("/bad\xff", 40, true) == "/bad?");
}

TEST_CASE("top view: before the first interval, and without /proc/meminfo", "[unit][top]") {
  TopFrame frame;
  frame.interval_s = 2;
  const auto lines = render_top(frame, TopLayout{});
  CHECK(lines.size() == 24);
  CHECK_THAT(lines[1], Contains("/proc/meminfo"));
  CHECK_THAT(lines[4], Contains("waiting for the first interval (2s)"));
}

TEST_CASE("top view: large figures stay inside their columns", "[unit][top]") {
  TopFrame frame;
  frame.interval_s = 1;
  model::Rates r;
  r.caches.push_back(group("kmalloc-1k", 123456789012ull, 5ull << 40, 12345678.0, 98765432.0));
  r.caches.push_back(group("dentry", 5, 500, -250000.0, 3));
  frame.history.push_back(r);
  const auto lines = render_top(frame, TopLayout{});
  CHECK_THAT(lines[4], Contains("123G"));
  CHECK_THAT(lines[4], Contains("+12.3M"));
  CHECK_THAT(lines[4], Contains("98.8M"));
  CHECK_THAT(lines[5], Contains("-250k"));
  for (const auto& line : lines) CHECK(display_width(line) <= 80);
}
