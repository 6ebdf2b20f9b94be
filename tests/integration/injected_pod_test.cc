// Issue 13 end to end: a pod spec that went through `h2mesh inject`, run the way the kubelet runs
// it, in the network lab of the mesh tests (mesh_fixture.h). Nothing here knows what inject
// adds: the test reads the injected spec and does what the kubelet would do with any spec:
//
//   - init containers one at a time, in order; a regular one must exit 0 before the next
//     starts; a restartable one (restartPolicy: Always, a native sidecar) keeps running, and the
//     next starts once its startupProbe passed;
//   - then the app containers, in order; with a postStart hook, the next one starts only after
//     the hook returned (what legacy sidecars rely on);
//   - on deletion, the app containers get SIGTERM first, the native sidecars after they exited.
//
// Each container runs as the spec says: its command (or the image's entrypoint, `h2mesh`, and
// its args), its env with fieldRefs resolved, its uid, its capability bounding set and
// no_new_privs. Probes are HTTP GETs from the node's namespace to the pod's IP, as the kubelet
// sends them. One thing is the lab's and not the kubelet's: the projected service-account volume
// at /var/run/secrets/kubernetes.io/serviceaccount becomes H2MESH_KUBECONFIG pointing at the
// lab's API server (plain HTTP on the pod's loopback, which in-cluster credentials cannot use).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "harness.h"
#include "mesh_fixture.h"

namespace h2mesh_test::mesh {
namespace {

using Json = nlohmann::ordered_json;
using h2mesh::Subprocess;

constexpr const char* kPodName = "client";

// The client pod as a user writes it: an init container of the user's that already calls the
// Service (it must find a working proxy), then the app. Neither knows about h2mesh.
std::string client_pod_manifest(const std::string& app_command) {
  return std::string(R"(apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: grpcdemo
  labels:
    app: greeter-client
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
  initContainers:
    - name: warm-up
      image: h2mesh:0.1.0
      command: [greeter, call, --target, "greeter.grpcdemo.svc.cluster.local:50051", -n, "8"]
  containers:
    - name: app
      image: h2mesh:0.1.0
      command: )") +
         app_command + "\n";
}

const Json* member(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

class InjectedPodTest : public MeshTest {
 protected:
  // `h2mesh inject --output json [flags]` over `manifest`: the injected Pod.
  Json inject(const std::string& manifest, const std::vector<std::string>& flags = {}) {
    std::vector<std::string> argv = {bin_dir() + "/h2mesh", "inject", "-f", "-", "--output",
                                     "json"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto out = h2mesh::run_command(argv, manifest);
    EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error().message);
    if (!out.ok()) return Json();
    EXPECT_EQ(out->exit_code, 0) << out->err;
    Json pod = Json::parse(out->out, nullptr, false);
    EXPECT_FALSE(pod.is_discarded()) << out->out;
    return pod;
  }

  // The directory the kubelet would mount for the volume `name` of `pod` at /var/run/h2mesh/tls.
  std::string mesh_certificate(const Json& pod, const std::string& name) {
    for (const Json& volume : pod["spec"]["volumes"])
      if (volume["name"] == name && member(volume, "secret")) return secret_volume(pod, volume);
    return csi_volume(pod);
  }

  // A Secret volume as the kubelet materialises one: the Secret's keys as files owned by root
  // (the pod sets no fsGroup) with the volume's defaultMode (Kubernetes' default 0644 without
  // one), in a directory anyone may enter. The Secret is what deploy/mesh-certs/
  // make-mesh-certs.sh writes for the pod's service account; the proxy, uid 1337, must read it.
  std::string secret_volume(const Json& pod, const Json& volume) {
    const std::string account = pod["spec"].value("serviceAccountName", std::string("default"));
    EXPECT_EQ(volume["secret"]["secretName"], "h2mesh-mesh-tls-" + account)
        << "make-mesh-certs.sh names the Secret of a service account so";
    const std::string pki = dir() + "/mesh-secrets";
    const std::string out = pki + "/volume";
    if (std::filesystem::exists(out + "/tls.crt")) return out;
    auto r = h2mesh::run_command(
        {"/usr/bin/python3", std::string(H2MESH_SOURCE_DIR) + "/tests/fakes/mesh_certs_files.py",
         "--script", std::string(H2MESH_SOURCE_DIR) + "/deploy/mesh-certs/make-mesh-certs.sh",
         "--dir", pki, "pod=" + std::string(kNamespace) + "/" + account});
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.error().message);
    std::filesystem::create_directories(out);
    const int mode = volume["secret"].value("defaultMode", 0644);
    for (auto [from, to] : {std::pair{"pod.crt", "tls.crt"}, {"pod.key", "tls.key"},
                            {"meshca.crt", "ca.crt"}}) {
      std::filesystem::copy_file(pki + "/" + from, out + "/" + to);
      chmod((out + "/" + to).c_str(), static_cast<mode_t>(mode));
    }
    for (const std::string& d : {pki, out}) chmod(d.c_str(), 0755);
    return out;
  }

  // The directory the csi-driver would mount for `pod`: tls.crt, tls.key and ca.crt (one test
  // mesh CA for every pod), readable by the proxy's uid.
  std::string csi_volume(const Json& pod) {
    const std::string pki = dir() + "/mesh-pki";
    const std::string name = pod["metadata"].value("name", std::string("pod"));
    const std::string out = pki + "/" + name;
    if (std::filesystem::exists(out + "/tls.crt")) return out;
    const std::string script = std::string(H2MESH_SOURCE_DIR) + "/tests/fakes/test_pki.py";
    auto run_pki = [&](std::vector<std::string> args) {
      std::vector<std::string> argv = {"/usr/bin/python3", script, "--dir", pki};
      argv.insert(argv.end(), args.begin(), args.end());
      auto r = h2mesh::run_command(argv);
      EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.error().message);
    };
    if (!std::filesystem::exists(pki + "/meshca.crt")) run_pki({"ca", "meshca"});
    run_pki({"leaf", "--ca", "meshca", "--uri",
             "spiffe://cluster.local/ns/" + std::string(kNamespace) + "/sa/default", "--server",
             "--client", name});
    std::filesystem::create_directories(out);
    std::filesystem::copy_file(pki + "/" + name + ".crt", out + "/tls.crt");
    std::filesystem::copy_file(pki + "/" + name + ".key", out + "/tls.key");
    std::filesystem::copy_file(pki + "/meshca.crt", out + "/ca.crt");
    for (const std::string& d : {pki, out}) chmod(d.c_str(), 0755);
    chmod((out + "/tls.key").c_str(), 0644);
    return out;
  }

