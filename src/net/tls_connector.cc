#include "net/tls_connector.h"

#include "common/log.h"
#include "net/socket.h"
#include "net/tls_transport.h"

namespace h2mesh::net {

TlsConnector::TlsConnector(config::ClusterTls settings, std::string owner,
                           TlsClientCounters* counters)
    : settings_(std::move(settings)), owner_(std::move(owner)), counters_(counters) {}

TlsConnector::~TlsConnector() = default;

std::vector<TlsCertificateInfo> TlsConnector::certificates(TimePoint now) {
  if (!ctx_) return {};
  ctx_->current(now);
  return ctx_->certificates();
}

Result<std::unique_ptr<Transport>> TlsConnector::connect(EventLoop& loop,
                                                         const config::SocketAddress& address) {
  if (!ctx_) {
    TlsClientFiles files;
    files.ca = settings_.ca;
    files.cert = settings_.cert;
    files.key = settings_.key;
    auto loaded = TlsClientContext::load(std::move(files));
    if (!loaded) {
      Error why =
          make_error(ErrorCode::ConnectFailed,
                     "the TLS files of " + owner_ + " do not load: " + loaded.error().message);
      if (why.message != logged_error_) {
        logged_error_ = why.message;
        LOG_ERROR("%s", why.message.c_str());
      }
      return why;
    }
    ctx_ = std::move(*loaded);
    logged_error_.clear();
  }
  SSL_CTX* ctx = ctx_->current(loop.now());
  auto fd = connect_tcp(address);
  if (!fd) return fd.error();

  TlsPeerCheck check;
  check.sni = settings_.server_name;
  if (!settings_.san.empty())
    check.names = settings_.san;
  else if (!settings_.server_name.empty())
    check.names = {settings_.server_name};
  else
    check.names = {address.host};
  check.alpn = "h2";
  std::shared_ptr<TlsSessionSlot>& slot = sessions_[address.to_string()];
  if (!slot) slot = std::make_shared<TlsSessionSlot>();
  check.sessions = slot;
  check.generation = ctx_->generation();
  check.counters = counters_;
  auto transport = TlsTransport::connect(loop, ctx, *fd, std::move(check));
  if (!transport) return transport.error();
  return std::unique_ptr<Transport>(std::move(*transport));
}

void TlsConnector::forget(const config::SocketAddress& address) {
  sessions_.erase(address.to_string());
}

}  // namespace h2mesh::net
