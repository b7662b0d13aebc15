#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "slabtrace/flamegraph.hpp"
#include "slabtrace/human.hpp"

namespace slabtrace::output {
namespace {

// ---- text -------------------------------------------------------------------
// Frame names come from kernel symbols and cgroup directory names; a cgroup
// name may hold any byte but '/' and NUL. SVG is XML: split into UTF-8
// characters so labels are cut between characters, and replace what XML 1.0
// cannot carry (invalid UTF-8, control characters) so the file always parses.
std::vector<std::string> utf8_characters(std::string_view text) {
  static const std::string replacement = "\xEF\xBF\xBD";  // U+FFFD
  std::vector<std::string> characters;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = lead < 0x80           ? 1
                         : (lead >> 5) == 0x6  ? 2
                         : (lead >> 4) == 0xE  ? 3
                         : (lead >> 3) == 0x1E ? 4
                                               : 0;
    bool valid = length > 0 && i + length <= text.size();
    for (std::size_t k = 1; valid && k < length; ++k) valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    if (!valid) {
      characters.push_back(replacement);
      ++i;
      continue;
    }
    if (length == 1 && lead < 0x20 && lead != '\t' && lead != '\n')
      characters.push_back("?");
    else
      characters.emplace_back(text.substr(i, length));
    i += length;
  }
  return characters;
}

std::string xml_escape_character(const std::string& character) {
  if (character == "&") return "&amp;";
  if (character == "<") return "&lt;";
  if (character == ">") return "&gt;";
  if (character == "\"") return "&quot;";
  if (character == "'") return "&apos;";
  return character;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  for (const auto& character : utf8_characters(text)) out += xml_escape_character(character);
  return out;
}

// ---- the frame tree ---------------------------------------------------------
struct Frame {
  std::string name;
  std::uint64_t bytes = 0;
  std::uint64_t count = 0;
  std::map<std::string, std::uint64_t> bytes_by_cache;
  std::vector<Frame> children;
  std::map<std::string, std::size_t> child_index;  // name -> position in children

  Frame& child(const std::string& child_name) {
    const auto [it, inserted] = child_index.emplace(child_name, children.size());
    if (inserted) children.push_back(Frame{child_name, 0, 0, {}, {}, {}});
    return children[it->second];
  }

  void add(const FlameStack& stack) {
    bytes += stack.bytes;
    count += stack.count;
    bytes_by_cache[stack.cache] += stack.bytes;
  }

  // The cache that holds most of this frame's bytes gives it its colour.
  const std::string& main_cache() const {
    return std::max_element(bytes_by_cache.begin(), bytes_by_cache.end(),
                            [](const auto& a, const auto& b) { return a.second < b.second; })
        ->first;
  }