  // What the kubelet executes for `container` of `pod`.
  std::vector<std::string> container_argv(const Json& pod, const Json& container) {
    const Json& spec = pod["spec"];
    std::vector<std::string> words;
    const Json* command = member(container, "command");
    if (command) {
      for (const Json& w : *command) words.push_back(w.get<std::string>());
    } else {
      // The image's ENTRYPOINT (deploy/Dockerfile): h2mesh.
      EXPECT_EQ(container["image"].get<std::string>().rfind("h2mesh:", 0), 0u) << container;
      words.push_back("h2mesh");
    }
    if (const Json* args = member(container, "args"))
      for (const Json& w : *args) words.push_back(w.get<std::string>());
    if (words[0] == "h2mesh" || words[0] == "greeter") words[0] = bin_dir() + "/" + words[0];
    if (words[0] == "mesh_call_loop") words[0] = H2MESH_CALL_LOOP;

    // The process's environment: only what the spec gives (and a PATH, as the image has).
    std::vector<std::string> env = {tool("env"), "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    if (const Json* vars = member(container, "env")) {
      for (const Json& var : *vars) {
        std::string value;
        if (const Json* v = member(var, "value")) {
          value = v->get<std::string>();
        } else {
          const Json* ref = member(var, "valueFrom");
          const Json* field = ref ? member(*ref, "fieldRef") : nullptr;
          EXPECT_TRUE(field) << "unsupported env source: " << var;
          if (!field) continue;
          const std::string path = (*field)["fieldPath"].get<std::string>();
          if (path == "metadata.namespace") {
            value = kNamespace;
          } else if (path == "metadata.name") {
            value = kPodName;
          } else if (path == "status.podIP") {
            value = client().ip;
          } else {
            ADD_FAILURE() << "unsupported fieldRef " << path;
          }
        }
        env.push_back(var["name"].get<std::string>() + "=" + value);
      }
    }
    if (const Json* mounts = member(container, "volumeMounts")) {
      for (const Json& mount : *mounts) {
        const std::string path = mount["mountPath"].get<std::string>();
        // An emptyDir at /run (iptables' lock): the lab's processes share the host's /run,
        // which is writable.
        if (path == "/run") continue;
        if (path == "/var/run/h2mesh/tls") {
          // cert-manager's csi-driver: the pod's own key and certificate from the mesh CA, with
          // its SPIFFE ID, made here by the test CA; or the Secret of a Secret volume. The
          // spec's env names the files in the mount.
          const std::string files = mesh_certificate(pod, mount["name"].get<std::string>());
          for (const char* name : {"tls.crt", "tls.key", "ca.crt"}) {
            const std::string var = std::string(name) == "tls.crt"   ? "H2MESH_MESH_CERT"
                                    : std::string(name) == "tls.key" ? "H2MESH_MESH_KEY"
                                                                     : "H2MESH_MESH_CA";
            env.push_back(var + "=" + files + "/" + name);  // after the spec's: this one counts
          }
          continue;
        }
        EXPECT_EQ(path, "/var/run/secrets/kubernetes.io/serviceaccount")
            << "the lab has no volume for " << mount;
        env.push_back("H2MESH_KUBECONFIG=" + kubeconfig());
      }
    }

    // Who it runs as: the container's securityContext over the pod's.
    auto setting = [&](const char* key) -> const Json* {
      const Json* c = member(container, "securityContext");
      if (const Json* v = c ? member(*c, key) : nullptr) return v;
      const Json* p = member(spec, "securityContext");
      return p ? member(*p, key) : nullptr;
    };
    const Json* run_as = setting("runAsUser");
    const Json* run_as_group = setting("runAsGroup");
    const Json* non_root = setting("runAsNonRoot");
    // The image's USER is 10001 (deploy/Dockerfile).
    const int uid = run_as ? run_as->get<int>() : 10001;
    const int gid = run_as_group ? run_as_group->get<int>() : uid;
    EXPECT_FALSE(non_root && non_root->get<bool>() && uid == 0)
        << "the kubelet refuses to run " << container["name"] << " as root with runAsNonRoot";
    std::vector<std::string> argv = {tool("setpriv"), "--reuid=" + std::to_string(uid),
                                     "--regid=" + std::to_string(gid), "--clear-groups"};
    const Json* context = member(container, "securityContext");
    if (const Json* escalation = context ? member(*context, "allowPrivilegeEscalation") : nullptr;
        escalation && !escalation->get<bool>()) {
      argv.push_back("--no-new-privs");
    }
    if (const Json* caps = context ? member(*context, "capabilities") : nullptr) {
      // drop: [ALL] then add: the bounding set is exactly the added capabilities.
      std::string bounding;
      bool drop_all = false;
      if (const Json* drop = member(*caps, "drop"))
        for (const Json& c : *drop) drop_all |= c.get<std::string>() == "ALL";
      EXPECT_TRUE(drop_all) << "capabilities not dropped: " << container["name"];
      bounding = "-all";
      if (const Json* add = member(*caps, "add"))
        for (const Json& c : *add) bounding += ",+" + lower(c.get<std::string>());
      argv.push_back("--bounding-set=" + bounding);
    }
    argv.push_back("--");
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), words.begin(), words.end());
    return argv;
  }

  // One HTTP GET of a probe, from the node's namespace to the pod's IP: its status, 0 when it
  // got none.
  int probe_once(const Json& container, const Json& probe) {
    const Json& get = probe["httpGet"];
    int port = 0;
    if (get["port"].is_number()) {
      port = get["port"].get<int>();
    } else {
      for (const Json& p : container["ports"])
        if (p["name"] == get["port"]) port = p["containerPort"].get<int>();
    }
    EXPECT_NE(port, 0) << probe;
    auto out = lab().run(nullptr, {"/usr/bin/python3", "-c",
                                   "import http.client, sys\n"
                                   "c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]),"
                                   " timeout=1)\n"
                                   "c.request('GET', sys.argv[3])\n"
                                   "print(c.getresponse().status)\n",
                                   client().ip, std::to_string(port),
                                   get["path"].get<std::string>()});
    return out.ok() ? atoi(out->c_str()) : 0;
  }

  // Probes as the kubelet does: every periodSeconds until it passes, at most failureThreshold
  // times. True when it passed.
  bool probe_until_passed(const Json& container, const Json& probe) {
    const int period = probe.value("periodSeconds", 10);
    const int threshold = probe.value("failureThreshold", 3);
    for (int i = 0; i < threshold; ++i) {
      const int status = probe_once(container, probe);
      if (status >= 200 && status < 400) return true;
      std::this_thread::sleep_for(std::chrono::seconds(period));
    }
    return false;
  }

  // Runs a postStart (or preStop) exec hook in the pod, as the container's user, to completion.
  int run_hook(const Json& pod, const Json& container, const Json& hook) {
    Json as_container = container;
    as_container["command"] = hook["exec"]["command"];
    as_container.erase("args");
    auto p = spawn_in(client(), container_argv(pod, as_container),
                      container["name"].get<std::string>() + "-hook");
    if (!p) return -1;
    return p->wait(std::chrono::seconds(150)).value_or(-1);
  }

  // A container that runs to its end (an app that makes its calls, a regular init container):
  // waited for (60 s at most), its output kept and its greetings counted.
  static CallCounts wait_to_end(Subprocess& p) {
    CallCounts counts;
    counts.exit_code = p.wait(std::chrono::seconds(60));
    counts.output = p.read_all(Subprocess::Stream::Stdout) + p.read_all(Subprocess::Stream::Stderr);
    count_greetings(counts);
    return counts;
  }
  // The pod's container `c` run to its end in the client's namespace, as the kubelet would.
  CallCounts run_to_end(const Json& pod, const Json& c) {
    auto p = spawn_in(client(), container_argv(pod, c), c["name"].get<std::string>());
    EXPECT_TRUE(p) << c["name"];
    return p ? wait_to_end(*p) : CallCounts{};
  }

  // The pod's init containers, as the kubelet runs them. Returns the restartable ones (native
  // sidecars), still running. `on_init_exit` sees each regular init container's output.
  std::vector<std::unique_ptr<Subprocess>> run_init_containers(
      const Json& pod, const std::function<void(const std::string&, CallCounts)>& on_init_exit) {
    std::vector<std::unique_ptr<Subprocess>> sidecars;
    for (const Json& c : pod["spec"]["initContainers"]) {
      const std::string name = c["name"].get<std::string>();
      auto p = spawn_in(client(), container_argv(pod, c), name);
      if (!p) return sidecars;
      if (c.value("restartPolicy", "") == "Always") {
        if (const Json* startup = member(c, "startupProbe")) {
          EXPECT_TRUE(probe_until_passed(c, *startup))
              << name << "'s startupProbe never passed:\n"
              << p->read_all(Subprocess::Stream::Stderr);
        }
        EXPECT_TRUE(p->running()) << name << " exited:\n" << p->read_all(Subprocess::Stream::Stderr);
        sidecars.push_back(std::move(p));
        continue;
      }
      CallCounts counts = wait_to_end(*p);
      EXPECT_EQ(counts.exit_code, std::optional<int>(0))
          << "init container " << name << " failed:\n"
          << counts.output;
      on_init_exit(name, counts);
    }
    return sidecars;
  }

  static std::vector<std::string> names(const Json& containers) {
    std::vector<std::string> out;
    for (const Json& c : containers) out.push_back(c["name"].get<std::string>());
    return out;
  }

  // Stops a native sidecar as the kubelet does once the app containers exited: SIGTERM, and it
  // must be gone within the pod's grace period.
  void stop_sidecar(const Json& pod, Subprocess& sidecar) {
    const int grace = pod["spec"].value("terminationGracePeriodSeconds", 30);
    sidecar.send_signal(SIGTERM);
    auto code = sidecar.wait(std::chrono::seconds(grace));
    EXPECT_EQ(code, std::optional<int>(0))
        << "the sidecar did not exit within the grace period of " << grace << " s:\n"
        << sidecar.read_all(Subprocess::Stream::Stderr);
  }
};

