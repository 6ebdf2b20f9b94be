#include "frame_checker.h"

#include <nghttp2/nghttp2.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace h2mesh::fuzz {
namespace {

constexpr std::string_view kClientMagic = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kFrameHeader = 9;

enum FrameType : uint8_t {
  kData = 0x0,
  kHeaders = 0x1,
  kPriority = 0x2,
  kRstStream = 0x3,
  kSettings = 0x4,
  kPushPromise = 0x5,
  kPing = 0x6,
  kGoaway = 0x7,
  kWindowUpdate = 0x8,
  kContinuation = 0x9,
};
constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4, kPadded = 0x8,
                  kPriorityFlag = 0x20;

uint32_t u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Splits complete frames off the front of `buf` and hands each to `fn`.
template <typename Fn>
void for_each_frame(std::vector<uint8_t>& buf, Fn fn) {
  size_t pos = 0;
  while (buf.size() - pos >= kFrameHeader) {
    const uint8_t* h = buf.data() + pos;
    uint32_t len = (uint32_t{h[0]} << 16) | (uint32_t{h[1]} << 8) | h[2];
    if (buf.size() - pos - kFrameHeader < len) break;
    fn(h[3], h[4], u32(h + 5) & 0x7fffffffu, h + kFrameHeader, len);
    pos += kFrameHeader + len;
  }
  buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(pos));
}

bool connection_specific(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade";
}

// Transfer codings are case-insensitive tokens (RFC 9110 section 10.1.4).
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if ((a[i] | 0x20) != b[i]) return false;
  return true;
}

}  // namespace

FrameChecker::FrameChecker(bool proxy_is_server, std::string name, bool peer_is_strict)
    : proxy_is_server_(proxy_is_server),
      peer_is_strict_(peer_is_strict),
      name_(std::move(name)),
      peer_preface_left_(proxy_is_server ? kClientMagic.size() : 0),
      out_preface_left_(proxy_is_server ? 0 : kClientMagic.size()) {
  if (nghttp2_hd_inflate_new(&inflater_) != 0) abort();
}

FrameChecker::~FrameChecker() { nghttp2_hd_inflate_del(inflater_); }

void FrameChecker::fail(const std::string& what) const {
  fprintf(stderr, "frame checker (%s): %s\n", name_.c_str(), what.c_str());
  abort();
}

void FrameChecker::on_peer_bytes(const uint8_t* data, size_t len) {
  // The peer's bytes are not checked (they may be anything the fuzzer made); they only tell
  // what the proxy is allowed to send.
  size_t skip = std::min(len, peer_preface_left_);
  peer_preface_left_ -= skip;
  peer_buf_.insert(peer_buf_.end(), data + skip, data + len);
  for_each_frame(peer_buf_, [this](uint8_t type, uint8_t flags, uint32_t stream,
                                   const uint8_t* p, uint32_t n) {
    parse_peer_frame(type, flags, stream, p, n);
  });
  // nghttp2 acts on a frame's header (and a header block's first bytes) before the whole frame
  // arrived: a stream counts as mentioned, or opened, from then on.
  if (peer_buf_.size() >= kFrameHeader) {
    uint32_t stream = u32(peer_buf_.data() + 5) & 0x7fffffffu;
    if (stream > peer_max_stream_) peer_max_stream_ = stream;
    if (peer_buf_[3] == kHeaders && stream != 0) peer_opened_[stream] = true;
  }
}

void FrameChecker::parse_peer_frame(uint8_t type, uint8_t flags, uint32_t stream,
                                    const uint8_t* p, uint32_t len) {
  if (stream > peer_max_stream_) peer_max_stream_ = stream;
  if (peer_is_strict_) {
    uint32_t code = type == kRstStream && len == 4 ? u32(p)
                    : type == kGoaway && len >= 8  ? u32(p + 4)
                                                   : 0;
    if (code == NGHTTP2_PROTOCOL_ERROR || code == NGHTTP2_FLOW_CONTROL_ERROR ||
        code == NGHTTP2_FRAME_SIZE_ERROR || code == NGHTTP2_COMPRESSION_ERROR ||
        (type == kGoaway && code != 0))
      fail("the correct peer rejected the proxy's frames: " +
           std::string(type == kGoaway ? "GOAWAY" : "RST_STREAM") + " code " +
           std::to_string(code) + " on stream " + std::to_string(stream));
  }
  if (type == kHeaders && stream != 0) peer_opened_[stream] = true;
  if (type == kWindowUpdate && stream == 0 && len == 4) connection_window_ += u32(p) & 0x7fffffffu;
  if (type == kSettings && !(flags & kAck) && stream == 0 && len % 6 == 0) {
    for (uint32_t i = 0; i < len; i += 6) {
      uint16_t id = static_cast<uint16_t>((p[i] << 8) | p[i + 1]);
      uint32_t value = u32(p + i + 2);
      if (id == NGHTTP2_SETTINGS_MAX_FRAME_SIZE && value >= 16384 && value <= 16777215 &&
          value > peer_max_frame_size_)
        peer_max_frame_size_ = value;
    }
  }
}

