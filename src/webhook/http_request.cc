#include "webhook/http_request.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace h2mesh::webhook {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 token characters: what a method and a header name may be made of.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (std::isalnum(c)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string_view::npos)
      return false;
  }
  return true;
}

// Whether the comma-separated `value` lists `word` (case-insensitive).
bool lists(std::string_view value, std::string_view word) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = trim(value.substr(0, comma));
    if (lower(item) == word) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n == name) return &v;
  return nullptr;
}

HttpRequestParser::State HttpRequestParser::fail(int status, std::string why) {
  state_ = Phase::Failed;
  error_status_ = status;
  error_ = std::move(why);
  return State::Failed;
}

void HttpRequestParser::next() {
  if (state_ == Phase::Failed) return;
  state_ = Phase::Head;
  head_.clear();
  body_length_ = 0;
  request_ = HttpRequest{};
}

HttpRequestParser::State HttpRequestParser::feed(std::string_view data, size_t* consumed) {
  *consumed = 0;
  if (state_ == Phase::Failed) return State::Failed;
  if (state_ == Phase::Done) return State::Complete;
  if (state_ == Phase::Head) {
    // Look for the blank line from a little before the new bytes: its CRLFs may straddle two
    // reads.
    const size_t from = head_.size() >= 3 ? head_.size() - 3 : 0;
    const size_t room = limits_.max_head - std::min(limits_.max_head, head_.size());
    const size_t take = std::min(room + 4, data.size());  // +4: the blank line may end past it
    head_.append(data.substr(0, take));
    size_t end = head_.find("\r\n\r\n", from);
    if (end == std::string::npos) {
      if (head_.size() > limits_.max_head)
        return fail(
            431, "the request head is longer than " + std::to_string(limits_.max_head) + " bytes");
      *consumed = take;
      return State::NeedMore;
    }
    end += 4;
    if (end > limits_.max_head)
      return fail(431,
                  "the request head is longer than " + std::to_string(limits_.max_head) + " bytes");
    // Give back what came after the blank line.
    *consumed = take - (head_.size() - end);
    head_.resize(end);
    if (State s = parse_head(); s == State::Failed) return s;
    state_ = Phase::Body;
    data.remove_prefix(*consumed);
  }
  const size_t want = body_length_ - request_.body.size();
  const size_t take = std::min(want, data.size());
  request_.body.append(data.substr(0, take));
  *consumed += take;
  if (request_.body.size() < body_length_) return State::NeedMore;
  state_ = Phase::Done;
  return State::Complete;
}

HttpRequestParser::State HttpRequestParser::parse_head() {
  std::string_view head(head_);
  head.remove_suffix(2);  // the blank line's CRLF; each line below ends with its own
  // Request line: METHOD SP TARGET SP HTTP/1.x
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  head.remove_prefix(eol + 2);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return fail(400, "malformed method");
  if (target.empty() || target.front() != '/') return fail(400, "the target is not a path");
  for (unsigned char c : target)
    if (c <= ' ' || c == 0x7f) return fail(400, "a control character in the target");
  if (version == "HTTP/1.1") {
    request_.minor_version = 1;
  } else if (version == "HTTP/1.0") {
    request_.minor_version = 0;
  } else if (version.starts_with("HTTP/")) {
    return fail(505, "only HTTP/1.0 and HTTP/1.1");
  } else {
    return fail(400, "malformed request line");
  }
  request_.method = std::string(method);
  request_.target = std::string(target);
  request_.path = std::string(target.substr(0, target.find('?')));

  bool have_length = false;
  bool close = request_.minor_version == 0;
  while (!head.empty()) {
    eol = head.find("\r\n");
    line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    if (request_.headers.size() == limits_.max_headers)
      return fail(431, "more than " + std::to_string(limits_.max_headers) + " header fields");
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
      return fail(400, "a folded header line");  // obsolete line folding (RFC 9112 5.2)
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
      return fail(400, "malformed header field");
    std::string name = lower(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    for (unsigned char c : value)
      if ((c < ' ' && c != '\t') || c == 0x7f) return fail(400, "a control character in " + name);
    if (name == "content-length") {
      size_t n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || value.empty())
        return fail(400, "malformed Content-Length");
      if (have_length && n != body_length_) return fail(400, "two different Content-Lengths");
      have_length = true;
      body_length_ = n;
    } else if (name == "transfer-encoding") {
      return fail(501, "Transfer-Encoding is not supported: send a Content-Length");
    } else if (name == "connection") {
      if (lists(value, "close")) close = true;
      if (request_.minor_version == 0 && lists(value, "keep-alive")) close = false;
    }
    request_.headers.emplace_back(std::move(name), std::string(value));
  }
  if (body_length_ > limits_.max_body) {
    return fail(413, "the body (" + std::to_string(body_length_) + " bytes) is larger than " +
                         std::to_string(limits_.max_body) + " bytes");
  }
  request_.keep_alive = !close;
  request_.body.reserve(body_length_);
  return State::NeedMore;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Status";
  }
}

std::string format_response(int status, std::string_view content_type, std::string_view body,
                            bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  out += body;
  return out;
}

}  // namespace h2mesh::webhook
