#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "slabtrace/flamegraph.hpp"
#include "temp_dir.hpp"

using namespace slabtrace::output;
using Catch::Matchers::Contains;

namespace {

// ---- a tiny strict XML reader -------------------------------------------------
// Enough of XML to prove the SVG is well-formed: balanced tags, quoted
// attributes, only the five named entities and numeric references, no raw '<',
// '&' or '>' in text. It builds a tree so tests can look at rects and titles.
struct Element {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::string text;  // entities decoded, direct children's text not included
  std::vector<Element> children;
};

class XmlReader {
 public:
  explicit XmlReader(std::string xml) : xml_(std::move(xml)) {}

  Element document() {
    if (xml_.compare(0, 5, "<?xml") == 0) pos_ = xml_.find("?>") + 2;
    skip_space();
    Element root = element();
    skip_space();
    if (pos_ != xml_.size()) fail("content after the root element");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    FAIL("XML at offset " << pos_ << ": " << what << " near '" << xml_.substr(pos_, 40) << "'");
    throw std::logic_error("unreachable");
  }
  void skip_space() {
    while (pos_ < xml_.size() && std::isspace(static_cast<unsigned char>(xml_[pos_]))) ++pos_;
  }
  std::string name() {
    const auto start = pos_;
    while (pos_ < xml_.size() && (std::isalnum(static_cast<unsigned char>(xml_[pos_])) || xml_[pos_] == '-' ||
                                  xml_[pos_] == ':' || xml_[pos_] == '_'))
      ++pos_;
    if (pos_ == start) fail("expected a name");
    return xml_.substr(start, pos_ - start);
  }
  // Text up to `stop`, with entities decoded; fails on characters XML forbids raw.
  std::string text_until(char stop) {
    std::string out;
    while (pos_ < xml_.size() && xml_[pos_] != stop) {
      const char c = xml_[pos_];
      if (c == '<' || c == '>' || (c == '"' && stop == '"')) fail("raw markup character in text");
      if (c == '&') {
        const auto semicolon = xml_.find(';', pos_);
        if (semicolon == std::string::npos) fail("unterminated entity");
        const auto entity = xml_.substr(pos_ + 1, semicolon - pos_ - 1);
        static const std::map<std::string, std::string> named = {
            {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}};
        if (named.count(entity))
          out += named.at(entity);
        else if (entity.size() > 1 && entity[0] == '#')
          out += '?';
        else
          fail("unknown entity &" + entity + ";");
        pos_ = semicolon + 1;
        continue;
      }
      if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' && c != '\r') fail("control character");
      out += c;
      ++pos_;
    }
    return out;
  }
  Element element() {
    if (xml_[pos_] != '<') fail("expected '<'");
    ++pos_;
    Element e;
    e.name = name();
    for (;;) {
      skip_space();
      if (xml_.compare(pos_, 2, "/>") == 0) {
        pos_ += 2;
        return e;
      }
      if (xml_[pos_] == '>') {
        ++pos_;
        break;
      }
      const auto attribute = name();
      if (xml_[pos_] != '=' || xml_[pos_ + 1] != '"') fail("expected =\"");
      pos_ += 2;
      if (e.attributes.count(attribute)) fail("duplicate attribute " + attribute);
      e.attributes[attribute] = text_until('"');
      ++pos_;
    }
    for (;;) {
      e.text += text_until('<');
      if (pos_ >= xml_.size()) fail("unclosed <" + e.name + ">");
      if (xml_.compare(pos_, 2, "</") == 0) {
        pos_ += 2;
        if (name() != e.name) fail("mismatched closing tag for <" + e.name + ">");
        if (xml_[pos_] != '>') fail("expected '>'");
        ++pos_;
        return e;
      }
      e.children.push_back(element());
    }
  }

