#include "webhook/webhook_command.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <array>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>

#include "admin/admin_server.h"
#include "common/log.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "net/tls_context.h"
#include "webhook/admission.h"
#include "webhook/namespace_watch.h"
#include "webhook/webhook_server.h"

namespace h2mesh::webhook {
namespace {

// In-flight reviews get this long after SIGTERM; the API server's own timeout is 10 s by default.
constexpr auto kDrainDeadline = std::chrono::seconds(25);

// Upper bounds of the review latency histogram, in seconds (the time to decide and answer, not
// counting the network).
constexpr std::array<double, 8> kLatencyBuckets = {0.0005, 0.001, 0.0025, 0.005,
                                                   0.01,   0.025, 0.05,   0.25};

struct Stats {
  std::array<uint64_t, kReviewResults> results{};
  uint64_t unsynced = 0;
  std::array<uint64_t, kLatencyBuckets.size()> buckets{};  // not cumulative; summed when shown
  uint64_t latency_count = 0;
  double latency_sum = 0;

  void observe(double seconds) {
    for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
      if (seconds <= kLatencyBuckets[i]) {
        ++buckets[i];
        break;
      }
    }
    ++latency_count;
    latency_sum += seconds;
  }
};

class SignalWatch final : public net::IoHandler {
 public:
  SignalWatch(net::EventLoop& loop, std::function<void(const char*)> on_signal)
      : loop_(loop), on_signal_(std::move(on_signal)) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    loop_.add(fd_, EPOLLIN, this);
  }
  ~SignalWatch() override {
    loop_.remove(fd_);
    ::close(fd_);
  }
  void on_io(uint32_t) override {
    signalfd_siginfo info;
    while (::read(fd_, &info, sizeof(info)) == sizeof(info))
      on_signal_(info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
  }

 private:
  net::EventLoop& loop_;
  std::function<void(const char*)> on_signal_;
  int fd_ = -1;
};

void line(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void line(std::string& out, const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  out += buf;
  out += '\n';
}

std::string metrics_text(const Stats& stats, const WebhookServer& server,
                         const NamespaceWatch& namespaces, const net::TlsContext& tls) {
  std::string out;
  line(out, "# HELP h2mesh_webhook_requests_total AdmissionReviews answered, by what was done.");
  line(out, "# TYPE h2mesh_webhook_requests_total counter");
  for (size_t i = 0; i < kReviewResults; ++i) {
    line(out, "h2mesh_webhook_requests_total{result=\"%s\"} %" PRIu64,
         review_result_name(static_cast<ReviewResult>(i)), stats.results[i]);
  }
  line(out,
       "# HELP h2mesh_webhook_unsynced_total Pods admitted without the sidecar because the "
       "namespaces were not listed yet.");
  line(out, "# TYPE h2mesh_webhook_unsynced_total counter");
  line(out, "h2mesh_webhook_unsynced_total %" PRIu64, stats.unsynced);
  line(out, "# HELP h2mesh_webhook_review_duration_seconds Time to decide and answer one review.");
  line(out, "# TYPE h2mesh_webhook_review_duration_seconds histogram");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    cumulative += stats.buckets[i];
    line(out, "h2mesh_webhook_review_duration_seconds_bucket{le=\"%g\"} %" PRIu64,
         kLatencyBuckets[i], cumulative);
  }
  line(out, "h2mesh_webhook_review_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64,
       stats.latency_count);
  line(out, "h2mesh_webhook_review_duration_seconds_sum %.6f", stats.latency_sum);
  line(out, "h2mesh_webhook_review_duration_seconds_count %" PRIu64, stats.latency_count);
  const auto& c = server.counters();
  const std::pair<const char*, uint64_t> server_counters[] = {
      {"connections_total", c.connections}, {"tls_handshake_failures_total", c.handshake_failures},
      {"http_requests_total", c.requests},  {"http_rejected_total", c.rejected},
      {"timeouts_total", c.timeouts},       {"connections_refused_total", c.refused},
      {"tls_reloads_total", tls.reloads()}, {"tls_reload_failures_total", tls.reload_failures()},
  };
  for (const auto& [name, value] : server_counters) {
    line(out, "# TYPE h2mesh_webhook_%s counter", name);
    line(out, "h2mesh_webhook_%s %" PRIu64, name, value);
  }
  line(out, "# TYPE h2mesh_webhook_open_connections gauge");
  line(out, "h2mesh_webhook_open_connections %zu", server.open_connections());
  line(out, "# TYPE h2mesh_webhook_namespaces gauge");
  line(out, "h2mesh_webhook_namespaces %zu", namespaces.size());
  line(out, "# TYPE h2mesh_webhook_namespaces_synced gauge");
  line(out, "h2mesh_webhook_namespaces_synced %d", namespaces.synced() ? 1 : 0);
  const auto& w = namespaces.counters();
  line(out, "# TYPE h2mesh_webhook_namespace_watch_failures_total counter");
  line(out, "h2mesh_webhook_namespace_watch_failures_total %" PRIu64, w.failures);
  line(out, "# TYPE h2mesh_webhook_namespace_lists_total counter");
  line(out, "h2mesh_webhook_namespace_lists_total %" PRIu64, w.lists);
  return out;
}

void log_review(const Review& r) {
  const char* pod = r.pod.empty() ? "?" : r.pod.c_str();
  switch (r.result) {
    case ReviewResult::Injected:
      LOG_INFO("webhook: injected the sidecar into pod %s", pod);
      break;
    case ReviewResult::NotSelected:
      if (r.unsynced) {
        LOG_WARN("webhook: pod %s: %s", pod, r.detail.c_str());
      } else {
        LOG_DEBUG("webhook: pod %s not selected: %s", pod, r.detail.c_str());
      }
      break;
    case ReviewResult::AlreadyInjected:
    case ReviewResult::Skipped:
      LOG_INFO("webhook: pod %s not injected: %s", pod, r.detail.c_str());
      break;
    case ReviewResult::Invalid:
      LOG_WARN("webhook: unreadable review%s%s: %s; allowed without a patch",
               r.uid.empty() ? "" : " ", r.uid.c_str(), r.detail.c_str());
      break;
    case ReviewResult::Error:
      LOG_WARN("webhook: pod %s not injected: %s", pod, r.detail.c_str());
      break;
  }
}

}  // namespace

