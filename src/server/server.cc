#include "server/server.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <thread>

#include "admin/render.h"
#include "common/memory_trim.h"
#include "config/parser.h"
#include "cluster/host_set.h"
#include "common/log.h"
#include "net/socket.h"
#include "net/tls_context.h"
#include "net/tls_files.h"

namespace h2mesh::server {

namespace {
// Loads every TLS listener's files once, as the workers will: a config whose certificates do not
// load is refused before any worker sees it.
bool listener_tls_loads(const config::Config& config, std::string* error) {
  for (const auto& l : config.listeners) {
    if (!l.tls) continue;
    auto loaded = net::TlsContext::load(listener_tls_settings(*l.tls));
    if (!loaded) {
      *error = "listener " + l.name + ": TLS: " + loaded.error().message;
      return false;
    }
    // Served anyway (the files are what the operator gave; /ready says so), but said loudly.
    const int64_t now = static_cast<int64_t>(::time(nullptr));
    for (const auto& cert : (*loaded)->certificates()) {
      if (cert.not_after < now) {
        LOG_WARN("listener %s: TLS: the certificate %s has expired; clients will refuse it",
                 l.name.c_str(), cert.path.c_str());
      } else if (cert.not_after - now < net::kExpiryWarningSeconds) {
        LOG_WARN("listener %s: TLS: the certificate %s expires within 7 days", l.name.c_str(),
                 cert.path.c_str());
      }
    }
  }
  return true;
}

// The first TLS listener whose certificate in use is past its notAfter at `now` (Unix time).
std::optional<std::string> expired_listener(const proxy::WorkerStats& stats, int64_t now) {
  for (const auto& [name, tls] : stats.tls)
    for (const auto& cert : tls.certificates)
      if (cert.not_after != 0 && cert.not_after < now) return name;
  return std::nullopt;
}

// The signals the main thread handles through its signalfd.
sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);  // reopen the access log (logrotate)
  return set;
}
}  // namespace

