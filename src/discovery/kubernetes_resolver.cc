// Kubernetes discovery: LIST then WATCH of the discovery.k8s.io/v1 EndpointSlices of one Service,
// straight from the API server, on the main thread's event loop.
//
// One connection at a time. A LIST reply replaces the slice cache and gives the resourceVersion
// the WATCH starts from; the WATCH (on the same kept-alive connection) applies ADDED, MODIFIED and
// DELETED slices and remembers every resourceVersion it sees (bookmarks included), so that a
// dropped or ended watch resumes where it stopped. Only "410 Gone" (an HTTP reply or an ERROR
// event) forces a new LIST. Errors keep the last known endpoints and retry with exponential
// backoff and jitter. Every change of the endpoint union is reported as a complete set.

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <optional>

#include "common/log.h"
#include "common/random.h"
#include "discovery/k8s_credentials.h"
#include "discovery/k8s_http.h"
#include "discovery/k8s_slices.h"
#include "discovery/k8s_tls_client.h"
#include "discovery/resolver.h"

namespace h2mesh::discovery {
namespace {

using namespace std::chrono_literals;
using k8s::TlsClient;

constexpr Duration kConnectTimeout = 10s;   // lookup + TCP + TLS handshake
constexpr Duration kReplyTimeout = 60s;     // a LIST reply, or a WATCH's response headers
constexpr Duration kWatchSlack = 30s;       // a watch silent for timeoutSeconds + this is dead
constexpr Duration kMinWatchLife = 1s;      // a watch ending sooner is retried with backoff
constexpr Duration kRelogInterval = 60s;    // the same error is logged again after this
constexpr size_t kMaxListBytes = 64 << 20;  // 1000 endpoints per slice, many slices
constexpr size_t kMaxLineBytes = 16 << 20;  // one slice
constexpr size_t kMaxErrorBytes = 64 << 10;
constexpr uint32_t kGoneBeforeBackoff = 3;  // 410s in a row relisted at once

int64_t to_ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

const char* event_name(k8s::WatchEventType t) {
  switch (t) {
    case k8s::WatchEventType::Added:
      return "ADDED";
    case k8s::WatchEventType::Modified:
      return "MODIFIED";
    case k8s::WatchEventType::Deleted:
      return "DELETED";
    case k8s::WatchEventType::Bookmark:
      return "BOOKMARK";
    case k8s::WatchEventType::Error:
      return "ERROR";
  }
  return "?";
}

class KubernetesResolver final : public Resolver, private TlsClient::Visitor {
 public:
  KubernetesResolver(net::EventLoop& loop, const config::Cluster& cluster, OnUpdate on_update)
      : loop_(loop),
        cluster_(cluster.name),
        settings_(cluster.discovery.kubernetes),
        on_update_(std::move(on_update)),
        random_(static_cast<uint64_t>(getpid()) * 0x9e3779b97f4a7c15ULL ^
                static_cast<uint64_t>(Clock::now().time_since_epoch().count())),
        cache_(settings_.port),
        retry_timer_(loop, [this] { connect(); }),
        reply_timer_(loop, [this] { on_reply_timeout(); }) {}

  ~KubernetesResolver() override {
    if (conn_) conn_->close();  // no callback reaches us from here on
  }

  void start() override {
    last_error_ = "kubernetes: no EndpointSlice list received yet";
    connect();
  }
  bool synced() const override { return synced_; }
  std::string last_error() const override { return last_error_; }

 private:
  enum class Phase { Idle, Connecting, Listing, Watching };

  // ---- connection -------------------------------------------------------------------------