TEST_F(InjectedPodTest, NativeSidecarStartsFirstAndTheAppsCallsAreBalanced) {
  const std::string manifest = client_pod_manifest(
      R"([greeter, call, --target, "greeter.grpcdemo.svc.cluster.local:50051", -n, "24"])");
  Json pod = inject(manifest);
  ASSERT_TRUE(pod.is_object());
  // The interception first, then the proxy, then the user's own init container.
  ASSERT_EQ(names(pod["spec"]["initContainers"]),
            (std::vector<std::string>{"h2mesh-init", "h2mesh-proxy", "warm-up"}))
      << pod.dump(2);
  ASSERT_EQ(names(pod["spec"]["containers"]), std::vector<std::string>{"app"});

  // The user's init container runs after the proxy is ready: its calls are already balanced.
  bool warmed_up = false;
  auto sidecars = run_init_containers(pod, [&](const std::string& name, CallCounts counts) {
    if (name != "warm-up") return;
    warmed_up = true;
    expect_spread(counts, 8, {1, 2, 3, 4});
  });
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(warmed_up);
  ASSERT_EQ(sidecars.size(), 1u);

  CallCounts counts = run_to_end(pod, pod["spec"]["containers"][0]);
  ASSERT_FALSE(HasFailure());
  expect_spread(counts, 24, {1, 2, 3, 4});

  // The app exited: the kubelet stops the sidecar, which goes at once (nothing left to drain).
  stop_sidecar(pod, *sidecars[0]);
}

