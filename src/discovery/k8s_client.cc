#include "discovery/k8s_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "net/tcp_transport.h"
#include "net/tls_client.h"

namespace h2mesh::discovery::k8s {
namespace {

Result<std::string> pem_text(const PemSource& src, const char* what) {
  if (!src.data.empty()) return src.data;
  auto text = read_small_file(src.path);
  if (!text)
    return make_error(ErrorCode::Io,
                      std::string("cannot read the ") + what + " " + text.error().message);
  return text;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string source_name(const PemSource& src) { return src.path.empty() ? "data" : src.path; }

}  // namespace

Result<SslCtxPtr> make_tls_context(const Credentials& c) {
  net::TlsClientPem pem;
  pem.verify = !c.insecure_skip_tls_verify;
  if (pem.verify && !c.ca.empty()) {
    auto ca = pem_text(c.ca, "CA certificate");
    if (!ca) return ca.error();
    pem.ca = std::move(*ca);
    pem.ca_name = "CA " + source_name(c.ca);
  }
  if (!c.client_cert.empty()) {
    auto cert = pem_text(c.client_cert, "client certificate");
    if (!cert) return cert.error();
    auto key = pem_text(c.client_key, "client key");
    if (!key) return key.error();
    pem.cert = std::move(*cert);
    pem.key = std::move(*key);
  }
  // The API server speaks HTTP/1.1 here: no ALPN offer.
  return net::make_client_ssl_ctx(pem);
}

struct ApiClient::Lookup {
  std::string name;
  std::string service;
  addrinfo hints{};
  gaicb cb{};
};

const char* ApiClient::failure_name(Failure f) {
  switch (f) {
    case Failure::Resolve:
      return "resolve";
    case Failure::Connect:
      return "connect";
    case Failure::Verify:
      return "verify";
    case Failure::Handshake:
      return "handshake";
    case Failure::Timeout:
      return "timeout";
    case Failure::Closed:
      return "closed";
    case Failure::Io:
      return "io";
  }
  return "?";
}

ApiClient::ApiClient(net::EventLoop& loop, Visitor& visitor)
    : loop_(loop), visitor_(visitor), step_(loop, [this] { step(); }), timeout_(loop, [this] {
        fail(Failure::Timeout, state_ == State::Resolving         ? "name lookup timed out"
                               : tls_ && tls_->tcp_connected() ? "TLS handshake timed out"
                                                               : "TCP connect timed out");
      }) {}

ApiClient::~ApiClient() { close(); }

void ApiClient::connect(SslCtxPtr ctx, const std::string& host, uint16_t port,
                        const std::string& verify_name, Duration timeout) {
  ctx_ = std::move(ctx);
  port_ = port;
  verify_name_ = verify_name;
  timeout_.arm(timeout);
  if (is_ip_literal(host)) {
    addresses_.push_back(config::SocketAddress{host, port});
    state_ = State::Connecting;
    step_.arm(Duration::zero());  // failures are reported from the loop, never from connect()
    return;
  }
  state_ = State::Resolving;
  lookup_ = std::make_unique<Lookup>();
  lookup_->name = host;
  lookup_->service = std::to_string(port);
  lookup_->hints.ai_socktype = SOCK_STREAM;
  lookup_->hints.ai_family = AF_UNSPEC;
  lookup_->cb.ar_name = lookup_->name.c_str();
  lookup_->cb.ar_service = lookup_->service.c_str();
  lookup_->cb.ar_request = &lookup_->hints;
  gaicb* list[1] = {&lookup_->cb};
  int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, nullptr);
  if (rc != 0) {
    pending_failure_ = std::string("cannot look up ") + host + ": " + gai_strerror(rc);
    lookup_.reset();
  }
  step_.arm(std::chrono::milliseconds(lookup_ ? 2 : 0));
}

void ApiClient::step() {
  if (!pending_failure_.empty()) {
    fail(Failure::Resolve, pending_failure_);
  } else if (state_ == State::Resolving) {
    poll_lookup();
  } else if (state_ == State::Connecting && !transport_) {
    connect_next();
  }
}

void ApiClient::poll_lookup() {
  if (!lookup_) return;
  int rc = gai_error(&lookup_->cb);
  if (rc == EAI_INPROGRESS) {
    step_.arm(std::chrono::milliseconds(5));
    return;
  }
  std::unique_ptr<Lookup> done = std::move(lookup_);
  if (rc != 0) {
    fail(Failure::Resolve, "cannot look up " + done->name + ": " + gai_strerror(rc));
    return;
  }
  for (addrinfo* ai = done->cb.ar_result; ai; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (ai->ai_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, text,
                sizeof(text));
    else if (ai->ai_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, text,
                sizeof(text));
    else
      continue;
    addresses_.push_back(config::SocketAddress{text, port_});
  }
  freeaddrinfo(done->cb.ar_result);
  if (addresses_.empty()) {
    fail(Failure::Resolve, "no address for " + done->name);
    return;
  }
  state_ = State::Connecting;
  connect_next();
}

void ApiClient::connect_next() {
  if (state_ != State::Connecting) return;
  drop_transport();
  while (next_address_ < addresses_.size()) {
    auto fd = net::connect_tcp(addresses_[next_address_++]);
    if (!fd) {
      last_connect_error_ = fd.error().message;
      continue;
    }
    int one = 1;
    setsockopt(*fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    if (!ctx_) {
      transport_ = std::make_unique<net::TcpTransport>(loop_, *fd, true);
    } else {
      net::TlsPeerCheck check;
      if (!is_ip_literal(verify_name_)) check.sni = verify_name_;  // SNI: names only, never IPs
      // insecure-skip-tls-verify: no chain check, so no name check either.
      if (net::verifies_peer(ctx_.get()))
        check.names = {verify_name_};
      auto tls = net::TlsTransport::connect(loop_, ctx_.get(), *fd, std::move(check));
      if (!tls) {
        fail(Failure::Handshake, tls.error().message);
        return;
      }
      tls_ = tls->get();
      transport_ = std::move(*tls);
    }
    transport_->start(*this);
    return;
  }
  fail(Failure::Connect, last_connect_error_);
}

void ApiClient::on_transport_connected(const Error* failure) {
  if (state_ != State::Connecting) return;
  if (!failure) {
    opened();
    return;
  }
  if (tls_ && tls_->handshake_result()) {
    const auto result = *tls_->handshake_result();
    const bool verify = result == net::TlsClientResult::VerifyFailed ||
                        result == net::TlsClientResult::SanMismatch;
    fail(verify ? Failure::Verify : Failure::Handshake, tls_->handshake_detail());
    return;
  }
  // The TCP connect failed: the next address, if there is one.
  last_connect_error_ = "connect: " + failure->message;
  connect_next();
}

void ApiClient::opened() {
  state_ = State::Open;
  timeout_.cancel();
  visitor_.on_connected();
  if (state_ == State::Open && !out_.empty()) transport_->want_write(true);
}

void ApiClient::on_transport_ready(bool readable, bool writable) {
  if (state_ != State::Open) return;
  if (readable) do_read();
  if (state_ == State::Open && writable) do_write();
}

void ApiClient::do_read() {
  char buf[16384];
  for (;;) {
    net::IoResult r = transport_->read(reinterpret_cast<uint8_t*>(buf), sizeof(buf));
    switch (r.status) {
      case net::IoResult::Status::Done:
        visitor_.on_data(std::string_view(buf, r.bytes));
        if (state_ != State::Open) return;  // the visitor closed us
        continue;
      case net::IoResult::Status::WouldBlock:
        return;
      case net::IoResult::Status::Eof:
        fail(Failure::Closed, "connection closed by the peer");
        return;
      case net::IoResult::Status::Failed:
        fail(Failure::Io, transport_->last_error().message);
        return;
    }
  }
}

void ApiClient::do_write() {
  while (!out_.empty()) {
    net::IoResult r =
        transport_->write(reinterpret_cast<const uint8_t*>(out_.data()), out_.size());
    if (r.status == net::IoResult::Status::Done) {
      out_.erase(0, r.bytes);
      continue;
    }
    if (r.status == net::IoResult::Status::WouldBlock) break;
    fail(Failure::Io, transport_->last_error().message);
    return;
  }
  transport_->want_write(!out_.empty());
}

void ApiClient::send(std::string_view bytes) {
  if (state_ == State::Closed) return;
  out_.append(bytes.data(), bytes.size());
  if (state_ == State::Open) transport_->want_write(true);
}

void ApiClient::drop_transport() {
  tls_ = nullptr;
  if (!transport_) return;
  transport_->shutdown();
  // Deleted after this iteration: the call may come from inside the transport's report.
  loop_.defer([t = std::shared_ptr<net::Transport>(std::move(transport_))] {});
}

void ApiClient::fail(Failure failure, const std::string& detail) {
  if (state_ == State::Closed) return;
  close();
  visitor_.on_closed(failure, detail);
}

void ApiClient::close() {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  timeout_.cancel();
  step_.cancel();
  if (lookup_) {
    int rc = gai_cancel(&lookup_->cb);
    if (rc == EAI_ALLDONE) {
      if (gai_error(&lookup_->cb) == 0) freeaddrinfo(lookup_->cb.ar_result);
      lookup_.reset();
    } else if (rc == EAI_NOTCANCELED) {
      // glibc's lookup thread still writes into the control block and reads the name: keep the
      // whole lookup alive (and reachable) until exit.
      static std::mutex mu;
      static auto* abandoned = new std::vector<std::unique_ptr<Lookup>>;
      std::lock_guard<std::mutex> lock(mu);
      abandoned->push_back(std::move(lookup_));
    } else {
      lookup_.reset();
    }
  }
  drop_transport();
  out_.clear();
}

}  // namespace h2mesh::discovery::k8s
