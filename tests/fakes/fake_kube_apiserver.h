#pragma once

// tests/fakes/fake_kube_apiserver.py as a child process of a gtest test, scripted through its
// control port (the script's docstring lists the controls). Its certificates (HTTPS mode) and
// output files are made in the directory given (created if missing), which the test removes.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "common/subprocess.h"
#include "fakes/http_client.h"

#if defined(H2MESH_FAKE_KUBE_APISERVER_PY)
#define H2MESH_FAKE_KUBE_APISERVER_SCRIPT H2MESH_FAKE_KUBE_APISERVER_PY
#elif defined(H2MESH_SOURCE_DIR)
#define H2MESH_FAKE_KUBE_APISERVER_SCRIPT H2MESH_SOURCE_DIR "/tests/fakes/fake_kube_apiserver.py"
#else
#error "define H2MESH_FAKE_KUBE_APISERVER_PY (the script's path) or H2MESH_SOURCE_DIR"
#endif

namespace h2mesh_test_fakes {

class FakeKubeApiServer {
 public:
  // Where the fake runs, when not beside the test: `wrap` turns the fake's command line into the
  // one to start (e.g. `ip netns exec NS ...`, to run it in a network namespace), and `enter`
  // calls a function where the fake's 127.0.0.1 is reached (e.g. on a thread in that namespace):
  // the control requests are made from there. Both unset: the test's own namespace.
  struct Placement {
    std::function<std::vector<std::string>(const std::vector<std::string>&)> wrap;
    std::function<void(const std::function<void()>&)> enter;
  };

  // Starts the fake with its certificates and output files in `dir`; `flags` go to the script
  // (e.g. {"--http"}, {"--token", "t"}). Failures to start are test failures.
  explicit FakeKubeApiServer(const std::string& dir, std::vector<std::string> flags = {},
                             Placement placement = {})
      : dir_(dir), placement_(std::move(placement)) {
    std::filesystem::create_directories(dir);
    std::vector<std::string> argv = {"/usr/bin/python3", H2MESH_FAKE_KUBE_APISERVER_SCRIPT, "--dir",
                                     dir};
    argv.insert(argv.end(), flags.begin(), flags.end());
    if (placement_.wrap) argv = placement_.wrap(argv);
    auto p = h2mesh::Subprocess::spawn(argv, dir, "fake-kube-apiserver");
    EXPECT_TRUE(p.ok());
    if (!p.ok()) return;
    process_ = std::move(*p);
    auto line = process_->wait_for_line(
        h2mesh::Subprocess::Stream::Stdout,
        [](const std::string& l) { return l.find("listening on") != std::string::npos; },
        std::chrono::seconds(30));
    EXPECT_TRUE(line.has_value()) << process_->read_all(h2mesh::Subprocess::Stream::Stderr);
    std::string out = process_->read_all(h2mesh::Subprocess::Stream::Stdout);
    std::smatch m;
    if (std::regex_search(out, m, std::regex(R"(control on http://127\.0\.0\.1:(\d+))")))
      control_port_ = static_cast<uint16_t>(std::stoi(m[1]));
    if (std::regex_search(out, m, std::regex(R"(listening on (https?)://127\.0\.0\.1:(\d+))"))) {
      scheme_ = m[1];
      port_ = static_cast<uint16_t>(std::stoi(m[2]));
    }
  }

  uint16_t port() const { return port_; }
  std::string url() const { return scheme_ + "://127.0.0.1:" + std::to_string(port_); }
  std::string ca() const { return dir_ + "/ca.crt"; }
  std::string other_ca() const { return dir_ + "/other-ca.crt"; }
  const std::string& dir() const { return dir_; }
  // Kills the process: the API server is gone for good.
  void stop() { process_.reset(); }

  // One control request; anything but 200 is a test failure. Returns the reply's body.
  std::string control(const std::string& method, const std::string& path,
                      const std::string& body = "") {
    std::pair<int, std::string> answer;
    auto request = [&] { answer = http_request(control_port_, method, path, body); };
    if (placement_.enter) {
      placement_.enter(request);
    } else {
      request();
    }
    auto& [status, reply] = answer;
    EXPECT_EQ(status, 200) << method << " " << path << ": " << reply;
    return reply;
  }
  // `spec` as PUT /slices/NAME takes it; `name` may be "NAMESPACE/NAME".
  void put_slice(const std::string& name, const std::string& spec) {
    control("PUT", "/slices/" + name, spec);
  }
  void delete_slice(const std::string& name) { control("DELETE", "/slices/" + name); }
  // `spec` is the Service's spec ({"clusterIP":..., "ports":[...]}).
  void put_service(const std::string& ns, const std::string& name, const std::string& spec) {
    control("PUT", "/services/" + ns + "/" + name, spec);
  }
  void delete_service(const std::string& ns, const std::string& name) {
    control("DELETE", "/services/" + ns + "/" + name);
  }

  std::string stats() { return control("GET", "/stats"); }
  // A number from GET /stats, e.g. "lists"; -1 when absent.
  int stat(const std::string& key) {
    std::string s = stats();
    std::smatch m;
    if (!std::regex_search(s, m, std::regex("\"" + key + "\":(\\d+)"))) return -1;
    return std::stoi(m[1]);
  }
  // The resourceVersion the last WATCH asked for.
  std::string last_watch_rv() {
    std::string s = stats();
    std::smatch m;
    if (!std::regex_search(s, m, std::regex(R"re("watch_rvs":\[([^\]]*)\])re"))) return "";
    std::string list = m[1];
    if (list.empty()) return "";
    size_t q = list.rfind('"', list.size() - 2);
    return list.substr(q + 1, list.size() - q - 2);
  }
  std::string current_rv() {
    std::smatch m;
    std::string s = stats();
    return std::regex_search(s, m, std::regex(R"re("rv":"(\d+)")re")) ? std::string(m[1]) : "";
  }
  // The collection paths requested so far (the last 50), e.g. "/api/v1/services".
  std::vector<std::string> paths() {
    std::string s = stats();
    std::smatch m;
    std::vector<std::string> out;
    if (!std::regex_search(s, m, std::regex(R"re("paths":\[([^\]]*)\])re"))) return out;
    std::string list = m[1];
    std::regex item(R"re("([^"]*)")re");
    for (auto it = std::sregex_iterator(list.begin(), list.end(), item);
         it != std::sregex_iterator(); ++it)
      out.push_back((*it)[1]);
    return out;
  }

 private:
  std::string dir_;
  Placement placement_;
  std::unique_ptr<h2mesh::Subprocess> process_;
  std::string scheme_ = "https";
  uint16_t port_ = 0;
  uint16_t control_port_ = 0;
};

}  // namespace h2mesh_test_fakes