void FrameChecker::on_proxy_bytes(const uint8_t* data, size_t len) {
  if (out_preface_left_ > 0) {
    size_t n = std::min(len, out_preface_left_);
    size_t at = kClientMagic.size() - out_preface_left_;
    if (memcmp(data, kClientMagic.data() + at, n) != 0) fail("bad client connection preface");
    out_preface_left_ -= n;
    data += n;
    len -= n;
  }
  out_buf_.insert(out_buf_.end(), data, data + len);
  for_each_frame(out_buf_, [this](uint8_t type, uint8_t flags, uint32_t stream,
                                  const uint8_t* p, uint32_t n) {
    check_frame(type, flags, stream, p, n);
  });
}

void FrameChecker::check_frame(uint8_t type, uint8_t flags, uint32_t stream, const uint8_t* p,
                               uint32_t len) {
  const std::string where = "frame type " + std::to_string(type) + " stream " +
                            std::to_string(stream) + " length " + std::to_string(len);
  if (len > peer_max_frame_size_) fail(where + ": larger than the peer's SETTINGS_MAX_FRAME_SIZE");
  if (first_frame_) {
    first_frame_ = false;
    if (type != kSettings || (flags & kAck)) fail(where + ": the preface must start with SETTINGS");
  }
  if (open_block_stream_ != 0 && (type != kContinuation || stream != open_block_stream_))
    fail(where + ": interleaved with an open header block on stream " +
         std::to_string(open_block_stream_));

  switch (type) {
    case kData: {
      if (stream == 0) fail(where + ": DATA on stream 0");
      StreamState& s = streams_[stream];
      if (!s.headers_seen) fail(where + ": DATA before HEADERS");
      if (s.end_stream) fail(where + ": DATA after END_STREAM");
      if ((flags & kPadded) && (len == 0 || p[0] >= len)) fail(where + ": bad padding");
      data_sent_ += len;
      if (data_sent_ > connection_window_)
        fail(where + ": DATA beyond the connection window (" + std::to_string(data_sent_) + " > " +
             std::to_string(connection_window_) + ")");
      if (flags & kEndStream) s.end_stream = true;
      return;
    }
    case kHeaders: {
      if (stream == 0) fail(where + ": HEADERS on stream 0");
      StreamState& s = streams_[stream];
      if (proxy_is_server_) {
        if (!peer_opened_.count(stream)) fail(where + ": HEADERS on a stream the client never opened");
      } else if (!s.headers_seen && s.header_blocks == 0) {
        if (stream % 2 == 0 || stream <= last_new_stream_)
          fail(where + ": new stream id not odd and increasing");
        last_new_stream_ = stream;
      }
      if (s.end_stream) fail(where + ": HEADERS after END_STREAM");
      uint32_t skip = 0, pad = 0;
      if (flags & kPadded) {
        if (len < 1) fail(where + ": no pad length");
        pad = p[0];
        skip = 1;
      }
      if (flags & kPriorityFlag) skip += 5;
      if (skip + pad > len) fail(where + ": padding and priority exceed the payload");
      block_.assign(reinterpret_cast<const char*>(p + skip), len - skip - pad);
      open_block_end_stream_ = (flags & kEndStream) != 0;
      if (flags & kEndHeaders) {
        check_header_block(stream, open_block_end_stream_);
      } else {
        open_block_stream_ = stream;
      }
      return;
    }
    case kContinuation:
      if (open_block_stream_ != stream) fail(where + ": CONTINUATION without an open block");
      block_.append(reinterpret_cast<const char*>(p), len);
      if (flags & kEndHeaders) {
        open_block_stream_ = 0;
        check_header_block(stream, open_block_end_stream_);
      }
      return;
    case kPriority:
      if (stream == 0 || len != 5) fail(where + ": bad PRIORITY");
      if ((u32(p) & 0x7fffffffu) == stream) fail(where + ": stream depends on itself");
      return;
    case kRstStream:
      if (stream == 0 || len != 4) fail(where + ": bad RST_STREAM");
      if (stream > peer_max_stream_ && stream > last_new_stream_)
        fail(where + ": RST_STREAM on an idle stream");
      return;
    case kSettings:
      if (stream != 0 || len % 6 != 0 || ((flags & kAck) && len != 0)) fail(where + ": bad SETTINGS");
      for (uint32_t i = 0; i < len; i += 6) {
        uint16_t id = static_cast<uint16_t>((p[i] << 8) | p[i + 1]);
        uint32_t value = u32(p + i + 2);
        if ((id == NGHTTP2_SETTINGS_ENABLE_PUSH && value > 1) ||
            (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE && value > 0x7fffffffu) ||
            (id == NGHTTP2_SETTINGS_MAX_FRAME_SIZE && (value < 16384 || value > 16777215)))
          fail(where + ": invalid SETTINGS value");
      }
      return;
    case kPing:
      if (stream != 0 || len != 8) fail(where + ": bad PING");
      return;
    case kGoaway:
      if (stream != 0 || len < 8) fail(where + ": bad GOAWAY");
      return;
    case kWindowUpdate: {
      if (len != 4) fail(where + ": bad WINDOW_UPDATE");
      uint32_t inc = u32(p) & 0x7fffffffu;
      if (inc == 0) fail(where + ": WINDOW_UPDATE of 0");
      if (stream > peer_max_stream_ && stream > last_new_stream_)
        fail(where + ": WINDOW_UPDATE on an idle stream");
      return;
    }
    case kPushPromise:
      fail(where + ": the proxy never pushes");
    default:
      fail(where + ": unknown frame type");
  }
}

