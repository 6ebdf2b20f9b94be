#include "harness.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "fakes/http_client.h"

namespace h2mesh_test {

std::string bin_dir() { return H2MESH_BIN_DIR; }

std::string make_temp_dir() {
  char tmpl[] = "/tmp/h2mesh-test-XXXXXX";
  const char* d = mkdtemp(tmpl);
  return d ? d : "/tmp";
}

namespace {
std::optional<uint16_t> trailing_port(const std::optional<std::string>& line) {
  if (!line) return std::nullopt;
  std::smatch m;
  static const std::regex port_re(R"(:(\d+)\s*$)");
  if (!std::regex_search(*line, m, port_re)) return std::nullopt;
  return static_cast<uint16_t>(std::stoi(m[1]));
}
}  // namespace

Backend start_backend(const std::string& dir, const std::string& id, uint16_t port,
                      const std::vector<std::string>& extra_args) {
  Backend b;
  b.id = id;
  std::vector<std::string> argv = {bin_dir() + "/greeter", "serve", "--address", "127.0.0.1",
                                   "--port", std::to_string(port), "--id", id};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto p = Subprocess::spawn(argv, dir, id);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  if (!p.ok()) return b;
  b.process = std::move(*p);
  auto got = trailing_port(b.process->wait_for_line(
      Subprocess::Stream::Stdout,
      [](const std::string& l) { return l.find(" listening on ") != std::string::npos; },
      kStartTimeout));
  EXPECT_TRUE(got.has_value()) << id << " did not start: "
                               << b.process->read_all(Subprocess::Stream::Stderr);
  b.port = got.value_or(0);
  return b;
}

Proxy start_proxy(const std::string& dir, const std::string& yaml,
                  const std::vector<std::string>& prefix) {
  Proxy proxy;
  proxy.config_path = dir + "/h2mesh.yaml";
  std::ofstream(proxy.config_path) << yaml;
  std::vector<std::string> argv = prefix;
  argv.insert(argv.end(), {bin_dir() + "/h2mesh", "run", "--config", proxy.config_path});
  auto p = Subprocess::spawn(argv, dir, "h2mesh");
  EXPECT_TRUE(p.ok());
  if (!p.ok()) return proxy;
  proxy.process = std::move(*p);
  auto contains = [](const char* s) {
    return [s](const std::string& l) { return l.find(s) != std::string::npos; };
  };
  auto port = trailing_port(proxy.process->wait_for_line(
      Subprocess::Stream::Stderr, contains("listening on"), kStartTimeout));
  auto admin = trailing_port(proxy.process->wait_for_line(
      Subprocess::Stream::Stderr, contains("admin listening on"), kStartTimeout));
  auto serving = proxy.process->wait_for_line(Subprocess::Stream::Stderr,
                                              contains("h2mesh serving"), kStartTimeout);
  EXPECT_TRUE(port && admin && serving)
      << "h2mesh did not start: " << proxy.process->read_all(Subprocess::Stream::Stderr);
  proxy.port = port.value_or(0);
  proxy.admin_port = admin.value_or(0);
  return proxy;
}

std::string simple_config(const std::vector<std::string>& endpoints, const std::string& policy,
                          int workers, const std::string& extra_cluster_yaml,
                          const std::string& extra_top_yaml) {
  std::string y = "workers: " + std::to_string(workers) + "\n";
  y += "admin:\n  address: \"127.0.0.1:0\"\n";
  y += extra_top_yaml;
  y += "listeners:\n  - name: grpc\n    address: \"127.0.0.1:0\"\n    routes:\n"
       "      - cluster: greeter\n";
  y += "clusters:\n  - name: greeter\n    lb_policy: " + policy + "\n";
  y += extra_cluster_yaml;
  y += "    endpoints:\n";
  for (const auto& e : endpoints) y += "      - \"" + e + "\"\n";
  return y;
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

std::pair<int, std::string> http_get(uint16_t port, const std::string& path) {
  return h2mesh_test_fakes::http_request(port, "GET", path);
}

std::optional<uint64_t> metric(uint16_t admin_port, const std::string& series) {
  auto [status, body] = http_get(admin_port, "/metrics");
  if (status != 200) return std::nullopt;
  const std::string start = series + " ";
  size_t at = body.compare(0, start.size(), start) == 0 ? 0 : body.find("\n" + start);
  if (at != 0 && at != std::string::npos) ++at;  // past the newline
  if (at == std::string::npos) return std::nullopt;
  return std::stoull(body.substr(at + start.size()));
}

std::string backend_of(const std::string& message) {
  static const std::regex re(R"(^Hello from ([^,]+),)");
  std::smatch m;
  return std::regex_search(message, m, re) ? std::string(m[1]) : std::string();
}

namespace {
std::optional<int> int_field(const std::string& json, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + key + R"("\s*:\s*(\d+))"))) return std::nullopt;
  return std::stoi(m[1]);
}

std::optional<bool> bool_field(const std::string& json, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + key + R"("\s*:\s*(true|false))")))
    return std::nullopt;
  return m[1] == "true";
}
}  // namespace

InteropReport parse_interop_report(const std::string& stdout_text) {
  InteropReport r;
  std::istringstream lines(stdout_text);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("{")) r.json = line;
  r.ok = int_field(r.json, "ok");
  r.failed = int_field(r.json, "failed");
  r.stream_ok = bool_field(r.json, "stream_ok");
  r.bidi_ok = bool_field(r.json, "bidi_ok");
  std::smatch m;
  if (std::regex_search(r.json, m, std::regex(R"("backends"\s*:\s*\{([^}]*)\})"))) {
    const std::string body = m[1];
    static const std::regex entry(R"re("([^"]+)"\s*:\s*(\d+))re");
    for (auto it = std::sregex_iterator(body.begin(), body.end(), entry);
         it != std::sregex_iterator(); ++it)
      r.backends[(*it)[1]] = std::stoi((*it)[2]);
  }
  return r;
}

helloworld::StatsReply backend_stats(const Backend& b) {
  auto stub = helloworld::GreeterStats::NewStub(make_channel(b.address()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  helloworld::StatsRequest req;
  helloworld::StatsReply reply;
  auto st = stub->GetStats(&ctx, req, &reply);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return reply;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

uint64_t total_calls(const std::vector<Backend>& backends) {
  uint64_t n = 0;
  for (const auto& b : backends) n += backend_stats(b).calls();
  return n;
}

void ProxyTest::start_backends(int n) {
  for (int i = 1; i <= n; ++i) backends_.push_back(start_backend(dir_, "greeter-" + std::to_string(i)));
}

std::vector<std::string> ProxyTest::endpoints() const {
  std::vector<std::string> out;
  for (const auto& b : backends_) out.push_back(b.address());
  return out;
}

}  // namespace h2mesh_test
