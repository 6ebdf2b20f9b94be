#include "server/worker.h"

#include <pthread.h>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "net/original_dst.h"
#include "net/socket.h"
#include "net/tcp_transport.h"
#include "net/tls_transport.h"
#include "proxy/mesh_connector.h"

namespace h2mesh::server {
namespace {
// A peer sidecar's handshake is one round trip on a pod network; this only bounds a peer that
// never finishes one.
constexpr Duration kInboundHandshakeTimeout = std::chrono::seconds(10);
// The inbound side's name where listeners are named: TLS metrics, logs, PERMISSION_DENIED.
const std::string kInboundListener = "mesh-inbound";
}  // namespace

// What a listening socket takes: a configured listener's clients, or (mesh mode, no context) the
// connections the iptables rules redirect, leaving the pod or arriving at it.
enum class Intercepted { No, Outbound, Inbound };

net::TlsServerSettings listener_tls_settings(const config::ListenerTls& tls) {
  net::TlsServerSettings settings;
  for (const auto& c : tls.certificates) settings.certificates.push_back({c.cert, c.key});
  settings.alpn = tls.alpn;
  settings.alpn_required = true;
  settings.ca_file = tls.ca;
  settings.require_client_cert = tls.require_client_cert;
  return settings;
}

class Worker::Listener final : public net::IoHandler {
 public:
  Listener(Worker& worker, int fd, proxy::ListenerContextPtr ctx,
           Intercepted intercepted = Intercepted::No)
      : worker_(worker),
        fd_(fd),
        ctx_(std::move(ctx)),
        intercepted_(intercepted),
        resume_(worker.loop_, [this] { resume(); }) {
    if (ctx_) configure_tls(nullptr);
    worker_.loop_.add(fd_, EPOLLIN, this);
  }
  ~Listener() override { close_socket(); }

  void close_socket() {
    if (fd_ < 0) return;
    resume_.cancel();
    worker_.loop_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }
  const proxy::ListenerContextPtr& context() const { return ctx_; }
  void set_context(proxy::ListenerContextPtr ctx) {
    const config::ListenerTls* before = ctx_->listener.tls ? &*ctx_->listener.tls : nullptr;
    std::optional<config::ListenerTls> kept = before ? std::optional(*before) : std::nullopt;
    ctx_ = std::move(ctx);
    configure_tls(kept ? &*kept : nullptr);
  }
  net::TlsContext* tls() const { return tls_.get(); }

  void on_io(uint32_t) override {
    // Bounded so one busy listener cannot starve the connections of this worker.
    for (int i = 0; i < 64 && fd_ >= 0; ++i) {
      int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) return;
        // Out of descriptors (or kernel memory) the connection stays in the backlog, so epoll
        // reports the listener again at once: stop watching it for a moment rather than spin a
        // core and log on every turn. Connections that end meanwhile free descriptors.
        const bool exhausted = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
        uint64_t held_back = 0;
        if (log_.allow(worker_.loop_.now(), &held_back))
          LOG_WARN(
              "accept: %s%s%s", strerror(err), exhausted ? "; not accepting for 100ms" : "",
              held_back ? (" (" + std::to_string(held_back) + " more not logged)").c_str() : "");
        if (exhausted) {
          worker_.loop_.modify(fd_, 0, this);
          resume_.arm(kAcceptPause);
        }
        return;
      }
      net::set_nodelay(fd);
      if (intercepted_ == Intercepted::Outbound) {
        worker_.accept_outbound(fd);  // the mesh's outbound port
      } else if (intercepted_ == Intercepted::Inbound) {
        worker_.accept_inbound(fd);  // the mesh's inbound port
      } else if (ctx_->listener.tls) {
        accept_tls(fd);
      } else {
        worker_.accept_connection(fd, ctx_, nullptr);
      }
    }
  }

 private:
  void resume() {
    if (fd_ >= 0) worker_.loop_.modify(fd_, EPOLLIN, this);
  }

  // A TLS listener's context, made on this worker from the listener's settings; remade when a
  // reload changed them (`before`: the settings of the previous config, null when it had none).
  // Certificate rotation within the same settings is the context's own business.
  void configure_tls(const config::ListenerTls* before) {
    const auto& tls = ctx_->listener.tls;
    if (!tls) {
      tls_.reset();
      return;
    }
    if (tls_ && before && *before == *tls) return;
    auto loaded = net::TlsContext::load(listener_tls_settings(*tls));
    if (!loaded) {
      // The main thread loaded the same files before handing out this config, so this is a
      // file that changed in between. Without a context the listener refuses connections
      // rather than serve them in clear text.
      LOG_ERROR("listener %s: TLS: %s; %s", ctx_->listener.name.c_str(),
                loaded.error().message.c_str(),
                tls_ ? "keeping the previous TLS settings" : "refusing connections");
      return;
    }
    tls_ = std::move(*loaded);
    // Looked up once: the entry stays (stats are never erased) and the name stays with the socket.
    handshakes_ = &worker_.ctx_.stats.tls[ctx_->listener.name].handshakes;
  }

  void accept_tls(int fd) {
    const config::Listener& listener = ctx_->listener;
    if (!tls_) {
      ::close(fd);
      return;
    }
    auto transport = net::TlsTransport::accept(
        worker_.loop_, tls_->current(worker_.loop_.now()), fd,
        std::chrono::duration_cast<Duration>(listener.header_timeout), handshakes_);
    if (!transport) {
      LOG_WARN("listener %s: %s", listener.name.c_str(), transport.error().message.c_str());
      return;
    }
    worker_.accept_connection(fd, ctx_, std::move(*transport));
  }

  static constexpr Duration kAcceptPause = std::chrono::milliseconds(100);
  Worker& worker_;
  int fd_;
  proxy::ListenerContextPtr ctx_;
  Intercepted intercepted_;
  net::Timer resume_;  // armed while accepting is paused
  std::unique_ptr<net::TlsContext> tls_;  // TLS listeners only
  net::TlsHandshakeCounters* handshakes_ = nullptr;  // in the worker's stats, with tls_
  log::Limiter log_{std::chrono::seconds(1)};
};