// A cluster without cert-manager: `--mtls-source secret` mounts the service account's Secret from
// make-mesh-certs.sh with mode 0444, root's files, and the proxy (uid 1337) starts with them.
TEST_F(InjectedPodTest, SecretSourcedMeshCertificateIsReadByTheProxy) {
  std::string manifest = client_pod_manifest(
      R"([greeter, call, --target, "greeter.grpcdemo.svc.cluster.local:50051", -n, "8"])");
  manifest.replace(manifest.find("spec:\n") + 6, 0, "  serviceAccountName: greeter-client\n");
  Json pod = inject(manifest, {"--mtls-source", "secret"});
  ASSERT_TRUE(pod.is_object());
  ASSERT_EQ(pod["spec"]["volumes"].back()["secret"]["secretName"],
            "h2mesh-mesh-tls-greeter-client")
      << pod.dump(2);
  auto sidecars = run_init_containers(pod, [](const std::string&, CallCounts) {});
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(sidecars.size(), 1u);
  // The sidecar serves the Secret's certificate: its expiry is on /metrics.
  auto metrics = h2mesh::lab::http_get_in(client().netns, "127.0.0.1", 9901, "/metrics", 10000);
  ASSERT_TRUE(metrics.ok()) << metrics.error().message;
  EXPECT_NE(metrics->body.find("h2mesh_tls_certificate_expiry_timestamp_seconds{owner=\"mesh\",cert=\"" +
                               dir() + "/mesh-secrets/volume/tls.crt\"}"),
            std::string::npos)
      << metrics->body << sidecars[0]->read_all(Subprocess::Stream::Stderr);

  CallCounts counts = run_to_end(pod, pod["spec"]["containers"][0]);
  ASSERT_FALSE(HasFailure());
  expect_spread(counts, 8, {1, 2, 3, 4});
  stop_sidecar(pod, *sidecars[0]);
}

