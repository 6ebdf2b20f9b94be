#include "http2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/block_pool.h"
#include "http2/session_arena.h"

namespace h2mesh::http2 {
namespace {

// The session whose produce() is running: send_data_callback appends frames to its buffer.
struct ProduceContext {
  Buffer* out = nullptr;
  size_t limit = 0;
};
thread_local ProduceContext t_produce;

// The callbacks' user_data is the Session.
Session& session_of(void* user_data) { return *static_cast<Session*>(user_data); }
SessionVisitor& visitor_of(void* user_data) { return session_of(user_data).visitor(); }

void* stream_user(void* user_data, int32_t stream_id) {
  return session_of(user_data).stream_user(stream_id);
}

int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  session_of(ud).begin_header_block();
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) visitor_of(ud).on_stream_open(frame->hd.stream_id);
  return 0;
}

int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
  int32_t id = frame->hd.stream_id;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  // Past a limit, fields are still decoded (the HPACK table must stay in step) but go nowhere.
  if (!session_of(ud).account_header(n, v)) return 0;
  visitor_of(ud).on_header(id, stream_user(ud, id), n, v);
  return 0;
}

int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  Session& s = session_of(ud);
  SessionVisitor& v = s.visitor();
  int32_t id = frame->hd.stream_id;
  bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      s.on_received_headers_or_data();
      HeadersKind kind;
      switch (frame->headers.cat) {
        case NGHTTP2_HCAT_REQUEST: kind = HeadersKind::Request; break;
        case NGHTTP2_HCAT_RESPONSE: kind = HeadersKind::Response; break;
        case NGHTTP2_HCAT_HEADERS: kind = HeadersKind::Trailers; break;
        default: return 0;  // push responses: push is disabled
      }
      if (const HeaderOverflow* overflow = s.header_overflow()) {
        v.on_headers_too_large(id, stream_user(ud, id), kind, *overflow);
      } else {
        v.on_headers_end(id, stream_user(ud, id), kind, end_stream);
      }
      break;
    }
    case NGHTTP2_DATA:
      s.on_received_headers_or_data();
      if (end_stream) v.on_data_end(id, stream_user(ud, id));
      break;
    case NGHTTP2_PING:
      s.on_received_ping(frame->hd.flags & NGHTTP2_FLAG_ACK);
      break;
    case NGHTTP2_SETTINGS:
      if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) v.on_remote_settings();
      break;
    case NGHTTP2_GOAWAY:
      v.on_goaway(frame->goaway.last_stream_id, frame->goaway.error_code);
      break;
    default:
      break;
  }
  return 0;
}

int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  Session& s = session_of(ud);
  static_assert(NGHTTP2_DATA == 0 && NGHTTP2_HEADERS == 1);
  if (frame->hd.type <= NGHTTP2_HEADERS) {  // most frames a call sends: one test
    s.on_sent_headers_or_data();
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s.on_sent_end_stream(frame->hd.stream_id);
  } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
    s.on_sent_reset(frame->hd.stream_id);
  } else if (frame->hd.type == NGHTTP2_GOAWAY) {
    s.visitor().on_goaway_sent(frame->goaway.error_code);
  }
  return 0;
}

int on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                  void* ud) {
  visitor_of(ud).on_data(stream_id, stream_user(ud, stream_id), data, len);
  return 0;
}

int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
  void* user = stream_user(ud, stream_id);
  session_of(ud).forget_stream(stream_id);
  session_of(ud).on_stream_ended(stream_id, error_code);
  visitor_of(ud).on_stream_close(stream_id, user, error_code);
  return 0;
}

int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
              nghttp2_data_source*, void* ud) {
  Buffer& out = *t_produce.out;
  out.append(framehd, 9);
  int32_t id = frame->hd.stream_id;
  session_of(ud).on_sent_headers_or_data();
  visitor_of(ud).write_body(id, stream_user(ud, id), length, out);
  // DATA bypasses mem_send's return value: stop here once the caller's limit is reached.
  if (out.size() >= t_produce.limit) return NGHTTP2_ERR_PAUSE;
  return 0;
}

