#include "net/tls_connector.h"

#include "common/log.h"
#include "net/socket.h"
#include "net/tls_transport.h"

namespace h2mesh::net {

TlsClientSource::TlsClientSource(std::string ca, std::string cert, std::string key,
                                 std::string what)
    : what_(std::move(what)) {
  files_.ca = std::move(ca);
  files_.cert = std::move(cert);
  files_.key = std::move(key);
}

TlsClientSource::~TlsClientSource() = default;

Result<SSL_CTX*> TlsClientSource::context(TimePoint now) {
  if (!ctx_) {
    auto loaded = TlsClientContext::load(files_);
    if (!loaded) {
      Error why =
          make_error(ErrorCode::ConnectFailed, what_ + " do not load: " + loaded.error().message);
      if (why.message != logged_error_) {
        logged_error_ = why.message;
        LOG_ERROR("%s", why.message.c_str());
      }
      return why;
    }
    ctx_ = std::move(*loaded);
    logged_error_.clear();
  }
  return ctx_->current(now);
}

void TlsClientSource::offer_session(const std::string& endpoint, TlsPeerCheck* check) {
  std::shared_ptr<TlsSessionSlot>& slot = sessions_[endpoint];
  if (!slot) slot = std::make_shared<TlsSessionSlot>();
  check->sessions = slot;
  check->generation = ctx_ ? ctx_->generation() : 0;
}

TlsConnector::TlsConnector(config::ClusterTls settings, std::string owner,
                           TlsClientCounters* counters)
    : settings_(std::move(settings)),
      counters_(counters),
      source_(settings_.ca, settings_.cert, settings_.key, "the TLS files of " + owner) {}

TlsConnector::~TlsConnector() = default;

std::vector<TlsCertificateInfo> TlsConnector::certificates(TimePoint now) {
  TlsClientContext* ctx = source_.loaded();
  if (!ctx) return {};
  ctx->current(now);
  return ctx->certificates();
}

Result<std::unique_ptr<Transport>> TlsConnector::connect(EventLoop& loop,
                                                         const config::SocketAddress& address) {
  auto ctx = source_.context(loop.now());
  if (!ctx) return ctx.error();
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
  source_.offer_session(address.to_string(), &check);
  check.counters = counters_;
  auto transport = TlsTransport::connect(loop, *ctx, *fd, std::move(check));
  if (!transport) return transport.error();
  return std::unique_ptr<Transport>(std::move(*transport));
}

void TlsConnector::forget(const config::SocketAddress& address) {
  source_.forget(address.to_string());
}

}  // namespace h2mesh::net
