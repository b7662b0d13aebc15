#pragma once
// A real Prometheus (Debian's /usr/bin/prometheus) for root tests: its own
// config and data directory under /tmp, listening on a loopback port, removed
// with the object.
#include <httplib.h>

#include <filesystem>
#include <fstream>

#include "root_helpers.hpp"

namespace roottest {

class PrometheusServer {
 public:
  // `scrape_configs` is the YAML list under `scrape_configs:`, indented by two.
  PrometheusServer(const std::string& scrape_configs, const std::string& rules = "", int interval_s = 1)
      : dir_("/tmp/slabtrace-test-prometheus-" + std::to_string(getpid())) {
    std::filesystem::create_directories(dir_ + "/data");
    std::ofstream config(dir_ + "/prometheus.yml");
    config << "global:\n  scrape_interval: " << interval_s << "s\n  evaluation_interval: " << interval_s << "s\n";
    if (!rules.empty()) {
      std::ofstream(dir_ + "/rules.yaml") << rules;
      config << "rule_files: [rules.yaml]\n";
    }
    config << "scrape_configs:\n" << scrape_configs;
    config.close();
    port_ = free_loopback_port();
    child_ = std::make_unique<Child>(std::vector<std::string>{
        "/usr/bin/prometheus", "--config.file=" + dir_ + "/prometheus.yml", "--storage.tsdb.path=" + dir_ + "/data",
        "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"});
  }
  ~PrometheusServer() {
    child_->signal(SIGTERM);
    child_->finish(30);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const { return port_; }

  // The decoded answer of an API GET, or null when there is none (not up yet).
  nlohmann::json api(const std::string& path, const httplib::Params& params = {}) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    auto res = c.Get(path, params, httplib::Headers{});
    if (!res || res->status != 200) return nlohmann::json();
    return nlohmann::json::parse(res->body, nullptr, false);
  }
  // The series an instant query selects (empty if none, or on an error).
  nlohmann::json select(const std::string& query) {
    nlohmann::json r = api("/api/v1/query", {{"query", query}});
    if (!r.is_object() || r["status"] != "success") return nlohmann::json::array();
    return r["data"]["result"];
  }
  // The value of a query that selects one series, or nullopt if it selects none.
  std::optional<double> value(const std::string& query) {
    nlohmann::json result = select(query);
    if (result.empty()) return std::nullopt;
    return std::stod(result[0]["value"][1].get<std::string>());
  }
  std::vector<nlohmann::json> alerts(const std::string& name) {
    std::vector<nlohmann::json> out;
    nlohmann::json r = api("/api/v1/alerts");
    if (r.is_object() && r["status"] == "success")
      for (const auto& a : r["data"]["alerts"])
        if (a["labels"]["alertname"] == name) out.push_back(a);
    return out;
  }

 private:
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Child> child_;
};

}  // namespace roottest