ssize_t read_body(nghttp2_session*, int32_t stream_id, uint8_t*, size_t length,
                  uint32_t* data_flags, nghttp2_data_source*, void* ud) {
  BodyChunk chunk = visitor_of(ud).read_body(stream_id, stream_user(ud, stream_id), length);
  if (chunk.deferred) return NGHTTP2_ERR_DEFERRED;
  *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (chunk.eof) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (chunk.trailers_follow) *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  }
  return static_cast<ssize_t>(chunk.length);
}

nghttp2_session_callbacks* callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(c, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, on_frame_send);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(c, send_data);
    return c;
  }();
  return cbs;
}

// The largest header block we may have to send: a request or response we accepted under a
// limit of at most 1 MiB decoded, re-encoded (HPACK never makes a field much longer).
constexpr size_t kMaxSendHeaderBlock = 2 << 20;
constexpr uint32_t kMaxWindow = 0x7fffffff;

class Options {
 public:
  explicit Options(const SessionOptions& opts) {
    nghttp2_option_new(&o_);
    // Windows are returned only when the other side took the bytes: end-to-end back-pressure.
    nghttp2_option_set_no_auto_window_update(o_, 1);
    // Closed streams are only kept to build the RFC 7540 priority tree, which we do not use.
    nghttp2_option_set_no_closed_streams(o_, 1);
    nghttp2_option_set_max_send_header_block_length(o_, kMaxSendHeaderBlock);
    // A header block of max_header_list_bytes may need that many bytes of CONTINUATION frames
    // (16 KiB each when nothing compresses); a few more are allowed for small frames.
    nghttp2_option_set_max_continuations(o_, opts.max_header_list_bytes / 16384 + 8);
    // Our own RST_STREAM budget answers first (ENHANCE_YOUR_CALM); libnghttp2's, looser, stays
    // as a backstop.
    if (opts.flood.rst_stream.burst > 0)
      nghttp2_option_set_stream_reset_rate_limit(o_, uint64_t{opts.flood.rst_stream.burst} * 4,
                                                 uint64_t{opts.flood.rst_stream.per_second} * 4 + 1);
  }
  ~Options() { nghttp2_option_del(o_); }
  Options(const Options&) = delete;
  Options& operator=(const Options&) = delete;
  const nghttp2_option* get() const { return o_; }

 private:
  nghttp2_option* o_;
};

// Fields whose value differs on (nearly) every call: a trace context carries the call's own
// span id, grpc-timeout the time left. Indexed, each would take a new entry of the connection's
// HPACK table that no later call reuses, evicting the entries that are reused (:path,
// content-type, the authority...) and making every later header block larger and slower to
// encode. They are sent as literals without indexing.
bool never_repeats(std::string_view name) {
  switch (name.size()) {
    case 11:
      return name == "traceparent";
    case 12:
      return name == "grpc-timeout" || name == "x-request-id";
    case 14:
      return name == "grpc-trace-bin";
    default:
      return false;
  }
}

// Our header refs as nghttp2's name/value array: on the stack for typical header sets.
// `request`: the fields are a request's, the only blocks that carry per-call unique fields.
class NvArray {
 public:
  explicit NvArray(std::span<const HeaderRef> headers, bool request = false)
      : size_(headers.size()) {
    nghttp2_nv* nv = inline_.data();
    if (size_ > inline_.size()) {
      heap_.resize(size_);
      nv = heap_.data();
    }
    for (size_t i = 0; i < size_; ++i) {
      nv[i].name = const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(headers[i].name.data()));
      nv[i].namelen = headers[i].name.size();
      nv[i].value =
          const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(headers[i].value.data()));
      nv[i].valuelen = headers[i].value.size();
      nv[i].flags = request && never_repeats(headers[i].name) ? NGHTTP2_NV_FLAG_NO_INDEX
                                                              : NGHTTP2_NV_FLAG_NONE;
    }
  }
  const nghttp2_nv* data() const { return heap_.empty() ? inline_.data() : heap_.data(); }
  size_t size() const { return size_; }

 private:
  std::array<nghttp2_nv, 24> inline_;
  std::vector<nghttp2_nv> heap_;
  size_t size_;
};

