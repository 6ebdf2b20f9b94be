// The server side of TLS: TlsContext (certificate files, ALPN, reload on change, a bad pair kept
// out) and TlsTransport (handshake on the loop with a deadline, then bytes both ways), against a
// client made with OpenSSL directly, on loopback, all on the test thread.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "net/event_loop.h"
#include "net/socket.h"
#include "net/tls_context.h"
#include "net/tls_transport.h"

namespace h2mesh::net {
namespace {

namespace fs = std::filesystem;

void sh(const std::string& command) {
  ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
}

// A CA, and in v1/ and v2/ two certificates for 127.0.0.1 (serials 0x11, 0x22) with their keys;
// in mixed/ v2's certificate with v1's key.
void make_certificates(const std::string& d) {
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  sh("cd " + d + " && openssl req -x509" + ec +
     " -keyout ca.key -out ca.crt -days 2 -subj /CN=tls-test-ca"
     " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign");
  std::ofstream(d + "/leaf.ext") << "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
  for (auto [v, serial] : {std::pair{"v1", "0x11"}, std::pair{"v2", "0x22"}}) {
    fs::create_directories(d + "/" + v);
    sh("cd " + d + " && openssl req" + ec + " -keyout " + v + "/tls.key -out " + v +
       ".csr -subj /CN=server-" + v);
    sh("cd " + d + " && openssl x509 -req -in " + v + ".csr -CA ca.crt -CAkey ca.key -set_serial " +
       serial + " -out " + v + "/tls.crt -days 2 -extfile leaf.ext");
  }
  // For SNI: a certificate for the name sni.test (serial 0x33); for mTLS: a client certificate
  // with a SPIFFE ID and a DNS name (serial 0x44).
  std::ofstream(d + "/sni.ext") << "subjectAltName=DNS:sni.test\nextendedKeyUsage=serverAuth\n";
  std::ofstream(d + "/client.ext")
      << "subjectAltName=URI:spiffe://test/ns/a/sa/client,DNS:client.test\n"
         "extendedKeyUsage=clientAuth\n";
  for (auto [name, serial] : {std::pair{"sni", "0x33"}, std::pair{"client", "0x44"}}) {
    const std::string n = name;
    sh("cd " + d + " && openssl req" + ec + " -keyout " + n + ".key -out " + n + ".csr -subj /CN=" +
       n);
    sh("cd " + d + " && openssl x509 -req -in " + n + ".csr -CA ca.crt -CAkey ca.key -set_serial " +
       serial + " -out " + n + ".crt -days 2 -extfile " + n + ".ext");
  }
  fs::create_directories(d + "/mixed");
  fs::copy_file(d + "/v2/tls.crt", d + "/mixed/tls.crt");
  fs::copy_file(d + "/v1/tls.key", d + "/mixed/tls.key");
}

// The kubelet's way of updating a Secret volume: ..data is a symlink, replaced by a rename.
void point_at(const std::string& d, const std::string& version) {
  fs::create_directory_symlink(version, d + "/..data_tmp");
  fs::rename(d + "/..data_tmp", d + "/..data");
  for (const char* f : {"tls.crt", "tls.key"})
    if (!fs::is_symlink(d + "/" + f)) fs::create_symlink(std::string("..data/") + f, d + "/" + f);
}

struct ServerSide : TransportHandler {
  bool reported = false;
  std::string failure;
  std::string received;
  bool eof = false;
  Transport* transport = nullptr;
  void on_transport_connected(const Error* f) override {
    reported = true;
    if (f) failure = f->message;
  }
  void on_transport_ready(bool readable, bool) override {
    if (!readable) return;
    uint8_t buf[4096];
    for (;;) {
      IoResult r = transport->read(buf, sizeof(buf));
      if (r.status == IoResult::Status::Done) {
        received.append(reinterpret_cast<char*>(buf), r.bytes);
        continue;
      }
      if (r.status != IoResult::Status::WouldBlock) eof = true;
      return;
    }
  }
};

class Tls : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/h2mesh-tls-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    make_certificates(dir_);
    point_at(dir_, "v1");
    auto fd = listen_tcp(config::SocketAddress{"127.0.0.1", 0}, false);
    ASSERT_TRUE(fd.ok());
    listen_fd_ = *fd;
    port_ = local_port(listen_fd_);
  }
  void TearDown() override {
    if (client_ssl_) SSL_free(client_ssl_);
    if (client_ctx_) SSL_CTX_free(client_ctx_);
    if (client_fd_ >= 0) ::close(client_fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    fs::remove_all(dir_);
  }

  Result<std::unique_ptr<TlsContext>> load(Duration check_interval = std::chrono::seconds(1)) {
    return TlsContext::load(
        TlsServerSettings{{{dir_ + "/tls.crt", dir_ + "/tls.key"}}, {"http/1.1"}, false, "", false, check_interval});
  }

  // Runs the loop until `done` (at most ~2 s of wall time: a bounded loop, not a timing check).
  bool drive(const std::function<bool()>& done) {
    for (int i = 0; i < 2000; ++i) {
      if (done()) return true;
      loop_.run_ready();
      usleep(1000);
    }
    return done();
  }

  // A client TCP connection, accepted into a server transport with `ctx`.
  std::unique_ptr<Transport> connect_and_accept(SSL_CTX* ctx, Duration deadline) {
    client_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(client_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));  // EINPROGRESS
    int fd = -1;
    for (int i = 0; i < 1000 && fd < 0; ++i) {
      fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) usleep(1000);
    }
    EXPECT_GE(fd, 0);
    server_fd_ = fd;  // owned by the transport; the test only looks at it
    auto t = TlsTransport::accept(loop_, ctx, fd, deadline, &counters_);
    EXPECT_TRUE(t.ok());
    server_.transport = t->get();
    (*t)->start(server_);
    return std::move(*t);
  }

  // The client's handshake, driven with the loop; verifies the server against the CA (its IP
  // address, or the name `sni` it sends), showing the client certificate when `client_cert`.
  bool client_handshake(const char* alpn = "\x08http/1.1", const char* sni = nullptr,
                        bool client_cert = false) {
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(client_ctx_, (dir_ + "/ca.crt").c_str(), nullptr);
    SSL_CTX_set_verify(client_ctx_, SSL_VERIFY_PEER, nullptr);
    if (client_cert) {
      SSL_CTX_use_certificate_file(client_ctx_, (dir_ + "/client.crt").c_str(), SSL_FILETYPE_PEM);
      SSL_CTX_use_PrivateKey_file(client_ctx_, (dir_ + "/client.key").c_str(), SSL_FILETYPE_PEM);
    }
    client_ssl_ = SSL_new(client_ctx_);
    if (sni) {
      SSL_set_tlsext_host_name(client_ssl_, sni);
      SSL_set1_host(client_ssl_, sni);
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(client_ssl_), "127.0.0.1");
    }
    if (alpn)
      SSL_set_alpn_protos(client_ssl_, reinterpret_cast<const uint8_t*>(alpn), strlen(alpn));
    SSL_set_fd(client_ssl_, client_fd_);
    bool failed = false;
    bool ok = drive([&] {
      int r = SSL_connect(client_ssl_);
      if (r == 1) return true;
      int e = SSL_get_error(client_ssl_, r);
      failed = e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
      return failed;
    });
    return ok && !failed;
  }

  std::string served_serial() {
    X509* cert = SSL_get1_peer_certificate(client_ssl_);
    if (!cert) return "";
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
    char* hex = BN_bn2hex(bn);
    std::string out = hex;
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(cert);
    return out;
  }

  EventLoop loop_;
  std::string dir_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  int client_fd_ = -1;
  int server_fd_ = -1;
  SSL_CTX* client_ctx_ = nullptr;
  SSL* client_ssl_ = nullptr;
  ServerSide server_;
  TlsHandshakeCounters counters_{};
};