class Server::SignalHandler final : public net::IoHandler {
 public:
  explicit SignalHandler(Server& server) : server_(server) {
    sigset_t set = handled_signals();
    fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    server_.loop_.add(fd_, EPOLLIN, this);
  }
  ~SignalHandler() override {
    server_.loop_.remove(fd_);
    ::close(fd_);
  }
  void on_io(uint32_t) override {
    signalfd_siginfo info;
    while (::read(fd_, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGHUP) {
        server_.reload("SIGHUP");
      } else if (info.ssi_signo == SIGUSR1) {
        server_.reopen_access_log();
      } else {
        server_.begin_shutdown(info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
      }
    }
  }

 private:
  Server& server_;
  int fd_;
};

Server::Server(config::Config config, std::string config_path,
               std::optional<config::MeshFlags> mesh_flags)
    : config_(std::make_shared<const config::Config>(std::move(config))),
      mesh_flags_(std::move(mesh_flags)),
      config_path_(std::move(config_path)) {}

Server::~Server() {
  for (auto& w : workers_) w->stop_and_join();
  rate_limits_.reset();
  workers_.clear();
  access_log_.reset();  // writes what the workers left in their rings
  // The calls the workers ended last are in the rings: sent before leaving (bounded).
  if (tracing_) tracing_->flush_and_stop();
  tracing_.reset();
  retired_tracing_.clear();
  resolvers_.clear();
  mesh_.reset();
  registry_.reset();
  admin_.reset();
  signals_.reset();
}

bool Server::bind_listener(const config::Listener& listener, size_t workers, BoundListener* out) {
  out->name = listener.name;
  out->address = listener.address.to_string();
  config::SocketAddress addr = listener.address;
  for (size_t w = 0; w < workers; ++w) {
    auto fd = net::listen_tcp(addr, /*reuse_port=*/true);
    if (!fd) {
      LOG_ERROR("listener %s: %s", listener.name.c_str(), fd.error().message.c_str());
      for (int f : out->fds) ::close(f);
      out->fds.clear();
      return false;
    }
    // Port 0: the first socket picks the port, the other workers share it.
    if (w == 0) addr.port = net::local_port(*fd);
    out->fds.push_back(*fd);
  }
  LOG_INFO("listener %s listening on %s", listener.name.c_str(), addr.to_string().c_str());
  return true;
}

bool Server::bind_outbound(size_t workers, std::vector<std::vector<int>>* fds, bool inbound) {
  const uint16_t port = inbound ? config_->mesh.inbound_port : config_->mesh.outbound_port;
  const char* which = inbound ? "inbound" : "outbound";
  std::vector<config::SocketAddress> addresses = {{"0.0.0.0", port}};
  // REDIRECT sends IPv6 connections to [::1]: bind [::] too where the host has IPv6.
  if (access("/proc/net/if_inet6", F_OK) == 0) addresses.push_back({"::", port});
  for (const auto& address : addresses) {
    for (size_t w = 0; w < workers; ++w) {
      auto fd = net::listen_tcp(address, /*reuse_port=*/true);
      if (!fd) {
        LOG_ERROR("mesh: %s port: %s", which, fd.error().message.c_str());
        for (auto& list : *fds)
          for (int f : list) ::close(f);
        return false;
      }
      (*fds)[w].push_back(*fd);
    }
    LOG_INFO("mesh: %s listener on %s", which, address.to_string().c_str());
  }
  return true;
}

bool Server::own_traffic_redirected() const {
  // A connection to TEST-NET-1 (RFC 5737: never routed) completes only when the rules send it
  // to our own outbound listener, which is already listening: the kernel finishes the handshake
  // before any worker accepts. Not redirected, it stays pending or fails: no loop.
  constexpr int kProbeMs = 200;
  auto fd = net::connect_tcp(config::SocketAddress{"192.0.2.1", 9});
  if (!fd) return false;  // no route: nothing leaves the pod, nothing can loop
  pollfd p{*fd, POLLOUT, 0};
  const bool done = poll(&p, 1, kProbeMs) == 1;
  const bool connected = done && net::socket_error(*fd) == 0;
  net::reset_and_close(*fd);
  return connected;
}

int Server::run() {
  signal(SIGPIPE, SIG_IGN);
  // Blocked before any thread starts, so only the signalfd of the main loop sees them.
  sigset_t set = handled_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signals_ = std::make_unique<SignalHandler>(*this);

  size_t n = config_->workers ? config_->workers : std::max(1u, std::thread::hardware_concurrency());
  std::string tls_error;
  if (!listener_tls_loads(*config_, &tls_error)) {
    LOG_ERROR("%s", tls_error.c_str());
    return 1;
  }
  for (const auto& listener : config_->listeners) {
    BoundListener b;
    if (!bind_listener(listener, n, &b)) return 1;
    bound_.push_back(std::move(b));
  }
  std::vector<std::vector<int>> fds(n);
  for (const auto& b : bound_)
    for (size_t w = 0; w < n; ++w) fds[w].push_back(b.fds[w]);
  std::vector<std::vector<int>> outbound(n), inbound(n);
  if (config_->mesh.enabled && !bind_outbound(n, &outbound, false)) return 1;
  if (config_->mesh.enabled && !bind_outbound(n, &inbound, true)) {
    for (auto& list : outbound)
      for (int fd : list) ::close(fd);
    return 1;
  }
  // Each worker has its own mesh TLS context (contexts reload on the thread that uses them). A
  // certificate that does not load stops the sidecar here, with the file and the reason.
  std::vector<std::unique_ptr<net::TlsContext>> mesh_tls(n);
  if (config_->mesh.enabled && config_->mesh.tls) {
    const config::MeshTls& tls = *config_->mesh.tls;
    for (size_t i = 0; i < n; ++i) {
      net::TlsServerSettings settings;
      settings.certificates = {{tls.cert, tls.key}};
      settings.alpn = {"h2"};
      settings.alpn_required = true;
      settings.ca_file = tls.ca;
      settings.require_client_cert = true;
      auto ctx = net::TlsContext::load(std::move(settings));
      if (!ctx) {
        LOG_ERROR("mesh: mTLS: %s", ctx.error().message.c_str());
        for (auto* list : {&outbound, &inbound})
          for (auto& fds_of_worker : *list)
            for (int fd : fds_of_worker) ::close(fd);
        return 1;
      }
      mesh_tls[i] = std::move(*ctx);
    }
    LOG_INFO("mesh: mTLS %s with %s (trust domain %s)",
             tls.mode == config::MeshTls::Mode::Strict ? "strict" : "permissive",
             tls.cert.c_str(), tls.trust_domain.c_str());
  }
  if (config_->mesh.enabled && own_traffic_redirected()) {
    LOG_ERROR(
        "mesh: the iptables rules redirect h2mesh's own connections back to it (uid %u, gid %u "
        "is not the uid the rules exclude): every relayed connection would loop. Run h2mesh as "
        "the --proxy-uid of `h2mesh iptables install` (default 1337)",
        static_cast<unsigned>(getuid()), static_cast<unsigned>(getgid()));
    for (auto* list : {&outbound, &inbound})
      for (auto& fds_of_worker : *list)
        for (int fd : fds_of_worker) ::close(fd);
    return 1;
  }

  if (config_->admin.enabled) {
    auto fd = net::listen_tcp(config_->admin.address, false, 64);
    if (!fd) {
      LOG_ERROR("admin: %s", fd.error().message.c_str());
      return 1;
    }
    config::SocketAddress bound = config_->admin.address;
    bound.port = net::local_port(*fd);
    LOG_INFO("admin listening on %s", bound.to_string().c_str());
    admin_ = std::make_unique<admin::AdminServer>(
        loop_, *fd,
        [this](const std::string& m, const std::string& p, const std::string& q,
               admin::AdminServer::Reply r) { handle_admin(m, p, q, std::move(r)); });
    dashboard_ = std::make_unique<admin::Dashboard>(
        loop_, [this](std::function<void(proxy::WorkerStats)> done) { collect(std::move(done)); });
  }

  int access_log_fd = -1;
  std::string access_log_error;
  if (!open_access_log(config_->access_log, &access_log_fd, &access_log_error)) {
    LOG_ERROR("%s", access_log_error.c_str());
    return 1;
  }
  registry_ = std::make_unique<cluster::ClusterRegistry>(loop_, config_->clusters);
  auto snapshots = registry_->snapshots();
  auto report_outlier = [this](const std::string& cluster, const std::string& host) {
    loop_.post([this, cluster, host] {
      if (!mesh_ || !mesh_->report_outlier(cluster, host)) registry_->report_outlier(cluster, host);
    });
  };
  for (size_t i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<Worker>(static_cast<int>(i), static_cast<uint32_t>(n),
                                                config_, fds[i], snapshots, report_outlier,
                                                std::move(outbound[i]), std::move(inbound[i]),
                                                std::move(mesh_tls[i])));
  }
  apply_access_log(std::nullopt, access_log_fd);
  registry_->set_publish([this](cluster::ClusterSnapshotPtr snap) {
    for (auto& w : workers_) w->post_snapshot(snap);
  });
  start_discovery();
  if (config_->mesh.enabled) {
    mesh_ = std::make_unique<MeshController>(loop_, config_, [this](proxy::MeshTablePtr table) {
      for (auto& w : workers_) w->post_mesh(table);
    });
    for (auto& w : workers_) w->post_mesh(mesh_->table());
    mesh_->start();
  }
  if (!config_path_.empty()) {
    watcher_ =
        std::make_unique<ConfigWatcher>(loop_, config_path_, [this] { reload("file changed"); });
  }
  rate_limits_ = std::make_unique<RateLimitCoordinator>(loop_, workers_);
  rate_limits_->set_config(config_);
  start_tracing();
  for (auto& w : workers_) w->start();
  serving_ = true;
  LOG_INFO("h2mesh serving with %zu worker(s)", n);
  release_startup_memory();
  loop_.run();
  for (auto& w : workers_) w->stop_and_join();
  LOG_INFO("h2mesh stopped");
  return 0;
}