// nghttp2 allocates and frees a dozen small objects per call (streams, queued frames, header
// buffers): they come from the thread's BlockPool. What it allocates when a session is created
// is laid out by SessionArena so that an idle connection keeps one page. Under AddressSanitizer
// nghttp2 keeps malloc, so that misuse stays detectable.
#ifdef __SANITIZE_ADDRESS__
constexpr bool kOwnAllocator = false;
#else
constexpr bool kOwnAllocator = true;
#endif

void* mem_malloc(size_t n, void*) {
  if (void* p = SessionArena::allocate(n)) return p;
  return BlockPool::allocate(n);
}

void mem_free(void* p, void*) {
  if (!p) return;
  if (SessionArena::owns(p)) {
    SessionArena::release(p);
  } else {
    BlockPool::release(p);
  }
}

void* mem_calloc(size_t count, size_t n, void*) {
  if (n != 0 && count > SIZE_MAX / n) return nullptr;
  if (void* p = SessionArena::allocate(count * n)) return p;  // arena pages read as zero
  return BlockPool::allocate_zeroed(count, n);
}

void* mem_realloc(void* p, size_t n, void*) {
  if (!p) return mem_malloc(n, nullptr);
  if (!SessionArena::owns(p)) return BlockPool::reallocate(p, n);
  if (n == 0) {
    SessionArena::release(p);
    return nullptr;
  }
  const size_t old = SessionArena::block_size(p);
  if (n <= old) return p;
  void* q = BlockPool::allocate(n);  // arena blocks do not grow: move out
  if (!q) return nullptr;
  std::memcpy(q, p, old);
  SessionArena::release(p);
  return q;
}

nghttp2_mem* allocator() {
  if (!kOwnAllocator) return nullptr;
  static nghttp2_mem mem{nullptr, mem_malloc, mem_free, mem_calloc, mem_realloc};
  return &mem;
}

Error nghttp2_error(const char* what, int rv) {
  return make_error(ErrorCode::Internal, std::string(what) + ": " + nghttp2_strerror(rv));
}

}  // namespace

Session::Session(Role role, SessionVisitor& visitor, const SessionOptions& opts)
    : visitor_(visitor),
      role_(role),
      max_header_list_bytes_(opts.max_header_list_bytes),
      max_header_fields_(opts.max_header_fields),
      scanner_(role == Role::Server ? NGHTTP2_CLIENT_MAGIC_LEN : 0) {
  {
    Options options(opts);
    std::optional<SessionArena::Scope> arena;  // what nghttp2 allocates for the session
    if (kOwnAllocator) arena.emplace();
    if (role == Role::Server) {
      nghttp2_session_server_new3(&session_, callbacks(), this, options.get(), allocator());
    } else {
      nghttp2_session_client_new3(&session_, callbacks(), this, options.get(), allocator());
    }
  }
  const TimePoint start{};
  empty_frames_.configure(opts.flood.empty_frames, start);
  priority_.configure(opts.flood.priority, start);
  settings_.configure(opts.flood.settings, start);
  ping_.configure(opts.flood.ping, start);
  // Rapid reset is an attack on servers; a backend refusing streams under load is not one.
  rst_stream_.configure(role == Role::Server ? opts.flood.rst_stream : FrameBudget{}, start);
  closed_answers_.configure(opts.flood.closed_stream_answers, start);
  if (role == Role::Server) {
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, opts.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, opts.stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, opts.max_header_list_bytes},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 3);
  } else {
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, opts.stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, opts.max_header_list_bytes},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 3);
  }
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(opts.connection_window));
}

Session::~Session() { nghttp2_session_del(session_); }

Result<size_t> Session::receive(const uint8_t* data, size_t len, TimePoint now) {
  if (const Fault fault = scan(data, len, now); fault != Fault::None) return fail(fault);
  return len;
}

