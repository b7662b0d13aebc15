// The DaemonSet, run: scripts/image.sh builds the image, podman runs it the way
// deploy/daemonset.yaml says (deploy/daemonset-podman.py reads the YAML), in a
// network namespace of its own as a pod would be. A UDP leak made on the host in
// a pod-like cgroup, with the kubelet's log directories for it, must reach a real
// Prometheus with the pod's names, the probes must pass as the kubelet would run
// them, and every panel of deploy/grafana-dashboard.json must find its data.
#include <fmt/format.h>
#include <httplib.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include "prometheus_server.hpp"
#include "root_helpers.hpp"

using namespace roottest;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kSource = SLABTRACE_SOURCE;

std::string which(const std::string& program) {
  auto [rc, out] = shell("command -v " + program);
  if (rc != 0 || out.empty()) return "";
  return out.substr(0, out.find('\n'));
}

// Undo steps, run in reverse order however the test ends (REQUIRE throws).
class Cleanup {
 public:
  ~Cleanup() {
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
      try {
        (*it)();
      } catch (...) {
      }
    }
  }
  void add(std::function<void()> step) { steps_.push_back(std::move(step)); }

 private:
  std::vector<std::function<void()>> steps_;
};

// podman with a store, a run root and runtime settings of its own: nothing of
// the host's container configuration is read or changed.
class Podman {
 public:
  explicit Podman(const std::string& dir) : dir_(dir) {
    // crun refuses the v1/v2 hybrid cgroup layouts that runc accepts.
    std::string runc = access("/usr/sbin/runc", X_OK) == 0 ? "/usr/sbin/runc" : which("runc");
    global_ = {which("podman"), "--root", dir + "/root", "--runroot", dir + "/run", "--storage-driver", "vfs",
               "--runtime", runc, "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", dir + "/tmp"};
  }
  std::pair<int, std::string> operator()(const std::vector<std::string>& args, double timeout_s = 120) const {
    std::vector<std::string> argv = global_;
    argv.insert(argv.end(), args.begin(), args.end());
    Child c(argv);
    int rc = c.finish(timeout_s);
    return {rc, c.out() + c.err()};
  }
  json inspect(const std::string& what) const {
    auto [rc, out] = (*this)({"inspect", what});
    if (rc != 0) return json();
    json j = json::parse(out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0] : json();
  }

 private:
  std::string dir_;
  std::vector<std::string> global_;
};

// The pod network: a namespace with a veth to the host, as a CNI plugin makes.
// 198.18.0.0/15 is set aside for tests of network devices (RFC 2544).
struct PodNetwork {
  std::string name, netns_path, host_if;
  std::string host_ip = "198.18.94.1", pod_ip = "198.18.94.2";
  explicit PodNetwork(Cleanup& cleanup)
      : name("slabtrace-test-" + std::to_string(getpid())),
        netns_path("/run/netns/" + name),
        host_if("stdep" + std::to_string(getpid() % 10000000)) {
    auto [rc, out] = shell("ip netns add " + name);
    INFO(out);
    REQUIRE(rc == 0);
    cleanup.add([n = name] { shell("ip netns delete " + n); });  // takes the veth pair with it
    for (const std::string& step :
         {"ip link add " + host_if + " type veth peer name eth0 netns " + name,
          "ip addr add " + host_ip + "/30 dev " + host_if, "ip link set " + host_if + " up",
          "ip -n " + name + " addr add " + pod_ip + "/30 dev eth0", "ip -n " + name + " link set eth0 up",
          "ip -n " + name + " link set lo up"}) {
      auto [step_rc, said] = shell(step);
      INFO(step << ": " << said);
      REQUIRE(step_rc == 0);
    }
  }
};

