#pragma once
// Numbers the way a person reads them at 3 a.m.: binary units, grouped digits.
#include <cstdint>
#include <string>

namespace slabtrace {

// "512 B", "12.2 MiB", "617 MiB", "2.09 GiB": three significant digits, binary
// units (the kernel counts in KiB pages, so MiB/GiB match what slabtop shows).
std::string human_bytes(std::uint64_t bytes);

// "1,657,980": counts of objects and pages, without depending on the locale.
std::string group_thousands(std::uint64_t n);

// part as a percentage (0-100) of whole; 0 when whole is 0.
double percent(std::uint64_t part, std::uint64_t whole);

}  // namespace slabtrace