Session::Fault Session::scan(const uint8_t* data, size_t len, TimePoint now) {
  // Every frame header is checked before libnghttp2 sees any byte of it. Runs of frames whose
  // checks need no stream state are handed on in one call (a call to libnghttp2 per frame costs
  // ~10 % more instructions per proxied call); before a frame whose check does, everything
  // before it is handed on, so that the check sees the streams as those frames left them.
  size_t off = 0;  // bytes of `data` scanned
  size_t fed = 0;  // bytes of `data` handed to libnghttp2 (or held by the scanner)
  auto flush = [&](size_t upto) {
    Fault fault = Fault::None;
    if (upto > fed) {
      fault = feed(data + fed, upto - fed);
      fed = upto;
    }
    fed_max_peer_stream_id_ = max_peer_stream_id_;
    return fault;
  };
  while (off < len) {
    if (size_t skip = scanner_.passthrough()) {
      // The rest of the preface, or of a payload that began in an earlier read or is a SETTINGS
      // frame's.
      const size_t n = std::min(skip, len - off);
      if (in_settings_) {
        if (Fault f = flush(off); f != Fault::None) return f;
        if (Fault f = pass_settings_bytes(data + off, n, n == skip); f != Fault::None) return f;
        fed = off + n;
      }
      scanner_.passed(n);
      off += n;
      continue;
    }
    FrameHeader h;
    if (scanner_.partial() || len - off < FrameScanner::kHeaderSize) {
      // A header split over reads: collected in the scanner, handed on once complete.
      if (Fault f = flush(off); f != Fault::None) return f;
      off += scanner_.collect_header(data + off, len - off);
      fed = off;
      if (!scanner_.header_complete()) break;  // the rest comes with the next read
      h = scanner_.header();
      if (!plain_frame(h)) {
        if (Fault f = check_frame(h, now); f != Fault::None) return f;
      }
      if (Fault f = feed(scanner_.header_bytes(), FrameScanner::kHeaderSize); f != Fault::None)
        return f;
      fed_max_peer_stream_id_ = max_peer_stream_id_;
      scanner_.start_payload();
      begin_settings(h);
      continue;
    }
    off = skip_plain_frames(data, off, len);
    if (scanner_.passthrough() || len - off < FrameScanner::kHeaderSize) continue;
    // A frame that needs a look.
    h = FrameScanner::parse(data + off);
    if (needs_current_state(h)) {
      if (Fault f = flush(off); f != Fault::None) return f;
    }
    if (Fault f = check_frame(h, now); f != Fault::None) {
      if (Fault g = flush(off); g != Fault::None) return g;  // the frames before it stand
      return f;
    }
    off += FrameScanner::kHeaderSize;
    scanner_.skip_payload(h.length);
    begin_settings(h);
  }
  return flush(off);
}

size_t Session::skip_plain_frames(const uint8_t* data, size_t off, size_t len) {
  while (len - off >= FrameScanner::kHeaderSize) {
    const FrameHeader h = FrameScanner::parse(data + off);
    if (!plain_frame(h)) break;
    const size_t end = off + FrameScanner::kHeaderSize + h.length;
    if (end > len) {  // the payload goes on in the next read
      scanner_.skip_payload(h.length);
      return off + FrameScanner::kHeaderSize;
    }
    off = end;
  }
  return off;
}

bool Session::plain_frame(const FrameHeader& h) {
  switch (h.type) {
    case NGHTTP2_WINDOW_UPDATE:
      return true;
    case NGHTTP2_HEADERS:
      // RFC 9113 5.1.1: a new stream's id is above every id the peer used before. Any other
      // HEADERS from a client goes to check_frame.
      if (role_ == Role::Client) return true;
      if (!(h.stream_id & 1) || h.stream_id <= max_peer_stream_id_) return false;
      max_peer_stream_id_ = h.stream_id;
      return true;
    case NGHTTP2_DATA:
      // A payload on a stream that is open, or opened by frames libnghttp2 has not seen yet
      // (check_frame only answers DATA on closed streams and budgets empty DATA).
      if (h.length == 0) return false;
      if (role_ == Role::Server && h.stream_id > fed_max_peer_stream_id_) return true;
      return nghttp2_session_find_stream(session_, h.stream_id) != nullptr;
    default:
      return false;
  }
}

bool Session::needs_current_state(const FrameHeader& h) const {
  if (h.type == NGHTTP2_SETTINGS) return !(h.flags & NGHTTP2_FLAG_ACK) && h.length > 0;
  // A HEADERS frame on a stream id already used: trailers of an open stream, or a violation.
  return h.type == NGHTTP2_HEADERS && role_ == Role::Server && (h.stream_id & 1) &&
         h.stream_id <= max_peer_stream_id_;
}