void Server::release_startup_memory() {
  TrimResult t = trim_startup_memory();
  LOG_INFO("released %zu KiB of pages used only by start-up (resident %zu -> %zu KiB)", t.file_kib,
           t.rss_before_kib, t.rss_after_kib);
}

void Server::start_discovery() {
  // Resolvers of clusters that left, or whose discovery settings changed, stop; new ones start.
  for (auto it = resolvers_.begin(); it != resolvers_.end();) {
    const config::Cluster* c = config_->find_cluster(it->first);
    if (c && c->discovery == it->second.settings) {
      ++it;
    } else {
      it = resolvers_.erase(it);
    }
  }
  for (const auto& c : config_->clusters) {
    if (c.discovery.type == config::DiscoveryType::Static || resolvers_.count(c.name)) continue;
    std::string name = c.name;
    auto on_update = [this, name](std::vector<cluster::DiscoveredEndpoint> endpoints) {
      registry_->set_endpoints(name, endpoints);
    };
    auto resolver = c.discovery.type == config::DiscoveryType::Dns
                        ? discovery::make_dns_resolver(loop_, c, on_update)
                        : discovery::make_kubernetes_resolver(loop_, c, on_update);
    resolver->start();
    resolvers_[c.name] = ResolverEntry{c.discovery, std::move(resolver)};
  }
}