// A pod as the kubelet leaves it on a node: a container cgroup in the systemd
// driver's layout (under a test cgroup of ours, never the host's own
// kubepods.slice), and the two log directories that name it.
struct FakePod {
  std::string pod_namespace = "slabtrace-test", pod, container = "sink", uid, container_id;
  std::string cgroup_rel, cgroup_dir;
  explicit FakePod(Cleanup& cleanup) {
    const int pid = getpid();
    pod = "udp-sink-" + std::to_string(pid);
    uid = fmt::format("5eab7ace-0000-4000-8000-{:012x}", pid);
    for (int i = 0; i < 4; ++i) container_id += fmt::format("{:016x}", 0x5eab7ace00000000ull + pid * 7919ull + i);
    std::string uid_underscored = std::regex_replace(uid, std::regex("-"), "_");
    const std::string mount = cgroup2_mount();
    std::vector<std::string> levels = {"/slabtrace-test-" + std::to_string(pid) + "-deploy", "/kubepods.slice",
                                       "/kubepods-besteffort.slice",
                                       "/kubepods-besteffort-pod" + uid_underscored + ".slice",
                                       "/cri-containerd-" + container_id + ".scope"};
    for (const auto& level : levels) {
      cgroup_rel += level;
      std::string dir = mount + cgroup_rel;
      REQUIRE(std::filesystem::create_directory(dir));
      cleanup.add([dir] { rmdir_retrying(dir); });
    }
    cgroup_dir = mount + cgroup_rel;

    for (const std::string dir : {"/var/log/pods", "/var/log/containers"}) {
      if (std::filesystem::create_directories(dir)) cleanup.add([dir] { rmdir(dir.c_str()); });
    }
    const std::string pod_dir = "/var/log/pods/" + pod_namespace + "_" + pod + "_" + uid;
    std::filesystem::create_directories(pod_dir + "/" + container);
    cleanup.add([pod_dir] { std::filesystem::remove_all(pod_dir); });
    std::ofstream(pod_dir + "/" + container + "/0.log") << "";
    const std::string link = "/var/log/containers/" + pod + "_" + pod_namespace + "_" + container + "-" + container_id + ".log";
    std::filesystem::create_symlink(pod_dir + "/" + container + "/0.log", link);
    cleanup.add([link] { std::filesystem::remove(link); });
  }
};

// The cgroup directories podman makes under --cgroup-parent, in every hierarchy.
void remove_runtime_cgroups(const std::string& parent) {
  std::ifstream in("/proc/self/mountinfo");
  for (const auto& m : slabtrace::procfs::parse_mountinfo(in)) {
    if (m.fs_type != "cgroup" && m.fs_type != "cgroup2") continue;
    std::string dir = m.mount_point + parent;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) continue;
    for (const auto& sub : std::filesystem::directory_iterator(dir, ec))
      if (sub.is_directory()) rmdir_retrying(sub.path());
    rmdir_retrying(dir);
  }
}

// The most memory the container's cgroup has used: v1 memory controller, or
// v2's memory.peak. 0 where neither says.
std::uint64_t memory_peak_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::ifstream mounts_in("/proc/self/mountinfo");
  auto mounts = slabtrace::procfs::parse_mountinfo(mounts_in);
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    std::string controllers = line.substr(first + 1, second - first - 1), path = line.substr(second + 1);
    for (const auto& m : mounts) {
      bool v1_memory = m.fs_type == "cgroup" && controllers == "memory" && m.super_options.find("memory") != std::string::npos;
      bool v2 = m.fs_type == "cgroup2" && controllers.empty();
      if (!v1_memory && !v2) continue;
      std::ifstream f(m.mount_point + path + (v1_memory ? "/memory.max_usage_in_bytes" : "/memory.peak"));
      std::uint64_t bytes = 0;
      if (f >> bytes && bytes) return bytes;
    }
  }
  return 0;
}

// Which of `ids` the kernel still has loaded.
std::set<int> still_loaded(const std::set<int>& ids) {
  std::set<int> left;
  auto [rc, out] = shell("bpftool prog show --json");
  REQUIRE(rc == 0);
  for (const auto& p : json::parse(out, nullptr, false))
    if (ids.count(p.value("id", -1))) left.insert(p["id"].get<int>());
  return left;
}

// Grafana's own variables, as Grafana would fill them for this Prometheus.
std::string expand_grafana(std::string expr) {
  expr = std::regex_replace(expr, std::regex("\\$__rate_interval"), "20s");
  expr = std::regex_replace(expr, std::regex("\\$instance"), ".+");
  return expr;
}

// The panels of a dashboard, with those inside rows.
void collect_panels(const json& panels, std::vector<json>& out) {
  for (const auto& p : panels) {
    out.push_back(p);
    if (p.contains("panels")) collect_panels(p["panels"], out);
  }
}

// What a panel must show once the leak has run: a series whose labels include
// `labels` and whose largest value is at least `at_least`.
struct PanelExpectation {
  std::string title;
  std::map<std::string, std::string> labels;
  double at_least;
};

