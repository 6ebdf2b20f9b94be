#pragma once

// LIST then WATCH of one collection of the Kubernetes API (EndpointSlices of one Service, every
// Service of the cluster, ...), straight from the API server, on the main thread's event loop.
// What the objects mean is the handler's business; this is the loop every collection shares:
//
// One connection at a time. A LIST (in pages of at most 500 objects, as client-go asks for them:
// a large collection never sits in memory as one reply) replaces the handler's cache and gives
// the resourceVersion the WATCH starts from; the WATCH (on the same kept-alive connection) hands
// every ADDED, MODIFIED and DELETED to the handler and remembers every resourceVersion it sees
// (bookmarks included), so that a dropped or ended watch resumes where it stopped. "410 Gone" (an
// HTTP reply or an ERROR event) and a watch event that cannot be read force a new LIST. Errors
// keep what the handler has and retry with exponential backoff and jitter; one log line per
// distinct error and minute.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/random.h"
#include "common/result.h"
#include "common/time.h"
#include "discovery/k8s_api.h"
#include "discovery/k8s_client.h"
#include "discovery/k8s_credentials.h"
#include "discovery/k8s_http.h"
#include "net/event_loop.h"

namespace h2mesh::discovery::k8s {

// Which collection to follow, known once the credentials are loaded (their namespace may be
// part of it).
struct Collection {
  std::string path;      // path and query, e.g. "/api/v1/services" or "/apis/...?labelSelector=..."
  std::string kind;      // "EndpointSlice", "Service": in messages
  std::string resource;  // "endpointslices.discovery.k8s.io", "services": in the 403 message
  std::string scope;     // "in namespace grpcdemo", "in every namespace": in the 403 message
};

class ListWatch final : private ApiClient::Visitor {
 public:
  // Called on the loop thread. Nothing may destroy the ListWatch from inside a callback.
  class Handler {
   public:
    virtual ~Handler() = default;
    // Once the credentials are loaded (again after each failure to load them): what to follow.
    // An error is logged and retried with backoff.
    virtual Result<Collection> collection(const Credentials& credentials) = 0;
    // One page of a LIST reply. `first`: the first page of a new LIST (forget the pages of an
    // unfinished one). Keep the items aside until on_listed(). Returns the page's
    // resourceVersion and continue token.
    virtual Result<ListMeta> list_page(std::string_view body, bool first) = 0;
    // One line of the watch stream: ADDED, MODIFIED and DELETED are applied. Returns the event's
    // envelope (type, resourceVersion, Status of an ERROR).
    virtual Result<WatchEventHead> apply(std::string_view line) = 0;
    // The last page of a LIST arrived: replace everything known with the items of its pages
    // (`first`: the first LIST ever). synced() and resource_version() already tell the new
    // state.
    virtual void on_listed(bool first) = 0;
    // After a change applied from the watch.
    virtual void on_changed() = 0;
  };

  struct Settings {
    std::string name;        // who follows the collection, in log lines: "cluster greeter"
    std::string kubeconfig;  // "": in-cluster credentials
    Duration backoff_base = std::chrono::milliseconds(500);
    Duration backoff_max = std::chrono::seconds(30);
    size_t page_size = 500;  // objects per LIST reply (limit=)
  };

  // For /metrics: what happened since start.
  struct Counters {
    uint64_t lists = 0;     // LISTs applied (all their pages)
    uint64_t watches = 0;   // WATCH requests the server accepted (200)
    uint64_t events = 0;    // ADDED, MODIFIED and DELETED applied
    uint64_t failures = 0;  // errors that dropped the connection (each followed by a backoff)
    uint64_t relists = 0;   // LISTs forced by 410 Gone or by an unreadable watch event
  };

  // `handler` is not owned and outlives the ListWatch.
  ListWatch(net::EventLoop& loop, Settings settings, Handler& handler);
  ~ListWatch() override;
  ListWatch(const ListWatch&) = delete;
  ListWatch& operator=(const ListWatch&) = delete;

  // Starts listing; the handler hears the rest.
  void start();
  // True once a LIST was applied. While the API server is unreachable the handler keeps what it
  // has and synced() stays true; last_error() says what is wrong ("" while all is well).
  bool synced() const { return synced_; }
  const std::string& last_error() const { return last_error_; }
  const std::string& resource_version() const { return resource_version_; }
  const Counters& counters() const { return counters_; }
  // The API server's URL, once the credentials are loaded ("" before).
  std::string server() const { return creds_ ? creds_->server : std::string(); }

 private:
  enum class Phase { Idle, Connecting, Listing, Watching };

  bool load_credentials();
  void connect();
  void drop_connection();
  void send_request();

  void on_connected() override;
  void on_data(std::string_view bytes) override;
  void on_closed(ApiClient::Failure failure, const std::string& detail) override;

  void on_reply_timeout();
  void on_reply_complete();
  void on_error_reply();
  bool on_list();
  bool consume_watch_body();
  void on_watch_line(const std::string& line);
  void relist(const std::string& why);

  Duration next_backoff();
  void fail(const std::string& message, bool severe);
  void clear_error();
  std::string ca_description() const;

  net::EventLoop& loop_;
  const Settings settings_;
  Handler& handler_;
  Random random_;

  std::optional<Credentials> creds_;
  std::unique_ptr<TokenSource> tokens_;
  std::string host_header_;
  Collection collection_;

  std::unique_ptr<ApiClient> conn_;
  uint64_t connection_id_ = 0;  // changes whenever the connection is dropped
  Phase phase_ = Phase::Idle;
  HttpResponseReader reader_;
  std::string body_;
  LineBuffer lines_;
  bool watch_open_ = false;  // a 200 reply to the current WATCH arrived
  Duration watch_timeout_{};
  TimePoint watch_started_{};

  std::string resource_version_;
  std::string continue_;  // the next page of the LIST in progress ("": its first page)
  bool need_list_ = true;
  bool synced_ = false;

  std::string last_error_;
  std::string logged_error_;
  TimePoint logged_at_{};
  uint32_t failures_ = 0;  // in a row, for the backoff
  uint32_t gone_in_a_row_ = 0;
  Counters counters_;

  net::Timer retry_timer_;
  net::Timer reply_timer_;  // LIST reply, WATCH headers, then WATCH silence
};

}  // namespace h2mesh::discovery::k8s
