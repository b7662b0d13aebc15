#include "slabtrace/top_view.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <unordered_map>

#include "slabtrace/error.hpp"
#include "slabtrace/human.hpp"

namespace slabtrace::output {

TopSort parse_top_sort(std::string_view name) {
  if (name == "outstanding") return TopSort::outstanding;
  if (name == "growth") return TopSort::growth;
  if (name == "allocs") return TopSort::allocs;
  throw UserError(fmt::format("unknown sort '{}': outstanding, growth or allocs", name));
}

std::string_view to_string(TopSort sort) {
  switch (sort) {
    case TopSort::outstanding:
      return "outstanding";
    case TopSort::allocs:
      return "allocs";
    case TopSort::growth:
      break;
  }
  return "growth";
}

TopFocus next_focus(TopFocus focus) {
  switch (focus) {
    case TopFocus::both:
      return TopFocus::caches;
    case TopFocus::caches:
      return TopFocus::cgroups;
    case TopFocus::cgroups:
      break;
  }
  return TopFocus::both;
}

namespace {

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The code points of `text` as the terminal will show them: control
// characters (C0, DEL, C1) and malformed bytes become '?'.
std::vector<std::string_view> glyphs(std::string_view text) {
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t len = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
    bool valid = len > 0 && i + len <= text.size();
    for (std::size_t k = 1; valid && k < len; ++k) valid = is_continuation(static_cast<unsigned char>(text[i + k]));
    if (!valid) {
      out.emplace_back("?");
      ++i;
      continue;
    }
    const bool control = (len == 1 && (lead < 0x20 || lead == 0x7f)) ||
                         (len == 2 && lead == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0);
    out.push_back(control ? std::string_view("?") : text.substr(i, len));
    i += len;
  }
  return out;
}

std::string join(const std::vector<std::string_view>& parts, std::size_t from, std::size_t to) {
  std::string out;
  for (std::size_t i = from; i < to; ++i) out += parts[i];
  return out;
}

std::string pad_right(std::string text, std::size_t width) {
  const std::size_t used = display_width(text);
  if (used < width) text.append(width - used, ' ');
  return text;
}

std::string pad_left(const std::string& text, std::size_t width) {
  const std::size_t used = display_width(text);
  return used < width ? std::string(width - used, ' ') + text : text;
}

// "7,471", "123k", "1.23M": at most seven columns with a sign.
std::string compact(double value) {
  double magnitude = std::fabs(value);
  if (magnitude < 99999.5) return group_thousands(static_cast<std::uint64_t>(std::llround(magnitude)));
  static constexpr std::array<const char*, 4> units = {"k", "M", "G", "T"};
  std::size_t unit = 0;
  magnitude /= 1000.0;
  while (magnitude >= 999.5 && unit + 1 < units.size()) {
    magnitude /= 1000.0;
    ++unit;
  }
  const int decimals = magnitude < 9.995 ? 2 : magnitude < 99.95 ? 1 : 0;
  return fmt::format("{:.{}f}{}", magnitude, decimals, units[unit]);
}

std::string signed_rate(double value) {
  const std::string digits = compact(value);
  if (digits == "0") return digits;
  return (value < 0 ? "-" : "+") + digits;
}

std::string count_cell(std::uint64_t n, std::size_t width) {
  std::string grouped = group_thousands(n);
  return grouped.size() <= width ? grouped : compact(double(n));
}

// "12s", "3m04s", "2h05m".
std::string duration_text(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

double sort_value(const model::CacheRate& r, TopSort sort) {
  switch (sort) {
    case TopSort::outstanding:
      return double(r.outstanding_bytes);
    case TopSort::allocs:
      return r.allocs_per_s;
    case TopSort::growth:
      break;
  }
  return r.growth_per_s;
}

struct Row {
  std::string name;
  model::CacheRate now;
  std::string trend;
};

using GroupsOf = std::function<const std::vector<model::GroupRate>&(const model::Rates&)>;

// The rows of one table, largest first by the sort, without groups that had
// nothing outstanding and nothing happening; each with its sparkline.
std::vector<Row> table_rows(const TopFrame& frame, TopSort sort, const GroupsOf& groups_of,
                            const std::function<std::string(const model::GroupRate&)>& name_of) {
  std::vector<Row> rows;
  if (frame.history.empty()) return rows;
  const std::size_t shown = std::min(frame.history.size(), kSparklineIntervals);
  std::vector<std::unordered_map<std::string_view, const model::CacheRate*>> past(shown);
  for (std::size_t i = 0; i < shown; ++i)
    for (const auto& g : groups_of(frame.history[frame.history.size() - shown + i])) past[i].emplace(g.key, &g.total);

  for (const auto& g : groups_of(frame.history.back())) {
    const auto& r = g.total;
    if (r.outstanding == 0 && r.allocs == 0 && r.growth_per_s == 0) continue;
    std::vector<std::optional<double>> values(kSparklineIntervals - shown);
    for (const auto& interval : past) {
      auto it = interval.find(g.key);
      values.push_back(it == interval.end() ? 0.0 : sort_value(*it->second, sort));
    }
    rows.push_back({name_of(g), r, sparkline(values)});
  }
  std::sort(rows.begin(), rows.end(), [sort](const Row& a, const Row& b) {
    const double ka = sort_value(a.now, sort), kb = sort_value(b.now, sort);
    if (ka != kb) return ka > kb;
    if (a.now.outstanding_bytes != b.now.outstanding_bytes) return a.now.outstanding_bytes > b.now.outstanding_bytes;
    return a.name < b.name;
  });
  return rows;
}

struct Column {
  std::string_view header;
  std::size_t width;
  int drop_rank;  // 0: always shown; otherwise lower ranks go first on a narrow screen
  std::function<std::string(const Row&)> cell;
};

std::vector<Column> columns_for(std::size_t width, std::size_t min_name) {
  std::vector<Column> all = {
      {"outstanding", 11, 3, [](const Row& r) { return count_cell(r.now.outstanding, 11); }},
      {"bytes", 9, 0, [](const Row& r) { return human_bytes(r.now.outstanding_bytes); }},
      {"growth/s", 8, 0, [](const Row& r) { return signed_rate(r.now.growth_per_s); }},
      {"allocs/s", 8, 1, [](const Row& r) { return compact(r.now.allocs_per_s); }},
      {"trend", kSparklineIntervals, 2, [](const Row& r) { return r.trend; }},
  };
  auto room = [&] {
    std::size_t used = 0;
    for (const auto& c : all) used += c.width + 1;
    return width > used ? width - used : 0;
  };
  for (int rank = 1; rank <= 3 && room() < min_name; ++rank)
    all.erase(std::remove_if(all.begin(), all.end(), [rank](const Column& c) { return c.drop_rank == rank; }),
              all.end());
  return all;
}

struct Table {
  std::string_view title;  // "CACHE", "CGROUP"
  bool keep_name_end;      // cgroup paths: the end says which container
  std::vector<Row> rows;
  std::size_t budget = 0;  // rows it may show
};

// "CGROUP", or "CGROUP (9 of 31)" when rows are left out.
std::string table_title(const Table& t) {
  if (t.budget >= t.rows.size()) return std::string(t.title);
  return fmt::format("{} ({} of {})", t.title, t.budget, t.rows.size());
}

void write_table(const Table& t, const std::vector<Column>& columns, std::size_t name_width,
                 const std::string& empty_note, std::vector<std::string>& lines) {
  std::string header = pad_right(fit_text(table_title(t), name_width, false), name_width);
  for (const auto& c : columns) header += " " + pad_left(std::string(c.header), c.width);
  lines.push_back(std::move(header));
  if (t.rows.empty()) {
    if (t.budget > 0) lines.push_back("  " + empty_note);
    return;
  }
  for (std::size_t i = 0; i < t.rows.size() && i < t.budget; ++i) {
    const Row& row = t.rows[i];
    std::string line = pad_right(fit_text(row.name, name_width, t.keep_name_end), name_width);
    for (const auto& c : columns) line += " " + pad_left(c.cell(row), c.width);
    lines.push_back(std::move(line));
  }
}

std::string memory_line(const TopFrame& frame, std::size_t width) {
  if (frame.meminfo.empty()) return "/proc/meminfo: unreadable";
  const auto unreclaimable = node::field_or_zero(frame.meminfo, "SUnreclaim");
  std::string change;
  if (auto start = frame.meminfo_start.find("SUnreclaim"); start != frame.meminfo_start.end()) {
    const bool fell = unreclaimable < start->second;
    change = fmt::format(" ({}{})", fell ? "-" : "+",
                         human_bytes(fell ? start->second - unreclaimable : unreclaimable - start->second));
  }
  const std::string reclaimable = "SReclaimable " + human_bytes(node::field_or_zero(frame.meminfo, "SReclaimable"));
  const std::string available = "MemAvailable " + human_bytes(node::field_or_zero(frame.meminfo, "MemAvailable"));
  const std::string of_total = " of " + human_bytes(node::field_or_zero(frame.meminfo, "MemTotal"));
  const std::string sunreclaim = "SUnreclaim " + human_bytes(unreclaimable);
  // Most detail that fits: the total first to go, then SUnreclaim's change.
  for (const std::string& line : {sunreclaim + change + "  " + reclaimable + "  " + available + of_total,
                                  sunreclaim + change + "  " + reclaimable + "  " + available,
                                  sunreclaim + "  " + reclaimable + "  " + available})
    if (display_width(line) <= width) return line;
  return sunreclaim + "  " + available;
}

std::string title_line(const TopFrame& frame, const TopLayout& layout) {
  std::string focus;
  if (layout.focus == TopFocus::caches) focus = ", caches only";
  if (layout.focus == TopFocus::cgroups) focus = ", cgroups only";
  return fmt::format("slabtrace top — {}, every {}, sorted by {}{}", duration_text(frame.elapsed_s),
                     frame.interval_s >= 1 ? duration_text(frame.interval_s) : fmt::format("{:g}s", frame.interval_s),
                     to_string(layout.sort), focus);
}

// Rows each table may show: what is left of the height after the fixed lines,
// halved between two tables, a table that needs fewer giving the rest away.
void share_rows(std::vector<Table*>& tables, std::size_t available, std::size_t max_rows) {
  constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();
  const std::size_t cap = max_rows > 0 ? max_rows : kUnlimited;
  std::vector<std::size_t> wanted;
  for (auto* t : tables) wanted.push_back(std::min(std::max<std::size_t>(t->rows.size(), 1), cap));
  std::vector<std::size_t> share(tables.size(), 0);
  std::size_t left = available;
  // Round-robin one row at a time: fair when both are long, generous when one
  // is short. From the last table, so an odd row goes to the cgroups: who.
  for (bool gave = true; gave && left > 0;) {
    gave = false;
    for (std::size_t i = tables.size(); i-- > 0 && left > 0;)
      if (share[i] < wanted[i]) {
        ++share[i];
        --left;
        gave = true;
      }
  }
  for (std::size_t i = 0; i < tables.size(); ++i) tables[i]->budget = share[i];
}

}  // namespace

std::string sparkline(const std::vector<std::optional<double>>& values) {
  static constexpr std::array<std::string_view, 8> levels = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  double low = 0, high = 0;
  for (const auto& v : values)
    if (v) {
      low = std::min(low, *v);
      high = std::max(high, *v);
    }
  std::string out;
  for (const auto& v : values) {
    if (!v) {
      out += ' ';
      continue;
    }
    std::size_t level = 0;
    if (high > low)
      level = static_cast<std::size_t>(std::lround((*v - low) / (high - low) * double(levels.size() - 1)));
    out += levels[std::min(level, levels.size() - 1)];
  }
  return out;
}

std::size_t display_width(std::string_view text) { return glyphs(text).size(); }

std::string fit_text(std::string_view text, std::size_t width, bool keep_end) {
  const auto parts = glyphs(text);
  if (parts.size() <= width) return join(parts, 0, parts.size());
  if (width == 0) return "";
  if (keep_end) return "…" + join(parts, parts.size() - (width - 1), parts.size());
  return join(parts, 0, width - 1) + "…";
}

std::vector<std::string> render_top(const TopFrame& frame, const TopLayout& layout) {
  constexpr std::size_t kMinNameWidth = 16;
  std::vector<std::string> lines{title_line(frame, layout), memory_line(frame, layout.width)};
  if (frame.sockets) {
    const auto& s = *frame.sockets;
    std::string line = fmt::format("sockets: {} queued in {}", human_bytes(s.queued_bytes), s.queues);
    if (!s.largest.empty()) line += fmt::format("; largest {} in {}", human_bytes(s.largest_bytes), s.largest);
    lines.push_back(std::move(line));
  }
  lines.emplace_back();

  Table caches{"CACHE", false, {}, 0};
  Table cgroups{"CGROUP", true, {}, 0};
  caches.rows = table_rows(
      frame, layout.sort, [](const model::Rates& r) -> const auto& { return r.caches; },
      [](const model::GroupRate& g) { return g.key; });
  cgroups.rows = table_rows(
      frame, layout.sort, [](const model::Rates& r) -> const auto& { return r.cgroups; },
      [&](const model::GroupRate& g) {
        auto it = frame.cgroup_paths.find(g.cgroup_id);
        return it != frame.cgroup_paths.end() ? it->second : g.key;
      });

  std::vector<Table*> tables;
  if (layout.focus != TopFocus::cgroups) tables.push_back(&caches);
  if (layout.focus != TopFocus::caches) tables.push_back(&cgroups);

  // Title, memory, blank, a header per table, a blank between tables, the keys.
  const std::size_t fixed = lines.size() + 2 * tables.size() - 1 + (layout.keys_line ? 1 : 0);
  const std::size_t available = layout.height == 0      ? std::numeric_limits<std::size_t>::max()
                                : layout.height > fixed ? layout.height - fixed
                                                        : 0;
  share_rows(tables, available, layout.max_rows);

  const auto columns = columns_for(layout.width, kMinNameWidth);
  std::size_t columns_width = 0;
  for (const auto& c : columns) columns_width += c.width + 1;
  const std::size_t room = layout.width > columns_width ? layout.width - columns_width : 0;
  // As wide as the longest name shown, so the numbers sit close to the names.
  std::size_t longest = 0;
  for (const auto* t : tables) {
    longest = std::max(longest, display_width(table_title(*t)));
    for (std::size_t i = 0; i < t->rows.size() && i < t->budget; ++i)
      longest = std::max(longest, display_width(t->rows[i].name));
  }
  const std::size_t name_width = std::min(longest, room);

  const std::string empty_note = frame.history.empty()
                                     ? fmt::format("waiting for the first interval ({:g}s)", frame.interval_s)
                                     : std::string("nothing allocated or outstanding");
  for (std::size_t i = 0; i < tables.size(); ++i) {
    if (i > 0) lines.emplace_back();
    write_table(*tables[i], columns, name_width, empty_note, lines);
  }

  if (layout.keys_line) {
    if (layout.height > 0)
      while (lines.size() + 1 < layout.height) lines.emplace_back();
    lines.emplace_back("q quit  o/g/a sort: outstanding/growth/allocs  c caches/cgroups  space refresh");
  }
  for (auto& line : lines) line = fit_text(line, layout.width, false);
  if (layout.height > 0 && lines.size() > layout.height) lines.resize(layout.height);
  return lines;
}

}  // namespace slabtrace::output