Worker::Worker(int index, uint32_t worker_count, std::shared_ptr<const config::Config> config,
               std::vector<int> listener_fds,
               const std::vector<cluster::ClusterSnapshotPtr>& snapshots,
               std::function<void(const std::string&, const std::string&)> report_outlier,
               std::vector<int> outbound_fds, std::vector<int> inbound_fds,
               std::unique_ptr<net::TlsContext> mesh_tls)
    : index_(index),
      worker_count_(worker_count),
      config_(std::move(config)),
      ctx_(loop_, 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(index + 1) ^
                      static_cast<uint64_t>(getpid()),
           config_->buffers),
      clusters_(ctx_) {
  ctx_.clusters = &clusters_;
  ctx_.worker_count = worker_count;
  ctx_.report_outlier = std::move(report_outlier);
  ctx_.stats_retention = config_->admin.endpoint_stats_retention;
  downstream_opts_.stream_window = config_->buffers.stream_window_bytes;
  downstream_opts_.connection_window = config_->buffers.connection_window_bytes;
  for (const auto& snap : snapshots) clusters_.update(snap);
  ctx_.rate_limits.configure(config_, worker_count_, loop_.now(), ctx_.stats);
  for (size_t i = 0; i < listener_fds.size(); ++i)
    listeners_.push_back(std::make_unique<Listener>(
        *this, listener_fds[i], std::make_shared<proxy::ListenerContext>(config_, i)));
  for (int fd : outbound_fds)
    outbound_.push_back(std::make_unique<Listener>(*this, fd, nullptr, Intercepted::Outbound));
  for (int fd : inbound_fds)
    inbound_.push_back(std::make_unique<Listener>(*this, fd, nullptr, Intercepted::Inbound));
  mesh_tls_ = std::move(mesh_tls);
  if (config_->mesh.enabled && config_->mesh.tls)
    clusters_.set_mesh_connector(
        std::make_shared<proxy::MeshConnector>(*config_->mesh.tls, ctx_.stats.mesh));
}

Worker::~Worker() {
  stop_and_join();
  // Connections first: their streams hold requests that point into the pools.
  for (auto& [raw, conn] : connections_) conn->on_gone = nullptr;
  connections_.clear();
  for (auto& [fd, detector] : detecting_) {
    detector.reset();  // leaves the loop; the socket is still ours
    ::close(fd);
  }
  detecting_.clear();
  relays_.clear();     // resets both sides of each
  loop_.run_deferred();
  listeners_.clear();
  outbound_.clear();
  inbound_.clear();
}

void Worker::start() {
  thread_ = std::thread([this] { loop_.run(); });
  // "h2mesh-w0", ... in top -H, perf and /proc/PID/task/*/comm (at most 15 characters).
  std::string name = "h2mesh-w" + std::to_string(index_);
  pthread_setname_np(thread_.native_handle(), name.substr(0, 15).c_str());
}