// A connected pair: the server transport (its loop driven by the test) and the OpenSSL client.
class TlsIo : public Tls {
 protected:
  void SetUp() override {
    Tls::SetUp();
    auto ctx = load();
    ASSERT_TRUE(ctx.ok());
    ctx_ = std::move(*ctx);
    transport_ = connect_and_accept(ctx_->current(loop_.now()), std::chrono::seconds(10));
    ASSERT_TRUE(client_handshake());
    ASSERT_TRUE(drive([&] { return server_.reported; }));
    ASSERT_EQ(server_.failure, "");
    loop_.run_ready();  // the read the handshake's end asks for
    tls_ = static_cast<TlsTransport*>(transport_.get());
  }
  void TearDown() override {
    transport_.reset();
    Tls::TearDown();
  }

  // Waits until the server's socket holds `bytes` unread bytes (loopback: at once, bounded).
  bool queued_at_server(int bytes) {
    for (int i = 0; i < 2000; ++i) {
      int n = 0;
      if (ioctl(server_fd_, FIONREAD, &n) == 0 && n >= bytes) return true;
      usleep(1000);
    }
    return false;
  }
  int client_bytes_sent() {
    return static_cast<int>(BIO_number_written(SSL_get_wbio(client_ssl_)));
  }

  // One record of `plain` made by the client, as bytes on the wire (not sent).
  std::string client_record(const std::string& plain) {
    BIO* mem = BIO_new(BIO_s_mem());
    BIO* sock = SSL_get_wbio(client_ssl_);
    BIO_up_ref(sock);
    SSL_set0_wbio(client_ssl_, mem);
    EXPECT_EQ(SSL_write(client_ssl_, plain.data(), static_cast<int>(plain.size())),
              static_cast<int>(plain.size()));
    char* p = nullptr;
    const long n = BIO_get_mem_data(mem, &p);
    std::string wire(p, static_cast<size_t>(n));
    SSL_set0_wbio(client_ssl_, sock);  // frees the memory BIO
    return wire;
  }