  std::string xml_;
  std::size_t pos_ = 0;
};

// A drawn frame: its name (first line of the tooltip), tooltip, and rect.
struct DrawnFrame {
  std::string name;
  std::string tooltip;
  double x, y, width;
  std::string label;
};

std::vector<DrawnFrame> frames_of(const Element& svg) {
  std::vector<DrawnFrame> frames;
  for (const auto& g : svg.children) {
    if (g.name != "g" || g.attributes.count("class") == 0 || g.attributes.at("class") != "frame") continue;
    const Element *title = nullptr, *rect = nullptr, *text = nullptr;
    for (const auto& child : g.children) {
      if (child.name == "title") title = &child;
      if (child.name == "rect") rect = &child;
      if (child.name == "text") text = &child;
    }
    REQUIRE(title);
    REQUIRE(rect);
    for (const char* attribute : {"x", "y", "width", "height", "fill"}) REQUIRE(rect->attributes.count(attribute));
    frames.push_back({title->text.substr(0, title->text.find('\n')), title->text, std::stod(rect->attributes.at("x")),
                      std::stod(rect->attributes.at("y")), std::stod(rect->attributes.at("width")),
                      text ? text->text : ""});
  }
  return frames;
}

std::string svg_of(const std::vector<FlameStack>& stacks, const FlameOptions& options = {}) {
  std::ostringstream out;
  write_flamegraph_svg(stacks, out, options);
  return out.str();
}

const DrawnFrame& frame_named(const std::vector<DrawnFrame>& frames, const std::string& name) {
  const auto it = std::find_if(frames.begin(), frames.end(), [&](const DrawnFrame& f) { return f.name == name; });
  REQUIRE(it != frames.end());
  return *it;
}

// The leak: a UDP socket nobody reads, 75% of the bytes; background noise 25%.
const std::string leaky_cgroup = "cgroup /kubepods/burstable/pod1f0c/cri-containerd-ab12";
std::vector<FlameStack> leak_and_noise() {
  return {
      {{leaky_cgroup, "entry_SYSCALL_64", "__sys_sendto", "udp_sendmsg", "ip_make_skb", "__alloc_skb"},
       "skbuff_head_cache",
       750'000,
       3'000},
      {{"cgroup /system.slice/containerd.service", "entry_SYSCALL_64", "__x64_sys_openat", "do_filp_open",
        "alloc_empty_file"},
       "filp",
       250'000,
       1'300},
  };
}

}  // namespace

TEST_CASE("flame graph: well-formed SVG, every frame a rect with a tooltip", "[unit][flamegraph]") {
  const auto svg = svg_of(leak_and_noise());
  const auto root = XmlReader(svg).document();
  CHECK(root.name == "svg");
  CHECK(root.attributes.at("xmlns") == "http://www.w3.org/2000/svg");
  const auto frames = frames_of(root);
  // all, then cgroup and 5 frames of the leak, cgroup and 4 of the noise:
  // entry_SYSCALL_64 twice, under different cgroups.
  CHECK(frames.size() == 1 + 6 + 5);
  const auto& all = frame_named(frames, "all");
  CHECK_THAT(all.tooltip, Contains("1,000,000 bytes (977 KiB), 4,300 objects, 100.00% of all"));
  const auto& leak = frame_named(frames, "__alloc_skb");
  CHECK_THAT(leak.tooltip, Contains("750,000 bytes") && Contains("3,000 objects") && Contains("75.00% of all") &&
                               Contains("cache: skbuff_head_cache"));
  CHECK_THAT(svg, Contains("skbuff_head_cache 732 KiB (75.0%)"));  // legend
}

TEST_CASE("flame graph: widths proportional to bytes", "[unit][flamegraph]") {
  const auto frames = frames_of(XmlReader(svg_of(leak_and_noise())).document());
  const auto& all = frame_named(frames, "all");
  const auto& heavy = frame_named(frames, leaky_cgroup);
  const auto& light = frame_named(frames, "cgroup /system.slice/containerd.service");
  CHECK(all.width == Approx(1200 - 20));
  CHECK(std::abs(heavy.width - 0.75 * all.width) <= 1.0);
  CHECK(std::abs(light.width - 0.25 * all.width) <= 1.0);
  CHECK(std::abs(heavy.width / light.width - 3.0) <= 1.0 / light.width * 4);
  // Largest first, and children sit on their parent.
  CHECK(heavy.x == Approx(all.x));
  CHECK(light.x == Approx(all.x + heavy.width).margin(0.01));
  CHECK(heavy.y < all.y);
}

TEST_CASE("flame graph: the widest leaf is the leaking stack", "[unit][flamegraph]") {
  auto stacks = leak_and_noise();
  // More noise, spread over many small stacks: none of them as wide as the leak.
  for (int i = 0; i < 20; ++i)
    stacks.push_back({{"cgroup /", "ret_from_fork", "kthread", "worker_" + std::to_string(i), "kmalloc_trace"},
                      "kmalloc-" + std::to_string(64 << (i % 4)),
                      10'000,
                      100});
  const auto frames = frames_of(XmlReader(svg_of(stacks)).document());
  std::vector<std::string> leaves = {"__alloc_skb", "alloc_empty_file", "kmalloc_trace"};
  const DrawnFrame* widest = nullptr;
  for (const auto& frame : frames)
    if (std::find(leaves.begin(), leaves.end(), frame.name) != leaves.end() && (!widest || frame.width > widest->width))
      widest = &frame;
  REQUIRE(widest);
  CHECK(widest->name == "__alloc_skb");
}

TEST_CASE("flame graph: identical prefixes merge into one frame", "[unit][flamegraph]") {
  std::vector<FlameStack> stacks = {
      {{"cgroup /a", "entry_SYSCALL_64", "udp_sendmsg", "__alloc_skb"}, "skbuff_head_cache", 600, 2},
      {{"cgroup /a", "entry_SYSCALL_64", "udp_sendmsg", "kmalloc_reserve"}, "kmalloc-1k", 300, 2},
      {{"cgroup /a", "entry_SYSCALL_64", "udp_sendmsg", "__alloc_skb"}, "skbuff_head_cache", 100, 1},
  };
  const auto frames = frames_of(XmlReader(svg_of(stacks)).document());
  CHECK(std::count_if(frames.begin(), frames.end(), [](const DrawnFrame& f) { return f.name == "udp_sendmsg"; }) == 1);
  CHECK(std::count_if(frames.begin(), frames.end(), [](const DrawnFrame& f) { return f.name == "__alloc_skb"; }) == 1);
  const auto& merged = frame_named(frames, "udp_sendmsg");
  CHECK_THAT(merged.tooltip, Contains("1,000 bytes") && Contains("5 objects"));
  CHECK_THAT(merged.tooltip, Contains("caches: skbuff_head_cache 70.0% kmalloc-1k 30.0%"));
  CHECK(frame_named(frames, "__alloc_skb").x < frame_named(frames, "kmalloc_reserve").x);
}

TEST_CASE("flame graph: names are escaped and cut to fit", "[unit][flamegraph]") {
  const std::string nasty = "cgroup /evil<script>&\"quoted\"'s";
  std::vector<FlameStack> stacks = {
      {{nasty, "a_really_long_kernel_function_name_that_cannot_fit_in_a_narrow_frame", "bad\x01utf8\xff"},
       "kmalloc-<1k>&",
       900,
       9},
      {{"cgroup /b", "tiny"}, "filp", 100, 1},
  };
  FlameOptions options;
  options.title = "title with <angle> & \"quotes\"";
  options.width = 300;
  const auto svg = svg_of(stacks, options);
  CHECK(svg.find("<script>") == std::string::npos);
  CHECK(svg.find("&\"") == std::string::npos);
  CHECK_THAT(svg, Contains("evil&lt;script&gt;&amp;&quot;quoted&quot;&apos;s"));
  CHECK_THAT(svg, Contains("kmalloc-&lt;1k&gt;&amp;"));
  const auto root = XmlReader(svg).document();
  const auto frames = frames_of(root);
  const auto& nasty_frame = frame_named(frames, nasty);
  CHECK(nasty_frame.tooltip.find("cache: kmalloc-<1k>&") != std::string::npos);

  const auto& long_frame = frame_named(frames, "a_really_long_kernel_function_name_that_cannot_fit_in_a_narrow_frame");
  CHECK(long_frame.label.size() < long_frame.name.size());
  CHECK(long_frame.label.substr(long_frame.label.size() - 2) == "..");
  CHECK(long_frame.name.compare(0, long_frame.label.size() - 2, long_frame.label, 0, long_frame.label.size() - 2) == 0);
  // About 7.2 px per character at 12 px monospace: the label fits its frame.
  CHECK(long_frame.label.size() * 7.2 <= long_frame.width);
  // Control bytes and invalid UTF-8 are replaced, not passed through.
  CHECK(
      std::any_of(frames.begin(), frames.end(), [](const DrawnFrame& f) { return f.name.rfind("bad?utf8", 0) == 0; }));
}

TEST_CASE("flame graph: no stacks still gives a valid picture", "[unit][flamegraph]") {
  const auto svg = svg_of({});
  const auto root = XmlReader(svg).document();
  CHECK(frames_of(root).empty());
  CHECK_THAT(svg, Contains("no outstanding allocations"));
}

TEST_CASE("flame graph: rsvg-convert renders it", "[unit][flamegraph]") {
  if (std::system("command -v rsvg-convert >/dev/null 2>&1") != 0) {
    WARN("rsvg-convert not installed (Debian: librsvg2-bin); not rasterising the flame graph");
    return;
  }
  slabtrace::testing::TempDir dir("slabtrace-flamegraph");
  auto stacks = leak_and_noise();
  stacks.push_back({{leaky_cgroup, "entry_SYSCALL_64", "__sys_sendto", "udp_sendmsg", "ip_make_skb", "kmalloc_reserve"},
                    "kmalloc-1k",
                    1'200'000,
                    3'000});
  const auto svg = dir.write("leak.svg", svg_of(stacks));
  const auto png = (dir.path() / "leak.png").string();
  const auto command = "rsvg-convert -o '" + png + "' '" + svg + "' 2>&1";
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);
  REQUIRE(std::filesystem::exists(png));
  // A blank or failed render of a 1200 px wide picture is far smaller than this.
  CHECK(std::filesystem::file_size(png) > 10'000);
}
