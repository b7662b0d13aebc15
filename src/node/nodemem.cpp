// Node-wide memory files. The line plumbing (errors as "<source> line N: ...",
// whole-field numbers, opening real files) is the one the /proc parsers share.
#include "slabtrace/nodemem.hpp"

#include <cmath>

#include "../procfs/text_parsing.hpp"

namespace slabtrace::node {
namespace {

using procfs::detail::LineReader;
using procfs::detail::parse_file;
using procfs::detail::split_fields;

// LineReader::number is for integers; PSI shares and load averages are
// decimals, never negative, and from_chars would also take "nan" and "inf"
// (found by tests/fuzz: a load average of -28 was accepted).
double decimal(const LineReader& reader, std::string_view field, std::string_view what) {
  double value = 0;
  const char* end = field.data() + field.size();
  const auto [stop, ec] = std::from_chars(field.data(), end, value);
  if (ec != std::errc{} || stop != end || field.empty())
    reader.fail(fmt::format("{} '{}' is not a number", what, field));
  if (!std::isfinite(value) || value < 0) reader.fail(fmt::format("{} '{}' is not a share or load (>= 0)", what, field));
  return value;
}

// Files of a single line (loadavg, a CPU list): its fields, exactly `count` of
// them. `line` keeps the text the fields point into.
std::vector<std::string_view> single_line(LineReader& reader, std::string& line, std::size_t count,
                                          std::string_view expected) {
  if (!reader.next(line)) reader.fail_input("empty input");
  auto fields = split_fields(line);
  if (fields.size() != count) reader.fail(fmt::format("expected '{}'", expected));
  return fields;
}

bool blank(std::string_view line) { return line.find_first_not_of(" \t") == std::string_view::npos; }

PressureLine parse_pressure_line(const std::vector<std::string_view>& fields, const LineReader& reader) {
  PressureLine line;
  bool seen_avg10 = false, seen_avg60 = false, seen_avg300 = false, seen_total = false;
  for (std::size_t i = 1; i < fields.size(); ++i) {
    const auto eq = fields[i].find('=');
    if (eq == std::string_view::npos) reader.fail(fmt::format("expected key=value, got '{}'", fields[i]));
    const auto key = fields[i].substr(0, eq);
    const auto value = fields[i].substr(eq + 1);
    if (key == "avg10") {
      line.avg10 = decimal(reader, value, key);
      seen_avg10 = true;
    } else if (key == "avg60") {
      line.avg60 = decimal(reader, value, key);
      seen_avg60 = true;
    } else if (key == "avg300") {
      line.avg300 = decimal(reader, value, key);
      seen_avg300 = true;
    } else if (key == "total") {
      line.total_us = reader.number<std::uint64_t>(value, key);
      seen_total = true;
    }
    // Other keys are left alone: a later kernel may add some.
  }
  if (!(seen_avg10 && seen_avg60 && seen_avg300 && seen_total))
    reader.fail("expected avg10=, avg60=, avg300= and total=");
  return line;
}

}  // namespace

Meminfo parse_meminfo(std::istream& in, std::string_view source) {
  LineReader reader(in, std::string(source));
  Meminfo meminfo;
  std::string line;
  while (reader.next(line)) {
    if (blank(line)) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) reader.fail("expected 'Name: value [kB]'");
    const std::string name = line.substr(0, colon);
    const auto fields = split_fields(std::string_view(line).substr(colon + 1));
    if (fields.empty() || fields.size() > 2) reader.fail(fmt::format("expected '{}: value [kB]'", name));
    const auto value = reader.number<std::uint64_t>(fields[0], name);
    if (fields.size() == 1)
      meminfo[name] = value;  // a count, e.g. HugePages_Total
    else if (fields[1] == "kB")
      meminfo[name] = value * 1024;  // the kernel's "kB" is KiB
    else
      reader.fail(fmt::format("unknown unit '{}'", fields[1]));
  }
  if (meminfo.empty()) reader.fail_input("empty input");
  return meminfo;
}

