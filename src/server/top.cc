#include "server/top.h"

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

namespace h2mesh::server {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string printf_string(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string printf_string(const char* format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  return buffer;
}

double number(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::string rate(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return "-";
  return printf_string("%.1f", it->get<double>());
}

std::string millis(const Json& v) {
  if (!v.is_number()) return "-";
  const double ms = v.get<double>();
  if (ms >= 100) return printf_string("%.0fms", ms);
  if (ms >= 1) return printf_string("%.1fms", ms);
  return printf_string("%.0fus", ms * 1000);
}

std::string text(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string bar(double share, size_t cells, bool unicode) {
  share = std::clamp(share, 0.0, 1.0);
  const size_t full = static_cast<size_t>(std::lround(share * static_cast<double>(cells)));
  std::string out;
  for (size_t i = 0; i < cells; ++i) out += i < full ? (unicode ? "█" : "#") : (unicode ? "░" : ".");
  return out;
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// The states other than "available", e.g. "1 unhealthy, 2 ejected".
std::string trouble(const Json& states) {
  std::string out;
  if (!states.is_object()) return out;
  for (const auto& [state, n] : states.items()) {
    if (state == "available" || !n.is_number()) continue;
    if (!out.empty()) out += ", ";
    out += std::to_string(n.get<uint64_t>()) + " " + state;
  }
  return out;
}

std::string statuses(const Json& by_status) {
  std::string out;
  if (!by_status.is_object()) return out;
  for (const auto& [status, n] : by_status.items()) {
    if (!n.is_number()) continue;
    out += (out.empty() ? "" : " ") + status + "=" + std::to_string(n.get<uint64_t>());
  }
  return out;
}

void add_line(std::string& out, std::string line, size_t width) {
  // Cut to the terminal's width (counting a bar's block characters as one column each).
  size_t columns = 0, i = 0;
  for (; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;  // UTF-8 continuation
    if (columns++ == width) break;
  }
  if (i < line.size()) line.resize(i);
  out += line + "\n";
}

}  // namespace

std::optional<std::string> format_top(const std::string& live_json, const std::string& source,
                                      const TopStyle& style, std::string* error) {
  Json live = Json::parse(live_json, nullptr, false);
  if (live.is_discarded() || !live.is_object() || !live.contains("clusters")) {
    *error = "the answer is not a /live.json document";
    return std::nullopt;
  }
  std::string out;
  auto line = [&](std::string l) { add_line(out, std::move(l), style.width); };
  const double window = number(live, "window_seconds");
  char clock[16] = "";
  const time_t t = static_cast<time_t>(number(live, "time"));
  tm local{};
  if (localtime_r(&t, &local)) strftime(clock, sizeof clock, "%H:%M:%S", &local);
  line("h2mesh top  " + source + "  " +
       (window > 0 ? printf_string("window %.0fs", window)
                   : std::string("first sample: counts since start")) +
       "  " + clock);

  const Json& listeners = live["listeners"];
  if (listeners.is_array() && !listeners.empty()) {
    line("");
    line(printf_string("%-16s %-22s %9s %7s %8s %8s %8s %6s", "LISTENER", "ADDRESS", "CALLS/S",
                       "ERR%", "P50", "P90", "P99", "INFL"));
    for (const Json& l : listeners) {
      const Json& lat = l["latency_ms"];
      line(printf_string("%-16s %-22s %9s %6.1f%% %8s %8s %8s %6.0f", text(l, "name").c_str(),
                         text(l, "address").c_str(), rate(l, "calls_per_second").c_str(),
                         number(l, "error_rate") * 100, millis(lat["p50"]).c_str(),
                         millis(lat["p90"]).c_str(), millis(lat["p99"]).c_str(),
                         number(l, "in_flight")));
    }
  }

  for (const Json& c : live["clusters"]) {
    line("");
    std::string name = text(c, "name");
    if (c.contains("service")) name += " (" + text(c, "namespace") + "/" + text(c, "service") + ")";
    const Json& lat = c["latency_ms"];
    const std::string bad = trouble(c["endpoint_states"]);
    line("CLUSTER " + name + "  " + text(c, "lb_policy") + "  " + rate(c, "calls_per_second") +
         " calls/s  errors " + printf_string("%.1f%%", number(c, "error_rate") * 100) + "  p50 " +
         millis(lat["p50"]) + "  p90 " + millis(lat["p90"]) + "  p99 " + millis(lat["p99"]) +
         "  in flight " + printf_string("%.0f", number(c, "in_flight")) + "  " +
         printf_string("%.0f", number(c, "endpoints_total")) + " endpoints" +
         (bad.empty() ? "" : " (" + bad + ")"));
    const std::string by_status = statuses(c["by_status"]);
    if (!by_status.empty()) line("  statuses: " + by_status);
    if (c["endpoints"].empty() && !c["others"].is_object()) continue;
    size_t address_width = 8;
    for (const Json& e : c["endpoints"]) address_width = std::max(address_width, text(e, "address").size());
    address_width = std::min<size_t>(address_width, 40);
    const size_t bar_cells = 20;
    line("  " + pad("ENDPOINT", address_width) + " " + pad("STATE", 12) + " " +
         pad("SHARE", bar_cells + 7) +
         printf_string("%9s %7s %8s %8s %5s %5s", "CALLS/S", "ERRORS", "P50", "P99", "INFL", "CONNS"));
    auto row = [&](const std::string& address, const std::string& state, const Json& e,
                   bool others) {
      const double share = number(e, "share");
      line("  " + pad(address, address_width) + " " + pad(state, 12) + " " +
           bar(share, bar_cells, style.unicode) + printf_string(" %5.1f%%", share * 100) +
           printf_string("%9s %7.0f %8s %8s %5.0f %5.0f", rate(e, "calls_per_second").c_str(),
                         number(e, "errors"), others ? "" : millis(e["p50_ms"]).c_str(),
                         others ? "" : millis(e["p99_ms"]).c_str(), number(e, "in_flight"),
                         number(e, "upstream_connections")));
    };
    for (const Json& e : c["endpoints"]) row(text(e, "address"), text(e, "state"), e, false);
    const Json& others = c["others"];
    if (others.is_object()) {
      const std::string bad_others = trouble(others["states"]);
      row(printf_string("+%.0f more", number(others, "endpoints")),
          bad_others.empty() ? "available" : bad_others, others, true);
    }
  }
  return out;
}

std::optional<std::pair<int, std::string>> admin_get(const config::SocketAddress& admin,
                                                     const std::string& path,
                                                     std::chrono::milliseconds timeout,
                                                     std::string* error) {
  const auto deadline = Clock::now() + timeout;
  auto wait = [&](int fd, short events) {
    pollfd p{fd, events, 0};
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      const int n = poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
      if (n > 0) return true;
      if (n == 0 || errno != EINTR) return false;
    }
  };
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(admin.host.c_str(), std::to_string(admin.port).c_str(), &hints, &found);
      rc != 0) {
    *error = admin.host + ": " + gai_strerror(rc);
    return std::nullopt;
  }
  std::optional<std::pair<int, std::string>> result;
  *error = "no address";
  for (addrinfo* a = found; a && !result; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int so_error = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      so_error = errno;
      if (so_error == EINPROGRESS) {
        socklen_t size = sizeof so_error;
        so_error = wait(fd, POLLOUT) ? (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &size), so_error)
                                     : ETIMEDOUT;
      }
    }
    if (so_error != 0) {
      *error = "connect to " + admin.to_string() + ": " + strerror(so_error);
      close(fd);
      continue;
    }
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + admin.to_string() +
                                "\r\nConnection: close\r\n\r\n";
    std::string reply;
    bool sent = send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(request.size());
    // The admin server closes the connection after its answer: read to the end.
    char buffer[16384];
    while (sent && reply.size() < (64u << 20) && wait(fd, POLLIN)) {
      const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) break;
      reply.append(buffer, static_cast<size_t>(n));
    }
    close(fd);
    const size_t head_end = reply.find("\r\n\r\n");
    if (!sent || !reply.starts_with("HTTP/1.") || reply.size() < 12 || head_end == std::string::npos) {
      *error = admin.to_string() + path + ": no HTTP answer";
      continue;
    }
    result.emplace(atoi(reply.c_str() + 9), reply.substr(head_end + 4));
  }
  freeaddrinfo(found);
  return result;
}

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// One view, or why there is none.
std::optional<std::string> fetch_view(const TopSettings& s, const TopStyle& style, std::string* error) {
  const std::string path = "/live.json?window=" + std::to_string(s.window);
  auto reply = admin_get(s.admin, path, std::chrono::milliseconds(5000), error);
  if (!reply) return std::nullopt;
  if (reply->first != 200) {
    *error = s.admin.to_string() + path + ": HTTP " + std::to_string(reply->first) +
             " (is this an h2mesh admin port?)";
    return std::nullopt;
  }
  return format_top(reply->second, s.admin.to_string(), style, error);
}

}  // namespace