  bool load_credentials() {
    if (creds_) return true;
    if (settings_.service.empty()) {
      fail("kubernetes: cluster " + cluster_ + " names no service", true);
      return false;
    }
    auto creds = k8s::load_credentials(settings_);
    if (!creds) {
      fail("kubernetes: " + creds.error().message, true);
      return false;
    }
    creds_ = std::move(*creds);
    tokens_ = std::make_unique<k8s::TokenSource>(creds_->token, creds_->token_file);
    namespace_ = !settings_.namespace_.empty() ? settings_.namespace_
                 : !creds_->namespace_.empty() ? creds_->namespace_
                                               : "default";
    bool v6 = creds_->host.find(':') != std::string::npos;
    host_header_ =
        (v6 ? "[" + creds_->host + "]" : creds_->host) + ":" + std::to_string(creds_->port);
    collection_ = "/apis/discovery.k8s.io/v1/namespaces/" + k8s::url_encode(namespace_) +
                  "/endpointslices?labelSelector=" +
                  k8s::url_encode("kubernetes.io/service-name=" + settings_.service);
    LOG_INFO(
        "kubernetes: cluster %s follows the EndpointSlices of service %s/%s (port %s) from %s "
        "with the credentials of %s",
        cluster_.c_str(), namespace_.c_str(), settings_.service.c_str(),
        settings_.port.empty() ? "(the only one)" : settings_.port.c_str(), creds_->server.c_str(),
        creds_->origin.c_str());
    return true;
  }

  void connect() {
    drop_connection();
    if (!load_credentials()) return;
    auto token = tokens_->get(loop_.now());
    if (!token) {
      fail("kubernetes: " + token.error().message, true);
      return;
    }
    auto ctx = k8s::make_tls_context(*creds_);
    if (!ctx) {
      fail("kubernetes: TLS setup for " + creds_->server + " failed: " + ctx.error().message, true);
      return;
    }
    phase_ = Phase::Connecting;
    conn_ = std::make_unique<TlsClient>(loop_, static_cast<TlsClient::Visitor&>(*this));
    const std::string& verify =
        creds_->tls_server_name.empty() ? creds_->host : creds_->tls_server_name;
    conn_->connect(std::move(*ctx), creds_->host, creds_->port, verify, kConnectTimeout);
  }

  // Closes the connection (no callback follows) and forgets the request in progress.
  void drop_connection() {
    reply_timer_.cancel();
    if (conn_) {
      conn_->close();
      loop_.defer_delete(std::move(conn_));  // we may be inside one of its callbacks
    }
    ++connection_id_;
    phase_ = Phase::Idle;
  }

  void send_request() {
    auto token = tokens_->get(loop_.now());
    if (!token) {
      fail("kubernetes: " + token.error().message, true);
      return;
    }
    std::string target = collection_;
    if (need_list_) {
      phase_ = Phase::Listing;
    } else {
      phase_ = Phase::Watching;
      // Spread like client-go (5 to 10 minutes), so that many proxies do not re-watch together.
      watch_timeout_ = 300s + seconds(random_.uniform(300));
      target += "&watch=1&resourceVersion=" + k8s::url_encode(resource_version_) +
                "&allowWatchBookmarks=true&timeoutSeconds=" +
                std::to_string(std::chrono::duration_cast<seconds>(watch_timeout_).count());
      watch_started_ = loop_.now();
    }
    reader_.reset();
    body_.clear();
    lines_.clear();
    watch_open_ = false;
    reply_timer_.arm(kReplyTimeout);
    LOG_DEBUG("kubernetes: GET %s%s", creds_->server.c_str(), target.c_str());
    conn_->send(k8s::format_get(host_header_, target, *token));
  }

  // ---- TlsClient::Visitor -----------------------------------------------------------------

  void on_connected() override { send_request(); }

  void on_data(std::string_view bytes) override {
    const uint64_t id = connection_id_;
    while (!bytes.empty() && id == connection_id_) {
      auto used = reader_.feed(bytes, &body_);
      if (!used) {
        fail("kubernetes: " + creds_->server + ": " + used.error().message, true);
        return;
      }
      bytes.remove_prefix(*used);
      const bool streaming =
          phase_ == Phase::Watching && reader_.headers_done() && reader_.status() == 200;
      if (streaming) {
        if (!watch_open_) {
          watch_open_ = true;  // the API server accepted the watch: discovery works again
          failures_ = 0;
          if (!last_error_.empty()) clear_error();
        }
        reply_timer_.arm(watch_timeout_ + kWatchSlack);
        if (!consume_watch_body()) return;
      } else if (body_.size() > (reader_.status() == 200 ? kMaxListBytes : kMaxErrorBytes)) {
        fail("kubernetes: the reply from " + creds_->server + " is too large", true);
        return;
      }
      if (reader_.complete()) {
        on_reply_complete();
        return;  // nothing else is expected before the next request
      }
    }
  }

