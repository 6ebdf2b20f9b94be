#include "discovery/dns_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <compare>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "discovery/dns_answer.h"
#include "discovery/resolver.h"

namespace h2mesh::discovery {
namespace {

long long to_ms(Duration d) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

class DnsResolver final : public Resolver {
 public:
  DnsResolver(net::EventLoop& loop, const config::Cluster& cluster, OnUpdate on_update)
      : loop_(loop),
        cluster_(cluster.name),
        dns_(cluster.discovery.dns),
        on_update_(std::move(on_update)),
        refresh_timer_(loop, [this] { begin_round(); }),
        ares_timer_(loop, [this] { on_ares_timer(); }),
        deadline_timer_(loop, [this] { on_deadline(); }),
        round_done_(loop, [this] { finish_round(); }) {
    queries_[0] = Query{this, AF_INET, {}};
    queries_[1] = Query{this, AF_INET6, {}};
  }

  ~DnsResolver() override {
    if (channel_) {
      // Pending queries end with ARES_EDESTRUCTION, which on_answer ignores; the sockets are
      // closed through on_sock_state.
      destroying_ = true;
      ares_destroy(channel_);
    }
    while (!sockets_.empty()) retire(sockets_.begin());
  }

  void start() override {
    if (started_) return;
    started_ = true;
    if (dns_.name.empty()) {
      last_error_ = "no dns.name configured";
      LOG_ERROR("dns: cluster %s: %s", cluster_.c_str(), last_error_.c_str());
      return;
    }
    // The first round runs from the loop, so on_update never fires inside start().
    refresh_timer_.arm(Duration::zero());
  }

  bool synced() const override { return synced_; }
  std::string last_error() const override { return last_error_; }

 private:
  // One c-ares socket registered with the loop. It stays alive until the end of the loop
  // iteration in which c-ares closed the socket, because that iteration's epoll batch may still
  // hold an event for it; `owner` is null from then on and such an event is ignored.
  struct SocketWatcher final : net::IoHandler, net::Deletable {
    SocketWatcher(DnsResolver* o, int f) : owner(o), fd(f) {}
    void on_io(uint32_t events) override {
      if (owner) owner->on_socket_ready(fd, events);
    }
    DnsResolver* owner;
    int fd;
    uint32_t events = 0;
  };

  // The argument c-ares passes back to on_answer: one per query type, living as long as `this`.
  struct Query {
    DnsResolver* self = nullptr;
    int family = AF_INET;
    DnsAnswer answer;
  };

  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<DnsResolver*>(data)->watch(fd, readable != 0, writable != 0);
  }

  static void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
    if (status == ARES_EDESTRUCTION) return;  // the resolver is being destroyed
    auto* q = static_cast<Query*>(arg);
    q->self->record_answer(*q, status, abuf, alen);
  }

  bool ensure_channel();
  void begin_round();
  void record_answer(Query& q, int status, const unsigned char* abuf, int alen);
  void finish_round();
  void round_failed(std::string why);
  void apply(std::vector<DnsRecord> records, std::optional<uint32_t> min_ttl);
  void watch(int fd, bool readable, bool writable);
  void retire(std::map<int, std::unique_ptr<SocketWatcher>>::iterator it);
  void on_socket_ready(int fd, uint32_t events);
  void on_ares_timer();
  void on_deadline();
  void arm_ares_timer();

  net::EventLoop& loop_;
  const std::string cluster_;
  const config::DnsDiscovery dns_;
  OnUpdate on_update_;

  ares_channel channel_ = nullptr;
  std::map<int, std::unique_ptr<SocketWatcher>> sockets_;
  Query queries_[2];
  int pending_ = 0;            // queries of the current round not answered yet
  bool deadline_hit_ = false;  // the round ran out of time and was cancelled
  bool destroying_ = false;
  bool started_ = false;
  bool synced_ = false;
  bool confirming_empty_ = false;  // one empty answer seen; the next decides
  uint32_t failures_ = 0;          // rounds failed in a row
  std::vector<DnsRecord> current_;  // the set last reported, sorted
  std::string last_error_;

