// `slabtrace doctor` output: text for a person at 3 a.m., JSON for scripts.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "slabtrace/doctor.hpp"
#include "slabtrace/human.hpp"
#include "slabtrace/model.hpp"
#include "slabtrace/output.hpp"

namespace slabtrace::doctor {
namespace {

std::string upper(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::toupper(c); });
  return text;
}

// "  <- CRITICAL" after the figure a red flag was raised on, so the sections
// show where each flag comes from.
std::string marker(const DoctorReport& report, std::string_view check) {
  for (const auto& flag : report.flags)
    if (flag.check == check) return "  <- " + upper(to_string(flag.severity));
  return "";
}

// Figures are long sentences; wrap them at word boundaries so an 80-column
// terminal (a console, a phone over ssh) shows them indented, not smeared.
void write_wrapped(std::ostream& out, std::string_view text, std::size_t indent, std::size_t width = 80) {
  std::size_t column = 0;
  while (!text.empty()) {
    const auto space = text.find(' ');
    const auto word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (column > indent && column + 1 + word.size() > width) {
      out << "\n";
      column = 0;
    }
    if (column == 0) {
      out << std::string(indent, ' ');
      column = indent;
    } else {
      out << ' ';
      ++column;
    }
    out << word;
    column += word.size();
  }
  out << "\n";
}

void write_verdict(const DoctorReport& report, std::ostream& out) {
  if (report.flags.empty()) {
    out << "HEALTHY: no red flags in memory pressure, meminfo, slab caches, swap or load";
    if (!report.skipped.empty()) out << fmt::format(" ({} checks skipped, see the end)", report.skipped.size());
    out << "\n";
    return;
  }
  const auto& worst = report.flags.front();
  out << upper(to_string(report.verdict)) << ": " << worst.title;
  if (report.flags.size() > 1)
    out << fmt::format(" (and {} more red flag{})", report.flags.size() - 1, report.flags.size() > 2 ? "s" : "");
  out << "\n" << fmt::format("{:10}next: {}\n", "", worst.next);
}

void write_flags(const DoctorReport& report, std::ostream& out) {
  if (report.flags.empty()) return;
  out << "\nRed flags\n";
  for (const auto& flag : report.flags) {
    const bool critical = flag.severity == Severity::critical;
    out << fmt::format("  {:2} {:9} {}\n", critical ? "!!" : "!", upper(to_string(flag.severity)), flag.title);
    write_wrapped(out, flag.figure, 15);
    out << fmt::format("{:15}next: {}\n", "", flag.next);
  }
}

void write_pressure(const DoctorReport& report, std::ostream& out) {
  if (!report.memory_pressure) return;
  const auto& psi = *report.memory_pressure;
  out << "\nMemory pressure (/proc/pressure/memory: % of time tasks stalled on memory)\n";
  const auto line = [&](const char* kind, const node::PressureLine& p, std::string_view mark) {
    out << fmt::format("  {:5} avg10 {:6.2f}%   avg60 {:6.2f}%   avg300 {:6.2f}%{}\n", kind, p.avg10, p.avg60, p.avg300,
                       mark);
  };
  line("some", psi.some, marker(report, "memory_pressure_some"));
  line("full", psi.full, marker(report, "memory_pressure_full"));
}

void write_memory(const DoctorReport& report, std::ostream& out) {
  const auto& m = report.memory;
  out << fmt::format("\nMemory (/proc/meminfo; % of MemTotal {})\n", human_bytes(m.total));
  const auto row = [&](std::string_view what, std::uint64_t bytes, std::string_view mark = "") {
    out << fmt::format("  {:33} {:>10} {:6.1f}%{}\n", what, human_bytes(bytes), percent(bytes, m.total), mark);
  };
  row("applications (AnonPages)", m.anon);
  row("page cache (Buffers+Cached)", m.page_cache);
  row("slab, reclaimable (SReclaimable)", m.sreclaimable);
  row("slab, unreclaimable (SUnreclaim)", m.sunreclaim, marker(report, "sunreclaim"));
  row("kernel stacks (KernelStack)", m.kernel_stack);
  row("page tables (PageTables)", m.page_tables);
  row("free (MemFree)", m.free);
  row("available (MemAvailable)", m.available, marker(report, "mem_available"));
  if (m.swap_total == 0) {
    out << fmt::format("  {:33} {:>10}\n", "swap", "none");
  } else {
    out << fmt::format("  {:33} {:>10} {:6.1f}% of {} swap{}\n", "swap used (SwapTotal-SwapFree)",
                       human_bytes(m.swap_used()), percent(m.swap_used(), m.swap_total), human_bytes(m.swap_total),
                       marker(report, "swap_used"));
  }
  out << fmt::format("  {:33} {:>10} {:6.1f}% of CommitLimit {}{}\n", "promised (Committed_AS)",
                     human_bytes(m.committed_as), percent(m.committed_as, m.commit_limit), human_bytes(m.commit_limit),
                     marker(report, "overcommit"));
}

