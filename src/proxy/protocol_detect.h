#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

#include "common/time.h"
#include "net/event_loop.h"

namespace h2mesh::proxy {

enum class Protocol {
  Http2,  // the HTTP/2 client connection preface: gRPC, balanced per call
  Tls,    // a TLS ClientHello's record header (0x16 0x03): mesh mTLS on the inbound side
  Other,  // anything else, or nothing in time: relayed as TCP to the original destination
};
const char* protocol_name(Protocol p);

// The 24 bytes an HTTP/2 client with prior knowledge sends first (RFC 9113 3.4).
inline constexpr size_t kHttp2PrefaceSize = 24;

// Decides from the first bytes of a connection: Http2 once all 24 bytes of the preface are
// there, Tls for a TLS handshake record (0x16 0x03), Other as soon as a byte differs from both,
// nullopt while more is needed. A pure function, for the detector and for tests.
std::optional<Protocol> classify_first_bytes(const uint8_t* bytes, size_t size);

// Waits on the worker's loop for the first bytes of an accepted connection and reports once
// which protocol it speaks. Bytes are only peeked (MSG_PEEK), never consumed: whoever takes the
// socket next reads them itself. Decisions: the full preface → Http2; a byte that differs, end
// of stream or an error → Other; nothing or only part of the preface within `timeout` → Other
// (protocols whose server speaks first: SMTP, MySQL; their client sends nothing until greeted).
//
// Edge-triggered: a partial preface waits for the next arrival of bytes instead of waking the
// loop again for bytes already seen.
//
// Loop thread only. The socket is not owned and stays open. The callback runs once, from the
// loop (never from the constructor), after the detector removed the socket from the loop and
// stopped its timer: from then on it does not touch the socket, and the callback may destroy
// the detector, directly or through defer_delete, and hand the socket to its next owner.
class ProtocolDetector final : public net::Deletable, private net::IoHandler {
 public:
  static constexpr Duration kDefaultTimeout = std::chrono::milliseconds(100);
  // `elapsed`: from construction to the decision, by the loop's clock.
  using Callback = std::function<void(Protocol protocol, Duration elapsed)>;

  // Starts waiting at once: registers `fd` (a connected, non-blocking socket) on `loop`.
  ProtocolDetector(net::EventLoop& loop, int fd, Duration timeout, Callback done);
  ~ProtocolDetector() override;
  ProtocolDetector(const ProtocolDetector&) = delete;
  ProtocolDetector& operator=(const ProtocolDetector&) = delete;

 private:
  void on_io(uint32_t events) override;
  void decide(Protocol protocol);

  net::EventLoop& loop_;
  int fd_;
  TimePoint started_;
  net::Timer timer_;
  Callback done_;
  bool registered_ = false;
};

}  // namespace h2mesh::proxy
