#pragma once

// Checks the HTTP/2 bytes the proxy writes on one connection, as an independent peer would: frame
// layout, which frames may appear on which stream and when, the connection's flow-control window,
// and the header blocks (decoded with nghttp2's HPACK inflater, outside src/http2, then checked
// for what a request, a response or trailers may carry). A violation prints what it saw and
// aborts, which libFuzzer reports as a crash.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

struct nghttp2_hd_inflater;

namespace h2mesh::fuzz {

class FrameChecker {
 public:
  // `proxy_is_server`: the proxy is the server on this connection (the client's side), else
  // the client (a backend's side). `name` prefixes failure messages. `peer_is_strict`: the peer
  // is a correct HTTP/2 implementation, so an RST_STREAM or GOAWAY from it that blames the
  // proxy (PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, COMPRESSION_ERROR) is a
  // failure.
  FrameChecker(bool proxy_is_server, std::string name, bool peer_is_strict);
  ~FrameChecker();
  FrameChecker(const FrameChecker&) = delete;
  FrameChecker& operator=(const FrameChecker&) = delete;

  // Bytes the peer sent to the proxy, in order: they open streams, grant window and set limits.
  void on_peer_bytes(const uint8_t* data, size_t len);
  // Bytes the proxy wrote, in order. Aborts on a violation.
  void on_proxy_bytes(const uint8_t* data, size_t len);

 private:
  struct StreamState {
    bool headers_seen = false;   // the proxy sent the first HEADERS
    bool end_stream = false;     // the proxy sent END_STREAM
    int header_blocks = 0;
  };

  void parse_peer_frame(uint8_t type, uint8_t flags, uint32_t stream, const uint8_t* p,
                        uint32_t len);
  void check_frame(uint8_t type, uint8_t flags, uint32_t stream, const uint8_t* p, uint32_t len);
  void check_header_block(uint32_t stream, bool end_stream);
  [[noreturn]] void fail(const std::string& what) const;

  const bool proxy_is_server_;
  const bool peer_is_strict_;
  const std::string name_;
  nghttp2_hd_inflater* inflater_ = nullptr;

  // Peer side.
  std::vector<uint8_t> peer_buf_;
  size_t peer_preface_left_;
  uint32_t peer_max_frame_size_ = 16384;  // the largest the peer ever allowed
  uint64_t connection_window_ = 65535;    // initial + every connection WINDOW_UPDATE of the peer
  uint32_t peer_max_stream_ = 0;          // highest stream id in any peer frame
  std::map<uint32_t, bool> peer_opened_;  // streams the peer opened with HEADERS

  // Proxy side.
  std::vector<uint8_t> out_buf_;
  size_t out_preface_left_;
  uint64_t data_sent_ = 0;  // DATA payload (padding included) on all streams
  std::map<uint32_t, StreamState> streams_;
  uint32_t last_new_stream_ = 0;   // client role: streams open in increasing order
  uint32_t open_block_stream_ = 0; // a header block without END_HEADERS is open on this stream
  bool open_block_end_stream_ = false;
  std::string block_;              // its fragments so far
  bool first_frame_ = true;
};

}  // namespace h2mesh::fuzz