  std::unique_ptr<TlsContext> ctx_;
  std::unique_ptr<Transport> transport_;
  TlsTransport* tls_ = nullptr;
  uint8_t buf_[65536];
};

TEST_F(TlsIo, RecordsThatArrivedTogetherAreOneReadAndOneSystemCall) {
  const int before = client_bytes_sent();
  std::string sent;
  for (int i = 0; i < 20; ++i) {
    const std::string msg = "message " + std::to_string(100 + i) + ";";
    ASSERT_EQ(SSL_write(client_ssl_, msg.data(), static_cast<int>(msg.size())),
              static_cast<int>(msg.size()));
    sent += msg;
  }
  ASSERT_TRUE(queued_at_server(client_bytes_sent() - before));
  const uint64_t reads = tls_->socket_reads();
  IoResult r = transport_->read(buf_, sizeof(buf_));
  ASSERT_EQ(r.status, IoResult::Status::Done);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf_), r.bytes), sent) << "20 records, one read()";
  EXPECT_EQ(tls_->socket_reads() - reads, 1u) << "read-ahead: one read(2) for all of them";
  EXPECT_EQ(transport_->read(buf_, sizeof(buf_)).status, IoResult::Status::WouldBlock);
}

TEST_F(TlsIo, ARecordSplitAcrossSegmentsIsHandedOverWhenComplete) {
  const std::string plain(1000, 'x');
  const std::string wire = client_record(plain);
  ASSERT_GT(wire.size(), 1000u);
  ASSERT_EQ(::write(client_fd_, wire.data(), 100), 100);
  ASSERT_TRUE(queued_at_server(100));
  EXPECT_EQ(transport_->read(buf_, sizeof(buf_)).status, IoResult::Status::WouldBlock);
  const ssize_t rest = static_cast<ssize_t>(wire.size()) - 100;
  ASSERT_EQ(::write(client_fd_, wire.data() + 100, static_cast<size_t>(rest)), rest);
  ASSERT_TRUE(queued_at_server(static_cast<int>(rest)));
  IoResult r = transport_->read(buf_, sizeof(buf_));
  ASSERT_EQ(r.status, IoResult::Status::Done);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf_), r.bytes), plain);
}

TEST_F(TlsIo, BytesBeforeTheEndAreReadThenTheEnd) {
  const int before = client_bytes_sent();
  for (const char* msg : {"one;", "two;", "three;"})
    SSL_write(client_ssl_, msg, static_cast<int>(strlen(msg)));
  SSL_shutdown(client_ssl_);  // close_notify right behind them
  ASSERT_TRUE(queued_at_server(client_bytes_sent() - before));
  IoResult r = transport_->read(buf_, sizeof(buf_));
  ASSERT_EQ(r.status, IoResult::Status::Done);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf_), r.bytes), "one;two;three;");
  EXPECT_EQ(transport_->read(buf_, sizeof(buf_)).status, IoResult::Status::Eof);
}

TEST_F(TlsIo, APeerClosingMidRecordIsAnEndNotData) {
  const std::string wire = client_record(std::string(1000, 'y'));
  ASSERT_EQ(::write(client_fd_, wire.data(), 500), 500);
  ::shutdown(client_fd_, SHUT_WR);
  ASSERT_TRUE(queued_at_server(500));
  IoResult r{IoResult::Status::WouldBlock};
  for (int i = 0; i < 100 && r.status == IoResult::Status::WouldBlock; ++i) {
    r = transport_->read(buf_, sizeof(buf_));
    if (r.status == IoResult::Status::WouldBlock) usleep(1000);
  }
  EXPECT_TRUE(r.status == IoResult::Status::Eof || r.status == IoResult::Status::Failed)
      << "status " << static_cast<int>(r.status) << ", " << r.bytes << " bytes";
}

