#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "net/tls_client.h"
#include "net/transport.h"

namespace h2mesh::net {

// What the connectors that open client TLS connections from files share (TlsConnector below, the
// mesh's proxy::MeshConnector): the client context, made from a CA, a certificate and a key on
// the first connection and then watched (TlsClientContext), and the last session each endpoint
// gave (resumption; a reload of the files drops them). Files that do not load fail that
// connection, logged once per reason, and are tried again on the next. One per connector, used
// on its worker's thread.
class TlsClientSource {
 public:
  // `what` starts the error of files that do not load: "<what> do not load: <why>".
  TlsClientSource(std::string ca, std::string cert, std::string key, std::string what);
  ~TlsClientSource();

  // The context for a connection opened at `now` (never null), or ConnectFailed.
  Result<SSL_CTX*> context(TimePoint now);
  // Points `check` at the session slot of `endpoint` (made on first use), under the generation
  // of the context context() gave.
  void offer_session(const std::string& endpoint, TlsPeerCheck* check);
  void forget(const std::string& endpoint) { sessions_.erase(endpoint); }
  // Null until the files loaded once.
  TlsClientContext* loaded() { return ctx_.get(); }

 private:
  TlsClientFiles files_;
  const std::string what_;
  std::unique_ptr<TlsClientContext> ctx_;
  std::string logged_error_;
  std::unordered_map<std::string, std::shared_ptr<TlsSessionSlot>> sessions_;
};

// Opens TLS connections to a cluster's endpoints (`clusters[].tls`): a non-blocking TCP connect,
// then a client handshake that offers ALPN h2 and requires it, sends `server_name` as SNI, and
// verifies the chain (`ca` or the system store) and a name: one of `san`, else `server_name`,
// else the endpoint's IP address. The client certificate, when configured, is offered (mTLS).
//
// One per worker and cluster, used on that worker's thread. It keeps the last session of each
// endpoint and offers it on the next connection (resumption); a reload of the files drops them.
// The files are read on the first connect and then watched (TlsClientContext); files that do not
// load fail the connect with the reason, and are tried again on the next one.
class TlsConnector final : public Connector {
 public:
  // `counters` (may be null) outlives the connector and every connection it opens.
  TlsConnector(config::ClusterTls settings, std::string owner, TlsClientCounters* counters);
  ~TlsConnector() override;

  Result<std::unique_ptr<Transport>> connect(EventLoop& loop,
                                             const config::SocketAddress& address) override;
  const config::ClusterTls& settings() const { return settings_; }
  // The client certificate presented now (after a look at the files, at most once a second);
  // empty without one, or before the first connect loaded the files.
  std::vector<TlsCertificateInfo> certificates(TimePoint now);
  // The endpoint left: its session is not needed any more.
  void forget(const config::SocketAddress& address);

 private:
  const config::ClusterTls settings_;
  TlsClientCounters* counters_;
  TlsClientSource source_;
};

}  // namespace h2mesh::net
