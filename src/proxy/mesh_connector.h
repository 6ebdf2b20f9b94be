#pragma once

// How a sidecar connects to the endpoints of a Service in mesh mode when mesh mTLS is on
// (`mesh.tls`): mTLS first, with the pod's own certificate, verifying the peer's chain against
// the mesh CA and that it carries a SPIFFE ID of the trust domain; ALPN h2.
//
// A peer without a sidecar does not speak TLS: a gRPC server reads the ClientHello as a broken
// HTTP/2 preface and closes (or answers with a GOAWAY, which is no TLS record). That ends the
// handshake at once as a protocol failure, and only that failure falls back: the same endpoint
// is connected to again in clear text, and remembered as clear text for `plaintext_memory`
// (5 minutes), during which new connections to it skip the TLS attempt. A peer that speaks TLS
// but fails verification (another CA, another trust domain, no h2) is a failed connect, never a
// fallback: a sidecar whose certificate does not check out is not talked to in clear text.
//
// One per worker, shared (shared_ptr) with the pools of the mesh's Service clusters and the
// connections they open; used on that worker's thread only.

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "net/tls_client.h"
#include "net/tls_connector.h"
#include "net/transport.h"
#include "proxy/stats.h"

namespace h2mesh::proxy {

class MeshConnector final : public net::Connector,
                            public std::enable_shared_from_this<MeshConnector> {
 public:
  static constexpr Duration kPlaintextMemory = std::chrono::minutes(5);

  // `stats` (the worker's) outlives the connector.
  MeshConnector(config::MeshTls settings, MeshStats& stats,
                Duration plaintext_memory = kPlaintextMemory);
  ~MeshConnector() override;

  Result<std::unique_ptr<net::Transport>> connect(net::EventLoop& loop,
                                                  const config::SocketAddress& address) override;

  // For the connections it opened (MeshOriginTransport, in the .cc file).
  void remember_plaintext(const config::SocketAddress& address, TimePoint now);
  bool in_trust_domain(const net::PeerIdentity* peer) const;
  MeshStats& stats() { return stats_; }

 private:
  const config::MeshTls settings_;
  const std::string spiffe_prefix_;  // "spiffe://<trust domain>/"
  MeshStats& stats_;
  const Duration plaintext_memory_;
  net::TlsClientSource source_;
  std::unordered_map<std::string, TimePoint> plaintext_until_;  // by endpoint address
};

}  // namespace h2mesh::proxy