// The records of one write() leave in one send(2); the client reads them back whole.
TEST_F(TlsIo, OneWriteIsOneSystemCallWhateverItsRecords) {
  std::string out;
  for (int i = 0; out.size() < 40000; ++i) out += "frame " + std::to_string(i) + "|";
  const uint64_t sends = tls_->socket_writes();
  IoResult w = transport_->write(reinterpret_cast<const uint8_t*>(out.data()), out.size());
  ASSERT_EQ(w.status, IoResult::Status::Done);
  EXPECT_EQ(w.bytes, out.size()) << "all of it, though it takes 3 records";
  EXPECT_EQ(tls_->socket_writes() - sends, 1u);
  // Small writes (one per loop iteration) are one record each, and one send each.
  IoResult small = transport_->write(reinterpret_cast<const uint8_t*>("tail"), 4);
  ASSERT_EQ(small.status, IoResult::Status::Done);
  EXPECT_EQ(tls_->socket_writes() - sends, 2u);
  std::string got;
  char b[16384];
  drive([&] {
    const int n = SSL_read(client_ssl_, b, sizeof(b));
    if (n > 0) got.append(b, static_cast<size_t>(n));
    return got.size() >= out.size() + 4;
  });
  EXPECT_EQ(got, out + "tail");
}

// A peer that does not read: write() says written only what the kernel took; the owner offers
// the rest again, as it would to TCP, and every byte arrives once, in order.
TEST_F(TlsIo, ShortWritesAreOfferedAgainAndArriveOnce) {
  const int small = 4096;  // the client's receive buffer stays as it is: its window is left alone
  setsockopt(server_fd_, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  std::string out;
  for (int i = 0; out.size() < 1024 * 1024; ++i) out += std::to_string(i) + ",";
  size_t offered = 0;  // what the owner was told is written
  int short_writes = 0;
  auto offer = [&] {
    if (offered == out.size()) return;
    IoResult w = transport_->write(reinterpret_cast<const uint8_t*>(out.data()) + offered,
                                   out.size() - offered);
    ASSERT_NE(w.status, IoResult::Status::Failed);
    if (w.status == IoResult::Status::Done) offered += w.bytes;
    if (offered < out.size()) ++short_writes;
  };
  offer();
  offer();  // nothing read yet: the kernel is full, nothing more is taken
  EXPECT_GT(short_writes, 0);
  EXPECT_LT(offered, out.size());
  const int large = 1 << 20;  // from here on, the rest flows quickly
  setsockopt(server_fd_, SOL_SOCKET, SO_SNDBUF, &large, sizeof(large));
  std::string got;
  char b[16384];
  for (int i = 0; i < 100000 && got.size() < out.size(); ++i) {
    const int n = SSL_read(client_ssl_, b, sizeof(b));
    if (n > 0) got.append(b, static_cast<size_t>(n));
    loop_.run_ready();  // the transport sends the records that waited
    offer();
    if (n <= 0) usleep(100);
  }
  EXPECT_EQ(offered, out.size());
  EXPECT_TRUE(got == out) << "received " << got.size() << " of " << out.size() << " bytes";
}

uint64_t count(const TlsHandshakeCounters& c, TlsHandshakeResult r) {
  return c[static_cast<size_t>(r)];
}

TEST_F(Tls, HandshakeOnTheLoopThenBytesBothWays) {
  auto ctx = load();
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  auto t = connect_and_accept((*ctx)->current(loop_.now()), std::chrono::seconds(10));
  EXPECT_TRUE(t->connecting());
  ASSERT_TRUE(client_handshake());
  ASSERT_TRUE(drive([&] { return server_.reported; }));
  EXPECT_EQ(server_.failure, "");
  EXPECT_FALSE(t->connecting());
  EXPECT_EQ(static_cast<TlsTransport*>(t.get())->alpn(), "http/1.1");
  EXPECT_EQ(served_serial(), "11");

  ASSERT_EQ(SSL_write(client_ssl_, "ping", 4), 4);
  ASSERT_TRUE(drive([&] { return server_.received == "ping"; }));
  IoResult w = t->write(reinterpret_cast<const uint8_t*>("pong"), 4);
  ASSERT_EQ(w.status, IoResult::Status::Done);
  EXPECT_EQ(w.bytes, 4u);
  char buf[8] = {};
  ASSERT_TRUE(drive([&] { return SSL_read(client_ssl_, buf, sizeof(buf)) == 4; }));
  EXPECT_EQ(std::string(buf, 4), "pong");

  SSL_shutdown(client_ssl_);  // close_notify: the server reads the end of the stream
  ASSERT_TRUE(drive([&] { return server_.eof; }));
}

TEST_F(Tls, ClientWithoutAlpnStillConnects) {
  auto ctx = load();
  ASSERT_TRUE(ctx.ok());
  auto t = connect_and_accept((*ctx)->current(loop_.now()), std::chrono::seconds(10));
  ASSERT_TRUE(client_handshake(nullptr));
  ASSERT_TRUE(drive([&] { return server_.reported; }));
  EXPECT_EQ(server_.failure, "");
  EXPECT_EQ(static_cast<TlsTransport*>(t.get())->alpn(), "");
}

TEST_F(Tls, SilentClientFailsTheHandshakeAtTheDeadline) {
  auto ctx = load();
  ASSERT_TRUE(ctx.ok());
  auto t = connect_and_accept((*ctx)->current(loop_.now()), std::chrono::milliseconds(20));
  ASSERT_TRUE(drive([&] { return server_.reported; }));
  EXPECT_NE(server_.failure.find("deadline"), std::string::npos) << server_.failure;
}

TEST_F(Tls, PlainHttpClientFailsTheHandshake) {
  auto ctx = load();
  ASSERT_TRUE(ctx.ok());
  auto t = connect_and_accept((*ctx)->current(loop_.now()), std::chrono::seconds(10));
  const char req[] = "POST /mutate HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(drive([&] { return ::write(client_fd_, req, sizeof(req) - 1) > 0; }));
  ASSERT_TRUE(drive([&] { return server_.reported; }));
  EXPECT_NE(server_.failure, "");
}

TEST_F(Tls, NewFilesAreServedAndABadPairKeepsTheOld) {
  auto loaded = load(Duration::zero());  // look at the files on every call
  ASSERT_TRUE(loaded.ok());
  TlsContext& ctx = **loaded;
  SSL_CTX* first = ctx.current(loop_.now());
  EXPECT_EQ(ctx.current(loop_.now()), first) << "unchanged files: the same context";

  point_at(dir_, "v2");
  SSL_CTX* second = ctx.current(loop_.now());
  EXPECT_NE(second, first);
  EXPECT_EQ(ctx.reloads(), 1u);
  auto t = connect_and_accept(second, std::chrono::seconds(10));
  ASSERT_TRUE(client_handshake());
  EXPECT_EQ(served_serial(), "22");

  point_at(dir_, "mixed");
  EXPECT_EQ(ctx.current(loop_.now()), second);
  EXPECT_EQ(ctx.reload_failures(), 1u);
  EXPECT_EQ(ctx.current(loop_.now()), second);
  EXPECT_EQ(ctx.reload_failures(), 1u) << "the same bad pair is not loaded (nor logged) again";

  point_at(dir_, "v1");
  EXPECT_NE(ctx.current(loop_.now()), second);
  EXPECT_EQ(ctx.reloads(), 2u);
}

TEST_F(Tls, FilesAreLookedAtOncePerInterval) {
  auto loaded = load(std::chrono::hours(1));
  ASSERT_TRUE(loaded.ok());
  TlsContext& ctx = **loaded;
  SSL_CTX* first = ctx.current(loop_.now());
  point_at(dir_, "v2");
  EXPECT_EQ(ctx.current(loop_.now()), first) << "looked at already within the interval";
  EXPECT_EQ(ctx.reloads(), 0u);
  EXPECT_NE(ctx.current(loop_.now() + std::chrono::hours(2)), first);
  EXPECT_EQ(ctx.reloads(), 1u);
}

TEST_F(Tls, MismatchedOrMissingFilesAreAnErrorAtStart) {
  point_at(dir_, "mixed");
  auto mixed = load();
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.error().message.find("mismatch"), std::string::npos) << mixed.error().message;
  auto missing = TlsContext::load(TlsServerSettings{{{dir_ + "/nope.crt", dir_ + "/tls.key"}}, {}, false, "", false});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("nope.crt"), std::string::npos);
}