Meminfo read_meminfo(const std::string& path) { return parse_file(path, parse_meminfo); }

std::uint64_t field_or_zero(const Meminfo& meminfo, std::string_view name) {
  const auto it = meminfo.find(name);
  return it == meminfo.end() ? 0 : it->second;
}

Pressure parse_pressure(std::istream& in, std::string_view source) {
  LineReader reader(in, std::string(source));
  Pressure pressure;
  bool seen_some = false, seen_full = false;
  std::string line;
  while (reader.next(line)) {
    const auto fields = split_fields(line);
    if (fields.empty()) continue;
    if (fields[0] == "some") {
      pressure.some = parse_pressure_line(fields, reader);
      seen_some = true;
    } else if (fields[0] == "full") {
      pressure.full = parse_pressure_line(fields, reader);
      seen_full = true;
    } else {
      reader.fail(fmt::format("expected 'some' or 'full', got '{}'", fields[0]));
    }
  }
  if (!seen_some || !seen_full) reader.fail_input("expected a 'some' and a 'full' line");
  return pressure;
}

Pressure read_pressure(const std::string& path) { return parse_file(path, parse_pressure); }

Vmstat parse_vmstat(std::istream& in, std::string_view source) {
  LineReader reader(in, std::string(source));
  Vmstat vmstat;
  std::string line;
  while (reader.next(line)) {
    const auto fields = split_fields(line);
    if (fields.empty()) continue;
    if (fields.size() != 2) reader.fail("expected 'name count'");
    vmstat[std::string(fields[0])] = reader.number<std::uint64_t>(fields[1], fields[0]);
  }
  if (vmstat.empty()) reader.fail_input("empty input");
  return vmstat;
}

Vmstat read_vmstat(const std::string& path) { return parse_file(path, parse_vmstat); }

SwapCounters swap_counters(const Vmstat& vmstat) {
  SwapCounters counters;
  if (const auto in = vmstat.find("pswpin"); in != vmstat.end()) counters.pages_in = in->second;
  if (const auto out = vmstat.find("pswpout"); out != vmstat.end()) counters.pages_out = out->second;
  return counters;
}

LoadAverage parse_loadavg(std::istream& in, std::string_view source) {
  LineReader reader(in, std::string(source));
  std::string line;
  const auto fields = single_line(reader, line, 5, "avg1 avg5 avg15 runnable/tasks last_pid");
  LoadAverage load;
  load.avg1 = decimal(reader, fields[0], "1-minute load");
  load.avg5 = decimal(reader, fields[1], "5-minute load");
  load.avg15 = decimal(reader, fields[2], "15-minute load");
  const auto slash = fields[3].find('/');
  if (slash == std::string_view::npos) reader.fail(fmt::format("expected runnable/tasks, got '{}'", fields[3]));
  load.runnable = reader.number<std::uint32_t>(fields[3].substr(0, slash), "runnable");
  load.tasks = reader.number<std::uint32_t>(fields[3].substr(slash + 1), "tasks");
  load.last_pid = reader.number<std::uint64_t>(fields[4], "last pid");
  return load;
}

LoadAverage read_loadavg(const std::string& path) { return parse_file(path, parse_loadavg); }

unsigned parse_cpu_count(std::istream& in, std::string_view source) {
  LineReader reader(in, std::string(source));
  std::string line;
  const auto fields = single_line(reader, line, 1, "a CPU list such as 0-3,6");
  unsigned count = 0;
  for (const auto range : procfs::detail::split_exact(fields[0], ',')) {
    const auto dash = range.find('-');
    const auto first = reader.number<unsigned>(range.substr(0, dash), "CPU");
    const auto last = dash == std::string_view::npos ? first : reader.number<unsigned>(range.substr(dash + 1), "CPU");
    if (last < first) reader.fail(fmt::format("CPU range '{}' runs backwards", range));
    count += last - first + 1;
  }
  return count;
}

unsigned read_cpu_count(const std::string& path) { return parse_file(path, parse_cpu_count); }

}  // namespace slabtrace::node
