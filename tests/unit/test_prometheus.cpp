#include <stdio.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <set>
#include <sstream>

#include "slabtrace/prometheus.hpp"
#include "temp_dir.hpp"

using namespace slabtrace;
using prometheus::CacheFigures;
using prometheus::CgroupFigures;

namespace {

CgroupFigures cgroup(const std::string& path, std::uint64_t skb_heads) {
  CgroupFigures g;
  g.labels.cgroup = path;
  g.by_cache["skbuff_head_cache"] = CacheFigures{skb_heads, skb_heads * 256, double(skb_heads) / 10, skb_heads * 3, skb_heads * 2};
  g.by_cache["kmalloc-1k"] = CacheFigures{skb_heads, skb_heads * 1024, 0, skb_heads, 0};
  return g;
}

// A node as serve would see it: a leaking pod, quieter cgroups, one holder.
prometheus::Metrics sample_node() {
  prometheus::Metrics m;
  CgroupFigures leaky = cgroup(
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podb47edbfb_5e13_4dc1_8dcb_cfe89e625385.slice/"
      "cri-containerd-954b15f0cf5bd23b9f0e84753f4bfe4855bf04d3ca82ee73ac929931ca24e39d.scope",
      50000);
  leaky.labels.container_id = "954b15f0cf5bd23b9f0e84753f4bfe4855bf04d3ca82ee73ac929931ca24e39d";
  leaky.labels.pod_uid = "b47edbfb-5e13-4dc1-8dcb-cfe89e625385";
  leaky.labels.pod_namespace = "payments";
  leaky.labels.pod = "udp-sink-7f9c6b5d4-q2x8m";
  leaky.labels.container = "sink";
  m.cgroups.push_back(leaky);
  m.cgroups.push_back(cgroup("/system.slice/containerd.service", 300));
  m.cgroups.push_back(cgroup("/", 120));
  m.cgroups.push_back(cgroup("[softirq]", 40));
  // A name no one would choose, but cgroup names are free-form.
  m.cgroups.push_back(cgroup("/user.slice/we\"ird\\name\nhere", 7));

  prometheus::SkbHolderFigures h;
  h.socket_inode = 18884;
  h.netns = 4026531840;
  h.protocol = "udp";
  h.pid = 4242;
  h.comm = "udp-sink";
  h.owner = leaky.labels;
  h.queued_objects = 50000;
  h.queued_bytes = 64000000;
  m.skb_holders.push_back(h);

  m.health.version = "0.1.0";
  m.health.kernel = "6.18.44";
  m.health.attach_mode = "tp_btf";
  m.health.lost = {{"map_full", 0}, {"stack_errors", 3}};
  m.health.live_map_entries = 100000;
  m.health.live_map_capacity = 1 << 21;
  m.health.programs = {{"st_btf_cache_alloc", 1000, 52000}, {"st_btf_never_ran", 0, 0}};
  m.node_memory = {{"MemTotal", 8ull << 30}, {"SUnreclaim", 2ull << 30}, {"Hugepagesize", 2 << 20}};
  return m;
}

std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  return out;
}

bool contains_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("label values escape backslash, double quote and newline", "[unit][prometheus]") {
  CHECK(prometheus::escape_label_value("plain /kubepods.slice") == "plain /kubepods.slice");
  CHECK(prometheus::escape_label_value("a\\b") == "a\\\\b");
  CHECK(prometheus::escape_label_value("say \"hi\"") == "say \\\"hi\\\"");
  CHECK(prometheus::escape_label_value("two\nlines") == "two\\nlines");
  CHECK(prometheus::escape_label_value("tab\tstays") == "tab\tstays");
  // HELP text escapes backslash and newline only.
  CHECK(prometheus::escape_help("a \"quoted\" \\ and\nmore") == "a \"quoted\" \\\\ and\\nmore");
}

TEST_CASE("only the top cgroups by outstanding bytes keep their own series", "[unit][prometheus]") {
  auto m = sample_node();
  auto kept = prometheus::keep_top_cgroups(m.cgroups, 2);
  REQUIRE(kept.size() == 3);
  CHECK(kept[0].labels.pod == "udp-sink-7f9c6b5d4-q2x8m");
  CHECK(kept[1].labels.cgroup == "/system.slice/containerd.service");
  const CgroupFigures& other = kept[2];
  CHECK(other.labels.cgroup == "other");
  CHECK(other.labels.pod.empty());
  // "/", "[softirq]" and the odd one, summed per cache.
  const CacheFigures& skb = other.by_cache.at("skbuff_head_cache");
  CHECK(skb.outstanding_objects == 120 + 40 + 7);
  CHECK(skb.outstanding_bytes == (120 + 40 + 7) * 256);
  CHECK(skb.allocations == (120 + 40 + 7) * 3);
  CHECK(skb.frees == (120 + 40 + 7) * 2);
  CHECK(skb.growth_objects_per_s == Approx((120 + 40 + 7) / 10.0));
  CHECK(other.by_cache.at("kmalloc-1k").outstanding_bytes == (120 + 40 + 7) * 1024);

  SECTION("no \"other\" when everything fits") {
    auto all = prometheus::keep_top_cgroups(m.cgroups, 5);
    CHECK(all.size() == 5);
    for (const auto& g : all) CHECK(g.labels.cgroup != "other");
  }
  SECTION("ties are ordered by name, so the output is stable") {
    auto same = prometheus::keep_top_cgroups({cgroup("/b", 1), cgroup("/a", 1)}, 1);
    CHECK(same[0].labels.cgroup == "/a");
  }
}