int run_webhook(const WebhookSettings& settings) {
  signal(SIGPIPE, SIG_IGN);
  net::EventLoop loop;
  bool draining = false;
  bool drained = false;

  net::TlsServerSettings tls_settings;
  tls_settings.certificates = {{settings.cert_file, settings.key_file}};
  tls_settings.alpn = {"http/1.1"};
  auto tls = net::TlsContext::load(tls_settings);
  if (!tls) {
    LOG_ERROR("webhook: %s", tls.error().message.c_str());
    return 1;
  }
  auto listen_fd = net::listen_tcp(settings.listen, false);
  if (!listen_fd) {
    LOG_ERROR("webhook: %s", listen_fd.error().message.c_str());
    return 1;
  }
  config::SocketAddress bound = settings.listen;
  bound.port = net::local_port(*listen_fd);
  auto admin_fd = net::listen_tcp(settings.admin, false, 64);
  if (!admin_fd) {
    ::close(*listen_fd);
    LOG_ERROR("webhook: admin: %s", admin_fd.error().message.c_str());
    return 1;
  }
  config::SocketAddress admin_bound = settings.admin;
  admin_bound.port = net::local_port(*admin_fd);

  NamespaceWatch namespaces(loop, settings.kubeconfig);
  Stats stats;
  WebhookServer server(loop, *listen_fd, **tls, ServerSettings{}, [&](const HttpRequest& req) {
    if (req.path != "/mutate") return HttpReply{404, "text/plain", "try POST /mutate\n"};
    if (req.method != "POST") return HttpReply{405, "text/plain", "only POST\n"};
    const auto start = Clock::now();
    Review r = review(req.body, namespaces, settings.inject);
    stats.observe(std::chrono::duration<double>(Clock::now() - start).count());
    ++stats.results[static_cast<size_t>(r.result)];
    if (r.unsynced) ++stats.unsynced;
    log_review(r);
    return HttpReply{200, "application/json", std::move(r.response)};
  });

  admin::AdminServer admin(
      loop, *admin_fd,
      [&](const std::string& method, const std::string& path, const std::string&,
          admin::AdminServer::Reply reply) {
        if (method != "GET") {
          reply(admin::HttpResponse{405, "text/plain", "only GET\n"});
        } else if (path == "/ready") {
          if (draining) {
            reply(admin::HttpResponse{503, "text/plain", "draining\n"});
          } else if (!namespaces.synced()) {
            std::string why = namespaces.last_error();
            reply(admin::HttpResponse{
                503, "text/plain",
                "namespaces not listed yet" + (why.empty() ? "" : ": " + why) + "\n"});
          } else {
            reply(admin::HttpResponse{200, "text/plain", "ready\n"});
          }
        } else if (path == "/metrics") {
          reply(admin::HttpResponse{200, "text/plain; version=0.0.4",
                                    metrics_text(stats, server, namespaces, **tls)});
        } else {
          reply(admin::HttpResponse{404, "text/plain", "try /ready or /metrics\n"});
        }
      });

  net::Timer deadline(loop, [&] {
    LOG_WARN("webhook: %zu connection(s) still open %llds after the signal; exiting",
             server.open_connections(), static_cast<long long>(kDrainDeadline.count()));
    loop.stop();
  });
  SignalWatch signals(loop, [&](const char* name) {
    if (draining) return;
    draining = true;
    LOG_INFO("webhook: %s: no new connections; finishing %zu open one(s)", name,
             server.open_connections());
    deadline.arm(kDrainDeadline);
    server.drain([&] {
      drained = true;
      LOG_INFO("webhook: drained");
      loop.stop();
    });
  });

  namespaces.start();
  LOG_INFO("webhook: serving POST /mutate on https://%s (admin on %s, image %s%s)",
           bound.to_string().c_str(), admin_bound.to_string().c_str(),
           settings.inject.image.c_str(), settings.inject.legacy_sidecar ? ", legacy sidecar" : "");
  loop.run();
  return drained ? 0 : 1;
}

}  // namespace h2mesh::webhook
