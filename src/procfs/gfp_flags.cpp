// gfp flag values as the running kernel defines them, read from a kmem
// tracepoint's print fmt (show_gfp_flags lists every flag with its value):
// the bits moved between kernels (___GFP_ATOMIC's removal in 6.4 shifted the
// ones above it; 6.10 made them an enum), so no value is assumed.
#include <cctype>
#include <fstream>
#include <sstream>

#include "slabtrace/procfs.hpp"

namespace slabtrace::procfs {

namespace {

// The number that ends `text` (decimal, or hex with an optional u suffix),
// skipping closing parentheses and spaces; nullopt when there is none.
std::optional<std::uint64_t> trailing_number(std::string_view text, std::size_t end) {
  while (end > 0 && (text[end - 1] == ')' || text[end - 1] == ' ')) --end;
  if (end > 0 && (text[end - 1] == 'u' || text[end - 1] == 'U')) --end;
  std::size_t start = end;
  while (start > 0 && std::isxdigit(static_cast<unsigned char>(text[start - 1]))) --start;
  if (start == end) return std::nullopt;
  bool hex = start >= 2 && (text[start - 1] == 'x' || text[start - 1] == 'X') && text[start - 2] == '0';
  std::string digits(text.substr(start, end - start));
  if (!hex && digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  if (digits.size() > 16) return std::nullopt;
  return std::stoull(digits, nullptr, hex ? 16 : 10);
}

}  // namespace

std::optional<std::uint64_t> gfp_flag_from_format(std::string_view format, std::string_view flag) {
  // Each entry reads {(unsigned long)VALUE, "NAME"}; VALUE is "(( gfp_t)0x400000u)"
  // (a plain mask) or "(( gfp_t)((((1UL))) << (22)))" (a bit, 6.10+).
  std::string quoted = "\"" + std::string(flag) + "\"";
  std::size_t at = format.find(quoted);
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t comma = format.rfind(',', at);
  std::size_t open = format.rfind('{', at);
  if (comma == std::string_view::npos || open == std::string_view::npos || comma < open) return std::nullopt;
  std::string_view value = format.substr(open + 1, comma - open - 1);
  auto number = trailing_number(value, value.size());
  if (!number) return std::nullopt;
  std::size_t shift = value.rfind("<<");
  if (shift == std::string_view::npos) return number;
  if (*number >= 64) return std::nullopt;
  return std::uint64_t(1) << *number;
}

std::optional<std::uint64_t> read_gfp_flag(std::string_view flag) {
  for (const char* path : {"/sys/kernel/tracing/events/kmem/kmalloc/format",
                           "/sys/kernel/debug/tracing/events/kmem/kmalloc/format"}) {
    std::ifstream in(path);
    if (!in) continue;
    std::stringstream text;
    text << in.rdbuf();
    return gfp_flag_from_format(text.str(), flag);
  }
  return std::nullopt;
}

}  // namespace slabtrace::procfs
