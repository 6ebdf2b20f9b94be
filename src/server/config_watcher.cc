#include "server/config_watcher.h"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace h2mesh::server {

ConfigWatcher::ConfigWatcher(net::EventLoop& loop, std::string path,
                             std::function<void()> on_change)
    : loop_(loop),
      path_(std::move(path)),
      on_change_(std::move(on_change)),
      debounce_(loop, [this] { check(); }) {
  current_ = read_file(path_);
  size_t slash = path_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash == 0 ? 1 : slash);
  name_ = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0 || inotify_add_watch(fd_, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE |
                                                         IN_DELETE | IN_MODIFY) < 0) {
    LOG_WARN("cannot watch %s for changes (%s); reload with SIGHUP", dir.c_str(), strerror(errno));
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return;
  }
  loop_.add(fd_, EPOLLIN, this);
}

ConfigWatcher::~ConfigWatcher() {
  if (fd_ >= 0) {
    loop_.remove(fd_);
    close(fd_);
  }
}

std::string ConfigWatcher::read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void ConfigWatcher::on_io(uint32_t) {
  alignas(inotify_event) char buf[4096];
  bool ours = false;
  ssize_t n;
  while ((n = read(fd_, buf, sizeof(buf))) > 0) {
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      std::string name = ev->len ? std::string(ev->name) : std::string();
      // The file itself, or a Kubernetes ConfigMap's "..data" symlink swap; other files in the
      // directory are not our business.
      if (name == name_ || name.rfind("..", 0) == 0) ours = true;
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  if (ours) debounce_.arm(std::chrono::milliseconds(100));  // look once things settle
}

void ConfigWatcher::check() {
  std::string now = read_file(path_);
  if (now.empty() || now == current_) return;
  current_ = now;
  on_change_();
}

}  // namespace h2mesh::server