// Who holds queued sk_buffs now, from the socket census.
void write_sockets(const DoctorReport& report, std::ostream& out) {
  if (!report.sockets) return;
  const auto& c = *report.sockets;
  out << fmt::format("\nSocket queues (sock_diag, {} sockets in {} network namespace{}): {} queued in {} sockets{}\n",
                     group_thousands(c.sockets_seen), c.namespaces, c.namespaces == 1 ? "" : "s", human_bytes(c.queued_bytes),
                     group_thousands(report.sockets_queued), marker(report, "socket_queues"));
  for (const auto& s : c.sockets) {
    out << fmt::format("  {:>10}  {}", human_bytes(s.queued_bytes()), census::describe(census::label_of(s), c.home_netns));
    if (s.queued_skbs) out << fmt::format(", {}{} skbs", s.queued_skbs_estimated ? "~" : "", group_thousands(*s.queued_skbs));
    out << "\n";
    out << output::open_in_line(s.owners, 14);
  }
}

void write_slab(const DoctorReport& report, std::ostream& out) {
  if (report.top_caches.empty()) return;
  out << "\nLargest slab caches (/proc/slabinfo, by memory)\n";
  out << fmt::format("  {:22} {:>11} {:>8} {:>10}\n", "cache", "objects", "size", "memory");
  for (const auto& cache : report.top_caches) {
    std::string note;
    if (report.skb && report.skb->leak_signature) {
      if (cache.name == "skbuff_head_cache") note = "  <- sk_buff heads";
      if (cache.name == report.skb->data_cache) note = "  <- sk_buff data";
    }
    out << fmt::format("  {:22} {:>11} {:>6} B {:>10}{}\n", cache.name, group_thousands(cache.active_objects),
                       cache.object_size, human_bytes(cache.bytes), note);
  }
  if (report.skb && !report.skb->leak_signature)
    out << fmt::format("  sk_buff heads : data buffers = {} : {} {} (no leak signature)\n",
                       group_thousands(report.skb->heads), group_thousands(report.skb->data_buffers),
                       report.skb->data_cache);
}

void write_swap(const DoctorReport& report, std::ostream& out) {
  const auto& swap = report.swap;
  out << "\nSwap activity (/proc/vmstat pswpin, pswpout)\n";
  if (swap.measured())
    out << fmt::format("  now: {:.0f} pages/s in, {:.0f} pages/s out (over {:.1f} s){}\n", swap.pages_in_per_s(),
                       swap.pages_out_per_s(), swap.window_s, marker(report, "swap_activity"));
  else
    out << "  now: not measured (swap window 0 s)\n";
  out << fmt::format("  since boot: {} pages in, {} pages out\n", group_thousands(swap.since_boot.pages_in),
                     group_thousands(swap.since_boot.pages_out));
}

void write_load(const DoctorReport& report, std::ostream& out) {
  const auto& load = report.load;
  out << "\nLoad (/proc/loadavg; counts tasks waiting on the disk too)\n";
  out << fmt::format("  {:.2f} {:.2f} {:.2f} on {} CPU{} = {:.1f} per CPU{}\n", load.avg1, load.avg5, load.avg15,
                     report.cpus, report.cpus == 1 ? "" : "s", load.avg1 / report.cpus, marker(report, "load"));
}