// Issue 15 in the mesh: a pod annotated for tracing and the access log. Its sidecar has no
// config file, only the injected spec's env, and still exports a SERVER and a CLIENT span per
// call to the collector and writes one access line per call on its stdout (the container's log).
TEST_F(InjectedPodTest, AnnotatedPodsSidecarExportsSpansAndWritesAnAccessLinePerCall) {
  // The collector: the test OTLP receiver on the pod's loopback (where a node-local agent's
  // hostPort would be). The sidecar's own connections (uid 1337) are not redirected.
  const std::string spans_path = dir() + "/spans.jsonl";
  auto receiver = spawn_in(client(),
                           {"/usr/bin/python3",
                            std::string(H2MESH_SOURCE_DIR) + "/tests/fakes/otlp_receiver.py",
                            "--out", spans_path},
                           "otlp-receiver");
  ASSERT_TRUE(receiver);
  auto listening = receiver->wait_for_line(
      Subprocess::Stream::Stdout,
      [](const std::string& l) { return l.find(" listening on ") != std::string::npos; },
      std::chrono::seconds(30));
  std::smatch port;
  ASSERT_TRUE(listening && std::regex_search(*listening, port, std::regex(R"(:(\d+)\s*$)")))
      << "the OTLP receiver did not start (npm ci --prefix tests/fakes/otlp):\n"
      << receiver->read_all(Subprocess::Stream::Stderr);

  std::string manifest = client_pod_manifest(
      R"([greeter, call, --target, "greeter.grpcdemo.svc.cluster.local:50051", -n, "8"])");
  manifest.replace(manifest.find("  labels:\n"), 0,
                   "  annotations:\n"
                   "    h2mesh.io/otlp-endpoint: http://127.0.0.1:" + port[1].str() + "/v1/traces\n"
                   "    h2mesh.io/access-log: stdout\n");
  Json pod = inject(manifest);
  ASSERT_TRUE(pod.is_object());

  // The user's init container (8 calls), then the app (8 calls): all through the sidecar.
  auto sidecars = run_init_containers(pod, [&](const std::string& name, CallCounts counts) {
    if (name == "warm-up") expect_spread(counts, 8, {1, 2, 3, 4});
  });
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(sidecars.size(), 1u);
  CallCounts counts = run_to_end(pod, pod["spec"]["containers"][0]);
  ASSERT_FALSE(HasFailure());
  expect_spread(counts, 8, {1, 2, 3, 4});
  constexpr size_t kCalls = 16;

  // Stopped as the kubelet stops it: the lines and spans still queued go out before it exits,
  // so everything is there to count once it is gone.
  stop_sidecar(pod, *sidecars[0]);
  const std::string log = sidecars[0]->read_all(Subprocess::Stream::Stderr);

  // stdout holds the access lines and nothing else (h2mesh's own log is on stderr).
  std::vector<Json> lines;
  std::istringstream out(sidecars[0]->read_all(Subprocess::Stream::Stdout));
  for (std::string line; std::getline(out, line);) {
    Json j = Json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not an access line: " << line;
    lines.push_back(std::move(j));
  }
  ASSERT_EQ(lines.size(), kCalls) << log;
  std::map<std::string, int> per_upstream;
  for (const Json& j : lines) {
    EXPECT_EQ(j["authority"], "greeter.grpcdemo.svc.cluster.local:50051") << j;
    EXPECT_EQ(j["service"], "helloworld.Greeter") << j;
    EXPECT_EQ(j["method"], "SayHello") << j;
    EXPECT_EQ(j["grpc_status"], 0) << j;
    EXPECT_EQ(j["attempts"], 1) << j;
    per_upstream[j["upstream"].get<std::string>()]++;
  }
  EXPECT_EQ(per_upstream.size(), 4u) << "the lines name each greeter pod";

  // Each call's trace, as the access line names it: the call's SERVER span and its attempt's
  // CLIENT span, child of it, at the receiver.
  struct Spans {
    std::vector<Json> server, client;
  };
  std::map<std::string, Spans> traces;
  std::ifstream in(spans_path);
  size_t span_count = 0;
  for (std::string line; std::getline(in, line); ++span_count) {
    Json span = Json::parse(line, nullptr, false);
    ASSERT_TRUE(span.is_object()) << line;
    Spans& t = traces[span["trace_id"].get<std::string>()];
    (span["kind"] == "SPAN_KIND_SERVER" ? t.server : t.client).push_back(span);
  }
  EXPECT_EQ(span_count, 2 * kCalls) << log;
  for (const Json& j : lines) {
    const std::string trace = j.value("trace_id", std::string());
    ASSERT_EQ(trace.size(), 32u) << j;
    const Spans& t = traces[trace];
    ASSERT_EQ(t.server.size(), 1u) << "trace " << trace;
    ASSERT_EQ(t.client.size(), 1u) << "trace " << trace;
    EXPECT_EQ(t.client[0]["kind"], "SPAN_KIND_CLIENT");
    EXPECT_EQ(t.client[0]["parent_span_id"], t.server[0]["span_id"]);
    EXPECT_EQ(t.server[0]["name"], "helloworld.Greeter/SayHello");
    EXPECT_EQ(t.server[0]["attributes"]["rpc.grpc.status_code"], 0);
  }
}

