#include "server/server.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "admin/render.h"
#include "cluster/host_set.h"
#include "common/log.h"
#include "net/socket.h"

namespace h2mesh::server {

class Server::SignalHandler final : public net::IoHandler {
 public:
  explicit SignalHandler(Server& server) : server_(server) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
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
        LOG_WARN("SIGHUP: this version does not reload its configuration; restart to apply one");
      } else {
        server_.begin_shutdown(info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
      }
    }
  }

 private:
  Server& server_;
  int fd_;
};

Server::Server(config::Config config)
    : config_(std::make_shared<const config::Config>(std::move(config))) {}

Server::~Server() {
  for (auto& w : workers_) w->stop_and_join();
  workers_.clear();
  registry_.reset();
  admin_.reset();
  signals_.reset();
}

bool Server::bind_listeners(std::vector<std::vector<int>>* per_worker_fds) {
  for (const auto& listener : config_->listeners) {
    config::SocketAddress addr = listener.address;
    for (size_t w = 0; w < per_worker_fds->size(); ++w) {
      auto fd = net::listen_tcp(addr, /*reuse_port=*/true);
      if (!fd) {
        LOG_ERROR("listener %s: %s", listener.name.c_str(), fd.error().message.c_str());
        return false;
      }
      // Port 0: the first socket picks the port, the other workers share it.
      if (w == 0) addr.port = net::local_port(*fd);
      (*per_worker_fds)[w].push_back(*fd);
    }
    LOG_INFO("listener %s listening on %s", listener.name.c_str(), addr.to_string().c_str());
  }
  return true;
}

int Server::run() {
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  // Blocked before any thread starts, so only the signalfd of the main loop sees them.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signals_ = std::make_unique<SignalHandler>(*this);

  size_t n = config_->workers ? config_->workers : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::vector<int>> fds(n);
  if (!bind_listeners(&fds)) return 1;

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
        loop_, *fd, [this](const std::string& m, const std::string& p, admin::AdminServer::Reply r) {
          handle_admin(m, p, std::move(r));
        });
  }

  registry_ = std::make_unique<cluster::ClusterRegistry>(loop_, config_->clusters);
  auto snapshots = registry_->snapshots();
  auto report_outlier = [this](const std::string& cluster, const std::string& host) {
    loop_.post([this, cluster, host] { registry_->report_outlier(cluster, host); });
  };
  for (size_t i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<Worker>(static_cast<int>(i), static_cast<uint32_t>(n), config_,
                                                fds[i], snapshots,
                                                report_outlier));
  }
  registry_->set_publish([this](cluster::ClusterSnapshotPtr snap) {
    for (auto& w : workers_) w->post_snapshot(snap);
  });
  for (auto& w : workers_) w->start();
  serving_ = true;
  LOG_INFO("h2mesh serving with %zu worker(s)", n);
  loop_.run();
  for (auto& w : workers_) w->stop_and_join();
  LOG_INFO("h2mesh stopped");
  return 0;
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
                          admin::AdminServer::Reply reply) {
  if (method != "GET") {
    reply(admin::HttpResponse{405, "text/plain", "only GET\n"});
    return;
  }
  if (path == "/ready") {
    if (serving_ && !shutting_down_) {
      reply(admin::HttpResponse{200, "text/plain", "ready\n"});
    } else {
      reply(admin::HttpResponse{503, "text/plain", shutting_down_ ? "draining\n" : "starting\n"});
    }
    return;
  }
  if (path != "/metrics" && path != "/clusters") {
    reply(admin::HttpResponse{404, "text/plain", "try /ready, /metrics or /clusters\n"});
    return;
  }
  // Ask every worker for a copy of its counters; answer when the last one is in.
  struct Gather {
    proxy::WorkerStats total;
    size_t remaining;
  };
  auto gather = std::make_shared<Gather>();
  gather->remaining = workers_.size();
  bool metrics = path == "/metrics";
  auto finish = [this, gather, metrics, reply = std::move(reply)] {
    auto health = registry_->health();
    if (metrics) {
      reply(admin::HttpResponse{200, "text/plain; version=0.0.4",
                                admin::render_metrics(gather->total, health, *config_)});
    } else {
      reply(admin::HttpResponse{200, "application/json",
                                admin::render_clusters_json(gather->total, health, *config_)});
    }
  };
  for (auto& w : workers_) {
    w->post_collect([this, gather, finish](proxy::WorkerStats stats) {
      loop_.post([gather, finish, stats = std::move(stats)] {
        gather->total.add(stats);
        if (--gather->remaining == 0) finish();
      });
    });
  }
}

}  // namespace h2mesh::server