  void on_closed(TlsClient::Failure failure, const std::string& detail) override {
    loop_.defer_delete(std::move(conn_));
    ++connection_id_;
    // A body delimited by the connection's end is complete now.
    if (reader_.headers_done() && !reader_.complete() && reader_.finish_on_close()) {
      on_reply_complete();
      return;
    }
    const std::string& server = creds_->server;
    if (phase_ == Phase::Watching && reader_.headers_done() && reader_.status() == 200) {
      fail("kubernetes: the watch of " + server + " was cut (" + detail +
               "); resuming from "
               "resourceVersion " +
               resource_version_,
           false);
      return;
    }
    switch (failure) {
      case TlsClient::Failure::Resolve:
        fail("kubernetes: cannot resolve the API server " + server + ": " + detail, true);
        return;
      case TlsClient::Failure::Connect:
        fail("kubernetes: cannot connect to the API server " + server + ": " + detail, true);
        return;
      case TlsClient::Failure::Verify:
        fail("kubernetes: TLS verification of " + server + " failed: " + detail +
                 "; checked against the CA " + ca_description(),
             true);
        return;
      case TlsClient::Failure::Handshake:
        fail("kubernetes: TLS handshake with " + server + " failed: " + detail, true);
        return;
      case TlsClient::Failure::Timeout:
        fail("kubernetes: no connection to the API server " + server + ": " + detail, true);
        return;
      case TlsClient::Failure::Closed:
      case TlsClient::Failure::Io:
        fail("kubernetes: the API server " + server + " closed the connection " +
                 (reader_.headers_done() ? "in the middle of a reply" : "before replying") + " (" +
                 detail + ")",
             !synced_);
        return;
    }
  }

  // ---- replies ----------------------------------------------------------------------------

  void on_reply_timeout() {
    fail(phase_ == Phase::Watching && reader_.headers_done()
             ? "kubernetes: the watch of " + creds_->server + " went silent; reconnecting"
             : "kubernetes: no reply from the API server " + creds_->server + " within " +
                   std::to_string(to_ms(kReplyTimeout) / 1000) + "s",
         phase_ != Phase::Watching);
  }

  void on_reply_complete() {
    reply_timer_.cancel();
    if (reader_.status() != 200) {
      on_error_reply();
      return;
    }
    if (phase_ == Phase::Listing) {
      if (!on_list(body_)) return;
    } else if (loop_.now() - watch_started_ < kMinWatchLife) {
      // The server ended the watch at once: do not spin.
      fail("kubernetes: the API server " + creds_->server + " ended the watch at once", false);
      return;
    }
    // LIST done (the WATCH follows) or the WATCH ended by its timeoutSeconds (watch again).
    if (conn_ && reader_.keep_alive()) {
      send_request();
    } else {
      drop_connection();
      retry_timer_.arm(Duration::zero());
    }
  }

  void on_error_reply() {
    const int status = reader_.status();
    auto st = k8s::parse_status(body_);
    std::string detail = st && !st->message.empty() ? st->message : body_.substr(0, 200);
    std::string code = std::to_string(status) + " " + reader_.reason();
    if (status == 410) {
      relist("the resourceVersion " + resource_version_ + " is too old (410 Gone" +
             (detail.empty() ? "" : ": " + detail) + ")");
      return;
    }
    std::string msg;
    if (status == 401) {
      tokens_->invalidate();  // a rotated token is picked up by the next attempt
      msg = "kubernetes: API server rejected the token (" + code + ")" +
            (tokens_->path().empty() ? " of " + creds_->origin : " read from " + tokens_->path());
    } else if (status == 403) {
      msg = "kubernetes: API server denied access (" + code + "): " + detail +
            "; the account needs get, list and watch on endpointslices.discovery.k8s.io in "
            "namespace " +
            namespace_;
    } else if (status == 404) {
      msg = "kubernetes: API server " + creds_->server +
            " has no discovery.k8s.io/v1 "
            "EndpointSlices (" +
            code + "): " + detail;
    } else {
      msg = "kubernetes: API server " + creds_->server + " answered " + code +
            (detail.empty() ? "" : ": " + detail);
    }
    fail(msg, true);
  }