void Worker::stop_and_join() {
  if (!thread_.joinable()) return;
  loop_.stop();
  thread_.join();
}

void Worker::post_access_log(std::shared_ptr<const observe::LineFormat> format,
                             observe::LineRing* ring, std::function<void()> done) {
  loop_.post([this, format = std::move(format), ring, done = std::move(done)] {
    proxy::CallObservers& observers = ctx_.call_observers;
    if (access_log_)
      observers.erase(std::find(observers.begin(), observers.end(), access_log_.get()));
    access_log_.reset();
    if (format) {
      access_log_ = std::make_unique<observe::AccessLogObserver>(format, *ring, ctx_.random);
      observers.push_back(access_log_.get());
    }
    if (done) done();
  });
}

void Worker::accept_connection(int fd, const proxy::ListenerContextPtr& listener,
                               std::unique_ptr<net::Transport> transport, bool inbound) {
  downstream_opts_.max_concurrent_streams = listener->listener.max_concurrent_streams;
  downstream_opts_.max_header_list_bytes = listener->listener.max_header_list_bytes;
  downstream_opts_.max_header_fields = listener->listener.max_header_fields;
  downstream_opts_.flood = listener->listener.flood_limits;
  if (!transport) transport = std::make_unique<net::TcpTransport>(loop_, fd, false);
  auto conn = std::make_unique<proxy::DownstreamConnection>(ctx_, std::move(transport), listener,
                                                            downstream_opts_);
  conn->set_inbound(inbound);
  conn->on_gone = [this](proxy::DownstreamConnection* c) { remove_connection(c); };
  if (draining_) conn->start_drain();
  connections_.emplace(conn.get(), std::move(conn));
}

void Worker::accept_outbound(int fd) {
  proxy::MeshStats& mesh = ctx_.stats.mesh;
  auto destination = net::original_destination(fd);
  uint64_t held_back = 0;
  if (!destination) {
    mesh.no_destination++;
    if (mesh_log_.allow(loop_.now(), &held_back))
      LOG_WARN("mesh: a redirected connection has no original destination; closed");
    ::close(fd);
    return;
  }
  if (net::is_own_listener(fd, *destination)) {
    // Relaying it would come straight back here: rules that redirect h2mesh's own connections
    // (run it as the --proxy-uid of `h2mesh iptables install`), or a client dialling this port.
    mesh.loops_refused++;
    if (mesh_log_.allow(loop_.now(), &held_back))
      LOG_WARN("mesh: refused a connection to %s: that is h2mesh's outbound listener itself "
               "(check that h2mesh runs as the uid the iptables rules exclude)%s",
               destination->to_string().c_str(),
               held_back ? (" (" + std::to_string(held_back) + " more not logged)").c_str() : "");
    net::reset_and_close(fd);
    return;
  }
  const config::Mesh& settings = config_->mesh;
  const proxy::MeshTable* table = clusters_.mesh();
  const proxy::MeshRoute* route = table ? table->find_address(*destination) : nullptr;
  const bool opaque = std::find(settings.opaque_ports.begin(), settings.opaque_ports.end(),
                                destination->port) != settings.opaque_ports.end();
  if (!route || opaque) {
    // Not a Service's cluster IP (a pod, a headless Service's member, outside the cluster), or a
    // port whose protocol is never inspected: bytes go where they were going.
    (opaque ? mesh.opaque : mesh.unknown_destination)++;
    start_relay(fd, *destination);
    return;
  }
  // A port declared HTTP/2 (named grpc-*, appProtocol h2c, ...) waits for the preface as long
  // as any client connection may take to send it; elsewhere, nothing within detect_timeout
  // means a server that speaks first.
  const config::Millis wait =
      route->http2_declared ? settings.connection.header_timeout : settings.detect_timeout;
  detect(fd, wait, [this, fd, destination = *destination](proxy::Protocol protocol) {
    if (protocol == proxy::Protocol::Http2) {
      start_mesh_connection(fd, destination);
    } else {
      ctx_.stats.mesh.detected_other++;
      start_relay(fd, destination);
    }
  });
}

void Worker::detect(int fd, config::Millis wait, std::function<void(proxy::Protocol)> then) {
  // The detector reports from the loop, never from its constructor: it is in detecting_ by then.
  auto detector = std::make_unique<proxy::ProtocolDetector>(
      loop_, fd, std::chrono::duration_cast<Duration>(wait),
      [this, fd, then = std::move(then)](proxy::Protocol protocol, Duration) {
    auto it = detecting_.find(fd);
    if (it != detecting_.end()) {
      loop_.defer_delete(std::move(it->second));
      detecting_.erase(it);
    }
    if (draining_) {
      ::close(fd);
      return;
    }
    then(protocol);
  });
  detecting_.emplace(fd, std::move(detector));
}