  net::Timer refresh_timer_;   // next round
  net::Timer ares_timer_;      // c-ares' own retransmission timeouts
  net::Timer deadline_timer_;  // the round's overall budget (dns.timeout)
  net::Timer round_done_;      // finishes a round outside c-ares' callbacks
};

bool DnsResolver::ensure_channel() {
  if (channel_) return true;
  ares_options opts{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  opts.sock_state_cb = &DnsResolver::on_sock_state;
  opts.sock_state_cb_data = this;
  // c-ares doubles the per-try timeout on each pass over the servers: with two tries a single
  // server gets t + 2t = the round's budget; deadline_timer_ caps the total whatever the count.
  opts.timeout = static_cast<int>(std::max<long long>(dns_.timeout.count() / 3, 1));
  opts.tries = 2;
  int rc = ares_init_options(&channel_, &opts, mask);
  if (rc != ARES_SUCCESS) {
    channel_ = nullptr;
    last_error_ = std::string("cannot initialise c-ares: ") + ares_strerror(rc);
    return false;
  }
  if (!dns_.resolvers.empty()) {
    std::string csv;
    for (const auto& r : dns_.resolvers) csv += (csv.empty() ? "" : ",") + r.to_string();
    rc = ares_set_servers_ports_csv(channel_, csv.c_str());
    if (rc != ARES_SUCCESS) {
      ares_destroy(channel_);  // no query and no socket yet
      channel_ = nullptr;
      last_error_ = "bad dns.resolvers '" + csv + "': " + ares_strerror(rc);
      return false;
    }
  }
  return true;
}

void DnsResolver::begin_round() {
  if (!ensure_channel()) {
    round_failed(last_error_);
    return;
  }
  for (auto& q : queries_) q.answer = DnsAnswer{};
  pending_ = 2;
  deadline_hit_ = false;
  // Armed before the queries go out: c-ares may answer (fail) synchronously.
  deadline_timer_.arm(std::max(Duration(dns_.timeout), Duration(std::chrono::milliseconds(1))));
  ares_search(channel_, dns_.name.c_str(), ns_c_in, ns_t_a, &DnsResolver::on_answer, &queries_[0]);
  ares_search(channel_, dns_.name.c_str(), ns_c_in, ns_t_aaaa, &DnsResolver::on_answer,
              &queries_[1]);
  arm_ares_timer();
}

void DnsResolver::record_answer(Query& q, int status, const unsigned char* abuf, int alen) {
  switch (status) {
    case ARES_SUCCESS:
      q.answer = parse_dns_answer(q.family, abuf, alen);
      break;
    case ARES_ENODATA:
      q.answer = dns_answer_empty("NODATA");
      break;
    case ARES_ENOTFOUND:
      q.answer = dns_answer_empty("NXDOMAIN");
      break;
    case ARES_ECANCELLED:
      q.answer = dns_answer_failed(
          deadline_hit_ ? "no answer within " + std::to_string(dns_.timeout.count()) + "ms"
                        : "cancelled");
      break;
    case ARES_ECONNREFUSED:
      // c-ares 1.18 also ends with this status when every server answered SERVFAIL or REFUSED
      // (it tries the next server on those, then reports them all as unreachable).
      q.answer = dns_answer_failed(
          "no usable answer from any DNS server (unreachable, SERVFAIL or REFUSED)");
      break;
    default:
      q.answer = dns_answer_failed(ares_strerror(status));
  }
  if (--pending_ == 0) {
    deadline_timer_.cancel();
    // The result may reach on_update, whose owner must not run inside c-ares.
    round_done_.arm(Duration::zero());
  }
}

void DnsResolver::finish_round() {
  const DnsAnswer& a = queries_[0].answer;
  const DnsAnswer& aaaa = queries_[1].answer;
  if (a.kind == DnsAnswer::Kind::Failed || aaaa.kind == DnsAnswer::Kind::Failed) {
    // A half answer is no answer: applying only the A records would drop every IPv6 endpoint
    // because of one lost AAAA packet.
    std::string why;
    if (a.kind == DnsAnswer::Kind::Failed && aaaa.kind == DnsAnswer::Kind::Failed &&
        a.detail == aaaa.detail) {
      why = "A and AAAA: " + a.detail;
    } else {
      if (a.kind == DnsAnswer::Kind::Failed) why = "A: " + a.detail;
      if (aaaa.kind == DnsAnswer::Kind::Failed)
        why += (why.empty() ? "AAAA: " : "; AAAA: ") + aaaa.detail;
    }
    round_failed("resolving " + dns_.name + ": " + why);
    return;
  }
  std::vector<DnsRecord> records = a.records;
  records.insert(records.end(), aaaa.records.begin(), aaaa.records.end());
  std::optional<uint32_t> min_ttl = a.min_ttl;
  if (aaaa.min_ttl) min_ttl = min_ttl ? std::min(*min_ttl, *aaaa.min_ttl) : *aaaa.min_ttl;

  if (records.empty() && !current_.empty() && !confirming_empty_) {
    confirming_empty_ = true;
    failures_ = 0;
    last_error_.clear();
    Duration next = dns_refresh_delay(std::nullopt, dns_);  // min_interval
    LOG_WARN(
        "dns: cluster %s: %s has no A/AAAA records (A %s, AAAA %s); asking again in %lldms "
        "before removing its %zu endpoint(s)",
        cluster_.c_str(), dns_.name.c_str(), a.detail.c_str(), aaaa.detail.c_str(), to_ms(next),
        current_.size());
    refresh_timer_.arm(next);
    return;
  }
  apply(std::move(records), min_ttl);
}

void DnsResolver::apply(std::vector<DnsRecord> records, std::optional<uint32_t> min_ttl) {
  std::vector<cluster::DiscoveredEndpoint> endpoints = dns_endpoints(records, dns_.port);
  confirming_empty_ = false;
  if (failures_ > 0)
    LOG_INFO("dns: cluster %s: %s resolves again", cluster_.c_str(), dns_.name.c_str());
  failures_ = 0;
  last_error_.clear();
  Duration next = dns_refresh_delay(min_ttl, dns_);
  // Armed before on_update: the callback is the last thing this round does.
  refresh_timer_.arm(next);
  if (synced_ && records == current_) return;

  std::vector<DnsRecord> added, removed;
  std::set_difference(records.begin(), records.end(), current_.begin(), current_.end(),
                      std::back_inserter(added));
  std::set_difference(current_.begin(), current_.end(), records.begin(), records.end(),
                      std::back_inserter(removed));
  std::string list;
  constexpr size_t kShown = 8;
  for (size_t i = 0; i < records.size() && i < kShown; ++i)
    list += (i ? ", " : "") + dns_record_text(records[i]);
  if (records.size() > kShown) list += ", ...";
  LOG_INFO("dns: cluster %s: %s resolved to %zu endpoint(s) (+%zu -%zu)%s%s; next in %lldms",
           cluster_.c_str(), dns_.name.c_str(), records.size(), added.size(), removed.size(),
           list.empty() ? "" : ": ", list.c_str(), to_ms(next));

  synced_ = true;
  current_ = std::move(records);
  on_update_(std::move(endpoints));
}

void DnsResolver::round_failed(std::string why) {
  ++failures_;
  Duration next = dns_retry_delay(failures_, dns_);
  if (failures_ == 1 || why != last_error_) {
    LOG_WARN("dns: cluster %s: %s; keeping %zu known endpoint(s), retrying in %lldms",
             cluster_.c_str(), why.c_str(), current_.size(), to_ms(next));
  }
  last_error_ = std::move(why);
  refresh_timer_.arm(next);
}

void DnsResolver::watch(int fd, bool readable, bool writable) {
  uint32_t events = (readable ? uint32_t{EPOLLIN} : 0u) | (writable ? uint32_t{EPOLLOUT} : 0u);
  auto it = sockets_.find(fd);
  if (events == 0) {  // c-ares is about to close the socket
    if (it != sockets_.end()) retire(it);
    return;
  }
  if (it == sockets_.end()) {
    auto w = std::make_unique<SocketWatcher>(this, fd);
    w->events = events;
    loop_.add(fd, events, w.get());
    sockets_.emplace(fd, std::move(w));
  } else if (it->second->events != events) {
    it->second->events = events;
    loop_.modify(fd, events, it->second.get());
  }
}

void DnsResolver::retire(std::map<int, std::unique_ptr<SocketWatcher>>::iterator it) {
  std::unique_ptr<SocketWatcher> w = std::move(it->second);
  sockets_.erase(it);
  loop_.remove(w->fd);
  w->owner = nullptr;
  loop_.defer_delete(std::move(w));
}

void DnsResolver::on_socket_ready(int fd, uint32_t events) {
  // An error or hangup is handed to c-ares as readable: its read sees the error (e.g. ICMP port
  // unreachable on UDP) and moves the query on; left alone, level-triggered epoll would spin.
  ares_socket_t rfd = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? fd : ARES_SOCKET_BAD;
  ares_socket_t wfd = (events & EPOLLOUT) ? fd : ARES_SOCKET_BAD;
  ares_process_fd(channel_, rfd, wfd);
  arm_ares_timer();
}

void DnsResolver::on_ares_timer() {
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // handles expired tries
  arm_ares_timer();
}

void DnsResolver::on_deadline() {
  if (pending_ == 0) return;
  deadline_hit_ = true;
  ares_cancel(channel_);  // every query ends now with ARES_ECANCELLED
  arm_ares_timer();
}

void DnsResolver::arm_ares_timer() {
  if (!channel_ || destroying_) return;
  timeval tv{};
  if (!ares_timeout(channel_, nullptr, &tv)) {
    ares_timer_.cancel();
    return;
  }
  // c-ares reports whole milliseconds, rounded down: at least 1 ms, so a try that is a fraction
  // of a millisecond from expiring does not spin the loop.
  Duration d = std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
  ares_timer_.arm_at(Clock::now() + std::max(d, Duration(std::chrono::milliseconds(1))));
}

}  // namespace

