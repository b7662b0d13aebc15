#pragma once
// Kernel symbol table from /proc/kallsyms, for turning stack addresses into names.
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "slabtrace/error.hpp"

namespace slabtrace::symbols {

struct Symbol {
  std::uint64_t addr = 0;
  std::string name;
  std::string module;  // "" for the core kernel, "nf_tables" for "[nf_tables]"
};

struct Resolved {
  bool found = false;
  std::string name;         // "udp_sendmsg", or "0xffffffffc0123456" when not found
  std::uint64_t offset = 0;
  std::string module;
};

class KernelSymbols {
 public:
  KernelSymbols() = default;
  // Any symbols, in any order (tests, or tables from elsewhere); sorts them by address.
  explicit KernelSymbols(std::vector<Symbol> symbols, std::vector<Symbol> variables = {});

  // Keeps text symbols (t/T/w/W) and the variables below; throws ParseError on malformed lines and
  // UserError when every address is zero (kptr_restrict hides them).
  static KernelSymbols parse(std::istream& in);
  static KernelSymbols load(const std::string& path = "/proc/kallsyms");

  // The symbol at or below addr. Not found below the first symbol, or when addr is
  // more than 1 MiB past the symbol (a gap, such as between the kernel and modules).
  Resolved resolve(std::uint64_t addr) const;
  // "udp_sendmsg+0x1a" or "nft_do_chain+0x10 [nf_tables]".
  std::string format(std::uint64_t addr) const;
  std::optional<std::uint64_t> address_of(std::string_view name) const;
  // [start, end) of a function: its address up to the next symbol's.
  std::optional<std::pair<std::uint64_t, std::uint64_t>> function_range(std::string_view name) const;
  std::size_t size() const { return symbols_.size(); }
  // The few kernel variables the BPF side reads (page_offset_base,
  // vmemmap_base); listed only with CONFIG_KALLSYMS_ALL.
  std::optional<std::uint64_t> variable_address(std::string_view name) const;

 private:
  std::vector<Symbol> symbols_;  // sorted by addr
  std::vector<Symbol> variables_;
};

}  // namespace slabtrace::symbols
