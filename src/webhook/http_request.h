#pragma once

// HTTP/1.1 request framing for the admission webhook: a pure parser (bytes in, requests out) with
// limits on everything a client controls, and the writer of the replies. The API server sends
// one POST with a Content-Length body per request and keeps the connection alive; that is all
// this parser accepts (a chunked body is answered 501). No I/O: any thread, one parser per
// connection.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace h2mesh::webhook {

struct HttpLimits {
  size_t max_head = 16 * 1024;  // request line + headers, CRLFs included
  size_t max_headers = 64;      // header fields
  size_t max_body =
      4 * 1024 * 1024;  // Content-Length (an AdmissionReview of a large pod is ~100 KiB)
};

struct HttpRequest {
  std::string method;                                        // "POST"
  std::string target;                                        // "/mutate?timeout=10s"
  std::string path;                                          // target without the query: "/mutate"
  int minor_version = 1;                                     // HTTP/1.x
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  bool keep_alive = true;  // HTTP/1.1 without "Connection: close", or 1.0 with keep-alive

  // The first header named `name` (lower case), or null.
  const std::string* header(std::string_view name) const;
};

class HttpRequestParser {
 public:
  enum class State {
    NeedMore,  // every byte given was used; more are needed for a whole request
    Complete,  // request() is whole; the bytes after it were not consumed
    Failed,    // error_status() and error() say what to answer; the connection then closes
  };

  explicit HttpRequestParser(HttpLimits limits = {}) : limits_(limits) {}

  // Reads bytes of the stream from where the last call stopped. `*consumed`: how many bytes of
  // `data` were used (after Complete, the rest belongs to the next request; pass it again after
  // next()).
  State feed(std::string_view data, size_t* consumed);
  // The request after Complete; the parser keeps it until next().
  HttpRequest& request() { return request_; }
  // Forgets the request and waits for the next one.
  void next();
  // True when some bytes of a request that is not whole yet have arrived.
  bool in_progress() const { return !head_.empty() || state_ == Phase::Body; }

  int error_status() const { return error_status_; }  // 400, 413, 431, 501, 505
  const std::string& error() const { return error_; }

 private:
  enum class Phase { Head, Body, Done, Failed };
  State fail(int status, std::string why);
  State parse_head();

  const HttpLimits limits_;
  Phase state_ = Phase::Head;
  std::string head_;  // bytes of the head so far
  size_t body_length_ = 0;
  HttpRequest request_;
  int error_status_ = 0;
  std::string error_;
};

// The standard reason phrase of the statuses this server sends ("Status" for others).
const char* reason_phrase(int status);

// A whole reply with Content-Length (and "Connection: close" when `close`).
std::string format_response(int status, std::string_view content_type, std::string_view body,
                            bool close);

}  // namespace h2mesh::webhook