namespace {
// The configured bounds, made safe to schedule with: an interval of 0 would re-resolve in a loop.
std::pair<Duration, Duration> interval_bounds(const config::DnsDiscovery& dns) {
  Duration lo = std::max(Duration(dns.min_interval), Duration(std::chrono::milliseconds(1)));
  return {lo, std::max(lo, Duration(dns.max_interval))};
}
}  // namespace

Duration dns_refresh_delay(std::optional<uint32_t> min_ttl_seconds,
                           const config::DnsDiscovery& dns) {
  auto [lo, hi] = interval_bounds(dns);
  if (!min_ttl_seconds) return lo;
  return std::clamp(Duration(std::chrono::seconds(*min_ttl_seconds)), lo, hi);
}

Duration dns_retry_delay(uint32_t failures, const config::DnsDiscovery& dns) {
  auto [lo, hi] = interval_bounds(dns);
  Duration d = lo;
  for (uint32_t i = 1; i < failures && d < hi; ++i) d *= 2;
  return std::min(d, hi);
}

std::unique_ptr<Resolver> make_dns_resolver(net::EventLoop& loop, const config::Cluster& cluster,
                                            Resolver::OnUpdate on_update) {
  // Process-wide c-ares setup (a no-op on Linux since 1.11, but documented as required); the
  // main thread creates every resolver, so the static's one-time init is enough.
  [[maybe_unused]] static const int init = ares_library_init(ARES_LIB_INIT_ALL);
  return std::make_unique<DnsResolver>(loop, cluster, std::move(on_update));
}

}  // namespace h2mesh::discovery