TEST_F(InjectedPodTest, DeletingThePodStopsTheAppFirstAndNoCallFails) {
  const std::string manifest = client_pod_manifest(
      R"([mesh_call_loop, --target, "greeter.grpcdemo.svc.cluster.local:50051", --deadline-ms, "10000", --pause-ms, "2"])");
  Json pod = inject(manifest);
  ASSERT_TRUE(pod.is_object());
  auto sidecars = run_init_containers(pod, [](const std::string&, CallCounts) {});
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(sidecars.size(), 1u);

  const Json& app = pod["spec"]["containers"][0];
  auto process = spawn_in(client(), container_argv(pod, app), "app");
  ASSERT_TRUE(process);
  CallLoop loop(std::move(process), dir() + "/app.out");
  ASSERT_TRUE(loop.wait_more(200, std::chrono::seconds(60))) << loop.describe_failures();

  // Deletion: SIGTERM to the app; it finishes the call it has in flight through the sidecar,
  // which keeps running until the app is gone.
  ASSERT_TRUE(loop.stop()) << "the app did not stop";
  EXPECT_EQ(loop.done_failed(), 0) << loop.describe_failures();
  EXPECT_TRUE(failures(loop.calls()).empty()) << loop.describe_failures();
  const auto spread = pods_since(loop.calls(), Clock::time_point());
  EXPECT_EQ(spread.size(), 4u) << "calls did not reach every pod";
  ASSERT_TRUE(sidecars[0]->running());
  stop_sidecar(pod, *sidecars[0]);
  EXPECT_NE(sidecars[0]->read_all(Subprocess::Stream::Stderr).find("drain"), std::string::npos);
}