void Session::begin_settings(const FrameHeader& h) {
  if (h.type != NGHTTP2_SETTINGS || (h.flags & NGHTTP2_FLAG_ACK) || h.length == 0) return;
  in_settings_ = true;
  entry_have_ = 0;
  initial_window_seen_ = false;
  max_initial_window_ = 0;
}

Session::Fault Session::pass_settings_bytes(const uint8_t* data, size_t n, bool ends_frame) {
  parse_settings(data, n);
  // The frame's last byte makes libnghttp2 apply it: check the entries first.
  if (Fault f = feed(data, ends_frame ? n - 1 : n); f != Fault::None) return f;
  if (!ends_frame) return Fault::None;
  in_settings_ = false;
  if (Fault f = check_window_growth(); f != Fault::None) return f;
  return feed(data + n - 1, 1);
}

Session::Fault Session::feed(const uint8_t* data, size_t len) {
  if (len == 0) return Fault::None;
  ssize_t rv = nghttp2_session_mem_recv(session_, data, len);
  if (rv >= 0) return Fault::None;
  recv_error_ = static_cast<int>(rv);
  return Fault::Nghttp2;
}

Error Session::fail(Fault fault) {
  auto violation = [&](H2Error code, std::string message) {
    nghttp2_session_terminate_session(session_, static_cast<uint32_t>(code));
    return make_error(ErrorCode::DownstreamProtocol, std::move(message));
  };
  auto flood = [&](const char* what) {
    return violation(H2Error::EnhanceYourCalm, std::string("flood of ") + what);
  };
  switch (fault) {
    case Fault::Nghttp2:  // libnghttp2 has queued its own GOAWAY, if any
      if (recv_error_ == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
        return make_error(ErrorCode::InvalidArgument, "not an HTTP/2 connection preface");
      return make_error(ErrorCode::DownstreamProtocol, nghttp2_strerror(recv_error_));
    case Fault::EmptyDataFlood: return flood("empty DATA frames");
    case Fault::PriorityFlood: return flood("PRIORITY frames");
    case Fault::RstStreamFlood: return flood("RST_STREAM frames");
    case Fault::SettingsFlood: return flood("SETTINGS frames");
    case Fault::PingFlood: return flood("PING frames");
    case Fault::EmptyContinuationFlood: return flood("empty CONTINUATION frames");
    case Fault::HeadersNotAbove:
      return violation(H2Error::ProtocolError,
                       "HEADERS on stream " + std::to_string(fault_stream_) +
                           ", not above stream " + std::to_string(max_peer_stream_id_));
    case Fault::WindowOverflow:
      return violation(H2Error::FlowControlError,
                       "SETTINGS_INITIAL_WINDOW_SIZE " + std::to_string(max_initial_window_) +
                           " overflows the window of stream " + std::to_string(fault_stream_));
    case Fault::None:
      break;
  }
  return make_error(ErrorCode::Internal, "receive failed without a fault");  // receive() never
}

bool Session::is_closed_stream(int32_t id) {
  if (id == 0 || !(id & 1)) return false;  // even ids: push is off, libnghttp2 rejects them
  // Streams opened by frames libnghttp2 has not seen yet are not closed.
  if (role_ == Role::Server ? id > fed_max_peer_stream_id_
                            : static_cast<uint32_t>(id) >= nghttp2_session_get_next_stream_id(session_))
    return false;
  // libnghttp2's map rather than stream_user(): this frame's callbacks run after the frames
  // before it, whose lookups replace the cached stream, so caching it here would save nothing.
  return nghttp2_session_find_stream(session_, id) == nullptr;
}

Session::Fault Session::check_frame(const FrameHeader& h, TimePoint now) {
  switch (h.type) {
    case NGHTTP2_DATA:
      if (h.length == 0 && !(h.flags & NGHTTP2_FLAG_END_STREAM) && !empty_frames_.take(now))
        return Fault::EmptyDataFlood;
      // RFC 9113 6.1: DATA on a closed stream is a stream error STREAM_CLOSED. Frames on a
      // stream we reset are the peer's in-flight ones: ignored (section 5.1). Past the budget
      // of answers, the rest are ignored too (libnghttp2 still counts them in the window).
      if (is_closed_stream(h.stream_id) && !recent_resets_.contains(h.stream_id) &&
          closed_answers_.take(now)) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, h.stream_id,
                                  NGHTTP2_STREAM_CLOSED);
      }
      break;
    case NGHTTP2_HEADERS:
      // A client's HEADERS on an id it used before (plain_frame took the new ones): fine on an
      // open stream (trailers) or one we just reset, else a connection error (RFC 9113 5.1.1).
      if (role_ == Role::Server && (h.stream_id & 1) &&
          !nghttp2_session_find_stream(session_, h.stream_id) &&
          !recent_resets_.contains(h.stream_id)) {
        fault_stream_ = h.stream_id;
        return Fault::HeadersNotAbove;
      }
      break;
    case NGHTTP2_PRIORITY:
      if (!priority_.take(now)) return Fault::PriorityFlood;
      break;
    case NGHTTP2_RST_STREAM:
      if (!rst_stream_.take(now)) return Fault::RstStreamFlood;
      break;
    case NGHTTP2_SETTINGS:
      if (!(h.flags & NGHTTP2_FLAG_ACK) && !settings_.take(now)) return Fault::SettingsFlood;
      break;
    case NGHTTP2_PING:
      if (!(h.flags & NGHTTP2_FLAG_ACK)) {
        if (!sent_since_ping_ && !ping_.take(now)) return Fault::PingFlood;
        sent_since_ping_ = false;
      }
      break;
    case NGHTTP2_CONTINUATION:
      if (h.length == 0 && !empty_frames_.take(now)) return Fault::EmptyContinuationFlood;
      break;
    default:
      break;
  }
  return Fault::None;
}

