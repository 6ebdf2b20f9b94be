#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "net/tls_client.h"
#include "net/transport.h"

namespace h2mesh::net {

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
  const std::string owner_;  // "cluster NAME", for log lines
  TlsClientCounters* counters_;
  std::unique_ptr<TlsClientContext> ctx_;
  std::string logged_error_;
  std::unordered_map<std::string, std::shared_ptr<TlsSessionSlot>> sessions_;
};

}  // namespace h2mesh::net