TEST_F(Tls, SniPicksTheCertificateEvenAfterTheContextIsGone) {
  auto loaded = TlsContext::load(TlsServerSettings{
      {{dir_ + "/tls.crt", dir_ + "/tls.key"}, {dir_ + "/sni.crt", dir_ + "/sni.key"}},
      {"h2"}, true, "", false});
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ((*loaded)->certificates().size(), 2u);
  EXPECT_EQ((*loaded)->certificates()[1].serial, "33");
  EXPECT_GT((*loaded)->certificates()[1].not_after, 0);
  auto t = connect_and_accept((*loaded)->current(loop_.now()), std::chrono::seconds(10));
  // A reload or a listener going away while a handshake runs: the certificates SNI may switch
  // to live as long as the connection's context.
  loaded->reset();
  ASSERT_TRUE(client_handshake("\x02h2", "sni.test"));
  EXPECT_EQ(served_serial(), "33");
  ASSERT_TRUE(drive([&] { return server_.reported; }));
  EXPECT_EQ(server_.failure, "");
  EXPECT_EQ(count(counters_, TlsHandshakeResult::Ok), 1u);
}

TEST_F(Tls, UnknownOrMissingSniGetsTheDefaultCertificate) {
  auto loaded = TlsContext::load(TlsServerSettings{
      {{dir_ + "/tls.crt", dir_ + "/tls.key"}, {dir_ + "/sni.crt", dir_ + "/sni.key"}},
      {"h2"}, true, "", false});
  ASSERT_TRUE(loaded.ok());
  auto t = connect_and_accept((*loaded)->current(loop_.now()), std::chrono::seconds(10));
  ASSERT_TRUE(client_handshake("\x02h2"));
  EXPECT_EQ(served_serial(), "11");
}