void Worker::accept_inbound(int fd) {
  proxy::MeshStats& mesh = ctx_.stats.mesh;
  auto destination = net::original_destination(fd);
  uint64_t held_back = 0;
  if (!destination) {
    mesh.inbound_no_destination++;
    if (mesh_log_.allow(loop_.now(), &held_back))
      LOG_WARN("mesh: a connection on the inbound port has no original destination; closed");
    ::close(fd);
    return;
  }
  // A peer dialling this pod's inbound or outbound port directly: forwarding it to "the app" at
  // that port would come back to the sidecar. The rules exempt both ports, so this is a client
  // reaching them on purpose, or rules that are not ours.
  const config::Mesh& settings = config_->mesh;
  if (destination->port == settings.inbound_port || destination->port == settings.outbound_port) {
    mesh.inbound_loops_refused++;
    if (mesh_log_.allow(loop_.now(), &held_back))
      LOG_WARN("mesh: refused an inbound connection to %s: that is a port of h2mesh itself%s",
               destination->to_string().c_str(),
               held_back ? (" (" + std::to_string(held_back) + " more not logged)").c_str() : "");
    net::reset_and_close(fd);
    return;
  }
  detect(fd, settings.detect_timeout,
         [this, fd, destination = *destination](proxy::Protocol protocol) {
           start_inbound(fd, destination, protocol);
         });
}

void Worker::start_inbound(int fd, const config::SocketAddress& destination,
                           proxy::Protocol protocol) {
  proxy::MeshStats& mesh = ctx_.stats.mesh;
  const std::optional<config::MeshTls>& tls = config_->mesh.tls;
  if (protocol == proxy::Protocol::Tls && mesh_tls_) {
    // Mesh mTLS from a peer's sidecar: the handshake requires its certificate (verified against
    // the mesh CA) and ALPN h2, so what comes out is always HTTP/2, served per call.
    mesh.inbound_mtls++;
    auto transport = net::TlsTransport::accept(loop_, mesh_tls_->current(loop_.now()), fd,
                                               kInboundHandshakeTimeout,
                                               &ctx_.stats.tls[kInboundListener].handshakes);
    if (!transport) {
      LOG_WARN("mesh: inbound TLS: %s", transport.error().message.c_str());
      return;  // the socket is closed
    }
    accept_connection(-1, inbound_context(destination), std::move(*transport), true);
    return;
  }
  if (tls && tls->mode == config::MeshTls::Mode::Strict) {
    mesh.inbound_refused_plaintext++;
    uint64_t held_back = 0;
    if (mesh_log_.allow(loop_.now(), &held_back))
      LOG_WARN("mesh: strict mTLS: refused a clear-text connection to %s%s",
               destination.to_string().c_str(),
               held_back ? (" (" + std::to_string(held_back) + " more not logged)").c_str() : "");
    net::reset_and_close(fd);
    return;
  }
  if (protocol == proxy::Protocol::Http2) {
    mesh.inbound_plaintext++;
    accept_connection(fd, inbound_context(destination), nullptr, true);
    return;
  }
  // Not HTTP/2 (or the app's own TLS, when the mesh has none): bytes go to the app unchanged.
  mesh.inbound_relayed++;
  start_relay(fd, destination);
}

proxy::ListenerContextPtr Worker::inbound_context(const config::SocketAddress& destination) {
  const std::string key = destination.to_string();
  proxy::ListenerContextPtr& entry = inbound_contexts_[key];
  if (entry && entry->config == config_) return entry;
  // The app is one endpoint: the pod's own address and port, in clear text (the hop stays in
  // the pod, over lo). Its connection settings are the mesh's defaults.
  config::Cluster cluster = config_->mesh.defaults.cluster;
  cluster.name = "inbound|" + key;
  cluster.endpoints = {config::Endpoint{destination, 1}};
  clusters_.update(cluster::make_static_snapshot(cluster, 1));
  auto listener = std::make_shared<config::Listener>(config_->mesh.connection);
  listener->name = kInboundListener;
  if (const auto& tls = config_->mesh.tls; tls && !tls->allowed_identities.empty()) {
    // The listeners' allow-list does the per-call check (PERMISSION_DENIED, counted per
    // listener); this listener's TLS itself is the mesh's, set up by the worker.
    listener->tls.emplace();
    listener->tls->allowed_identities = tls->allowed_identities;
  }
  config::Route route;
  route.cluster = cluster.name;
  listener->routes.push_back(std::move(route));
  auto context = std::make_shared<proxy::ListenerContext>(config_, std::move(listener));
  if (entry) context->inherit_budgets(*entry);
  entry = std::move(context);
  return entry;
}

