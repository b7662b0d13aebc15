#pragma once
// Plumbing shared by the parsers of line-oriented kernel text files, so that every
// one of them reports errors the same way ("<source> line N: ...") and opens real
// files the same way. Private to src/procfs.
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <istream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "slabtrace/error.hpp"

namespace slabtrace::procfs::detail {

// Reads lines and remembers the line number for error messages. `source` is a short
// name ("slabinfo") for a stream, or the path when the parser reads a real file.
class LineReader {
 public:
  LineReader(std::istream& in, std::string source) : in_(in), source_(std::move(source)) {}

  bool next(std::string& line) {
    if (!std::getline(in_, line)) return false;
    ++line_number_;
    return true;
  }

  // An error about the current line.
  [[noreturn]] void fail(std::string_view what) const {
    throw ParseError(fmt::format("{} line {}: {}", source_, line_number_, what));
  }
  // An error about the input as a whole (empty, nothing usable in it).
  [[noreturn]] void fail_input(std::string_view what) const {
    throw ParseError(fmt::format("{}: {}", source_, what));
  }

  // A whole field as a number of type T; `what` names the field in the error.
  template <typename T>
  T number(std::string_view field, std::string_view what, int base = 10) const {
    T value{};
    const char* end = field.data() + field.size();
    auto [stop, ec] = std::from_chars(field.data(), end, value, base);
    if (ec == std::errc::result_out_of_range) fail(fmt::format("{} '{}' is out of range", what, field));
    if (ec != std::errc{} || stop != end || field.empty()) fail(fmt::format("{} '{}' is not a number", what, field));
    return value;
  }

 private:
  std::istream& in_;
  std::string source_;
  std::size_t line_number_ = 0;
};

// Fields separated by runs of spaces and tabs (slabinfo pads its columns).
inline std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  constexpr std::string_view kBlanks = " \t";
  for (auto start = line.find_first_not_of(kBlanks); start != std::string_view::npos;) {
    auto stop = line.find_first_of(kBlanks, start);
    fields.push_back(line.substr(start, stop - start));
    start = line.find_first_not_of(kBlanks, stop);
  }
  return fields;
}

// Fields separated by exactly one `separator`; keeps empty fields.
inline std::vector<std::string_view> split_exact(std::string_view line, char separator) {
  std::vector<std::string_view> fields;
  for (std::size_t start = 0;;) {
    auto stop = line.find(separator, start);
    fields.push_back(line.substr(start, stop - start));
    if (stop == std::string_view::npos) return fields;
    start = stop + 1;
  }
}

// Parses every non-empty line with `parse_line(line, reader)`, for files whose lines
// all have the same form.
template <typename ParseLine>
auto parse_lines(std::istream& in, const std::string& source, ParseLine&& parse_line) {
  LineReader reader(in, source);
  std::vector<decltype(parse_line(std::string_view{}, reader))> entries;
  std::string line;
  while (reader.next(line)) {
    if (!line.empty()) entries.push_back(parse_line(line, reader));
  }
  return entries;
}

// Opens `path` and hands it to `parse(stream, path)`, so that parse errors name the
// file. A file that cannot be opened is usually the user's to fix (not root).
template <typename Parse>
auto parse_file(const std::string& path, Parse&& parse) {
  std::ifstream in(path);
  if (!in) throw UserError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  return parse(in, path);
}

}  // namespace slabtrace::procfs::detail
