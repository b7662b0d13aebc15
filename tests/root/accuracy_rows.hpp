#pragma once
// The accuracy table (scripts/accuracy.sh) is made from these tests' own runs:
// with SLABTRACE_ACCURACY_ROWS=FILE set, each accuracy test appends one JSON
// line per cache it judges — its figures and the target its CHECKs hold them
// to. Whether the target was met is whether the test case passed, which the
// harness reads from Catch2's own report, so no condition is written twice.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace roottest {

inline void accuracy_row(const std::string& workload, const std::string& cache, std::uint64_t outstanding,
                         std::uint64_t allocs, std::int64_t slab_delta, const std::string& target,
                         const std::string& note = "") {
  const char* file = std::getenv("SLABTRACE_ACCURACY_ROWS");
  if (!file || !*file) return;
  nlohmann::json row = {{"workload", workload},       {"cache", cache},   {"outstanding", outstanding},
                        {"allocs", allocs},           {"slab_delta", slab_delta}, {"target", target}};
  if (!note.empty()) row["note"] = note;
  std::ofstream(file, std::ios::app) << row.dump() << "\n";
}

}  // namespace roottest