  std::size_t depth() const {
    std::size_t deepest = 0;
    for (const auto& c : children) deepest = std::max(deepest, c.depth());
    return deepest + 1;
  }
};

Frame build_tree(const std::vector<FlameStack>& stacks) {
  Frame root{"all", 0, 0, {}, {}, {}};
  for (const auto& stack : stacks) {
    if (stack.bytes == 0) continue;
    root.add(stack);
    Frame* frame = &root;
    for (const auto& name : stack.frames) {
      frame = &frame->child(name);
      frame->add(stack);
    }
  }
  return root;
}

// ---- colour -----------------------------------------------------------------
// A stable hash of the cache name picks a warm colour (red through orange to
// yellow, as in Brendan Gregg's flame graphs), so one cache keeps its colour
// from graph to graph.
std::string cache_colour(const std::string& cache) {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a
  for (unsigned char c : cache) hash = (hash ^ c) * 1099511628211ull;
  const auto share = [&](int shift) { return static_cast<double>((hash >> shift) & 0xFF) / 255.0; };
  const int red = 205 + static_cast<int>(50 * share(0));
  const int green = static_cast<int>(210 * share(8));
  const int blue = static_cast<int>(55 * share(16));
  return fmt::format("rgb({},{},{})", red, green, blue);
}

// ---- layout -----------------------------------------------------------------
constexpr double side_margin = 10;
constexpr double font_size = 12;
// Monospace glyphs are 0.6 em wide (DejaVu Sans Mono, Liberation Mono): enough
// to know how many characters fit in a frame.
constexpr double char_width = font_size * 0.6;
constexpr double label_padding = 3;

// The name cut to fit `width` px, ending in ".." when cut; empty when not even
// two characters and the dots fit.
std::string label_for(const std::string& name, double width) {
  const auto characters = utf8_characters(name);
  const auto fits = static_cast<std::size_t>(std::max(0.0, (width - 2 * label_padding) / char_width));
  if (fits >= characters.size()) return xml_escape(name);
  if (fits < 4) return "";
  std::string label;
  for (std::size_t i = 0; i + 2 < fits; ++i) label += xml_escape_character(characters[i]);
  return label + "..";
}

std::string tooltip(const Frame& frame, std::uint64_t total_bytes) {
  std::string caches;
  if (frame.bytes_by_cache.size() == 1) {
    caches = "cache: " + frame.bytes_by_cache.begin()->first;
  } else {
    std::vector<std::pair<std::string, std::uint64_t>> by_bytes(frame.bytes_by_cache.begin(),
                                                                frame.bytes_by_cache.end());
    std::sort(by_bytes.begin(), by_bytes.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    caches = "caches:";
    for (const auto& [cache, bytes] : by_bytes)
      caches += fmt::format(" {} {:.1f}%", cache, percent(bytes, frame.bytes));
  }
  return xml_escape(fmt::format("{}\n{} bytes ({}), {} objects, {:.2f}% of all\n{}", frame.name,
                                group_thousands(frame.bytes), human_bytes(frame.bytes), group_thousands(frame.count),
                                percent(frame.bytes, total_bytes), caches));
}

class SvgWriter {
 public:
  SvgWriter(std::ostream& out, const FlameOptions& options, std::uint64_t total_bytes, double bottom)
      : out_(out),
        options_(options),
        total_bytes_(total_bytes),
        bottom_(bottom),
        px_per_byte_((options.width - 2 * side_margin) / static_cast<double>(total_bytes)) {}

  // Draws a frame and, above it, its children left to right, largest first.
  void draw(const Frame& frame, double x, std::size_t level) {
    const double width = static_cast<double>(frame.bytes) * px_per_byte_;
    if (width < options_.min_frame_width) return;
    const double y = bottom_ - static_cast<double>(level + 1) * options_.frame_height;
    out_ << fmt::format("<g class=\"frame\"><title>{}</title>", tooltip(frame, total_bytes_));
    out_ << fmt::format(
        "<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{}\" fill=\"{}\" rx=\"2\" ry=\"2\"/>", x, y, width,
        options_.frame_height - 1, cache_colour(frame.main_cache()));
    if (const auto label = label_for(frame.name, width); !label.empty())
      out_ << fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\">{}</text>", x + label_padding,
                          y + options_.frame_height - 4.5, label);
    out_ << "</g>\n";

    std::vector<const Frame*> children;
    for (const auto& child : frame.children) children.push_back(&child);
    std::sort(children.begin(), children.end(), [](const Frame* a, const Frame* b) {
      return a->bytes != b->bytes ? a->bytes > b->bytes : a->name < b->name;
    });
    double child_x = x;
    for (const Frame* child : children) {
      draw(*child, child_x, level + 1);
      child_x += static_cast<double>(child->bytes) * px_per_byte_;
    }
  }

 private:
  std::ostream& out_;
  const FlameOptions& options_;
  std::uint64_t total_bytes_;
  double bottom_;
  double px_per_byte_;
};

struct LegendEntry {
  std::string cache;
  std::uint64_t bytes;
  std::string text;
  double x, y;
};

// One swatch per cache, largest first, wrapped onto as many rows as the width needs.
std::vector<LegendEntry> lay_out_legend(const Frame& root, double top, double width) {
  std::vector<LegendEntry> entries;
  for (const auto& [cache, bytes] : root.bytes_by_cache)
    entries.push_back(
        {cache, bytes, fmt::format("{} {} ({:.1f}%)", cache, human_bytes(bytes), percent(bytes, root.bytes)), 0, 0});
  std::sort(entries.begin(), entries.end(), [](const LegendEntry& a, const LegendEntry& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.cache < b.cache;
  });
  double x = side_margin, y = top;
  for (auto& entry : entries) {
    const double entry_width = 18 + static_cast<double>(utf8_characters(entry.text).size()) * char_width + 16;
    if (x > side_margin && x + entry_width > width - side_margin) {
      x = side_margin;
      y += 18;
    }
    entry.x = x;
    entry.y = y;
    x += entry_width;
  }
  return entries;
}

}  // namespace

void write_flamegraph_svg(const std::vector<FlameStack>& stacks, std::ostream& out, const FlameOptions& options) {
  const Frame root = build_tree(stacks);
  const double width = options.width;

  const double legend_top = 56;
  const auto legend = lay_out_legend(root, legend_top, width);
  const double legend_bottom = legend.empty() ? legend_top : legend.back().y + 18;
  const double graph_top = legend_bottom + 8;
  const std::size_t levels = root.bytes == 0 ? 1 : root.depth();
  const double bottom = graph_top + static_cast<double>(levels * options.frame_height);
  const double height = bottom + 10;

  out << "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n";
  out << fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0} {1:.0f}\" font-family=\"DejaVu Sans Mono, Liberation Mono, monospace\" "
      "font-size=\"{2}\">\n",
      options.width, height, font_size);
  out << "<style>.frame:hover rect { stroke: #000; stroke-width: 1; } text { fill: #000; }</style>\n";
  out << fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{:.0f}\" fill=\"#fbfbf4\"/>\n", options.width,
                     height);
  out << fmt::format("<text x=\"{:.1f}\" y=\"24\" font-size=\"17\" text-anchor=\"middle\">{}</text>\n", width / 2,
                     xml_escape(options.title));

  if (root.bytes == 0) {
    out << fmt::format("<text x=\"{:.1f}\" y=\"44\" text-anchor=\"middle\">no outstanding allocations</text>\n",
                       width / 2);
    out << "</svg>\n";
    return;
  }
  out << fmt::format(
      "<text x=\"{:.1f}\" y=\"44\" text-anchor=\"middle\" fill=\"#555\">{} outstanding in {} objects; "
      "width = bytes, colour = cache; hover a frame for exact figures</text>\n",
      width / 2, human_bytes(root.bytes), group_thousands(root.count));
  for (const auto& entry : legend) {
    out << fmt::format("<g class=\"legend\"><rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"12\" fill=\"{}\"/>",
                       entry.x, entry.y, cache_colour(entry.cache));
    out << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text></g>\n", entry.x + 18, entry.y + 10.5,
                       xml_escape(entry.text));
  }

  SvgWriter(out, options, root.bytes, bottom).draw(root, side_margin, 0);
  out << "</svg>\n";
}

}  // namespace slabtrace::output