void Server::reload(const char* trigger) {
  if (shutting_down_) return;
  if (config_path_.empty()) {
    LOG_INFO("reload (%s): no config file (run --mesh without --config); nothing to reload",
             trigger);
    return;
  }
  std::string text = ConfigWatcher::read_file(config_path_);
  if (watcher_) watcher_->set_current(text);
  auto result = config::parse_config(text, config_path_);
  if (!result.ok()) {
    LOG_ERROR("reload (%s) refused: %zu error(s); the running configuration stays", trigger,
              result.errors.size());
    for (const auto& e : result.errors) LOG_ERROR("  %s", e.to_string().c_str());
    return;
  }
  config::Config next = std::move(*result.config);
  if (mesh_flags_) {
    std::string error;
    if (!config::apply_mesh_flags(*mesh_flags_, &next, &error)) {
      LOG_ERROR("reload (%s) refused: %s; the running configuration stays", trigger,
                error.c_str());
      return;
    }
  }
  if (next.mesh.enabled != config_->mesh.enabled ||
      next.mesh.outbound_port != config_->mesh.outbound_port) {
    LOG_WARN("reload: mesh mode and its outbound port change only with a restart");
    next.mesh.enabled = config_->mesh.enabled;
    next.mesh.outbound_port = config_->mesh.outbound_port;
  }
  if (next.mesh.inbound_port != config_->mesh.inbound_port || next.mesh.tls != config_->mesh.tls) {
    // The certificate files themselves are re-read as they change; which files, the mode and
    // the inbound port are fixed at start.
    LOG_WARN("reload: mesh.inbound_port and mesh.tls change only with a restart");
    next.mesh.inbound_port = config_->mesh.inbound_port;
    next.mesh.tls = config_->mesh.tls;
  }
  if (next.workers != config_->workers) {
    LOG_WARN("reload: the number of workers changes only with a restart; keeping %zu",
             workers_.size());
    next.workers = config_->workers;
  }
  if (!(next.admin.address == config_->admin.address) || next.admin.enabled != config_->admin.enabled) {
    LOG_WARN("reload: the admin address changes only with a restart");
    next.admin.enabled = config_->admin.enabled;
    next.admin.address = config_->admin.address;
  }
  std::string tls_error;
  if (!listener_tls_loads(next, &tls_error)) {
    LOG_ERROR("reload (%s) refused: %s; the running configuration stays", trigger,
              tls_error.c_str());
    return;
  }
  if (next.access_log && access_log_ &&
      static_cast<size_t>(next.access_log->queue_bytes) != access_log_->queue_bytes()) {
    LOG_WARN("reload: access_log.queue_bytes changes only with a restart");
    next.access_log->queue_bytes = static_cast<int64_t>(access_log_->queue_bytes());
  }
  int access_log_fd = -1;
  std::string access_log_error;
  if (!open_access_log(next.access_log, &access_log_fd, &access_log_error)) {
    LOG_ERROR("reload (%s) refused: %s; the running configuration stays", trigger,
              access_log_error.c_str());
    return;
  }
  // Listeners that stay (same name and address) keep their sockets; new ones are bound first,
  // so a failure leaves everything as it was.
  std::vector<BoundListener> bound;
  for (const auto& l : next.listeners) {
    auto old = std::find_if(bound_.begin(), bound_.end(), [&](const BoundListener& b) {
      return b.name == l.name && b.address == l.address.to_string();
    });
    if (old != bound_.end()) {
      bound.push_back(*old);
      continue;
    }
    BoundListener b;
    if (!bind_listener(l, workers_.size(), &b)) {
      for (const auto& nb : bound) {
        bool is_new = std::none_of(bound_.begin(), bound_.end(),
                                   [&](const BoundListener& o) { return o.fds == nb.fds; });
        if (is_new)
          for (int fd : nb.fds) ::close(fd);
      }
      LOG_ERROR("reload (%s) refused: cannot bind listener %s", trigger, l.name.c_str());
      if (access_log_fd >= 0) ::close(access_log_fd);
      return;
    }
    bound.push_back(std::move(b));
  }
  const std::optional<config::AccessLog> access_log_before = config_->access_log;
  const config::Tracing tracing_before = config_->tracing;
  config_ = std::make_shared<const config::Config>(std::move(next));
  bound_ = std::move(bound);
  log::Level level;
  if (log::parse_level(config_->log_level, &level)) log::set_level(level);
  // Snapshots of new clusters reach the workers before the routes that name them.
  registry_->reconfigure(config_->clusters);
  for (size_t w = 0; w < workers_.size(); ++w) {
    std::vector<int> fds;
    for (const auto& b : bound_) fds.push_back(b.fds[w]);
    workers_[w]->post_config(config_, std::move(fds));
  }
  rate_limits_->set_config(config_);
  apply_access_log(access_log_before, access_log_fd);
  reconfigure_tracing(tracing_before);
  start_discovery();
  if (mesh_) mesh_->set_config(config_);
  LOG_INFO("configuration reloaded (%s): %zu listener(s), %zu cluster(s)", trigger,
           config_->listeners.size(), config_->clusters.size());
}

