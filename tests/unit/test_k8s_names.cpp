#include <catch2/catch.hpp>
#include <filesystem>

#include "slabtrace/cgroups.hpp"
#include "slabtrace/k8s_names.hpp"
#include "temp_dir.hpp"

using namespace slabtrace;
using namespace std::chrono_literals;

namespace {

const std::string kFixture = std::string(SLABTRACE_FIXTURES) + "/k8s/var/log";
const std::string kSinkId = "954b15f0cf5bd23b9f0e84753f4bfe4855bf04d3ca82ee73ac929931ca24e39d";
const std::string kSinkPodUid = "b47edbfb-5e13-4dc1-8dcb-cfe89e625385";

k8s::LogDirs fixture_dirs() { return {kFixture + "/pods", kFixture + "/containers"}; }

cgroups::ContainerInfo container(std::optional<std::string> id, std::optional<std::string> pod_uid = std::nullopt) {
  cgroups::ContainerInfo c;
  c.container_id = std::move(id);
  c.pod_uid = std::move(pod_uid);
  return c;
}

}  // namespace

TEST_CASE("container log file names split into pod, namespace, container and id", "[unit][k8s]") {
  auto log = k8s::parse_container_log("coredns-5d78c9869d-7xk2p_kube-system_coredns-" + std::string(64, 'a') + ".log");
  REQUIRE(log);
  CHECK(log->pod == "coredns-5d78c9869d-7xk2p");
  CHECK(log->pod_namespace == "kube-system");
  CHECK(log->container == "coredns");
  CHECK(log->container_id == std::string(64, 'a'));

  // Dashes belong to the names; only the last one precedes the id.
  auto dashed = k8s::parse_container_log("web-0_shop_istio-proxy-" + kSinkId + ".log");
  REQUIRE(dashed);
  CHECK(dashed->pod == "web-0");
  CHECK(dashed->container == "istio-proxy");
}

TEST_CASE("names that are not container logs are passed over", "[unit][k8s]") {
  const std::string id(64, 'b');
  for (const std::string& name : {std::string("leftover.log"), std::string("pod_ns_ctr-1234abcd.log"),
                                  "pod_ns_ctr-" + id + ".log.20240514-091200", "pod_ns_ctr-" + id,
                                  "pod_ctr-" + id + ".log", "pod_ns_extra_ctr-" + id + ".log",
                                  "_ns_ctr-" + id + ".log", "pod_ns_ctr-" + std::string(64, 'B') + ".log",
                                  "pod_ns_ctr-" + std::string(63, 'b') + ".log", std::string(".log"), std::string()}) {
    INFO(name);
    CHECK_FALSE(k8s::parse_container_log(name));
  }
}

TEST_CASE("pod directory names split into namespace, pod and uid", "[unit][k8s]") {
  auto pod = k8s::parse_pod_dir("payments_udp-sink-7f9c6b5d4-q2x8m_" + kSinkPodUid);
  REQUIRE(pod);
  CHECK(pod->pod_namespace == "payments");
  CHECK(pod->pod == "udp-sink-7f9c6b5d4-q2x8m");
  CHECK(pod->uid == kSinkPodUid);
  CHECK_FALSE(k8s::parse_pod_dir("lost+found"));
  CHECK_FALSE(k8s::parse_pod_dir("a_b"));
  CHECK_FALSE(k8s::parse_pod_dir("a__c"));
  CHECK_FALSE(k8s::parse_pod_dir("a_b_c_d"));
}