TEST_F(InjectedPodTest, LegacySidecarHoldsTheAppUntilTheProxyIsReady) {
  const std::string manifest = client_pod_manifest(
      R"([greeter, call, --target, "greeter.grpcdemo.svc.cluster.local:50051", -n, "24"])");
  Json pod = inject(manifest, {"--legacy-sidecar"});
  ASSERT_TRUE(pod.is_object());
  ASSERT_EQ(names(pod["spec"]["initContainers"]),
            (std::vector<std::string>{"h2mesh-init", "warm-up"}));
  ASSERT_EQ(names(pod["spec"]["containers"]), (std::vector<std::string>{"h2mesh-proxy", "app"}));

  // Legacy mode's known trap: the user's init container runs before any proxy, so its calls
  // are redirected to a port where nothing listens yet. Run only the interception here.
  const Json& init = pod["spec"]["initContainers"][0];
  auto installed = spawn_in(client(), container_argv(pod, init), "h2mesh-init");
  ASSERT_TRUE(installed);
  ASSERT_EQ(installed->wait(std::chrono::seconds(60)), std::optional<int>(0))
      << installed->read_all(Subprocess::Stream::Stderr);

  // The containers in order; the proxy's postStart hook must return before the app starts.
  const Json& proxy = pod["spec"]["containers"][0];
  auto sidecar = spawn_in(client(), container_argv(pod, proxy), "h2mesh-proxy");
  ASSERT_TRUE(sidecar);
  const Json* post_start = member(proxy["lifecycle"], "postStart");
  ASSERT_TRUE(post_start) << proxy.dump(2);
  ASSERT_EQ(run_hook(pod, proxy, *post_start), 0)
      << "postStart failed:\n"
      << sidecar->read_all(Subprocess::Stream::Stderr);

  CallCounts counts = run_to_end(pod, pod["spec"]["containers"][1]);
  ASSERT_FALSE(HasFailure());
  expect_spread(counts, 24, {1, 2, 3, 4});

  // Deletion in legacy mode: preStop, then SIGTERM to everyone at once.
  const Json* pre_stop = member(proxy["lifecycle"], "preStop");
  ASSERT_TRUE(pre_stop) << proxy.dump(2);
  EXPECT_EQ(run_hook(pod, proxy, *pre_stop), 0);
  stop_sidecar(pod, *sidecar);
}

}  // namespace
}  // namespace h2mesh_test::mesh