void Server::start_tracing() {
  const config::Tracing& t = config_->tracing;
  if (!t.enabled) return;
  tracing_ = std::make_unique<observe::TraceExporter>(t, workers_.size());
  tracing_->start();
  for (size_t w = 0; w < workers_.size(); ++w)
    workers_[w]->set_tracer(std::make_unique<observe::TraceObserver>(tracing_->ring(w), t.sample_ratio));
  LOG_INFO("tracing: spans of %g of new traces to %s", t.sample_ratio, t.otlp_endpoint.c_str());
}

void Server::reconfigure_tracing(const config::Tracing& before) {
  const config::Tracing& t = config_->tracing;
  if (t == before) return;
  // The old exporter stays until every worker has let go of its ring: spans it still holds
  // then are counted dropped.
  if (tracing_) retired_tracing_.push_back(std::move(tracing_));
  if (t.enabled) {
    tracing_ = std::make_unique<observe::TraceExporter>(t, workers_.size());
    tracing_->start();
  }
  tracing_acks_ += workers_.size();
  for (size_t w = 0; w < workers_.size(); ++w) {
    auto tracer = tracing_ ? std::make_unique<observe::TraceObserver>(tracing_->ring(w), t.sample_ratio)
                           : nullptr;
    workers_[w]->post_tracer(std::move(tracer), [this] {
      loop_.post([this] {
        if (--tracing_acks_ == 0) retired_tracing_.clear();
      });
    });
  }
  if (t.enabled) {
    LOG_INFO("tracing: spans of %g of new traces to %s", t.sample_ratio, t.otlp_endpoint.c_str());
  } else {
    LOG_INFO("tracing: off");
  }
}

