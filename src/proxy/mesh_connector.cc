#include "proxy/mesh_connector.h"

#include "net/event_loop.h"
#include "net/socket.h"
#include "net/tls_transport.h"

namespace h2mesh::proxy {
namespace {

// One connection to an endpoint: the mTLS attempt and, when the peer turned out not to speak
// TLS, the clear-text connection that replaces it. The owner (an upstream HTTP/2 connection)
// sees one transport that connects once.
class MeshOriginTransport final : public net::Transport, private net::TransportHandler {
 public:
  MeshOriginTransport(net::EventLoop& loop, std::shared_ptr<MeshConnector> owner,
                      config::SocketAddress address, std::unique_ptr<net::Transport> tls,
                      std::unique_ptr<net::TlsClientCounters> counters)
      : loop_(loop),
        owner_(std::move(owner)),
        address_(std::move(address)),
        counters_(std::move(counters)),
        inner_(std::move(tls)) {}

  void start(net::TransportHandler& handler) override {
    handler_ = &handler;
    inner_->start(*this);
  }
  bool connecting() const override { return !connected_; }
  net::IoResult read(uint8_t* buf, size_t len) override { return inner_->read(buf, len); }
  net::IoResult write(const uint8_t* data, size_t len) override {
    return inner_->write(data, len);
  }
  void want_write(bool on) override { inner_->want_write(on); }
  void shutdown() override { inner_->shutdown(); }
  Error last_error() const override { return failure_ ? *failure_ : inner_->last_error(); }
  const net::PeerIdentity* peer_identity() const override { return inner_->peer_identity(); }

 private:
  void on_transport_connected(const Error* failure) override {
    MeshStats& stats = owner_->stats();
    if (!tls_) {  // the clear-text retry
      if (!failure) {
        connected_ = true;
        stats.plaintext_fallbacks++;
      }
      handler_->on_transport_connected(failure);
      return;
    }
    for (size_t i = 0; i < counters_->size(); ++i) stats.mtls_handshakes[i] += (*counters_)[i];
    const bool not_tls =
        failure && (*counters_)[static_cast<size_t>(net::TlsClientResult::Protocol)] > 0;
    if (not_tls) {
      // No TLS at the other end (the only failure that falls back): clear text from now on.
      owner_->remember_plaintext(address_, loop_.now());
      tls_ = false;
      auto tcp = net::tcp_connector().connect(loop_, address_);
      if (!tcp) {
        failure_ = tcp.error();
        handler_->on_transport_connected(&*failure_);
        return;
      }
      // The failed TLS transport reported from its own callback: it is kept, shut, until this
      // object goes, rather than deleted under its own feet.
      retired_ = std::move(inner_);
      retired_->shutdown();
      inner_ = std::move(*tcp);
      inner_->start(*this);
      return;
    }
    if (!failure && !owner_->in_trust_domain(inner_->peer_identity())) {
      stats.mtls_wrong_trust_domain++;
      failure_ = make_error(ErrorCode::ConnectFailed,
                            "mesh mTLS: the peer's certificate has no SPIFFE ID of the trust "
                            "domain");
      inner_->shutdown();
      handler_->on_transport_connected(&*failure_);
      return;
    }
    if (!failure) connected_ = true;
    handler_->on_transport_connected(failure);
  }
  void on_transport_ready(bool readable, bool writable) override {
    handler_->on_transport_ready(readable, writable);
  }

  net::EventLoop& loop_;
  std::shared_ptr<MeshConnector> owner_;
  const config::SocketAddress address_;
  // This connection's handshake only. Before the transports: they may count into it as they go.
  std::unique_ptr<net::TlsClientCounters> counters_;
  std::unique_ptr<net::Transport> inner_;
  std::unique_ptr<net::Transport> retired_;
  net::TransportHandler* handler_ = nullptr;
  std::optional<Error> failure_;
  bool tls_ = true;
  bool connected_ = false;
};

}  // namespace

MeshConnector::MeshConnector(config::MeshTls settings, MeshStats& stats, Duration plaintext_memory)
    : settings_(std::move(settings)),
      spiffe_prefix_("spiffe://" + settings_.trust_domain + "/"),
      stats_(stats),
      plaintext_memory_(plaintext_memory),
      source_(settings_.ca, settings_.cert, settings_.key,
              "mesh mTLS: the certificate files") {}

MeshConnector::~MeshConnector() = default;

void MeshConnector::remember_plaintext(const config::SocketAddress& address, TimePoint now) {
  plaintext_until_[address.to_string()] = now + plaintext_memory_;
}

bool MeshConnector::in_trust_domain(const net::PeerIdentity* peer) const {
  if (!peer || !peer->verified) return false;
  for (const std::string& uri : peer->uris)
    if (uri.starts_with(spiffe_prefix_) && uri.size() > spiffe_prefix_.size()) return true;
  return false;
}

Result<std::unique_ptr<net::Transport>> MeshConnector::connect(
    net::EventLoop& loop, const config::SocketAddress& address) {
  const std::string key = address.to_string();
  if (auto it = plaintext_until_.find(key); it != plaintext_until_.end()) {
    if (loop.now() < it->second) {
      stats_.plaintext_remembered++;
      return net::tcp_connector().connect(loop, address);
    }
    plaintext_until_.erase(it);  // time to see whether it has a sidecar now
  }
  auto ctx = source_.context(loop.now());
  if (!ctx) return ctx.error();
  auto fd = net::connect_tcp(address);
  if (!fd) return fd.error();
  auto counters = std::make_unique<net::TlsClientCounters>();
  net::TlsPeerCheck check;
  check.alpn = "h2";  // names: the chain only; the trust domain is checked on top
  source_.offer_session(key, &check);
  check.counters = counters.get();
  auto tls = net::TlsTransport::connect(loop, *ctx, *fd, std::move(check));
  if (!tls) return tls.error();
  return std::unique_ptr<net::Transport>(std::make_unique<MeshOriginTransport>(
      loop, shared_from_this(), address, std::move(*tls), std::move(counters)));
}

}  // namespace h2mesh::proxy
