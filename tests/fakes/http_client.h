#pragma once

// A blocking, one-request HTTP/1.1 client for tests (admin endpoints, fake servers' control
// ports). 127.0.0.1 only; 5 s receive timeout; returns {status, body}, {0, ...} on failure.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>

namespace h2mesh_test_fakes {

inline std::pair<int, std::string> http_request(uint16_t port, const std::string& method,
                                                const std::string& path,
                                                const std::string& body = "") {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return {0, ""};
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" +
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return {0, ""};
  }
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  if (resp.size() < 12) return {0, resp};
  size_t at = resp.find("\r\n\r\n");
  return {std::stoi(resp.substr(9, 3)), at == std::string::npos ? "" : resp.substr(at + 4)};
}

}  // namespace h2mesh_test_fakes
