#pragma once
// The fuzzed parsers of outside input, one entry point each. The libFuzzer
// binaries (fuzz_main.cpp, scripts/test-fuzz.sh) and the unit suite
// (tests/unit/test_fuzz_regressions.cpp, on kept crash inputs and seeds) call
// the same bodies. A body may throw ParseError (and UserError where the parser
// documents it): that is the one clear line a user sees. Anything else that
// escapes, and any sanitizer report, is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace slabtrace::fuzz {

struct Target {
  const char* name;
  void (*run)(std::string_view input);
  // Seed files or directories under tests/fixtures.
  std::vector<const char*> seeds;
};

const std::vector<Target>& targets();
const Target* find_target(std::string_view name);
// Runs a target's body the way the fuzzer does: expected errors are caught.
void run_one(const Target& target, std::string_view input);

}  // namespace slabtrace::fuzz