nlohmann::json pressure_json(const node::PressureLine& line) {
  return {{"avg10", line.avg10}, {"avg60", line.avg60}, {"avg300", line.avg300}, {"total_us", line.total_us}};
}

}  // namespace

void write_doctor_text(const DoctorReport& report, std::ostream& out) {
  write_verdict(report, out);
  write_flags(report, out);
  write_pressure(report, out);
  write_memory(report, out);
  write_slab(report, out);
  write_sockets(report, out);
  write_swap(report, out);
  write_load(report, out);
  if (!report.skipped.empty()) {
    out << "\nSkipped\n";
    for (const auto& why : report.skipped) out << "  " << why << "\n";
  }
}

nlohmann::json doctor_json(const DoctorReport& report) {
  using nlohmann::json;
  json flags = json::array();
  for (const auto& flag : report.flags)
    flags.push_back({{"check", flag.check},
                     {"severity", to_string(flag.severity)},
                     {"title", flag.title},
                     {"figure", flag.figure},
                     {"next", flag.next}});

  const auto& m = report.memory;
  json memory = {{"total_bytes", m.total},
                 {"free_bytes", m.free},
                 {"available_bytes", m.available},
                 {"anon_bytes", m.anon},
                 {"page_cache_bytes", m.page_cache},
                 {"sreclaimable_bytes", m.sreclaimable},
                 {"sunreclaim_bytes", m.sunreclaim},
                 {"kernel_stack_bytes", m.kernel_stack},
                 {"page_tables_bytes", m.page_tables},
                 {"swap_total_bytes", m.swap_total},
                 {"swap_used_bytes", m.swap_used()},
                 {"committed_as_bytes", m.committed_as},
                 {"commit_limit_bytes", m.commit_limit}};

  json pressure = nullptr;
  if (report.memory_pressure)
    pressure = {{"some", pressure_json(report.memory_pressure->some)},
                {"full", pressure_json(report.memory_pressure->full)}};

  json caches = json::array();
  for (const auto& cache : report.top_caches)
    caches.push_back({{"name", cache.name},
                      {"active_objects", cache.active_objects},
                      {"object_size", cache.object_size},
                      {"bytes", cache.bytes}});
  json skb = nullptr;
  if (report.skb)
    skb = {{"heads", report.skb->heads},
           {"data_cache", report.skb->data_cache},
           {"data_buffers", report.skb->data_buffers},
           {"bytes", report.skb->bytes},
           {"leak_signature", report.skb->leak_signature}};

  // The same holder objects as skb.holders[] in record's report.
  json sockets = nullptr;
  if (report.sockets) {
    json holders = json::array();
    for (const auto& s : report.sockets->sockets) holders.push_back(output::holder_json(model::holder_from(s)));
    sockets = {{"sockets_seen", report.sockets->sockets_seen},
               {"sockets_queued", report.sockets_queued},
               {"namespaces", report.sockets->namespaces},
               {"queued_bytes", report.sockets->queued_bytes},
               {"warnings", report.sockets->warnings},
               {"holders", holders}};
  }

  const auto& swap = report.swap;
  json swap_activity = {{"window_s", swap.window_s},
                        {"pages_in_per_s", swap.measured() ? json(swap.pages_in_per_s()) : json(nullptr)},
                        {"pages_out_per_s", swap.measured() ? json(swap.pages_out_per_s()) : json(nullptr)},
                        {"pages_in_since_boot", swap.since_boot.pages_in},
                        {"pages_out_since_boot", swap.since_boot.pages_out}};

  const auto& load = report.load;
  json load_json = {{"avg1", load.avg1},
                    {"avg5", load.avg5},
                    {"avg15", load.avg15},
                    {"cpus", report.cpus},
                    {"per_cpu", load.avg1 / report.cpus}};

  return {{"schema", "slabtrace.doctor/v1"},
          {"verdict", to_string(report.verdict)},
          {"exit_code", exit_code(report)},
          {"flags", flags},
          {"memory_pressure", pressure},
          {"memory", memory},
          {"slab", {{"top_caches", caches}, {"skb", skb}}},
          {"sockets", sockets},
          {"swap_activity", swap_activity},
          {"load", load_json},
          {"skipped", report.skipped}};
}

}  // namespace slabtrace::doctor
