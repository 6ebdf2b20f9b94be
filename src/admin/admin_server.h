#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "net/event_loop.h"

namespace h2mesh::admin {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// A small HTTP/1.1 server for operators (one request per connection, then close). Runs on the
// main thread's loop. Handlers may answer later (after collecting stats from the workers):
// `reply` stays safe to call after the client went away.
class AdminServer {
 public:
  using Reply = std::function<void(HttpResponse)>;
  // `path` without the query string; `query`: what followed '?' (empty when nothing did).
  using Handler = std::function<void(const std::string& method, const std::string& path,
                                     const std::string& query, Reply)>;

  // Takes ownership of the listening socket.
  AdminServer(net::EventLoop& loop, int listen_fd, Handler handler);
  ~AdminServer();

 private:
  class Connection;
  class Acceptor;
  void remove(Connection* c);

  net::EventLoop& loop_;
  Handler handler_;
  std::unique_ptr<Acceptor> acceptor_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
};

}  // namespace h2mesh::admin
