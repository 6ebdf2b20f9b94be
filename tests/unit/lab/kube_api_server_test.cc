// The demo API server on loopback: LIST and WATCH over kept-alive HTTP/1.1 connections, tokens,
// bookmarks, watch ends and stopping with watches open. Every read is bounded (SO_RCVTIMEO).

#include "lab/kube_api_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

namespace h2mesh::lab {
namespace {

using nlohmann::json;

SliceEndpoint ep(const std::string& ip) { return {ip, true, true, false, ""}; }

constexpr const char* kToken = "t0k3n";

int listen_loopback() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(fd, 16), 0);
  return fd;
}

// One client connection that reads HTTP/1.1 replies: whole ones, or a chunked watch line by line.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};  // a read that would block longer fails the test instead of hanging it
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { close(fd_); }
  bool connected() const { return connected_; }

  void get(const std::string& target, const std::string& token = kToken,
           const std::string& method = "GET") {
    std::string req =
        method + " " + target + " HTTP/1.1\r\nHost: lab\r\nAccept: application/json\r\n";
    if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
    req += "\r\n";
    ASSERT_EQ(send(fd_, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  }

  // The status line's code and the head; the body follows in buf_.
  int read_head(std::string* head) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return 0;
    *head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    return atoi(head->c_str() + 9);
  }

  // A Content-Length reply: status and body.
  std::pair<int, std::string> read_reply() {
    std::string head;
    int status = read_head(&head);
    size_t at = head.find("Content-Length: ");
    if (status == 0 || at == std::string::npos) return {0, ""};
    size_t length = std::stoul(head.substr(at + 16));
    while (buf_.size() < length)
      if (!fill()) return {0, ""};
    std::string body = buf_.substr(0, length);
    buf_.erase(0, length);
    return {status, body};
  }

  // The next line of a chunked watch body; nullopt when the stream ended (last chunk) or the
  // connection closed or went quiet for 5 s.
  std::optional<std::string> next_line() {
    for (;;) {
      size_t nl = lines_.find('\n');
      if (nl != std::string::npos) {
        std::string line = lines_.substr(0, nl);
        lines_.erase(0, nl + 1);
        return line;
      }
      size_t crlf;
      while ((crlf = buf_.find("\r\n")) == std::string::npos)
        if (!fill()) return std::nullopt;
      size_t size = std::stoul(buf_.substr(0, crlf), nullptr, 16);
      if (size == 0) {
        while (buf_.size() < crlf + 4)
          if (!fill()) return std::nullopt;
        buf_.erase(0, crlf + 4);
        ended_ = true;
        return std::nullopt;
      }
      while (buf_.size() < crlf + 2 + size + 2)
        if (!fill()) return std::nullopt;
      lines_ += buf_.substr(crlf + 2, size);
      buf_.erase(0, crlf + 2 + size + 2);
    }
  }
  bool stream_ended() const { return ended_; }
  // True when the server closed the connection (after what was buffered).
  bool closed_by_server() {
    char c;
    return recv(fd_, &c, 1, 0) == 0;
  }

 private:
  bool fill() {
    char tmp[4096];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  bool ended_ = false;
  std::string buf_, lines_;
};

class KubeApiServerTest : public ::testing::Test {
 protected:
  void start(Duration bookmark_interval = std::chrono::seconds(60)) {
    server_ = std::make_unique<KubeApiServer>(store_, listen_loopback(),
                                              KubeApiServer::Settings{kToken, bookmark_interval});
    ASSERT_NE(server_->port(), 0);
  }
  void put_greeter(std::vector<SliceEndpoint> endpoints) {
    store_.put_slice(
        {"grpcdemo", "greeter-abc12", "greeter", std::move(endpoints), {{"grpc", 50051, 0, ""}}});
  }
  ObjectStore store_;
  std::unique_ptr<KubeApiServer> server_;
};

TEST_F(KubeApiServerTest, ListThenWatchOnOneConnectionSeesTheModification) {
  store_.put_service({"grpcdemo", "greeter", "10.96.0.10", {{"grpc", 50051, 50051, ""}}});
  put_greeter({ep("10.244.0.10")});
  start();
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  c.get("/apis/discovery.k8s.io/v1/endpointslices");
  auto [status, body] = c.read_reply();
  ASSERT_EQ(status, 200);
  json list = json::parse(body);
  ASSERT_EQ(list["items"].size(), 1u);
  const std::string rv = list["metadata"]["resourceVersion"];

  c.get("/apis/discovery.k8s.io/v1/endpointslices?watch=1&resourceVersion=" + rv +
        "&allowWatchBookmarks=true&timeoutSeconds=60");
  std::string head;
  ASSERT_EQ(c.read_head(&head), 200);
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos);
  put_greeter({ep("10.244.0.10"), ep("10.244.0.11")});
  auto line = c.next_line();
  ASSERT_TRUE(line.has_value());
  json event = json::parse(*line);
  EXPECT_EQ(event["type"], "MODIFIED");
  EXPECT_EQ(event["object"]["kind"], "EndpointSlice");
  EXPECT_EQ(event["object"]["endpoints"].size(), 2u);
  EXPECT_EQ(server_->lists(), 1u);
  EXPECT_EQ(server_->watches(), 1u);
}

