#include "cluster/health_checker.h"

#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "grpc/status.h"
#include "http2/connection.h"
#include "net/transport.h"

namespace h2mesh::cluster {

std::string health_request_frame(const std::string& service) {
  std::string msg;
  if (!service.empty()) {
    msg.push_back(0x0a);  // field 1, length-delimited
    size_t n = service.size();
    while (n >= 0x80) {
      msg.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    msg.push_back(static_cast<char>(n));
    msg += service;
  }
  std::string frame(5, '\0');
  uint32_t len = static_cast<uint32_t>(msg.size());
  frame[1] = static_cast<char>(len >> 24);
  frame[2] = static_cast<char>(len >> 16);
  frame[3] = static_cast<char>(len >> 8);
  frame[4] = static_cast<char>(len);
  return frame + msg;
}

int health_response_status(const std::string& framed) {
  if (framed.size() < 5 || framed[0] != 0) return -1;
  auto b = [&](size_t i) { return static_cast<uint8_t>(framed[i]); };
  size_t len = (size_t{b(1)} << 24) | (size_t{b(2)} << 16) | (size_t{b(3)} << 8) | b(4);
  if (framed.size() != 5 + len) return -1;
  int status = 0;  // proto3 default: UNKNOWN
  for (size_t i = 5; i < framed.size();) {
    uint8_t tag = b(i++);
    uint64_t v = 0;
    int shift = 0;
    auto varint = [&]() -> bool {
      while (i < framed.size() && shift < 64) {
        uint8_t c = b(i++);
        v |= uint64_t{c & 0x7fu} << shift;
        shift += 7;
        if (!(c & 0x80)) return true;
      }
      return false;
    };
    if ((tag & 7) == 0) {
      if (!varint()) return -1;
      if (tag >> 3 == 1) status = static_cast<int>(v);
    } else if ((tag & 7) == 2) {
      if (!varint() || v > framed.size() - i) return -1;
      i += v;
    } else {
      return -1;
    }
    v = 0;
    shift = 0;
  }
  return status;
}

namespace {
Duration scaled(config::Millis d, double factor) {
  return Duration(static_cast<int64_t>(
      static_cast<double>(std::chrono::duration_cast<Duration>(d).count()) * factor));
}
}  // namespace

// One HTTP/2 connection to the endpoint, used for one check at a time.
class HealthChecker::Probe final : public http2::Connection {
 public:
  Probe(HealthChecker& owner, std::unique_ptr<net::Transport> transport)
      : http2::Connection(owner.loop_, std::move(transport), http2::Role::Client,
                          http2::SessionOptions{}),
        owner_(owner) {}

  void check() {
    body_ = health_request_frame(owner_.settings_.service);
    sent_ = 0;
    response_.clear();
    grpc_status_ = -1;
    std::string authority = owner_.host_.key;
    std::string timeout = grpc::format_timeout(owner_.settings_.timeout);
    const http2::HeaderRef headers[] = {{":method", "POST"},
                                        {":scheme", "http"},
                                        {":path", "/grpc.health.v1.Health/Check"},
                                        {":authority", authority},
                                        {"content-type", "application/grpc"},
                                        {"te", "trailers"},
                                        {"grpc-timeout", timeout},
                                        {"user-agent", "h2mesh-health-check"}};
    auto id = session_.submit_request(headers, true, this);
    if (!id) {
      finish(false, "cannot submit the check: " + id.error().message);
      return;
    }
    stream_ = *id;
    schedule_flush();
  }

  bool busy() const { return stream_ > 0; }

 private:
  void on_stream_open(int32_t) override {}
  void on_header(int32_t, void*, std::string_view name, std::string_view value) override {
    if (name == "grpc-status") grpc_status_ = grpc::parse_status(value).value_or(-1);
  }
  void on_headers_end(int32_t, void*, http2::HeadersKind, bool) override {}
  void on_headers_too_large(int32_t id, void*, http2::HeadersKind,
                            const http2::HeaderOverflow& overflow) override {
    too_large_ = overflow.describe();
    grpc_status_ = -1;
    session_.reset_stream(id, static_cast<uint32_t>(http2::H2Error::Cancel));
    schedule_flush();
  }
  void for_each_stream(const std::function<void(int32_t)>& fn) override {
    if (stream_ > 0) fn(stream_);
  }
  void on_data(int32_t id, void*, const uint8_t* data, size_t len) override {
    if (response_.size() < 1024) response_.append(reinterpret_cast<const char*>(data), len);
    session_.consume(id, len);
  }
  void on_data_end(int32_t, void*) override {}
  void on_stream_close(int32_t, void*, uint32_t error_code) override {
    if (!too_large_.empty()) {
      finish(false, "response header block with " + std::exchange(too_large_, std::string()));
      return;
    }
    if (grpc_status_ != 0) {
      finish(false, error_code ? "stream reset (HTTP/2 error " + std::to_string(error_code) + ")"
                               : "grpc-status " + std::to_string(grpc_status_));
      return;
    }
    int status = health_response_status(response_);
    finish(status == 1, status == 1 ? "" : "health status " + std::to_string(status) +
                                               " (1 is SERVING)");
  }
  void on_goaway(int32_t, uint32_t) override {}
  void on_remote_settings() override {}
  http2::BodyChunk read_body(int32_t, void*, size_t max_length) override {
    size_t n = std::min(max_length, body_.size() - sent_);
    return http2::BodyChunk{n, sent_ + n == body_.size(), false, false};
  }
  void write_body(int32_t, void*, size_t length, Buffer& out) override {
    out.append(body_.data() + sent_, length);
    sent_ += length;
  }
  void on_closed(const Error& why) override {
    if (busy()) finish(false, "connection closed: " + why.message);
    owner_.drop_probe();
  }

  void finish(bool ok, const std::string& why) {
    stream_ = -1;
    owner_.record(ok, why);
  }

  HealthChecker& owner_;
  std::string body_;
  size_t sent_ = 0;
  std::string response_;
  int grpc_status_ = -1;
  int32_t stream_ = -1;
  std::string too_large_;  // the limit the current check's response went over, if any
};

HealthChecker::HealthChecker(net::EventLoop& loop, Random& random, const Host& host,
                             const config::HealthCheck& settings,
                             std::function<void(bool)> on_transition,
                             std::shared_ptr<net::Connector> connector)
    : loop_(loop),
      random_(random),
      host_(host),
      settings_(settings),
      on_transition_(std::move(on_transition)),
      connector_(std::move(connector)),
      next_(loop, [this] { start_check(); }),
      timeout_(loop, [this] { on_timeout(); }) {
  // The first check runs at a random point of the first interval, so that checks of many
  // endpoints do not all fire together.
  next_.arm(scaled(settings_.interval, random_.unit()));
}

HealthChecker::~HealthChecker() {
  in_check_ = false;  // no outcome is reported from here on
  if (probe_) {
    probe_->close(make_error(ErrorCode::Draining, "health checker stopped"));
    loop_.defer_delete(std::move(probe_));
  }
}

void HealthChecker::schedule_next() {
  next_.arm(std::chrono::duration_cast<Duration>(settings_.interval) +
            scaled(settings_.interval_jitter, random_.unit()));
}

void HealthChecker::start_check() {
  in_check_ = true;
  if (!probe_) {
    net::Connector& connector = connector_ ? *connector_ : net::tcp_connector();
    auto transport = connector.connect(loop_, host_.address);
    if (!transport) {
      record(false, transport.error().message);
      return;
    }
    probe_ = std::make_unique<Probe>(*this, std::move(*transport));
  }
  timeout_.arm(settings_.timeout);
  probe_->check();
}

void HealthChecker::on_timeout() {
  // A frozen backend may accept the TCP connection and never answer: give up on the connection.
  if (probe_) probe_->close(make_error(ErrorCode::DeadlineExceeded, "timed out"));
  if (in_check_) record(false, "no answer within the timeout");
}

void HealthChecker::drop_probe() {
  if (probe_) loop_.defer_delete(std::move(probe_));
}

void HealthChecker::record(bool ok, const std::string& why) {
  if (!in_check_) return;
  in_check_ = false;
  timeout_.cancel();
  ++checks_;
  if (ok) {
    failures_in_row_ = 0;
    ++successes_in_row_;
    if (!healthy_ && successes_in_row_ >= settings_.healthy_threshold) {
      healthy_ = true;
      LOG_INFO("health check: %s is healthy again", host_.key.c_str());
      on_transition_(true);
    }
  } else {
    ++failures_;
    last_failure_ = why;
    successes_in_row_ = 0;
    ++failures_in_row_;
    LOG_DEBUG("health check of %s failed: %s", host_.key.c_str(), why.c_str());
    if (healthy_ && failures_in_row_ >= settings_.unhealthy_threshold) {
      healthy_ = false;
      LOG_WARN("health check: %s is unhealthy (%s)", host_.key.c_str(), why.c_str());
      on_transition_(false);
    }
  }
  schedule_next();
}

}  // namespace h2mesh::cluster