void Session::parse_settings(const uint8_t* data, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    entry_[entry_have_++] = data[i];
    if (entry_have_ < sizeof(entry_)) continue;
    entry_have_ = 0;
    uint16_t id = static_cast<uint16_t>((entry_[0] << 8) | entry_[1]);
    uint32_t value = (uint32_t{entry_[2]} << 24) | (uint32_t{entry_[3]} << 16) |
                     (uint32_t{entry_[4]} << 8) | entry_[5];
    if (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) {
      max_initial_window_ = initial_window_seen_ ? std::max(max_initial_window_, value) : value;
      initial_window_seen_ = true;
    }
  }
}

Session::Fault Session::check_window_growth() {
  // RFC 9113 6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE that takes any stream's send window past
  // 2^31-1 is a connection error FLOW_CONTROL_ERROR (libnghttp2 only resets those streams).
  // Values above 2^31-1 themselves libnghttp2 rejects as it should.
  if (!initial_window_seen_ || max_initial_window_ > kMaxWindow) return Fault::None;
  const int64_t growth =
      int64_t{max_initial_window_} -
      int64_t{nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)};
  if (growth <= 0) return Fault::None;
  int32_t overflowing = 0;
  visitor_.for_each_stream([&](int32_t id) {
    int32_t window = nghttp2_session_get_stream_remote_window_size(session_, id);
    if (overflowing == 0 && window >= 0 && int64_t{window} + growth > int64_t{kMaxWindow})
      overflowing = id;
  });
  if (overflowing == 0) return Fault::None;
  fault_stream_ = overflowing;
  return Fault::WindowOverflow;
}

bool Session::account_header_slow(std::string_view name, std::string_view value) {
  if (fields_left_ < 0) return false;  // the block is over a limit already
  int64_t fields = 1;
  if (name == "cookie") fields += std::count(value.begin(), value.end(), ';');  // each crumb
  const int64_t bytes = static_cast<int64_t>(name.size() + value.size() + 32);
  if (fields_left_ < fields) {
    overflow_ = HeaderOverflow{true, max_header_fields_};
  } else if (bytes_left_ < bytes) {
    overflow_ = HeaderOverflow{false, max_header_list_bytes_};
  } else {
    bytes_left_ -= bytes;
    fields_left_ -= fields;
    return true;
  }
  // The rest of the block is decoded but dropped: every later field comes back here.
  fields_left_ = -1;
  return false;
}

void Session::submit_ping() {
  if (nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr) != 0) return;
  ping_outstanding_ = true;
  ++pings_without_data_;
}

