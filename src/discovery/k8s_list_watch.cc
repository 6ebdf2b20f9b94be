#include "discovery/k8s_list_watch.h"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>

#include "common/log.h"

namespace h2mesh::discovery::k8s {
namespace {

using namespace std::chrono_literals;

constexpr Duration kConnectTimeout = 10s;   // lookup + TCP + TLS handshake
constexpr Duration kReplyTimeout = 60s;     // a LIST reply, or a WATCH's response headers
constexpr Duration kWatchSlack = 30s;       // a watch silent for timeoutSeconds + this is dead
constexpr Duration kMinWatchLife = 1s;      // a watch ending sooner is retried with backoff
constexpr Duration kRelogInterval = 60s;    // the same error is logged again after this
constexpr size_t kMaxListBytes = 64 << 20;  // 1000 endpoints per slice, many slices
constexpr size_t kMaxLineBytes = 16 << 20;  // one object
constexpr size_t kMaxErrorBytes = 64 << 10;
constexpr uint32_t kGoneBeforeBackoff = 3;  // 410s in a row relisted at once

int64_t to_ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

ListWatch::ListWatch(net::EventLoop& loop, Settings settings, Handler& handler)
    : loop_(loop),
      settings_(std::move(settings)),
      handler_(handler),
      random_(static_cast<uint64_t>(getpid()) * 0x9e3779b97f4a7c15ULL ^
              static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
              reinterpret_cast<uintptr_t>(this)),
      retry_timer_(loop, [this] { connect(); }),
      reply_timer_(loop, [this] { on_reply_timeout(); }) {}

ListWatch::~ListWatch() {
  if (conn_) conn_->close();  // no callback reaches us from here on
}

void ListWatch::start() {
  last_error_ = "kubernetes: no list received yet from the API server";
  connect();
}

// ---- connection ---------------------------------------------------------------------------

bool ListWatch::load_credentials() {
  if (creds_) return true;
  auto creds = k8s::load_credentials(settings_.kubeconfig);
  if (!creds) {
    fail("kubernetes: " + creds.error().message, true);
    return false;
  }
  auto collection = handler_.collection(*creds);
  if (!collection) {
    fail("kubernetes: " + collection.error().message, true);
    return false;
  }
  collection_ = std::move(*collection);
  creds_ = std::move(*creds);
  tokens_ = std::make_unique<TokenSource>(creds_->token, creds_->token_file);
  bool v6 = creds_->host.find(':') != std::string::npos;
  host_header_ =
      (v6 ? "[" + creds_->host + "]" : creds_->host) + ":" + std::to_string(creds_->port);
  if (creds_->plain_http && (!creds_->token.empty() || !creds_->token_file.empty()))
    LOG_WARN("kubernetes: %s: the bearer token of %s goes to %s unencrypted (an http:// server)",
             settings_.name.c_str(), creds_->origin.c_str(), creds_->server.c_str());
  return true;
}

void ListWatch::connect() {
  drop_connection();
  if (!load_credentials()) return;
  auto token = tokens_->get(loop_.now());
  if (!token) {
    fail("kubernetes: " + token.error().message, true);
    return;
  }
  SslCtxPtr ctx;
  if (!creds_->plain_http) {
    auto made = make_tls_context(*creds_);
    if (!made) {
      fail("kubernetes: TLS setup for " + creds_->server + " failed: " + made.error().message,
           true);
      return;
    }
    ctx = std::move(*made);
  }
  phase_ = Phase::Connecting;
  conn_ = std::make_unique<ApiClient>(loop_, static_cast<ApiClient::Visitor&>(*this));
  const std::string& verify =
      creds_->tls_server_name.empty() ? creds_->host : creds_->tls_server_name;
  conn_->connect(std::move(ctx), creds_->host, creds_->port, verify, kConnectTimeout);
}

// Closes the connection (no callback follows) and forgets the request in progress.
void ListWatch::drop_connection() {
  reply_timer_.cancel();
  if (conn_) {
    conn_->close();
    loop_.defer_delete(std::move(conn_));  // we may be inside one of its callbacks
  }
  ++connection_id_;
  phase_ = Phase::Idle;
}

void ListWatch::send_request() {
  auto token = tokens_->get(loop_.now());
  if (!token) {
    fail("kubernetes: " + token.error().message, true);
    return;
  }
  std::string target = collection_.path;
  const char* sep = target.find('?') == std::string::npos ? "?" : "&";
  if (need_list_) {
    phase_ = Phase::Listing;
    target += sep + std::string("limit=") + std::to_string(settings_.page_size);
    if (!continue_.empty()) target += "&continue=" + url_encode(continue_);
  } else {
    phase_ = Phase::Watching;
    // Spread like client-go (5 to 10 minutes), so that many proxies do not re-watch together.
    watch_timeout_ = 300s + seconds(random_.uniform(300));
    target += sep + std::string("watch=1&resourceVersion=") + url_encode(resource_version_) +
              "&allowWatchBookmarks=true&timeoutSeconds=" +
              std::to_string(std::chrono::duration_cast<seconds>(watch_timeout_).count());
    watch_started_ = loop_.now();
  }
  reader_.reset();
  body_.clear();
  lines_.clear();
  watch_open_ = false;
  reply_timer_.arm(kReplyTimeout);
  LOG_DEBUG("kubernetes: GET %s%s", creds_->server.c_str(), target.c_str());
  conn_->send(format_get(host_header_, target, *token));
}

// ---- ApiClient::Visitor -------------------------------------------------------------------

void ListWatch::on_connected() { send_request(); }

void ListWatch::on_data(std::string_view bytes) {
  const uint64_t id = connection_id_;
  while (!bytes.empty() && id == connection_id_) {
    auto used = reader_.feed(bytes, &body_);
    if (!used) {
      fail("kubernetes: " + creds_->server + ": " + used.error().message, true);
      return;
    }
    bytes.remove_prefix(*used);
    const bool streaming =
        phase_ == Phase::Watching && reader_.headers_done() && reader_.status() == 200;
    if (streaming) {
      if (!watch_open_) {
        watch_open_ = true;  // the API server accepted the watch: discovery works again
        ++counters_.watches;
        failures_ = 0;
        if (!last_error_.empty()) clear_error();
      }
      reply_timer_.arm(watch_timeout_ + kWatchSlack);
      if (!consume_watch_body()) return;
    } else if (body_.size() > (reader_.status() == 200 ? kMaxListBytes : kMaxErrorBytes)) {
      fail("kubernetes: the reply from " + creds_->server + " is too large", true);
      return;
    }
    if (reader_.complete()) {
      on_reply_complete();
      return;  // nothing else is expected before the next request
    }
  }
}

void ListWatch::on_closed(ApiClient::Failure failure, const std::string& detail) {
  loop_.defer_delete(std::move(conn_));
  ++connection_id_;
  // A body delimited by the connection's end is complete now.
  if (reader_.headers_done() && !reader_.complete() && reader_.finish_on_close()) {
    on_reply_complete();
    return;
  }
  const std::string& server = creds_->server;
  if (phase_ == Phase::Watching && reader_.headers_done() && reader_.status() == 200) {
    fail("kubernetes: the watch of " + server + " was cut (" + detail +
             "); resuming from resourceVersion " + resource_version_,
         false);
    return;
  }
  switch (failure) {
    case ApiClient::Failure::Resolve:
      fail("kubernetes: cannot resolve the API server " + server + ": " + detail, true);
      return;
    case ApiClient::Failure::Connect:
      fail("kubernetes: cannot connect to the API server " + server + ": " + detail, true);
      return;
    case ApiClient::Failure::Verify:
      fail("kubernetes: TLS verification of " + server + " failed: " + detail +
               "; checked against the CA " + ca_description(),
           true);
      return;
    case ApiClient::Failure::Handshake:
      fail("kubernetes: TLS handshake with " + server + " failed: " + detail, true);
      return;
    case ApiClient::Failure::Timeout:
      fail("kubernetes: no connection to the API server " + server + ": " + detail, true);
      return;
    case ApiClient::Failure::Closed:
    case ApiClient::Failure::Io:
      fail("kubernetes: the API server " + server + " closed the connection " +
               (reader_.headers_done() ? "in the middle of a reply" : "before replying") + " (" +
               detail + ")",
           !synced_);
      return;
  }
}

// ---- replies ------------------------------------------------------------------------------

void ListWatch::on_reply_timeout() {
  fail(phase_ == Phase::Watching && reader_.headers_done()
           ? "kubernetes: the watch of " + creds_->server + " went silent; reconnecting"
           : "kubernetes: no reply from the API server " + creds_->server + " within " +
                 std::to_string(to_ms(kReplyTimeout) / 1000) + "s",
       phase_ != Phase::Watching);
}

void ListWatch::on_reply_complete() {
  reply_timer_.cancel();
  if (reader_.status() != 200) {
    on_error_reply();
    return;
  }
  if (phase_ == Phase::Listing) {
    if (!on_list()) return;
  } else if (loop_.now() - watch_started_ < kMinWatchLife) {
    // The server ended the watch at once: do not spin.
    fail("kubernetes: the API server " + creds_->server + " ended the watch at once", false);
    return;
  }
  // LIST done (the WATCH follows) or the WATCH ended by its timeoutSeconds (watch again).
  if (conn_ && reader_.keep_alive()) {
    send_request();
  } else {
    drop_connection();
    retry_timer_.arm(Duration::zero());
  }
}

void ListWatch::on_error_reply() {
  const int status = reader_.status();
  auto st = parse_status(body_);
  std::string detail = st && !st->message.empty() ? st->message : body_.substr(0, 200);
  std::string code = std::to_string(status) + " " + reader_.reason();
  if (status == 410) {
    relist((!continue_.empty() ? std::string("the LIST's continue token expired")
                                     : "the resourceVersion " + resource_version_ + " is too old") +
           " (410 Gone" + (detail.empty() ? "" : ": " + detail) + ")");
    return;
  }
  std::string msg;
  if (status == 401) {
    tokens_->invalidate();  // a rotated token is picked up by the next attempt
    msg = "kubernetes: API server rejected the token (" + code + ")" +
          (tokens_->path().empty() ? " of " + creds_->origin : " read from " + tokens_->path());
  } else if (status == 403) {
    msg = "kubernetes: API server denied access (" + code + "): " + detail +
          "; the account needs get, list and watch on " + collection_.resource + " " +
          collection_.scope;
  } else if (status == 404) {
    msg = "kubernetes: API server " + creds_->server + " has no " + collection_.kind + "s at " +
          collection_.path + " (" + code + "): " + detail;
  } else {
    msg = "kubernetes: API server " + creds_->server + " answered " + code +
          (detail.empty() ? "" : ": " + detail);
  }
  fail(msg, true);
}

bool ListWatch::on_list() {
  auto page = handler_.list_page(body_, continue_.empty());
  // A page of hundreds of objects is a megabyte of text: give it back now, not at the next one.
  std::string().swap(body_);
  if (!page) {
    fail("kubernetes: bad " + collection_.kind + " list from " + creds_->server + ": " +
             page.error().message,
         true);
    return false;
  }
  if (!page->continue_token.empty()) {
    continue_ = std::move(page->continue_token);  // the next page follows
    return true;
  }
  continue_.clear();
  resource_version_ = std::move(page->resource_version);
  need_list_ = false;
  gone_in_a_row_ = 0;
  failures_ = 0;
  ++counters_.lists;
  const bool first = !synced_;
  synced_ = true;
  clear_error();
  handler_.on_listed(first);
  return true;
}

// Handles the complete lines of the watch body; false when the connection was dropped.
bool ListWatch::consume_watch_body() {
  lines_.append(body_);
  body_.clear();
  const uint64_t id = connection_id_;
  while (auto line = lines_.next()) {
    if (line->empty()) continue;
    on_watch_line(*line);
    if (id != connection_id_) return false;
  }
  if (lines_.pending() > kMaxLineBytes) {
    fail("kubernetes: a watch event from " + creds_->server + " is larger than 16 MiB", true);
    return false;
  }
  return true;
}

void ListWatch::on_watch_line(const std::string& line) {
  auto ev = handler_.apply(line);
  if (!ev) {
    // The event is lost, and with it what changed: only a new LIST is sure to be right again.
    need_list_ = true;
    ++counters_.relists;
    fail("kubernetes: bad watch event from " + creds_->server + ": " + ev.error().message +
             "; listing again",
         true);
    return;
  }
  switch (ev->type) {
    case WatchEventType::Added:
    case WatchEventType::Modified:
    case WatchEventType::Deleted:
      if (!ev->resource_version.empty()) resource_version_ = ev->resource_version;
      gone_in_a_row_ = 0;
      ++counters_.events;
      handler_.on_changed();
      return;
    case WatchEventType::Bookmark:
      resource_version_ = ev->resource_version;
      return;
    case WatchEventType::Error:
      if (ev->status.code == 410) {
        relist("the resourceVersion " + resource_version_ + " is too old (410 " +
               ev->status.reason + ": " + ev->status.message + ")");
      } else {
        fail("kubernetes: the watch of " + creds_->server +
                 " failed: " + std::to_string(ev->status.code) + " " + ev->status.reason + ": " +
                 ev->status.message,
             true);
      }
      return;
  }
}

// The watch cannot resume: LIST again (what the handler has stays until the list arrives), at
// once unless the server keeps answering 410.
void ListWatch::relist(const std::string& why) {
  need_list_ = true;
  continue_.clear();
  ++gone_in_a_row_;
  ++counters_.relists;
  LOG_INFO("kubernetes: %s: %s; listing again", settings_.name.c_str(), why.c_str());
  drop_connection();
  retry_timer_.arm(gone_in_a_row_ > kGoneBeforeBackoff ? next_backoff() : Duration::zero());
}

// ---- errors -------------------------------------------------------------------------------

std::string ListWatch::ca_description() const {
  if (!creds_->ca.path.empty()) return creds_->ca.path;
  if (!creds_->ca.data.empty()) return "certificate-authority-data of " + creds_->origin;
  return "store of the system";
}

Duration ListWatch::next_backoff() {
  Duration base = settings_.backoff_base;
  Duration max = settings_.backoff_max;
  Duration d = base;
  for (uint32_t i = 0; i < failures_ && d < max; ++i) d *= 2;
  d = std::min(d, max);
  ++failures_;
  // Equal jitter: between half and all of the step, so retries never bunch up at zero.
  return d / 2 +
         Duration(static_cast<int64_t>(static_cast<double>((d / 2).count()) * random_.unit()));
}

// Records the error, logs it (the same one at most once a minute), drops the connection and
// tries again after the backoff. `severe`: an error an operator must fix (ERROR) rather than a
// hiccup the watch recovers from by itself (WARN).
void ListWatch::fail(const std::string& message, bool severe) {
  drop_connection();
  continue_.clear();  // a LIST cut short starts again from its first page
  Duration delay = next_backoff();
  ++counters_.failures;
  last_error_ = message;
  TimePoint now = loop_.now();
  if (message != logged_error_ || now - logged_at_ >= kRelogInterval) {
    logged_error_ = message;
    logged_at_ = now;
    if (severe) {
      LOG_ERROR("%s (%s; retrying in %" PRId64 "ms)", message.c_str(), settings_.name.c_str(),
                to_ms(delay));
    } else {
      LOG_WARN("%s (%s; retrying in %" PRId64 "ms)", message.c_str(), settings_.name.c_str(),
               to_ms(delay));
    }
  }
  retry_timer_.arm(delay);
}

void ListWatch::clear_error() {
  if (!logged_error_.empty())
    LOG_INFO("kubernetes: %s: the API server %s works again", settings_.name.c_str(),
             creds_->server.c_str());
  last_error_.clear();
  logged_error_.clear();
}

}  // namespace h2mesh::discovery::k8s