TEST_CASE("the exposition has one HELP and TYPE per family and labels a person recognises", "[unit][prometheus]") {
  auto m = sample_node();
  prometheus::Limits limits;
  limits.top_cgroups = 3;
  std::string text = prometheus::render(m, limits);

  auto types = lines_starting(text, "# TYPE ");
  auto helps = lines_starting(text, "# HELP ");
  CHECK(types.size() == helps.size());
  std::set<std::string> families;
  for (const auto& t : types) {
    std::istringstream in(t);
    std::string hash, type_word, name, type;
    in >> hash >> type_word >> name >> type;
    CHECK(families.insert(name).second);  // each family once
    bool counter = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    CHECK(counter == (type == "counter"));
  }

  CHECK(contains_line(text,
                      "slabtrace_outstanding_objects{cache=\"skbuff_head_cache\",cgroup=\"/kubepods.slice/"
                      "kubepods-burstable.slice/kubepods-burstable-podb47edbfb_5e13_4dc1_8dcb_cfe89e625385.slice/"
                      "cri-containerd-954b15f0cf5bd23b9f0e84753f4bfe4855bf04d3ca82ee73ac929931ca24e39d.scope\","
                      "container_id=\"954b15f0cf5bd23b9f0e84753f4bfe4855bf04d3ca82ee73ac929931ca24e39d\","
                      "pod_uid=\"b47edbfb-5e13-4dc1-8dcb-cfe89e625385\",namespace=\"payments\","
                      "pod=\"udp-sink-7f9c6b5d4-q2x8m\",container=\"sink\"} 50000"));
  // Cgroups that are no pod's carry no empty pod labels.
  CHECK(contains_line(text, "slabtrace_outstanding_bytes{cache=\"kmalloc-1k\",cgroup=\"/\"} 122880"));
  CHECK(contains_line(text, "slabtrace_growth_objects_per_second{cache=\"skbuff_head_cache\",cgroup=\"/\"} 12"));
  // 4th and 5th largest are folded.
  CHECK(contains_line(text, "slabtrace_allocations_total{cache=\"skbuff_head_cache\",cgroup=\"other\"} 141"));
  CHECK(text.find("softirq") == std::string::npos);
  CHECK(text.find("we\\\"ird") == std::string::npos);

  CHECK(lines_starting(text, "slabtrace_skb_queued_bytes{socket_inode=\"18884\",netns=\"4026531840\",protocol=\"udp\","
                             "pid=\"4242\",comm=\"udp-sink\",cgroup=")
            .size() == 1);
  CHECK(contains_line(text, "slabtrace_info{version=\"0.1.0\",kernel=\"6.18.44\",attach_mode=\"tp_btf\"} 1"));
  CHECK(contains_line(text, "slabtrace_lost_events_total{reason=\"stack_errors\"} 3"));
  CHECK(contains_line(text, "slabtrace_live_map_capacity 2097152"));
  CHECK(contains_line(text, "slabtrace_bpf_seconds_per_event{program=\"st_btf_cache_alloc\"} 5.2e-08"));
  CHECK(lines_starting(text, "slabtrace_bpf_seconds_per_event{program=\"st_btf_never_ran\"}").empty());
  CHECK(contains_line(text, "slabtrace_node_memory_bytes{field=\"SUnreclaim\"} 2147483648"));
  CHECK(lines_starting(text, "slabtrace_node_memory_bytes{field=\"Hugepagesize\"").empty());
}

TEST_CASE("odd cgroup names are escaped in the exposition", "[unit][prometheus]") {
  auto m = sample_node();
  std::string text = prometheus::render(m, {});
  CHECK(contains_line(text, "slabtrace_outstanding_objects{cache=\"kmalloc-1k\",cgroup=\"/user.slice/we\\\"ird\\\\name\\nhere\"} 7"));
}

TEST_CASE("sk_buff holders beyond the top N are summed as socket_inode=\"other\"", "[unit][prometheus]") {
  std::vector<prometheus::SkbHolderFigures> holders(4);
  for (std::size_t i = 0; i < holders.size(); ++i) {
    holders[i].socket_inode = 100 + i;
    holders[i].protocol = "udp";
    holders[i].queued_objects = i + 1;
    holders[i].queued_bytes = (i + 1) * 1000;
  }
  auto kept = prometheus::keep_top_holders(holders, 2);
  REQUIRE(kept.size() == 3);
  CHECK(kept[0].socket_inode == 103);
  CHECK(kept[2].queued_objects == 1 + 2);
  CHECK(kept[2].queued_bytes == 3000);

  prometheus::Metrics m;
  m.skb_holders = holders;
  prometheus::Limits limits;
  limits.top_skb_holders = 2;
  std::string text = prometheus::render(m, limits);
  CHECK(contains_line(text, "slabtrace_skb_queued_bytes{socket_inode=\"other\",cgroup=\"other\"} 3000"));
}

TEST_CASE("promtool accepts the exposition", "[unit][prometheus]") {
  if (system("command -v promtool >/dev/null 2>&1") != 0) {
    WARN("promtool not found: `promtool check metrics` not run (apt-get install prometheus)");
    return;
  }
  testing::TempDir dir("slabtrace-prom");
  std::string file = dir.write("metrics.txt", prometheus::render(sample_node(), {}));
  std::string command = "promtool check metrics < " + file + " 2>&1";
  FILE* p = popen(command.c_str(), "r");
  REQUIRE(p);
  std::string said;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) said += buf;
  int status = pclose(p);
  INFO(said);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // 3 would be lint problems (names, units, HELP)
}