TEST_CASE("a container cgroup gets its container, pod and namespace from the fixture tree", "[unit][k8s]") {
  k8s::NameIndex index = k8s::scan(fixture_dirs());
  CHECK(index.containers() == 6);
  CHECK(index.pods() == 4);

  // The cgroup fixture's container, resolved the way serve does it.
  auto info = cgroups::parse_container(
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podb47edbfb_5e13_4dc1_8dcb_cfe89e625385.slice/"
      "cri-containerd-954b15f0cf5bd23b9f0e84753f4bfe4855bf04d3ca82ee73ac929931ca24e39d.scope");
  k8s::Workload w = index.find(info);
  CHECK(w.pod_namespace == "payments");
  CHECK(w.pod == "udp-sink-7f9c6b5d4-q2x8m");
  CHECK(w.container == "sink");
  CHECK(w.pod_uid == kSinkPodUid);

  SECTION("both ids of a restarted container") {
    for (const char* id : {"0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
                           "f9e8d7c6b5a4938271605f4e3d2c1b0af9e8d7c6b5a4938271605f4e3d2c1b0a"}) {
      k8s::Workload c = index.find(container(std::string(id)));
      CHECK(c.container == "coredns");
      CHECK(c.pod_uid == "8c1f4d2a-3b7e-4f61-9a0d-2e5c7b9f1a34");  // from the symlink target
    }
  }
  SECTION("a static pod, whose uid is a config hash") {
    k8s::Workload c = index.find(container(std::string("5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f")));
    CHECK(c.pod == "kube-apiserver-node-1");
    CHECK(c.pod_uid == "7d5c3b1e0f9a8b2c4d6e8f0a1b3c5d7e");
  }
  SECTION("a pod-level cgroup, or a container without a log: pod by uid") {
    k8s::Workload c = index.find(container(std::nullopt, std::string("3f2a9c4e-6b1d-4e8f-a2c5-7d9b0e1f3a6c")));
    CHECK(c.pod_namespace == "shop");
    CHECK(c.pod == "web-0");
    CHECK(c.container.empty());
    // A pause container: its id has no log, its pod does.
    k8s::Workload sandbox = index.find(container(std::string(64, 'c'), kSinkPodUid));
    CHECK(sandbox.pod == "udp-sink-7f9c6b5d4-q2x8m");
    CHECK(sandbox.container.empty());
  }
  SECTION("a log written in place has no symlink: the pod uid comes from the cgroup") {
    k8s::Workload c = index.find(container(std::string("abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd"),
                                           std::string("11111111-2222-3333-4444-555555555555")));
    CHECK(c.pod == "metrics-agent-x7k9p");
    CHECK(c.pod_namespace == "monitoring");
    CHECK(c.container == "agent");
    CHECK(c.pod_uid == "11111111-2222-3333-4444-555555555555");
  }
  SECTION("a cgroup that is no pod's") {
    CHECK_FALSE(index.find(container(std::nullopt)).known());
    CHECK_FALSE(index.find(container(std::string(64, 'd'))).known());
  }
}

TEST_CASE("a node without Kubernetes log directories has no names, and no error", "[unit][k8s]") {
  k8s::NameIndex index = k8s::scan({"/nonexistent/pods", "/nonexistent/containers"});
  CHECK(index.containers() == 0);
  CHECK_FALSE(index.find(container(kSinkId)).known());
}

TEST_CASE("a new pod is found on a miss, rescanning at most once per period", "[unit][k8s]") {
  testing::TempDir dir("slabtrace-k8s");
  std::filesystem::create_directories(dir.path() / "pods");
  std::filesystem::create_directories(dir.path() / "containers");
  k8s::PodNames names({(dir.path() / "pods").string(), (dir.path() / "containers").string()}, 10s);
  auto t0 = k8s::PodNames::Clock::time_point{} + 1h;
  const auto sink = container(kSinkId, kSinkPodUid);
  CHECK_FALSE(names.lookup(sink, t0).known());

  // The pod starts after the first scan.
  const std::string pod_dir = "payments_udp-sink-7f9c6b5d4-q2x8m_" + kSinkPodUid;
  dir.write("pods/" + pod_dir + "/sink/0.log", "");
  std::filesystem::create_symlink(dir.path() / "pods" / pod_dir / "sink/0.log",
                                  dir.path() / "containers" / ("udp-sink-7f9c6b5d4-q2x8m_payments_sink-" + kSinkId + ".log"));
  CHECK_FALSE(names.lookup(sink, t0 + 5s).known());  // too soon to list the directories again
  k8s::Workload w = names.lookup(sink, t0 + 10s);
  CHECK(w.container == "sink");
  CHECK(w.pod == "udp-sink-7f9c6b5d4-q2x8m");
  CHECK(names.index().containers() == 1);
}