bool Server::discovery_synced(std::string* why) const {
  if (mesh_ && !mesh_->synced(why)) return false;
  for (const auto& [name, r] : resolvers_) {
    if (!r.resolver->synced()) {
      *why = "discovery of cluster " + name + " not synced: " + r.resolver->last_error();
      return false;
    }
  }
  return true;
}

void Server::begin_shutdown(const char* why) {
  if (shutting_down_) {
    LOG_WARN("%s again: still draining", why);
    return;
  }
  shutting_down_ = true;
  auto ms = config_->drain_timeout.count();
  LOG_INFO("%s: draining client connections (deadline %lldms)", why, static_cast<long long>(ms));
  drain_deadline_ = std::make_unique<net::Timer>(loop_, [this] {
    LOG_WARN("drain deadline reached: closing the remaining client connections");
    for (auto& w : workers_) w->post_force_close();
  });
  drain_deadline_->arm(config_->drain_timeout);
  for (auto& w : workers_) {
    w->post_drain([this] { loop_.post([this] { on_worker_drained(); }); });
  }
}

void Server::on_worker_drained() {
  if (++workers_drained_ == workers_.size()) {
    LOG_INFO("all client connections drained");
    loop_.stop();
  }
}

void Server::handle_admin(const std::string& method, const std::string& path,
                          const std::string& query, admin::AdminServer::Reply reply) {
  if (method != "GET") {
    reply(admin::HttpResponse{405, "text/plain", "only GET\n"});
    return;
  }
  if (path == "/ready") {
    std::string why;
    if (serving_ && !shutting_down_ && discovery_synced(&why)) {
      const bool tls = std::any_of(config_->listeners.begin(), config_->listeners.end(),
                                   [](const config::Listener& l) { return l.tls.has_value(); });
      if (!tls) {
        reply(admin::HttpResponse{200, "text/plain", "ready\n"});
        return;
      }
      // A listener serving an expired certificate fails every client that verifies it: not
      // ready, so that the orchestrator stops sending traffic here and says why.
      collect([reply = std::move(reply)](proxy::WorkerStats stats) {
        if (auto name = expired_listener(stats, static_cast<int64_t>(::time(nullptr)))) {
          reply(admin::HttpResponse{503, "text/plain",
                                    "serving certificate of listener " + *name + " expired\n"});
        } else {
          reply(admin::HttpResponse{200, "text/plain", "ready\n"});
        }
      });
    } else {
      if (why.empty()) why = shutting_down_ ? "draining" : "starting";
      reply(admin::HttpResponse{503, "text/plain", why + "\n"});
    }
    return;
  }
  if (path == "/") {
    reply(admin::HttpResponse{200, "text/html; charset=utf-8", std::string(admin::dashboard_page())});
    return;
  }
  if (path == "/live.json") {
    const admin::LiveOptions options = admin::parse_live_options(query);
    dashboard_->with_fresh([this, options, reply = std::move(reply)](const admin::LiveHistory& h) {
      proxy::MeshTablePtr table = mesh_ ? mesh_->table() : nullptr;
      const admin::LiveSample* newest = h.newest();
      auto health = admin_health(
          [&](const std::string& c) { return newest && newest->clusters.count(c) != 0; });
      const double unix_now =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
      reply(admin::HttpResponse{200, "application/json",
                                admin::render_live_json(h, health, *config_, table.get(), options,
                                                        unix_now)});
    });
    return;
  }
  if (path != "/metrics" && path != "/clusters") {
    reply(admin::HttpResponse{
        404, "text/plain", "try / (the dashboard), /live.json, /ready, /metrics or /clusters\n"});
    return;
  }
  bool metrics = path == "/metrics";
  collect([this, metrics, reply = std::move(reply)](proxy::WorkerStats total) {
    // The endpoints of Services some worker called; the others have no series yet.
    auto health = admin_health([&](const std::string& c) { return total.clusters.count(c) != 0; });
    proxy::MeshTablePtr table = mesh_ ? mesh_->table() : nullptr;
    if (metrics) {
      std::optional<discovery::ServiceMapWatcher::Counters> api;
      if (mesh_ && mesh_->watcher()) api = mesh_->watcher()->counters();
      reply(admin::HttpResponse{
          200, "text/plain; version=0.0.4",
          admin::render_metrics(total, health, *config_, table.get(), api ? &*api : nullptr) +
              observe::render_access_log_metrics(
                  access_log_ ? access_log_->counters() : observe::AccessLogWriter::Counters{})});
    } else {
      reply(admin::HttpResponse{
          200, "application/json",
          admin::render_clusters_json(total, health, *config_, table.get())});
    }
  });
}