void Worker::start_relay(int fd, const config::SocketAddress& destination) {
  proxy::RelayOptions options;
  options.connect_timeout =
      std::chrono::duration_cast<Duration>(config_->mesh.relay_connect_timeout);
  options.idle_timeout = std::chrono::duration_cast<Duration>(config_->mesh.relay_idle_timeout);
  // on_gone runs from the loop, never from the constructor: the relay is in relays_ by then.
  const uint64_t id = next_relay_id_++;
  auto relay = std::make_unique<proxy::TcpRelay>(
      loop_, fd, destination, options, ctx_.stats.mesh.relay, [this, id] {
        auto it = relays_.find(id);
        if (it == relays_.end()) return;
        loop_.defer_delete(std::move(it->second));
        relays_.erase(it);
        check_drained();
      });
  relays_.emplace(id, std::move(relay));
}

void Worker::start_mesh_connection(int fd, const config::SocketAddress& destination) {
  // The table may have changed while the first bytes came: look the Service up again.
  const proxy::MeshTable* table = clusters_.mesh();
  const proxy::MeshRoute* route = table ? table->find_address(destination) : nullptr;
  if (!route) {
    ctx_.stats.mesh.unknown_destination++;
    start_relay(fd, destination);
    return;
  }
  ctx_.stats.mesh.http2_connections++;
  accept_connection(fd, mesh_context(*route), nullptr);
}

proxy::ListenerContextPtr Worker::mesh_context(const proxy::MeshRoute& route) {
  MeshContext& entry = mesh_contexts_[route.cluster];
  if (entry.settings != route.settings || !entry.context) {
    auto context = std::make_shared<proxy::ListenerContext>(
        config_, proxy::make_mesh_listener(clusters_.mesh()->config->mesh, route));
    if (entry.context) context->inherit_budgets(*entry.context);
    entry.settings = route.settings;
    entry.context = std::move(context);
  }
  return entry.context;
}

void Worker::post_mesh(proxy::MeshTablePtr table) {
  loop_.post([this, table = std::move(table)]() mutable {
    // Contexts of Services that left go; connections that use one keep it.
    for (auto it = mesh_contexts_.begin(); it != mesh_contexts_.end();) {
      if (!table->find_cluster(it->first)) {
        it = mesh_contexts_.erase(it);
      } else {
        ++it;
      }
    }
    clusters_.set_mesh(std::move(table));
  });
}

void Worker::remove_connection(proxy::DownstreamConnection* conn) {
  auto it = connections_.find(conn);
  if (it == connections_.end()) return;
  loop_.defer_delete(std::move(it->second));
  connections_.erase(it);
  check_drained();
}

void Worker::check_drained() {
  // Relayed connections count: their bytes are not cut before the drain deadline.
  if (draining_ && connections_.empty() && relays_.empty() && on_drained_) {
    auto done = std::move(on_drained_);
    on_drained_ = nullptr;
    done();
  }
}

void Worker::post_config(std::shared_ptr<const config::Config> config, std::vector<int> fds) {
  loop_.post([this, config = std::move(config), fds = std::move(fds)] {
    // Listeners whose socket is not in the new config stop accepting (their connections keep
    // the rules they have); the others, and the connections they accepted, get the new rules
    // for the calls that start from now on.
    std::vector<std::unique_ptr<Listener>> next;
    std::vector<std::pair<proxy::ListenerContextPtr, proxy::ListenerContextPtr>> replaced;
    for (size_t i = 0; i < fds.size(); ++i) {
      auto ctx = std::make_shared<proxy::ListenerContext>(config, i);
      auto it = std::find_if(listeners_.begin(), listeners_.end(),
                             [&](const auto& l) { return l && l->fd() == fds[i]; });
      if (it != listeners_.end()) {
        ctx->inherit_budgets(*(*it)->context());
        replaced.emplace_back((*it)->context(), ctx);
        (*it)->set_context(std::move(ctx));
        next.push_back(std::move(*it));
      } else {
        next.push_back(std::make_unique<Listener>(*this, fds[i], std::move(ctx)));
      }
    }
    for (auto& [raw, conn] : connections_) {
      for (const auto& [before, after] : replaced) {
        if (conn->rules_context() == before) {
          conn->set_rules(after);
          break;
        }
      }
    }
    listeners_ = std::move(next);  // the ones left behind close their sockets
    config_ = config;
    ctx_.rate_limits.configure(config_, worker_count_, loop_.now(), ctx_.stats);
    ctx_.buffers = config->buffers;  // upstream connections opened from now on
    ctx_.stats_retention = config->admin.endpoint_stats_retention;
    downstream_opts_.stream_window = config->buffers.stream_window_bytes;
    downstream_opts_.connection_window = config->buffers.connection_window_bytes;
  });
}