bool series_matches(const json& series, const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : labels)
    if (!series["metric"].contains(k) || series["metric"][k] != v) return false;
  return true;
}

double largest_value(const json& series) {
  double best = -1e300;
  auto consider = [&](const json& point) {
    double v = std::stod(point[1].get<std::string>());
    if (!std::isnan(v)) best = std::max(best, v);
  };
  if (series.contains("values"))
    for (const auto& p : series["values"]) consider(p);
  if (series.contains("value")) consider(series["value"]);
  return best;
}

}  // namespace

TEST_CASE("the DaemonSet's container, run by podman as deploy/daemonset.yaml says, exports a pod's leak to Prometheus",
          "[root][deploy]") {
  REQUIRE_ROOT_OR_SKIP();
  for (const char* program : {"podman", "buildah", "runc", "ip", "bpftool"})
    if (which(program).empty()) {
      WARN("skipped: " << program << " not found (scripts/setup.sh installs it)");
      return;
    }
  if (access("/usr/bin/prometheus", X_OK) != 0 || shell("python3 -c 'import yaml'").first != 0) {
    WARN("skipped: needs /usr/bin/prometheus and python3-yaml (scripts/setup.sh installs them)");
    return;
  }
  const auto test_started = Clock::now();
  // Where this kernel files each datagram's data buffer (kmalloc-1k here,
  // skbuff_small_head on Debian's 6.3+ kernels), and that cache's object size.
  const std::string data_cache = leak_data_cache("udp");
  double data_size = 0;
  for (const auto& c : slabtrace::procfs::read_slabinfo())
    if (c.name == data_cache) data_size = c.object_size;
  REQUIRE(data_size > 0);
  Cleanup cleanup;
  const std::string scratch = "/tmp/slabtrace-test-deploy-" + std::to_string(getpid());
  std::filesystem::create_directories(scratch);
  cleanup.add([scratch] { std::filesystem::remove_all(scratch); });
  Podman podman(scratch + "/store");

  // buildah keeps a blob-info cache in the host's default store whatever
  // --root says; remove it if this test is what made it.
  for (const std::string dir : {"/var/lib/containers", "/var/lib/containers/cache"})
    if (!std::filesystem::exists(dir)) {
      cleanup.add([dir] { std::filesystem::remove_all(dir); });
      break;
    }

  // 1. The image, as a user builds it.
  const std::string tag = "localhost/slabtrace-test:" + std::to_string(getpid());
  const std::string build_dir = std::filesystem::path(slabtrace_bin()).parent_path();
  auto [image_rc, image_said] =
      shell(kSource + "/scripts/image.sh --build " + build_dir + " --store " + scratch + "/store --tag " + tag);
  INFO(image_said);
  REQUIRE(image_rc == 0);
  std::string last_line = image_said.substr(image_said.find_last_of('\n', image_said.size() - 2) + 1);
  CHECK(last_line == tag + "\n");
  cleanup.add([podman, tag] { podman({"rmi", "--force", tag}); });
  json image = podman.inspect(tag);
  REQUIRE(image.is_object());
  const std::string version = shell(slabtrace_bin() + " --version").second;
  CHECK(image["Labels"]["org.opencontainers.image.version"] == version.substr(0, version.find('\n')));
  auto [git_rc, head] = shell("git -C " + kSource + " rev-parse HEAD");
  if (git_rc == 0) CHECK(image["Labels"]["org.opencontainers.image.revision"].get<std::string>().rfind(head.substr(0, 40), 0) == 0);
  const std::uint64_t image_bytes = image["Size"].get<std::uint64_t>();
  CHECK(image_bytes < 40u << 20);  // binary + libraries; 15 MiB when written
  CHECK(image["Config"]["User"] == "0:0");

  // 2. The node: a pod network, a pod's cgroup and its log directories.
  PodNetwork network(cleanup);
  FakePod pod(cleanup);

  // 3. The container, from the YAML.
  const std::string name = "slabtrace-test-" + std::to_string(getpid());
  auto [translate_rc, translated] =
      shell("python3 " + kSource + "/deploy/daemonset-podman.py --json --image " + tag + " --name " + name +
            " --netns " + network.netns_path + " " + kSource + "/deploy/daemonset.yaml");
  INFO(translated);
  REQUIRE(translate_rc == 0);
  json deploy = json::parse(translated);
  std::vector<std::string> run = deploy["run"];
  // The image the DaemonSet names is the one image.sh makes by default: imported
  // with `ctr -n k8s.io images import`, the kubelet finds it without a registry.
  CHECK(deploy["image"] == "localhost/slabtrace:" + version.substr(0, version.find('\n')));
  // What the runtime, not the pod, decides. Root here lacks CAP_SYS_RESOURCE, so
  // the container may not be given more than this process has (podman itself
  // keeps RLIMIT_NPROC at 32768); its cgroups go under a parent of ours.
  rlimit nofile{}, nproc{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  getrlimit(RLIMIT_NPROC, &nproc);
  const rlim_t nproc_max = std::min<rlim_t>(nproc.rlim_max, 32768);
  const std::string cgroup_parent = "/slabtrace-test-" + std::to_string(getpid()) + "-runtime";
  run.insert(run.begin() + 1, {fmt::format("--ulimit=nofile={}:{}", nofile.rlim_max, nofile.rlim_max),
                               fmt::format("--ulimit=nproc={}:{}", nproc_max, nproc_max),
                               "--cgroup-parent=" + cgroup_parent});
  cleanup.add([cgroup_parent] { remove_runtime_cgroups(cgroup_parent); });
  cleanup.add([podman, name] { podman({"rm", "--force", "--time", "0", name}); });
  std::string memory_flag;
  for (const auto& arg : run)
    if (arg.rfind("--memory=", 0) == 0) memory_flag = arg;
  const auto started = Clock::now();
  auto [run_rc, run_said] = podman(run);
  INFO("podman " << fmt::format("{}", fmt::join(run, " ")) << "\n" << run_said);
  REQUIRE(run_rc == 0);
  auto logs = [&] { return podman({"logs", name}).second; };

  // 4. The probes, as the kubelet runs them: GET on the pod IP, each answered
  // within timeoutSeconds; the liveness probe's first try (initialDelaySeconds)
  // must already pass, or the kubelet counts failures toward a restart.
  const json liveness = deploy["probes"]["livenessProbe"], readiness = deploy["probes"]["readinessProbe"];
  auto probe = [&](const json& p) {
    httplib::Client c(network.pod_ip, p["httpGet"]["port"].get<int>());
    c.set_connection_timeout(p["timeoutSeconds"].get<int>());
    c.set_read_timeout(p["timeoutSeconds"].get<int>());
    auto res = c.Get(p["httpGet"]["path"].get<std::string>().c_str());
    return res && res->status >= 200 && res->status < 400 && res->body.rfind("ok ", 0) == 0;
  };
  bool healthy = eventually(liveness["initialDelaySeconds"].get<double>(), [&] { return probe(liveness); });
  const double healthy_after_s = seconds_since(started);
  INFO(logs());
  REQUIRE(healthy);
  CHECK(probe(readiness));

  // What the kubelet asked for is what runs.
  json ctr = podman.inspect(name);
  REQUIRE(ctr.is_object());
  CHECK(ctr["HostConfig"]["ReadonlyRootfs"] == true);
  CHECK(ctr["HostConfig"]["PidMode"] == "host");
  CHECK(ctr["HostConfig"]["Privileged"] == true);
  const int container_pid = ctr["State"]["Pid"];

  // 5. Prometheus, scraping the pod IP the way the Service's annotations say,
  // with honor_labels as deploy/README.md asks.
  PrometheusServer prometheus(fmt::format("  - job_name: slabtrace\n"
                                          "    honor_labels: true\n"
                                          "    metrics_path: {}\n"
                                          "    static_configs:\n"
                                          "      - targets: ['{}:{}']\n",
                                          deploy["scrape"]["path"].get<std::string>(), network.pod_ip,
                                          deploy["scrape"]["port"].get<int>()));
  REQUIRE(eventually(60, [&] { return prometheus.value("up{job=\"slabtrace\"} == 1").has_value(); }));

  // 6. The leak, on the host, in the pod's container cgroup: datagrams to a
  // socket nobody reads. serve's default watches the kernel's counters and
  // traces once a cache grows past its threshold: a first leak makes
  // skbuff_head_cache grow past it (the data cache, kmalloc-1k here, passes it
  // first; serve then traces that cache alone, which sees no holder,
  // and widens to every cache once the sk_buff heads pass it too). Then 20,000
  // more are sent while it traces, in four bursts (so growth shows as growth).
  Child holder({workload_bin(), "udp-hold", "--cgroup", pod.cgroup_dir});
  auto ready = holder.read_line(10);
  REQUIRE(ready);
  REQUIRE(ready->rfind("ready ", 0) == 0);
  const std::string port = ready->substr(6);
  auto send = [&](long count) {
    Child sender({workload_bin(), "udp-send", "--cgroup", pod.cgroup_dir, "--port", port, "--count", std::to_string(count)});
    REQUIRE(sender.finish(60) == 0);
  };
  auto tracing = [&] { return prometheus.value("slabtrace_serve_state{state=\"tracing\"} == 1").has_value(); };
  REQUIRE(eventually(30, [&] { return prometheus.value("slabtrace_serve_state").has_value(); }));
  const bool traced_from_start = tracing();
  double trigger_after_s = 0;
  if (!traced_from_start) {
    auto threshold = prometheus.value("slabtrace_watch_threshold_bytes");
    REQUIRE(threshold);
    std::ifstream slabinfo("/proc/slabinfo");
    double head_size = 0;
    for (std::string line; std::getline(slabinfo, line);)
      if (line.rfind("skbuff_head_cache ", 0) == 0) {
        std::istringstream fields(line);
        std::string name, active, total;
        fields >> name >> active >> total >> head_size;
      }
    REQUIRE(head_size > 0);
    send(long(*threshold * 1.25 / head_size) + 1);
    auto sent = Clock::now();
    // Every cache traced: the state's caches label is empty, so Prometheus has none.
    bool traces = eventually(60, [&] {
      return prometheus.value("slabtrace_serve_state_info{state=\"tracing\",caches=\"\"}").has_value() &&
             prometheus.value("sum(slabtrace_bpf_runs_total) > 0").has_value();
    });
    trigger_after_s = seconds_since(sent);
    INFO(logs());
    INFO(prometheus.select("slabtrace_serve_state_info").dump());
    REQUIRE(traces);
    json why = prometheus.select("slabtrace_serve_state_info");
    REQUIRE(why.size() == 1);
    // Heads and data grow together: the reason names whichever cache of the
    // leak crossed first (on 6.12 the small-head data cache often does).
    const std::string reason = why[0]["metric"]["reason"].get<std::string>();
    CHECK((reason.find("skbuff_head_cache") != std::string::npos || reason.find(data_cache) != std::string::npos));
  }
  const long leak = 20000;
  const double leak_started_unix = double(time(nullptr));
  std::vector<bool> probes_passed;
  for (int burst = 0; burst < 4; ++burst) {
    if (burst) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    send(leak / 4);
    probes_passed.push_back(probe(liveness));
  }
  CHECK(std::count(probes_passed.begin(), probes_passed.end(), false) == 0);

  // Each datagram's data buffer: the pod's series carry its names.
  const std::string series =
      "slabtrace_outstanding_objects{cache=\"" + data_cache + "\",cgroup=\"" + pod.cgroup_rel + "\"}";
  json found;
  bool seen = eventually(60, [&] {
    json r = prometheus.select(series);
    if (r.size() != 1 || std::stod(r[0]["value"][1].get<std::string>()) < 0.9 * leak) return false;
    found = r[0];
    return true;
  });
  INFO(logs());
  INFO(prometheus.select(series).dump());
  REQUIRE(seen);
  CHECK(found["metric"]["namespace"] == pod.pod_namespace);
  CHECK(found["metric"]["pod"] == pod.pod);
  CHECK(found["metric"]["container"] == pod.container);
  CHECK(found["metric"]["pod_uid"] == pod.uid);
  CHECK(found["metric"]["container_id"] == pod.container_id);
  // hostPID: the holder is named by its pid on the host.
  // Before 5.17 (no queue walk) the holder is the socket census's:
  // its receive queue in bytes, with the same labels.
  const bool traced = kernel_counts_held_skbs();
  const std::string held_series = traced ? "slabtrace_skb_queued_objects" : "slabtrace_socket_queue_bytes";
  json held = prometheus.select(held_series + "{pid=\"" + std::to_string(holder.pid()) + "\"" +
                                (traced ? "" : ",queue=\"receive\"") + "}");
  INFO(prometheus.select(held_series).dump());
  REQUIRE(held.size() == 1);
  if (traced)
    CHECK(std::stod(held[0]["value"][1].get<std::string>()) >= 0.9 * leak);
  else
    CHECK(std::stod(held[0]["value"][1].get<std::string>()) > 0);
  CHECK(held[0]["metric"]["comm"] == "st_workload");
  CHECK(held[0]["metric"]["pod"] == pod.pod);

  // The lines as the container serves them: the pod's largest, and its holder.
  std::string scrape_line;
  {
    httplib::Client c(network.pod_ip, deploy["scrape"]["port"].get<int>());
    auto page = c.Get(deploy["scrape"]["path"].get<std::string>().c_str());
    REQUIRE(page);
    std::istringstream lines(page->body);
    std::string outstanding, queued;
    double largest = -1;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("slabtrace_outstanding_objects{", 0) == 0 && line.find("cgroup=\"" + pod.cgroup_rel + "\"") != std::string::npos &&
          std::stod(line.substr(line.rfind(' ') + 1)) > largest) {
        largest = std::stod(line.substr(line.rfind(' ') + 1));
        outstanding = line;
      }
      if (line.rfind(traced ? "slabtrace_skb_queued_bytes{" : "slabtrace_socket_queue_bytes{", 0) == 0 &&
          line.find("pid=\"" + std::to_string(holder.pid()) + "\"") != std::string::npos)
        queued = line;
    }
    CHECK(!outstanding.empty());
    CHECK(!queued.empty());
    scrape_line = outstanding + "\n  " + queued;
  }

  // Two more refreshes, so that rates over the leak have points on both sides.
  std::this_thread::sleep_for(std::chrono::seconds(6));

  // 7. The dashboard: Grafana's schema, and every target's PromQL evaluated
  // over the run against what Prometheus scraped from the container.
  std::ifstream dashboard_file(kSource + "/deploy/grafana-dashboard.json");
  REQUIRE(dashboard_file);
  json dashboard = json::parse(dashboard_file);
  CHECK(dashboard["uid"].is_string());
  CHECK(dashboard["schemaVersion"].is_number_integer());
  std::set<std::string> variables;
  for (const auto& v : dashboard["templating"]["list"]) variables.insert(v["name"].get<std::string>());
  CHECK(variables == std::set<std::string>{"datasource", "instance"});
  for (const auto& v : dashboard["templating"]["list"])
    if (v["type"] == "query") {
      // label_values(METRIC, LABEL), as Grafana asks Prometheus for it.
      std::smatch m;
      std::string q = v["query"]["query"];
      REQUIRE(std::regex_match(q, m, std::regex("label_values\\((\\w+), *(\\w+)\\)")));
      json values = prometheus.api("/api/v1/label/" + m[2].str() + "/values", {{"match[]", m[1].str()}});
      CHECK(!values["data"].empty());
    }
  std::vector<json> panels;
  collect_panels(dashboard["panels"], panels);
  const std::map<std::string, std::string> our_pod = {{"namespace", pod.pod_namespace}, {"pod", pod.pod}, {"container", pod.container}};
  const std::map<std::string, std::string> our_holder = {{"pid", std::to_string(holder.pid())}, {"comm", "st_workload"}};
  std::vector<PanelExpectation> expectations = {
      {"Kernel memory by kind", {{"field", "SUnreclaim"}}, 1},
      {"Unreclaimable slab and available memory, share of MemTotal", {}, 0.0001},
      // The data cache holds the datagrams' data: traced whichever caches serve picks.
      {"Top growing caches (outstanding bytes per second)", {{"cache", data_cache}}, 1},
      {"Outstanding bytes by cache (top 10)", {{"cache", data_cache}}, 0.9 * leak * data_size},
      {"Slab caches as the kernel counts them (top 10)", {{"cache", data_cache}}, 0.9 * leak * data_size},
      {"Slab cache growth within the watch window (top 10)", {{"cache", data_cache}}, 0.9 * leak * data_size},
      {"Allocations per second by cache (top 10)", {{"cache", data_cache}}, 1},
      {"Growth per pod container (outstanding bytes per second)", our_pod, 1},
      {"Outstanding bytes per pod container", our_pod, 0.9 * leak * 200},
      {"Outstanding bytes per cgroup (pods, services, the rest)", {{"cgroup", pod.cgroup_rel}}, 0.9 * leak * 200},
      {"Cgroups holding the most slab now, by cache", {{"cgroup", pod.cgroup_rel}, {"pod", pod.pod}}, 1},
      {"Sockets holding queued sk_buffs", {{"pod", pod.pod}, {"pid", std::to_string(holder.pid())}}, 0.9 * leak * 200},
      {"sk_buffs queued per holder", our_holder, 0.9 * leak},
      {"BPF CPU time (cores)", {}, 1e-9},
      {"Cost per event by program", {}, 1e-9},
      {"Lost events per second", {{"reason", "map_full"}}, 0},
      {"Live-object map fill", {}, 1e-9},
      {"Refresh time and age of the metrics", {}, 1e-6},
      {"Watching or tracing", {{"state", "tracing"}}, 1},
      {"Why serve traces", {{"state", "tracing"}}, 0},
      {"Versions and attach modes", {{"version", version.substr(0, version.find('\n'))}}, 1},
  };
  std::set<std::string> titles;
  std::set<int> ids;
  const double now_unix = double(time(nullptr));
  int targets = 0;
  for (const auto& panel : panels) {
    INFO("panel " << panel["title"]);
    CHECK(ids.insert(panel["id"].get<int>()).second);
    const json& pos = panel["gridPos"];
    CHECK(pos["x"].get<int>() + pos["w"].get<int>() <= 24);
    if (panel["type"] == "row") continue;
    titles.insert(panel["title"].get<std::string>());
    CHECK(panel["datasource"]["uid"] == "${datasource}");
    if (!traced && panel["title"] == "sk_buffs queued per holder") {
      std::printf("skipped: panel \"%s\": skbs counted per socket by the queue walk (5.17+)\n",
                  panel["title"].get<std::string>().c_str());
      continue;
    }
    const PanelExpectation* wanted = nullptr;
    for (const auto& e : expectations)
      if (e.title == panel["title"]) wanted = &e;
    bool met = wanted == nullptr;
    REQUIRE(!panel["targets"].empty());
    for (const auto& target : panel["targets"]) {
      const std::string expr = expand_grafana(target["expr"]);
      INFO("expr " << expr);
      ++targets;
      json r = target.value("instant", false)
                   ? prometheus.api("/api/v1/query", {{"query", expr}, {"time", fmt::format("{:.0f}", now_unix)}})
                   : prometheus.api("/api/v1/query_range", {{"query", expr},
                                                            {"start", fmt::format("{:.0f}", leak_started_unix - 5)},
                                                            {"end", fmt::format("{:.0f}", now_unix)},
                                                            {"step", "1"}});
      REQUIRE(r.is_object());
      CHECK(r["status"] == "success");
      const json& result = r["data"]["result"];
      CHECK(!result.empty());
      for (const auto& s : result)
        if (wanted && series_matches(s, wanted->labels) && largest_value(s) >= wanted->at_least) met = true;
    }
    CHECK(met);
  }
  for (const auto& e : expectations) {
    INFO("expected panel: " << e.title);
    CHECK(titles.count(e.title) == 1);
  }

  // 8. Stopping, as the kubelet does: SIGTERM, and gone within the grace period.
  const std::uint64_t peak_bytes = memory_peak_of(container_pid);
  const auto program_ids = bpf_ids_of(container_pid, "prog_id:");
  const std::set<int> programs(program_ids.begin(), program_ids.end());
  CHECK(!programs.empty());
  holder.close_stdin();
  holder.finish(10);
  const auto stopping = Clock::now();
  auto [stop_rc, stop_said] = podman({"stop", name});
  const double stop_s = seconds_since(stopping);
  INFO(stop_said);
  CHECK(stop_rc == 0);
  CHECK(stop_s < deploy["terminationGracePeriodSeconds"].get<double>());
  json stopped = podman.inspect(name);
  CHECK(stopped["State"]["ExitCode"] == 0);
  CHECK(logs().find("stopping") != std::string::npos);
  CHECK(still_loaded(programs).empty());  // the container's programs went with it

  std::cout << fmt::format(
      "deploy: image {} ({:.1f} MiB); healthy {:.1f}s after podman run (liveness first probes at {}s); {}; "
      "container memory peak {:.0f} MiB (podman {}); {} dashboard targets evaluated; stopped in {:.1f}s; "
      "test {:.0f}s\n  scraped: {}\n",
      tag, double(image_bytes) / (1 << 20), healthy_after_s, liveness["initialDelaySeconds"].get<int>(),
      traced_from_start ? std::string("traced from the start")
                        : fmt::format("tracing {:.1f}s after the first leak", trigger_after_s),
      double(peak_bytes) / (1 << 20), memory_flag, targets, stop_s, seconds_since(test_started), scrape_line);
}