TEST_F(KubeApiServerTest, WatchFromNowStartsWithTheStateAsAdded) {
  put_greeter({ep("10.244.0.10")});
  start();
  Client c(server_->port());
  c.get("/apis/discovery.k8s.io/v1/namespaces/grpcdemo/endpointslices?watch=true");
  std::string head;
  ASSERT_EQ(c.read_head(&head), 200);
  auto line = c.next_line();
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(json::parse(*line)["type"], "ADDED");
}

TEST_F(KubeApiServerTest, BookmarkCarriesTheCurrentResourceVersion) {
  put_greeter({ep("10.244.0.10")});
  start(std::chrono::milliseconds(20));
  Client c(server_->port());
  const std::string rv = std::to_string(store_.resource_version());
  c.get("/api/v1/services?watch=1&resourceVersion=" + rv + "&allowWatchBookmarks=true");
  std::string head;
  ASSERT_EQ(c.read_head(&head), 200);
  auto line = c.next_line();
  ASSERT_TRUE(line.has_value());
  json event = json::parse(*line);
  EXPECT_EQ(event["type"], "BOOKMARK");
  EXPECT_EQ(event["object"]["kind"], "Service");
  EXPECT_EQ(event["object"]["metadata"]["resourceVersion"], rv);
}

TEST_F(KubeApiServerTest, WatchEndsAtItsTimeoutAndTheConnectionStaysUsable) {
  start();
  Client c(server_->port());
  c.get("/api/v1/services?watch=1&resourceVersion=" + std::to_string(store_.resource_version()) +
        "&timeoutSeconds=1");
  std::string head;
  ASSERT_EQ(c.read_head(&head), 200);
  EXPECT_FALSE(c.next_line().has_value());
  EXPECT_TRUE(c.stream_ended());  // the last chunk, not a dropped connection
  c.get("/api/v1/namespaces/grpcdemo/services");
  EXPECT_EQ(c.read_reply().first, 200);
}

TEST_F(KubeApiServerTest, ErrorsAreStatusObjects) {
  start();
  Client c(server_->port());
  c.get("/api/v1/services", "wrong");
  auto [status, body] = c.read_reply();
  EXPECT_EQ(status, 401);
  EXPECT_EQ(json::parse(body)["kind"], "Status");
  EXPECT_EQ(json::parse(body)["code"], 401);
  c.get("/api/v1/pods");
  EXPECT_EQ(c.read_reply().first, 404);
  c.get("/api/v1/services?labelSelector=app%21%3Dgreeter");
  EXPECT_EQ(c.read_reply().first, 400);
  c.get("/api/v1/services?watch=1&resourceVersion=abc");
  EXPECT_EQ(c.read_reply().first, 400);
  c.get("/api/v1/services", kToken, "DELETE");
  EXPECT_EQ(c.read_reply().first, 405);
  c.get("/api/v1/services");  // still the same connection
  EXPECT_EQ(c.read_reply().first, 200);
}

TEST_F(KubeApiServerTest, StoppingCutsOpenWatches) {
  start();
  Client c(server_->port());
  c.get("/api/v1/services?watch=1&resourceVersion=" + std::to_string(store_.resource_version()));
  std::string head;
  ASSERT_EQ(c.read_head(&head), 200);
  server_.reset();  // joins the connection's thread: returns only if the watch let go
  EXPECT_FALSE(c.next_line().has_value());
  EXPECT_FALSE(c.stream_ended());
}

}  // namespace
}  // namespace h2mesh::lab
