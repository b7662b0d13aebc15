#pragma once
// Names the kernel gives its enums, read from its BTF (so drop reasons are
// named as on this kernel, not as on the one slabtrace was built on).
#include <cstdint>
#include <string>
#include <unordered_map>

namespace slabtrace::btf {

// enumerator value -> name without `strip_prefix`; empty when the kernel has no BTF
// or no such enum.
std::unordered_map<std::uint32_t, std::string> enum_names(const std::string& enum_name,
                                                          const std::string& strip_prefix);

}  // namespace slabtrace::btf
