// The webhook's HTTP/1.1 request framing: requests split anywhere, pipelined requests, and every
// limit a client could push on (head size, header count, body size), each answered with the
// status the client should see before the connection closes.

#include "webhook/http_request.h"

#include <gtest/gtest.h>

#include <string>

namespace h2mesh::webhook {
namespace {

using State = HttpRequestParser::State;

constexpr char kRequest[] =
    "POST /mutate?timeout=10s HTTP/1.1\r\nHost: h2mesh-webhook.h2mesh.svc:443\r\n"
    "Content-Type: application/json\r\nContent-Length: 11\r\nAccept-Encoding: gzip\r\n\r\n"
    "{\"a\":\"bcd\"}";

TEST(HttpRequestParser, WholeRequestInOneRead) {
  HttpRequestParser p;
  size_t used = 0;
  std::string in = kRequest;
  ASSERT_EQ(p.feed(in, &used), State::Complete);
  EXPECT_EQ(used, in.size());
  const HttpRequest& r = p.request();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/mutate?timeout=10s");
  EXPECT_EQ(r.path, "/mutate");
  EXPECT_EQ(r.body, "{\"a\":\"bcd\"}");
  ASSERT_NE(r.header("content-type"), nullptr);
  EXPECT_EQ(*r.header("content-type"), "application/json");
  EXPECT_TRUE(r.keep_alive);
}

TEST(HttpRequestParser, RequestSplitIntoSingleBytes) {
  HttpRequestParser p;
  std::string in = kRequest;
  State s = State::NeedMore;
  for (size_t i = 0; i < in.size(); ++i) {
    size_t used = 0;
    s = p.feed(std::string_view(in).substr(i, 1), &used);
    ASSERT_EQ(used, 1u) << "at byte " << i;
    if (i + 1 < in.size()) {
      ASSERT_EQ(s, State::NeedMore) << "at byte " << i;
      EXPECT_TRUE(p.in_progress());
    }
  }
  ASSERT_EQ(s, State::Complete);
  EXPECT_EQ(p.request().body, "{\"a\":\"bcd\"}");
}

TEST(HttpRequestParser, PipelinedRequestsAreTakenOneAtATime) {
  HttpRequestParser p;
  std::string in = std::string(kRequest) + "POST /other HTTP/1.1\r\nConnection: close\r\n\r\n";
  size_t used = 0;
  ASSERT_EQ(p.feed(in, &used), State::Complete);
  EXPECT_EQ(used, sizeof(kRequest) - 1);
  p.next();
  EXPECT_FALSE(p.in_progress());
  size_t used2 = 0;
  ASSERT_EQ(p.feed(std::string_view(in).substr(used), &used2), State::Complete);
  EXPECT_EQ(used + used2, in.size());
  EXPECT_EQ(p.request().path, "/other");
  EXPECT_EQ(p.request().body, "");
  EXPECT_FALSE(p.request().keep_alive);
}

TEST(HttpRequestParser, Http10ClosesUnlessKeepAlive) {
  HttpRequestParser a, b;
  size_t used = 0;
  ASSERT_EQ(a.feed("GET / HTTP/1.0\r\n\r\n", &used), State::Complete);
  EXPECT_FALSE(a.request().keep_alive);
  ASSERT_EQ(b.feed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &used), State::Complete);
  EXPECT_TRUE(b.request().keep_alive);
}

TEST(HttpRequestParser, BodyOverTheLimitIs413BeforeItArrives) {
  HttpRequestParser p(HttpLimits{16 * 1024, 64, 1000});
  size_t used = 0;
  ASSERT_EQ(p.feed("POST /mutate HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", &used), State::Failed);
  EXPECT_EQ(p.error_status(), 413);
  HttpRequestParser q(HttpLimits{16 * 1024, 64, 1000});
  ASSERT_EQ(q.feed("POST /mutate HTTP/1.1\r\nContent-Length: 1000\r\n\r\n", &used),
            State::NeedMore);
}

TEST(HttpRequestParser, LongHeadIs431EvenWithoutItsEnd) {
  HttpRequestParser p(HttpLimits{256, 64, 1000});
  size_t used = 0;
  std::string head = "POST /mutate HTTP/1.1\r\nX-Filler: " + std::string(300, 'a');
  ASSERT_EQ(p.feed(head, &used), State::Failed);
  EXPECT_EQ(p.error_status(), 431);
}

TEST(HttpRequestParser, TooManyHeaderFieldsIs431) {
  HttpRequestParser p(HttpLimits{16 * 1024, 4, 1000});
  size_t used = 0;
  std::string head = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  ASSERT_EQ(p.feed(head + "\r\n", &used), State::Failed);
  EXPECT_EQ(p.error_status(), 431);
}

TEST(HttpRequestParser, MalformedRequestsGetTheirStatus) {
  const std::pair<const char*, int> cases[] = {
      {"POST /mutate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
      {"POST /mutate HTTP/2.0\r\n\r\n", 505},
      {"POST /mutate\r\n\r\n", 400},
      {"POST mutate HTTP/1.1\r\n\r\n", 400},
      {"POST /mutate HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400},
      {"POST /mutate HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST /mutate HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", 400},
      {"POST /mutate HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},
      {"POST /mutate HTTP/1.1\r\nBad Name: a\r\n\r\n", 400},
      {"POST /mutate HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400},
  };
  for (const auto& [text, status] : cases) {
    HttpRequestParser p;
    size_t used = 0;
    EXPECT_EQ(p.feed(text, &used), State::Failed) << text;
    EXPECT_EQ(p.error_status(), status) << text;
    EXPECT_FALSE(p.error().empty());
    // A failed parser stays failed.
    EXPECT_EQ(p.feed("GET / HTTP/1.1\r\n\r\n", &used), State::Failed);
  }
}

TEST(HttpRequestParser, SameContentLengthTwiceIsAccepted) {
  HttpRequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.feed("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", &used),
            State::Complete);
  EXPECT_EQ(p.request().body, "ok");
}

TEST(HttpResponse, FormatsLengthAndClose) {
  EXPECT_EQ(format_response(413, "text/plain", "too big\n", true),
            "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n"
            "Connection: close\r\n\r\ntoo big\n");
  EXPECT_EQ(format_response(200, "application/json", "{}", false),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
}

}  // namespace
}  // namespace h2mesh::webhook
