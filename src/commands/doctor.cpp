#include "slabtrace/commands.hpp"
#include "slabtrace/doctor.hpp"
#include "slabtrace/report_file.hpp"

namespace slabtrace::commands {

int doctor(const DoctorOptions& o) {
  auto inputs = o.root.empty() ? doctor::DoctorInputs{} : doctor::DoctorInputs::under(o.root);
  inputs.swap_window = std::chrono::milliseconds(std::int64_t(o.swap_window_s * 1000));
  auto report = doctor::run_doctor(inputs);
  output::ReportSink out("-");
  if (o.format == "json")
    out.stream() << doctor::doctor_json(report).dump(2) << "\n";
  else
    doctor::write_doctor_text(report, out.stream());
  out.commit();
  return doctor::exit_code(report);
}

}  // namespace slabtrace::commands
