#pragma once
// slabtrace against /proc/slabinfo, per cache: how far to trust the numbers.
#include <cstdint>
#include <string>
#include <vector>

#include "slabtrace/model.hpp"

namespace slabtrace::model {

enum class Agreement { Agrees, UnderCounts, OverCounts, NotTraced };

struct CheckRow {
  std::string cache;          // slabinfo name
  std::vector<std::string> traced_as;  // slabtrace cache names counted into it
  std::int64_t slabinfo_delta = 0;
  std::uint64_t outstanding = 0;
  std::uint64_t allocs = 0;
  double ratio = 0;           // outstanding / slabinfo delta
  Agreement agreement = Agreement::Agrees;
  std::string reason;         // the likely cause of a disagreement
};

// Rows for caches whose slabinfo active count changed by at least min_delta
// (either way), largest change first. Tolerance: 10% or 500 objects.
std::vector<CheckRow> cross_check(const Report& report, std::int64_t min_delta);
const char* to_string(Agreement a);

}  // namespace slabtrace::model
