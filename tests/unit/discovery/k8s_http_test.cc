// HTTP/1.1 reply framing as a Kubernetes API client sees it: Content-Length (LIST), chunked
// streams whose chunks split events anywhere (WATCH), bodies ended by the connection's close, and
// the line splitting of watch events.

#include "discovery/k8s_http.h"

#include <gtest/gtest.h>

#include <string>

namespace h2mesh::discovery::k8s {
namespace {

// Feeds `bytes` in pieces of `step` bytes; returns the body, checks every byte was consumed.
std::string feed_in_steps(HttpResponseReader& r, const std::string& bytes, size_t step) {
  std::string body;
  for (size_t i = 0; i < bytes.size(); i += step) {
    std::string_view piece = std::string_view(bytes).substr(i, step);
    auto used = r.feed(piece, &body);
    EXPECT_TRUE(used.ok()) << (used.ok() ? "" : used.error().message);
    if (!used.ok()) break;
    EXPECT_EQ(*used, piece.size());
  }
  return body;
}

TEST(K8sHttp, ContentLengthReplyInAnySplit) {
  const std::string reply =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
      "{\"items\":1}";
  for (size_t step : {1u, 2u, 3u, 7u, 1000u}) {
    HttpResponseReader r;
    std::string body = feed_in_steps(r, reply, step);
    EXPECT_TRUE(r.complete()) << step;
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.reason(), "OK");
    EXPECT_EQ(body, "{\"items\":1}");
    EXPECT_TRUE(r.keep_alive());
    EXPECT_EQ(r.header("content-type"), std::optional<std::string>("application/json"));
  }
}

TEST(K8sHttp, ChunkedWatchStreamWithChunksSplittingEvents) {
  const std::string reply =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
      "5\r\n{\"a\":\r\n"
      "9;ext=1\r\n1}\n{\"b\":2\r\n"
      "2\r\n}\n\r\n"
      "0\r\nX-Trailer: yes\r\n\r\n";
  for (size_t step : {1u, 4u, 1000u}) {
    HttpResponseReader r;
    std::string body = feed_in_steps(r, reply, step);
    EXPECT_TRUE(r.complete()) << step;
    EXPECT_EQ(body, "{\"a\":1}\n{\"b\":2}\n");
  }
}

TEST(K8sHttp, ChunkedStreamIsIncompleteUntilItsLastChunk) {
  HttpResponseReader r;
  std::string body;
  ASSERT_TRUE(
      r.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", &body).ok());
  EXPECT_TRUE(r.headers_done());
  EXPECT_FALSE(r.complete());
  EXPECT_EQ(body, "abc");
  EXPECT_FALSE(r.finish_on_close());  // a cut watch stream is not a complete reply
}

TEST(K8sHttp, BodyWithoutLengthEndsWithTheConnection) {
  HttpResponseReader r;
  std::string body;
  ASSERT_TRUE(
      r.feed("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"x\":", &body).ok());
  ASSERT_TRUE(r.feed("1}", &body).ok());
  EXPECT_FALSE(r.complete());
  EXPECT_FALSE(r.keep_alive());
  EXPECT_TRUE(r.finish_on_close());
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(body, "{\"x\":1}");
}

TEST(K8sHttp, ConnectionCloseAndHttp10AreNotKeptAlive) {
  {
    HttpResponseReader r;
    std::string body;
    ASSERT_TRUE(
        r.feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", &body).ok());
    EXPECT_TRUE(r.complete());
    EXPECT_FALSE(r.keep_alive());
  }
  {
    HttpResponseReader r;
    std::string body;
    ASSERT_TRUE(r.feed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &body).ok());
    EXPECT_FALSE(r.keep_alive());
  }
  {
    HttpResponseReader r;
    std::string body;
    ASSERT_TRUE(
        r.feed("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", &body)
            .ok());
    EXPECT_TRUE(r.keep_alive());
  }
}

TEST(K8sHttp, BytesAfterTheReplyAreNotConsumed) {
  HttpResponseReader r;
  std::string body;
  const std::string bytes = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}EXTRA";
  auto used = r.feed(bytes, &body);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, bytes.size() - 5);
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(r.status(), 401);
  EXPECT_EQ(r.reason(), "Unauthorized");
  EXPECT_EQ(body, "{}");
  r.reset();
  EXPECT_FALSE(r.headers_done());
}

TEST(K8sHttp, GarbageIsAnErrorNotACrash) {
  for (const char* bad :
       {"SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n"}) {
    HttpResponseReader r;
    std::string body;
    EXPECT_FALSE(r.feed(bad, &body).ok()) << bad;
  }
  HttpResponseReader r;
  std::string body;
  EXPECT_FALSE(r.feed("HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'a'), &body).ok());
}

TEST(K8sHttp, LinesAreSplitAcrossAppends) {
  LineBuffer lines;
  lines.append("{\"a\":1}\n{\"b\"");
  EXPECT_EQ(lines.next(), std::optional<std::string>("{\"a\":1}"));
  EXPECT_EQ(lines.next(), std::nullopt);
  EXPECT_EQ(lines.pending(), 4u);
  lines.append(":2}\r\n\n{\"c\":3}\n");
  EXPECT_EQ(lines.next(), std::optional<std::string>("{\"b\":2}"));
  EXPECT_EQ(lines.next(), std::optional<std::string>(""));
  EXPECT_EQ(lines.next(), std::optional<std::string>("{\"c\":3}"));
  EXPECT_EQ(lines.next(), std::nullopt);
  EXPECT_EQ(lines.pending(), 0u);
}

TEST(K8sHttp, RequestCarriesTheTokenOnlyWhenThereIsOne) {
  std::string with = format_get("10.96.0.1:443", "/apis/x?y=1", "abc.def");
  EXPECT_EQ(with,
            "GET /apis/x?y=1 HTTP/1.1\r\nHost: 10.96.0.1:443\r\nAccept: application/json\r\n"
            "User-Agent: h2mesh\r\nAuthorization: Bearer abc.def\r\n\r\n");
  EXPECT_EQ(format_get("[fd00::1]:443", "/", "").find("Authorization"), std::string::npos);
}

TEST(K8sHttp, UrlEncodingOfTheLabelSelector) {
  EXPECT_EQ(url_encode("kubernetes.io/service-name=greeter"),
            "kubernetes.io%2Fservice-name%3Dgreeter");
  EXPECT_EQ(url_encode("a b&c~_-."), "a%20b%26c~_-.");
}

}  // namespace
}  // namespace h2mesh::discovery::k8s