TEST_F(Tls, RequiredAlpnRefusesAClientWithoutH2) {
  auto loaded = TlsContext::load(TlsServerSettings{
      {{dir_ + "/tls.crt", dir_ + "/tls.key"}}, {"h2"}, true, "", false});
  ASSERT_TRUE(loaded.ok());
  auto t = connect_and_accept((*loaded)->current(loop_.now()), std::chrono::seconds(10));
  EXPECT_FALSE(client_handshake("\x08http/1.1"));
  ASSERT_TRUE(drive([&] { return server_.reported; }));
  EXPECT_NE(server_.failure, "");
  EXPECT_EQ(count(counters_, TlsHandshakeResult::NoAlpn), 1u);
}

TEST_F(Tls, RequiredClientCertificateIsVerifiedAndItsNamesRead) {
  TlsServerSettings settings{{{dir_ + "/tls.crt", dir_ + "/tls.key"}}, {"h2"}, true,
                             dir_ + "/ca.crt", true};
  auto loaded = TlsContext::load(settings);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  {
    auto t = connect_and_accept((*loaded)->current(loop_.now()), std::chrono::seconds(10));
    ASSERT_TRUE(client_handshake("\x02h2", nullptr, /*client_cert=*/true));
    ASSERT_TRUE(drive([&] { return server_.reported; }));
    EXPECT_EQ(server_.failure, "");
    const PeerIdentity* id = t->peer_identity();
    ASSERT_NE(id, nullptr);
    EXPECT_TRUE(id->verified);
    EXPECT_EQ(id->uris, std::vector<std::string>{"spiffe://test/ns/a/sa/client"});
    EXPECT_EQ(id->dns, std::vector<std::string>{"client.test"});
  }
  SSL_free(client_ssl_);
  SSL_CTX_free(client_ctx_);
  client_ssl_ = nullptr;
  client_ctx_ = nullptr;
  ::close(client_fd_);
  server_ = ServerSide{};
  // Without a certificate: refused. With TLS 1.3 the client finishes first and learns it from
  // the server's alert; the server's side is what counts here.
  auto t = connect_and_accept((*loaded)->current(loop_.now()), std::chrono::seconds(10));
  client_handshake("\x02h2");
  char byte;
  drive([&] { return server_.reported && SSL_read(client_ssl_, &byte, 1) <= 0; });
  ASSERT_TRUE(server_.reported);
  EXPECT_NE(server_.failure, "");
  EXPECT_EQ(t->peer_identity(), nullptr);
  EXPECT_EQ(count(counters_, TlsHandshakeResult::NoClientCert), 1u);
  EXPECT_EQ(count(counters_, TlsHandshakeResult::Ok), 1u);
}

}  // namespace
}  // namespace h2mesh::net
