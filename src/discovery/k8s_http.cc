#include "discovery/k8s_http.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace h2mesh::discovery::k8s {
namespace {

Error bad(std::string message) {
  return make_error(ErrorCode::UpstreamProtocol, "malformed HTTP reply: " + std::move(message));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Whether a comma-separated header value lists `token` (case-insensitive).
bool has_token(const std::string& value, std::string_view token) {
  std::string v = lower(value);
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    if (comma == std::string::npos) comma = v.size();
    if (trim(std::string_view(v).substr(start, comma - start)) == token) return true;
    start = comma + 1;
  }
  return false;
}

}  // namespace

std::string url_encode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string format_get(const std::string& host, const std::string& target,
                       const std::string& token) {
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host +
                    "\r\nAccept: application/json\r\nUser-Agent: h2mesh\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  return req + "\r\n";
}

std::optional<std::string> HttpResponseReader::header(std::string_view name) const {
  for (const auto& [n, v] : headers_)
    if (n == name) return v;
  return std::nullopt;
}

Result<void> HttpResponseReader::parse_head(std::string_view head) {
  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  // "HTTP/1.1 200 OK"
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/" || status_line[8] != ' ')
    return bad("no status line");
  auto [end, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, status_);
  if (ec != std::errc() || end != status_line.data() + 12 || status_ < 100 || status_ > 599)
    return bad("bad status code");
  reason_ = std::string(trim(status_line.substr(12)));
  const bool http10 = status_line.substr(0, 8) == "HTTP/1.0";
  std::string_view rest = eol == std::string_view::npos ? "" : head.substr(eol + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view line = rest.substr(0, e);
    rest = e == std::string_view::npos ? "" : rest.substr(e + 2);
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return bad("bad header line");
    headers_.emplace_back(lower(trim(line.substr(0, colon))),
                          std::string(trim(line.substr(colon + 1))));
  }
  auto connection = header("connection");
  keep_alive_ = connection ? !has_token(*connection, "close") &&
                                 (!http10 || has_token(*connection, "keep-alive"))
                           : !http10;
  auto te = header("transfer-encoding");
  auto length = header("content-length");
  if (status_ == 204 || status_ == 304 || (status_ >= 100 && status_ < 200)) {
    state_ = State::Done;  // no body (a 1xx is not expected from the API server; nothing follows)
  } else if (te && has_token(*te, "chunked")) {
    state_ = State::ChunkSize;
  } else if (length) {
    auto [e, err] = std::from_chars(length->data(), length->data() + length->size(), remaining_);
    if (err != std::errc() || e != length->data() + length->size())
      return bad("bad Content-Length");
    state_ = remaining_ == 0 ? State::Done : State::Length;
  } else {
    state_ = State::UntilClose;
    keep_alive_ = false;
  }
  return {};
}

Result<size_t> HttpResponseReader::feed(std::string_view bytes, std::string* body) {
  size_t used = 0;
  if (state_ == State::Headers) {
    // The end of the head may straddle two reads: search from a little before the new bytes.
    size_t from = pending_.size() >= 3 ? pending_.size() - 3 : 0;
    pending_.append(bytes.data(), bytes.size());
    size_t end = pending_.find("\r\n\r\n", from);
    if (end == std::string::npos) {
      if (pending_.size() > kMaxHeaderBytes) return bad("headers larger than 64 KiB");
      return bytes.size();
    }
    size_t body_start = end + 4;
    auto head = parse_head(std::string_view(pending_).substr(0, end));
    if (!head) return head.error();
    // Bytes of `bytes` that belong to the body: what followed the head in pending_.
    size_t in_pending_before = pending_.size() - bytes.size();
    used = body_start - in_pending_before;
    pending_.clear();
  }
  auto rest = feed_body(bytes.substr(used), body);
  if (!rest) return rest.error();
  return used + *rest;
}

Result<size_t> HttpResponseReader::feed_body(std::string_view bytes, std::string* body) {
  size_t i = 0;
  while (i < bytes.size() && state_ != State::Done) {
    switch (state_) {
      case State::Length:
      case State::ChunkData: {
        size_t n = std::min(remaining_, bytes.size() - i);
        body->append(bytes.data() + i, n);
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = state_ == State::Length ? State::Done : State::ChunkDataEnd;
        break;
      }
      case State::UntilClose:
        body->append(bytes.data() + i, bytes.size() - i);
        i = bytes.size();
        break;
      case State::ChunkSize:
      case State::ChunkDataEnd:
      case State::Trailers: {
        size_t nl = bytes.find('\n', i);
        size_t take = (nl == std::string_view::npos ? bytes.size() : nl + 1) - i;
        pending_.append(bytes.data() + i, take);
        i += take;
        if (pending_.size() > 4096) return bad("chunk framing line too long");
        if (pending_.back() != '\n') break;
        std::string_view line = trim(std::string_view(pending_).substr(0, pending_.size() - 1));
        if (state_ == State::ChunkDataEnd) {
          if (!line.empty()) return bad("chunk not followed by CRLF");
          state_ = State::ChunkSize;
        } else if (state_ == State::Trailers) {
          if (line.empty()) state_ = State::Done;  // trailer fields are ignored
        } else {
          line = line.substr(0, line.find(';'));  // chunk extensions
          auto [e, err] = std::from_chars(line.data(), line.data() + line.size(), remaining_, 16);
          if (line.empty() || err != std::errc() || e != line.data() + line.size())
            return bad("bad chunk size");
          state_ = remaining_ == 0 ? State::Trailers : State::ChunkData;
        }
        pending_.clear();
        break;
      }
      case State::Headers:
      case State::Done:
        break;
    }
  }
  return i;
}

bool HttpResponseReader::finish_on_close() {
  if (state_ == State::UntilClose) state_ = State::Done;
  return state_ == State::Done;
}

std::optional<std::string> LineBuffer::next() {
  size_t nl = buffer_.find('\n', start_);
  if (nl == std::string::npos) {
    // Keep the buffer from growing with consumed lines.
    if (start_ > 0) {
      buffer_.erase(0, start_);
      start_ = 0;
    }
    return std::nullopt;
  }
  size_t end = nl;
  if (end > start_ && buffer_[end - 1] == '\r') --end;
  std::string line = buffer_.substr(start_, end - start_);
  start_ = nl + 1;
  return line;
}

}  // namespace h2mesh::discovery::k8s