Result<void> Session::produce(Buffer& out, size_t limit) {
  ProduceContext saved = t_produce;
  t_produce.out = &out;
  t_produce.limit = limit;
  Result<void> result;
  while (out.size() < limit) {
    const uint8_t* p;
    ssize_t n = nghttp2_session_mem_send(session_, &p);
    if (n < 0) {
      result = nghttp2_error("send", static_cast<int>(n));
      break;
    }
    if (n == 0) break;
    out.append(p, static_cast<size_t>(n));
  }
  t_produce = saved;
  return result;
}

bool Session::wants_read() const { return nghttp2_session_want_read(session_); }
bool Session::wants_write() const { return nghttp2_session_want_write(session_); }

Result<int32_t> Session::submit_request(std::span<const HeaderRef> headers, bool has_body,
                                        void* user) {
  NvArray nv(headers, /*request=*/true);
  nghttp2_data_provider prd{};
  prd.read_callback = read_body;
  int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                      has_body ? &prd : nullptr, user);
  if (id < 0) return nghttp2_error("submit request", id);
  if (id == cached_id_) cached_user_ = user;
  return id;
}

Result<void> Session::submit_response(int32_t stream_id, std::span<const HeaderRef> headers,
                                      bool has_body) {
  NvArray nv(headers);
  nghttp2_data_provider prd{};
  prd.read_callback = read_body;
  int rv = nghttp2_submit_response(session_, stream_id, nv.data(), nv.size(),
                                   has_body ? &prd : nullptr);
  if (rv != 0) return nghttp2_error("submit response", rv);
  return {};
}

Result<void> Session::submit_trailers(int32_t stream_id, std::span<const HeaderRef> trailers) {
  NvArray nv(trailers);
  int rv = nghttp2_submit_trailer(session_, stream_id, nv.data(), nv.size());
  if (rv != 0) return nghttp2_error("submit trailers", rv);
  return {};
}

void Session::resume_body(int32_t stream_id) { nghttp2_session_resume_data(session_, stream_id); }

void Session::reset_stream(int32_t stream_id, uint32_t error_code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, error_code);
}

void Session::stop_request_after_response(int32_t stream_id) {
  if (role_ != Role::Server) return;
  if (std::find(stop_after_response_.begin(), stop_after_response_.end(), stream_id) ==
      stop_after_response_.end())
    stop_after_response_.push_back(stream_id);
}

void Session::stop_request_now(int32_t stream_id) {
  auto it = std::find(stop_after_response_.begin(), stop_after_response_.end(), stream_id);
  if (it == stop_after_response_.end()) return;
  stop_after_response_.erase(it);
  if (nghttp2_session_get_stream_remote_close(session_, stream_id) == 0)
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
}

void Session::forget_stop(int32_t stream_id) {
  auto it = std::find(stop_after_response_.begin(), stop_after_response_.end(), stream_id);
  if (it != stop_after_response_.end()) stop_after_response_.erase(it);
}

void Session::set_stream_user(int32_t stream_id, void* user) {
  nghttp2_session_set_stream_user_data(session_, stream_id, user);
  if (stream_id == cached_id_) cached_user_ = user;
}

void* Session::stream_user(int32_t stream_id) {
  if (stream_id != cached_id_) {
    cached_user_ = nghttp2_session_get_stream_user_data(session_, stream_id);
    cached_id_ = stream_id;
  }
  return cached_user_;
}

void Session::forget_stream(int32_t stream_id) {
  if (stream_id == cached_id_) cached_id_ = -1;
}

void Session::consume(int32_t stream_id, size_t n) {
  if (n > 0) nghttp2_session_consume(session_, stream_id, n);
}

void Session::consume_connection(size_t n) {
  if (n > 0) nghttp2_session_consume_connection(session_, n);
}

void Session::submit_shutdown_notice() { nghttp2_submit_shutdown_notice(session_); }

void Session::submit_goaway(uint32_t error_code) {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), error_code, nullptr, 0);
}

void Session::terminate(uint32_t error_code) {
  nghttp2_session_terminate_session(session_, error_code);
}

uint32_t Session::remote_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

uint32_t Session::next_stream_id() const { return nghttp2_session_get_next_stream_id(session_); }

int32_t Session::last_peer_stream_id() const {
  return nghttp2_session_get_last_proc_stream_id(session_);
}

}  // namespace h2mesh::http2