void FrameChecker::check_header_block(uint32_t stream, bool end_stream) {
  StreamState& s = streams_[stream];
  const bool first = !s.headers_seen;
  ++s.header_blocks;
  std::vector<std::pair<std::string, std::string>> fields;
  const auto* in = reinterpret_cast<const uint8_t*>(block_.data());
  size_t left = block_.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t n = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, in, left, 1);
    if (n < 0) fail("stream " + std::to_string(stream) + ": HPACK block does not decode");
    in += n;
    left -= static_cast<size_t>(n);
    if (flags & NGHTTP2_HD_INFLATE_EMIT)
      fields.emplace_back(std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                          std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen));
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater_);
      break;
    }
    if (n == 0 && left == 0) fail("stream " + std::to_string(stream) + ": truncated HPACK block");
  }

  const std::string where = "stream " + std::to_string(stream) + " header block " +
                            std::to_string(s.header_blocks);
  bool regular_seen = false;
  std::string status;
  bool has_method = false, has_path = false, has_scheme = false;
  for (const auto& [name, value] : fields) {
    if (name.empty()) fail(where + ": empty field name");
    for (char c : name)
      if (c >= 'A' && c <= 'Z') fail(where + ": uppercase field name " + name);
    for (char c : value)
      if (c == '\0' || c == '\r' || c == '\n') fail(where + ": CR, LF or NUL in " + name);
    if (name[0] == ':') {
      if (regular_seen) fail(where + ": pseudo-header " + name + " after a regular field");
      if (!first) fail(where + ": pseudo-header " + name + " in trailers");
      if (proxy_is_server_ && name != ":status") fail(where + ": request pseudo-header " + name);
      if (!proxy_is_server_ && name == ":status") fail(where + ": :status in a request");
      if (name == ":status") status = value;
      has_method |= name == ":method";
      has_path |= name == ":path";
      has_scheme |= name == ":scheme";
      continue;
    }
    regular_seen = true;
    if (connection_specific(name)) fail(where + ": connection-specific field " + name);
    if (name == "te" && !iequals(value, "trailers")) fail(where + ": te other than trailers");
    // grpc-message is a response field: the proxy encodes what it relays to clients. A client
    // that puts one in a request gets it to the backend as it sent it, like any other field.
    if (name == "grpc-message" && proxy_is_server_) {
      for (char c : value)
        if (c < 0x20 || c > 0x7e) fail(where + ": grpc-message not percent-encoded");
    }
  }

  if (first) {
    if (proxy_is_server_) {
      // Three digits, as nghttp2 enforces on both sides. Not 100..599: h2mesh relays a
      // backend's ":status 050" as it is (reported in the fuzzing notes, fuzz/README.md).
      if (status.size() != 3 || status.find_first_not_of("0123456789") != std::string::npos)
        fail(where + ": response without a valid :status");
      if (status[0] == '1') {
        if (end_stream) fail(where + ": informational response with END_STREAM");
        return;  // the final response headers are still to come
      }
    } else if (!has_method || !has_path || !has_scheme) {
      fail(where + ": request without :method, :path or :scheme");
    }
    s.headers_seen = true;
  } else if (!end_stream) {
    fail(where + ": trailers without END_STREAM");
  }
  if (end_stream) s.end_stream = true;
}

}  // namespace h2mesh::fuzz
