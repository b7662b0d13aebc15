// /proc/kallsyms: "ffffffff81e3f6a0 T __alloc_skb", and for modules
// "ffffffffc0a41000 t nft_do_chain\t[nf_tables]".
#include <algorithm>

#include "slabtrace/symbols.hpp"
#include "text_parsing.hpp"

namespace slabtrace::symbols {
namespace {

using procfs::detail::LineReader;

// No kernel function is this long; an address further past the symbol below it is
// in a gap (between the kernel image and the modules, or after the last module).
constexpr std::uint64_t kMaxFunctionSize = 1 << 20;

// Text (code) symbols, global or local, strong or weak: what stack addresses land in.
bool is_text(char type) { return type == 't' || type == 'T' || type == 'w' || type == 'W'; }

std::string module_name(std::string_view field, const LineReader& reader) {
  if (field.size() < 2 || field.front() != '[' || field.back() != ']') {
    reader.fail(fmt::format("expected '[module]', got '{}'", field));
  }
  return std::string(field.substr(1, field.size() - 2));
}

// Kernel variables the BPF side reads (core_fixes.bpf.h object_cache): listed
// only where the kernel has CONFIG_KALLSYMS_ALL.
bool is_wanted_variable(std::string_view name) { return name == "page_offset_base" || name == "vmemmap_base"; }

struct Parsed {
  std::vector<Symbol> text;
  std::vector<Symbol> variables;
};

Parsed parse_symbols(std::istream& in, const std::string& source) {
  LineReader reader(in, source);
  Parsed parsed;
  std::vector<Symbol>& text = parsed.text;
  bool any_line = false;
  bool any_address = false;
  std::string line;
  while (reader.next(line)) {
    auto fields = procfs::detail::split_fields(line);
    if (fields.empty()) continue;
    if (fields.size() < 3 || fields.size() > 4 || fields[1].size() != 1) {
      reader.fail("expected 'address type name [module]'");
    }
    auto addr = reader.number<std::uint64_t>(fields[0], "address", 16);
    any_line = true;
    any_address = any_address || addr != 0;
    if (!is_text(fields[1][0])) {
      if (fields.size() == 3 && is_wanted_variable(fields[2])) parsed.variables.push_back({addr, std::string(fields[2]), ""});
      continue;
    }
    text.push_back({addr, std::string(fields[2]), fields.size() == 4 ? module_name(fields[3], reader) : ""});
  }
  // Unprivileged readers get every address as zero (kernel.kptr_restrict).
  if (any_line && !any_address) throw UserError("kernel symbol addresses are hidden (kptr_restrict); run as root");
  if (text.empty()) reader.fail_input("no text symbols");
  return parsed;
}

bool addr_less(const Symbol& a, const Symbol& b) { return a.addr < b.addr; }

}  // namespace

KernelSymbols::KernelSymbols(std::vector<Symbol> symbols, std::vector<Symbol> variables)
    : symbols_(std::move(symbols)), variables_(std::move(variables)) {
  // Stable, so that of the names sharing an address the first listed comes first.
  std::stable_sort(symbols_.begin(), symbols_.end(), addr_less);
}

KernelSymbols KernelSymbols::parse(std::istream& in) {
  Parsed p = parse_symbols(in, "kallsyms");
  return KernelSymbols(std::move(p.text), std::move(p.variables));
}

KernelSymbols KernelSymbols::load(const std::string& path) {
  return procfs::detail::parse_file(
      path, [](std::istream& in, const std::string& source) {
        Parsed p = parse_symbols(in, source);
        return KernelSymbols(std::move(p.text), std::move(p.variables));
      });
}

std::optional<std::uint64_t> KernelSymbols::variable_address(std::string_view name) const {
  for (const auto& v : variables_)
    if (v.name == name) return v.addr;
  return std::nullopt;
}

Resolved KernelSymbols::resolve(std::uint64_t addr) const {
  Resolved resolved;
  resolved.name = fmt::format("{:#x}", addr);
  auto above = std::upper_bound(symbols_.begin(), symbols_.end(), Symbol{addr, {}, {}}, addr_less);
  if (above == symbols_.begin()) return resolved;
  auto symbol_addr = std::prev(above)->addr;
  if (addr - symbol_addr > kMaxFunctionSize) return resolved;
  // Aliases share an address (_stext, _text); report the first one listed.
  const Symbol& symbol = *std::lower_bound(symbols_.begin(), above, Symbol{symbol_addr, {}, {}}, addr_less);
  resolved.found = true;
  resolved.name = symbol.name;
  resolved.offset = addr - symbol_addr;
  resolved.module = symbol.module;
  return resolved;
}

std::string KernelSymbols::format(std::uint64_t addr) const {
  auto resolved = resolve(addr);
  if (!resolved.found) return resolved.name;
  auto text = fmt::format("{}+{:#x}", resolved.name, resolved.offset);
  if (!resolved.module.empty()) text += fmt::format(" [{}]", resolved.module);
  return text;
}

std::optional<std::uint64_t> KernelSymbols::address_of(std::string_view name) const {
  // A linear scan: names are looked up a few times at attach time, not per event.
  auto it = std::find_if(symbols_.begin(), symbols_.end(), [&](const Symbol& s) { return s.name == name; });
  if (it == symbols_.end()) return std::nullopt;
  return it->addr;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> KernelSymbols::function_range(std::string_view name) const {
  auto start = address_of(name);
  if (!start) return std::nullopt;
  auto next = std::upper_bound(symbols_.begin(), symbols_.end(), Symbol{*start, {}, {}}, addr_less);
  // The last symbol has nothing after it to say where it ends.
  if (next == symbols_.end()) return std::nullopt;
  return std::pair(*start, next->addr);
}

}  // namespace slabtrace::symbols
