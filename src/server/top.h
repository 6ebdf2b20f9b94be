#pragma once

// `h2mesh top`: the dashboard's live view (GET /live.json on the admin port) in a terminal, for
// when no browser is at hand. Redraws in place (ANSI) when stdout is a terminal; plain lines,
// one view per interval, otherwise or with --once.

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "config/config.h"

namespace h2mesh::server {

struct TopSettings {
  config::SocketAddress admin{"127.0.0.1", 9901};
  std::chrono::milliseconds interval{1000};
  int window = 10;  // seconds, sent as ?window=
  bool once = false;
};

struct TopStyle {
  bool unicode = false;  // block characters for the bars (a terminal), else '#' and '.'
  size_t width = 120;    // lines are cut to it
};

// One view of a /live.json document as text lines. On malformed JSON, returns nullopt and says
// why in `error`.
std::optional<std::string> format_top(const std::string& live_json, const std::string& source,
                                      const TopStyle& style, std::string* error);

// GET `path` from an HTTP/1.1 server (one request per connection, as the admin server answers),
// within `timeout`. {status, body}, or nullopt with `error` set.
std::optional<std::pair<int, std::string>> admin_get(const config::SocketAddress& admin,
                                                     const std::string& path,
                                                     std::chrono::milliseconds timeout,
                                                     std::string* error);

// Runs the command until interrupted (SIGINT/SIGTERM), or once. Exit code: 0, or 1 when
// --once could not get a view.
int run_top(const TopSettings& settings);

}  // namespace h2mesh::server