void Worker::set_tracer(std::unique_ptr<observe::TraceObserver> tracer) {
  auto& observers = ctx_.call_observers;
  if (tracer_) observers.erase(std::remove(observers.begin(), observers.end(), tracer_.get()), observers.end());
  tracer_ = std::move(tracer);
  ctx_.trace_sampler = tracer_ ? &tracer_->sampler() : nullptr;
  if (tracer_) observers.push_back(tracer_.get());
}

void Worker::post_tracer(std::unique_ptr<observe::TraceObserver> tracer, std::function<void()> done) {
  // std::function needs a copyable closure: the tracer travels as a shared_ptr's release.
  auto holder = std::make_shared<std::unique_ptr<observe::TraceObserver>>(std::move(tracer));
  loop_.post([this, holder, done = std::move(done)] {
    set_tracer(std::move(*holder));
    done();
  });
}

void Worker::post_snapshot(cluster::ClusterSnapshotPtr snapshot) {
  loop_.post([this, snapshot = std::move(snapshot)]() mutable { clusters_.update(std::move(snapshot)); });
}

void Worker::post_drain(std::function<void()> done) {
  loop_.post([this, done = std::move(done)]() mutable {
    draining_ = true;
    on_drained_ = std::move(done);
    for (auto& l : listeners_) l->close_socket();
    for (auto& l : outbound_) l->close_socket();
    for (auto& l : inbound_) l->close_socket();
    for (auto& [raw, conn] : connections_) conn->start_drain();
    check_drained();
  });
}

void Worker::post_force_close() {
  loop_.post([this] {
    std::vector<proxy::DownstreamConnection*> all;
    for (auto& [raw, conn] : connections_) all.push_back(raw);
    for (auto* c : all) c->close(make_error(ErrorCode::Draining, "drain deadline reached"));
    // Relays have no way to say "go away": at the deadline both sides are reset.
    for (auto& [raw, relay] : relays_) loop_.defer_delete(std::move(relay));
    relays_.clear();
    check_drained();
  });
}

void Worker::post_collect(std::function<void(proxy::WorkerStats)> reply) {
  loop_.post([this, reply = std::move(reply)] {
    // The certificates served from now on: a look at the files first (at most once a second),
    // so a rotation shows even on a worker that accepted nothing since.
    for (auto& [name, tls] : ctx_.stats.tls) tls.certificates.clear();
    for (const auto& l : listeners_) {
      if (!l->tls()) continue;
      l->tls()->current(loop_.now());
      ctx_.stats.tls[l->context()->listener.name].certificates = l->tls()->certificates();
    }
    if (mesh_tls_) {
      mesh_tls_->current(loop_.now());
      ctx_.stats.tls[kInboundListener].certificates = mesh_tls_->certificates();
    }
    ctx_.stats.cluster_certificates.clear();
    clusters_.collect_certificates(loop_.now(), ctx_.stats.cluster_certificates);
    reply(ctx_.stats);
  });
}

void Worker::post_rate_limit_collect(
    std::shared_ptr<const config::Config> config,
    std::function<void(std::vector<proxy::WorkerDemand>)> reply) {
  loop_.post([this, config = std::move(config), reply = std::move(reply)] {
    if (ctx_.rate_limits.config() != config.get()) {
      reply({});
      return;
    }
    reply(ctx_.rate_limits.collect(loop_.now()));
  });
}

void Worker::post_rate_limit_shares(std::shared_ptr<const config::Config> config,
                                    std::vector<proxy::RateShare> shares) {
  loop_.post([this, config = std::move(config), shares = std::move(shares)] {
    if (ctx_.rate_limits.config() == config.get()) ctx_.rate_limits.apply(shares, loop_.now());
  });
}

}  // namespace h2mesh::server
