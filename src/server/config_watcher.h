#pragma once

#include <functional>
#include <string>

#include "net/event_loop.h"

namespace h2mesh::server {

// Watches a config file (inotify on its directory, so editors that replace the file and
// Kubernetes ConfigMap symlink swaps are seen too) and calls `on_change` on the main thread,
// debounced, when the file's content differs from the last content it reported or was told of.
class ConfigWatcher final : public net::IoHandler {
 public:
  ConfigWatcher(net::EventLoop& loop, std::string path, std::function<void()> on_change);
  ~ConfigWatcher() override;
  // The content now in effect (after a reload attempt), so an unchanged file does not retrigger.
  void set_current(std::string content) { current_ = std::move(content); }
  static std::string read_file(const std::string& path);

 private:
  void on_io(uint32_t events) override;
  void check();

  net::EventLoop& loop_;
  std::string path_;
  std::string name_;  // file name within its directory
  std::function<void()> on_change_;
  int fd_ = -1;
  net::Timer debounce_;
  std::string current_;
};

}  // namespace h2mesh::server
