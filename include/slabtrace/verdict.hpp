#pragma once
// The one-line findings at the top of a report.
#include <string>

#include "slabtrace/model.hpp"

namespace slabtrace::model {

std::string cache_growth_line(const Report& report);
std::string skb_leak_line(const Report& report);
std::string drop_line(const Report& report);
std::string top_cgroup_line(const Report& report);
std::string slabinfo_line(const Report& report);
std::string cost_line(const Report& report);
// Fills report.verdicts, most important first.
void add_verdicts(Report& report);

}  // namespace slabtrace::model