  bool on_list(const std::string& body) {
    auto list = k8s::parse_slice_list(body);
    if (!list) {
      fail(
          "kubernetes: bad EndpointSlice list from " + creds_->server + ": " + list.error().message,
          true);
      return false;
    }
    cache_.reset(*list);
    resource_version_ = list->resource_version;
    need_list_ = false;
    gone_in_a_row_ = 0;
    failures_ = 0;
    log_problems();
    const bool first = !synced_;
    synced_ = true;
    clear_error();
    publish(true);
    LOG_INFO("kubernetes: cluster %s %s: %zu endpoint(s) in %zu slice(s) at resourceVersion %s",
             cluster_.c_str(), first ? "synced" : "listed again", published_.size(),
             cache_.slice_count(), resource_version_.c_str());
    return true;
  }

  // Handles the complete lines of the watch body; false when the connection was dropped.
  bool consume_watch_body() {
    lines_.append(body_);
    body_.clear();
    const uint64_t id = connection_id_;
    while (auto line = lines_.next()) {
      if (line->empty()) continue;
      on_watch_line(*line);
      if (id != connection_id_) return false;
    }
    if (lines_.pending() > kMaxLineBytes) {
      fail("kubernetes: a watch event from " + creds_->server + " is larger than 16 MiB", true);
      return false;
    }
    return true;
  }

  void on_watch_line(const std::string& line) {
    auto ev = k8s::parse_watch_event(line);
    if (!ev) {
      fail("kubernetes: bad watch event from " + creds_->server + ": " + ev.error().message, true);
      return;
    }
    switch (ev->type) {
      case k8s::WatchEventType::Added:
      case k8s::WatchEventType::Modified:
      case k8s::WatchEventType::Deleted:
        LOG_DEBUG("kubernetes: %s slice %s at resourceVersion %s", event_name(ev->type),
                  ev->slice.key.c_str(), ev->resource_version.c_str());
        cache_.apply(*ev);
        if (!ev->resource_version.empty()) resource_version_ = ev->resource_version;
        gone_in_a_row_ = 0;
        log_problems();
        publish(false);
        return;
      case k8s::WatchEventType::Bookmark:
        resource_version_ = ev->resource_version;
        return;
      case k8s::WatchEventType::Error:
        if (ev->status.code == 410) {
          relist("the resourceVersion " + resource_version_ + " is too old (410 " +
                 ev->status.reason + ": " + ev->status.message + ")");
        } else {
          fail("kubernetes: the watch of " + creds_->server +
                   " failed: " + std::to_string(ev->status.code) + " " + ev->status.reason + ": " +
                   ev->status.message,
               true);
        }
        return;
    }
  }

  // The watch cannot resume: LIST again (the last known endpoints stay until the list arrives).
  void relist(const std::string& why) {
    need_list_ = true;
    ++gone_in_a_row_;
    LOG_INFO("kubernetes: cluster %s: %s; listing again", cluster_.c_str(), why.c_str());
    drop_connection();
    retry_timer_.arm(gone_in_a_row_ > kGoneBeforeBackoff ? next_backoff() : Duration::zero());
  }

  // ---- results and errors -----------------------------------------------------------------

  void publish(bool always) {
    auto endpoints = cache_.endpoints();
    if (!always && endpoints == published_) return;
    published_ = endpoints;
    size_t ready = 0, fallback = 0;
    for (const auto& e : endpoints) {
      ready += e.ready;
      fallback += e.ready && e.terminating;
    }
    LOG_DEBUG("kubernetes: cluster %s: %zu endpoint(s), %zu ready", cluster_.c_str(),
              endpoints.size(), ready);
    if (fallback > 0)
      LOG_INFO("kubernetes: cluster %s: no endpoint is ready; %zu terminating endpoint(s) that "
               "still serve get the calls", cluster_.c_str(), fallback);
    on_update_(std::move(endpoints));
  }