int run_top(const TopSettings& settings) {
  const bool tty = !settings.once && isatty(STDOUT_FILENO);
  TopStyle style;
  style.unicode = tty;
  style.width = 1000;
  std::string error;
  if (settings.once) {
    // A proxy nobody watched has no history: its first answer starts it, the next one (a
    // second later) has rates over a window.
    auto reply = admin_get(settings.admin, "/live.json?window=" + std::to_string(settings.window),
                           std::chrono::milliseconds(5000), &error);
    if (reply && reply->first == 200) {
      const Json first = Json::parse(reply->second, nullptr, false);
      if (first.is_object() && number(first, "window_seconds") == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    }
    auto view = fetch_view(settings, style, &error);
    if (!view) {
      fprintf(stderr, "h2mesh top: %s\n", error.c_str());
      return 1;
    }
    fwrite(view->data(), 1, view->size(), stdout);
    return 0;
  }
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (tty) fputs("\x1b[?25l\x1b[2J", stdout);  // hide the cursor, clear once
  while (!g_stop) {
    if (tty) {
      winsize ws{};
      if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) style.width = ws.ws_col;
    }
    auto view = fetch_view(settings, style, &error);
    std::string frame = view ? *view : "h2mesh top: " + error + " (retrying)\n";
    if (tty) {
      // Home, each line cleared to its end, then everything below: no flicker.
      std::string out = "\x1b[H";
      size_t start = 0;
      for (size_t nl; (nl = frame.find('\n', start)) != std::string::npos; start = nl + 1)
        out += frame.substr(start, nl - start) + "\x1b[K\n";
      out += "\x1b[J";
      fputs(out.c_str(), stdout);
    } else {
      fputs((frame + "\n").c_str(), stdout);
    }
    fflush(stdout);
    // Sleep the interval in small steps, so that ^C ends at once.
    const auto until = Clock::now() + settings.interval;
    while (!g_stop && Clock::now() < until)
      std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(100),
                                                           until - Clock::now()));
  }
  if (tty) fputs("\x1b[?25h\n", stdout);
  return 0;
}

}  // namespace h2mesh::server