admin::HealthView Server::admin_health(
    const std::function<bool(const std::string&)>& called) const {
  auto health = registry_->health();
  if (mesh_) {
    for (auto& [name, hosts] : mesh_->health())
      if (called(name)) health.emplace(name, std::move(hosts));
  }
  return health;
}

void Server::collect(std::function<void(proxy::WorkerStats)> done) {
  // Ask every worker for a copy of its counters; answer when the last one is in.
  struct Gather {
    proxy::WorkerStats total;
    size_t remaining;
  };
  auto gather = std::make_shared<Gather>();
  gather->remaining = workers_.size();
  auto finish = [gather, done = std::move(done)] { done(std::move(gather->total)); };
  for (auto& w : workers_) {
    w->post_collect([this, gather, finish](proxy::WorkerStats stats) {
      loop_.post([gather, finish, stats = std::move(stats)] {
        gather->total.add(stats);
        if (--gather->remaining == 0) finish();
      });
    });
  }
}

bool Server::open_access_log(const std::optional<config::AccessLog>& next, int* fd,
                             std::string* error) {
  if (!next) return true;
  // The running output stays while the path does (SIGUSR1 reopens it).
  if (access_log_ && config_->access_log && config_->access_log->path == next->path) return true;
  auto opened = observe::open_access_log(next->path);
  if (!opened) {
    *error = opened.error().message;
    return false;
  }
  *fd = *opened;
  return true;
}

void Server::apply_access_log(const std::optional<config::AccessLog>& before, int fd) {
  const std::optional<config::AccessLog>& now = config_->access_log;
  if (now && !access_log_)
    access_log_ = std::make_unique<observe::AccessLogWriter>(workers_.size(),
                                                             static_cast<size_t>(now->queue_bytes));
  if (fd >= 0) access_log_->set_output(fd);
  if (now == before) return;
  const uint64_t change = ++access_log_changes_;
  if (now) {
    auto format = std::make_shared<const observe::LineFormat>(*now);
    for (size_t i = 0; i < workers_.size(); ++i)
      workers_[i]->post_access_log(format, &access_log_->ring(i));
    LOG_INFO("access log: %s (%s, sample_ratio %g)", now->path.c_str(),
             now->format == config::AccessLog::Format::Json ? "json" : "text", now->sample_ratio);
    return;
  }
  // Off: the file closes once no worker can add a line any more.
  auto remaining = std::make_shared<size_t>(workers_.size());
  for (auto& w : workers_) {
    w->post_access_log(nullptr, nullptr, [this, remaining, change] {
      loop_.post([this, remaining, change] {
        if (--*remaining == 0 && change == access_log_changes_) access_log_->set_output(-1);
      });
    });
  }
  LOG_INFO("access log: off");
}

void Server::reopen_access_log() {
  if (!config_->access_log || !access_log_) {
    LOG_INFO("SIGUSR1: no access log to reopen");
    return;
  }
  const std::string& path = config_->access_log->path;
  if (path == "stdout") return;
  auto opened = observe::open_access_log(path);
  if (!opened) {
    LOG_ERROR("SIGUSR1: %s; still writing to the file opened before",
              opened.error().message.c_str());
    return;
  }
  access_log_->set_output(*opened);
  LOG_INFO("SIGUSR1: access log %s reopened", path.c_str());
}

}  // namespace h2mesh::server