  void log_problems() {
    for (const auto& p : cache_.take_problems())
      LOG_WARN("kubernetes: cluster %s: %s", cluster_.c_str(), p.c_str());
  }

  std::string ca_description() const {
    if (!creds_->ca.path.empty()) return creds_->ca.path;
    if (!creds_->ca.data.empty()) return "certificate-authority-data of " + creds_->origin;
    return "store of the system";
  }

  Duration next_backoff() {
    auto base = std::chrono::duration_cast<Duration>(settings_.backoff_base);
    auto max = std::chrono::duration_cast<Duration>(settings_.backoff_max);
    Duration d = base;
    for (uint32_t i = 0; i < failures_ && d < max; ++i) d *= 2;
    d = std::min(d, max);
    ++failures_;
    // Equal jitter: between half and all of the step, so retries never bunch up at zero.
    return d / 2 +
           Duration(static_cast<int64_t>(static_cast<double>((d / 2).count()) * random_.unit()));
  }

  // Records the error, logs it (the same one at most once a minute), drops the connection and
  // tries again after the backoff. `severe`: an error an operator must fix (ERROR) rather than a
  // hiccup discovery recovers from by itself (WARN).
  void fail(const std::string& message, bool severe) {
    drop_connection();
    Duration delay = next_backoff();
    last_error_ = message;
    TimePoint now = loop_.now();
    if (message != logged_error_ || now - logged_at_ >= kRelogInterval) {
      logged_error_ = message;
      logged_at_ = now;
      if (severe) {
        LOG_ERROR("%s (cluster %s; retrying in %" PRId64 "ms)", message.c_str(), cluster_.c_str(),
                  to_ms(delay));
      } else {
        LOG_WARN("%s (cluster %s; retrying in %" PRId64 "ms)", message.c_str(), cluster_.c_str(),
                 to_ms(delay));
      }
    }
    retry_timer_.arm(delay);
  }

  void clear_error() {
    if (!logged_error_.empty())
      LOG_INFO("kubernetes: cluster %s: the API server %s works again", cluster_.c_str(),
               creds_->server.c_str());
    last_error_.clear();
    logged_error_.clear();
  }

  net::EventLoop& loop_;
  const std::string cluster_;
  const config::KubernetesDiscovery settings_;
  OnUpdate on_update_;
  Random random_;

  std::optional<k8s::Credentials> creds_;
  std::unique_ptr<k8s::TokenSource> tokens_;
  std::string namespace_;
  std::string host_header_;
  std::string collection_;  // path and label selector of the Service's EndpointSlices

  std::unique_ptr<TlsClient> conn_;
  uint64_t connection_id_ = 0;  // changes whenever the connection is dropped
  Phase phase_ = Phase::Idle;
  k8s::HttpResponseReader reader_;
  std::string body_;
  k8s::LineBuffer lines_;
  bool watch_open_ = false;  // a 200 reply to the current WATCH arrived
  Duration watch_timeout_{};
  TimePoint watch_started_{};

  k8s::SliceCache cache_;
  std::string resource_version_;
  bool need_list_ = true;
  bool synced_ = false;
  std::vector<cluster::DiscoveredEndpoint> published_;

  std::string last_error_;
  std::string logged_error_;
  TimePoint logged_at_{};
  uint32_t failures_ = 0;  // in a row, for the backoff
  uint32_t gone_in_a_row_ = 0;

  net::Timer retry_timer_;
  net::Timer reply_timer_;  // LIST reply, WATCH headers, then WATCH silence
};

}  // namespace

std::unique_ptr<Resolver> make_kubernetes_resolver(net::EventLoop& loop,
                                                   const config::Cluster& cluster,
                                                   Resolver::OnUpdate on_update) {
  return std::make_unique<KubernetesResolver>(loop, cluster, std::move(on_update));
}

}  // namespace h2mesh::discovery
