#include "observe/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

namespace h2mesh::observe {
namespace {

// How long lines may wait for the writer when no ring passes half full: what `tail -f` shows
// late at most, and the batching at low call rates.
constexpr int kTurnMs = 100;
// How long the writer keeps offering lines to an output that takes none (a pipe nobody reads)
// once the process is stopping: then what is left is counted as dropped and the process ends.
constexpr auto kStopGrace = std::chrono::seconds(1);

// Lines are a few hundred bytes: memchr (word-wide in glibc) jumps from one '\n' to the next,
// where std::count looked at every byte.
uint64_t count_lines(std::string_view bytes) {
  uint64_t lines = 0;
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  while (p < end) {
    const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p));
    if (!nl) break;
    ++lines;
    p = static_cast<const char*>(nl) + 1;
  }
  return lines;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// AccessLogObserver

AccessLogObserver::AccessLogObserver(std::shared_ptr<const LineFormat> format, LineRing& ring,
                                     Random& random)
    : format_(std::move(format)), ring_(ring), random_(random) {}

void AccessLogObserver::on_call_end(const proxy::CallEvent& call) {
  // At 1 no draw: every call, and the random sequence of the worker's balancers is unchanged.
  const double ratio = format_->sample_ratio();
  if (ratio < 1 && !(random_.unit() < ratio)) return;
  line_.clear();
  anchor_.refresh(call.end);
  format_->append(call, anchor_.wall(call.start), &second_, &line_);
  ring_.push(line_);
}

// ---------------------------------------------------------------------------------------------
// AccessLogWriter

AccessLogWriter::AccessLogWriter(size_t workers, size_t queue_bytes)
    : queue_bytes_(queue_bytes), wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  for (size_t i = 0; i < workers; ++i)
    rings_.push_back(std::make_unique<LineRing>(queue_bytes, wake_fd_));
  iov_.reserve(2 * workers);
  gathered_.resize(workers);
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "h2mesh-log");
}

AccessLogWriter::~AccessLogWriter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  thread_.join();
  ::close(wake_fd_);
}

void AccessLogWriter::set_output(int fd) {
  {
    std::lock_guard lock(mu_);
    // A second switch before the writer's turn: the first output was never used.
    if (has_output_ && next_output_ >= 0) ::close(next_output_);
    has_output_ = true;
    next_output_ = fd;
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void AccessLogWriter::flush() {
  std::unique_lock lock(mu_);
  const uint64_t ticket = ++flush_requested_;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  flushed_cv_.wait(lock, [&] { return flush_done_ >= ticket; });
}

AccessLogWriter::Counters AccessLogWriter::counters() const {
  Counters c;
  c.lines = lines_.load(std::memory_order_relaxed);
  c.dropped = lost_.load(std::memory_order_relaxed);
  for (const auto& r : rings_) c.dropped += r->dropped();
  return c;
}

void AccessLogWriter::run() {
  for (;;) {
    pollfd p{wake_fd_, POLLIN, 0};
    ::poll(&p, 1, kTurnMs);
    uint64_t wakes;
    [[maybe_unused]] ssize_t n = ::read(wake_fd_, &wakes, sizeof(wakes));
    bool stop, switch_output;
    int next = -1;
    uint64_t flush_ticket;
    {
      std::lock_guard lock(mu_);
      stop = stop_;
      switch_output = has_output_;
      next = next_output_;
      has_output_ = false;
      next_output_ = -1;
      flush_ticket = flush_requested_;
    }
    // Lines queued before a switch go to the output they were made for, if there was one.
    // Taken after the commands: every line pushed before a command is in this turn.
    if (switch_output && out_ < 0) {
      use_output(next);
      switch_output = false;
    }
    switch_pending_ = switch_output;
    drain();
    if (switch_output) {
      if (out_ >= 0) ::close(out_);
      use_output(next);
    }
    uint64_t dropped = 0;
    for (const auto& r : rings_) dropped += r->dropped();
    if (dropped != drops_logged_) {
      uint64_t held_back = 0;
      if (error_log_.allow(Clock::now(), &held_back)) {
        LOG_WARN(
            "access log: %llu line(s) dropped: the queue of a worker was full (the output "
            "is slower than the calls; access_log.queue_bytes, sample_ratio)",
            static_cast<unsigned long long>(dropped - drops_logged_));
        drops_logged_ = dropped;
      }
    }
    {
      std::lock_guard lock(mu_);
      flush_done_ = flush_ticket;
    }
    flushed_cv_.notify_all();
    if (stop) break;
  }
  if (out_ >= 0) ::close(out_);
  out_ = -1;
}

void AccessLogWriter::use_output(int fd) {
  out_ = fd;
  torn_ = false;
  struct stat st;
  out_socket_ = fd >= 0 && ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

ssize_t AccessLogWriter::put(const iovec* iov, size_t count) {
  const int n = static_cast<int>(std::min<size_t>(count, IOV_MAX));
  if (!out_socket_) return ::writev(out_, iov, n);
  // A socket (systemd's journal, say) may be shared with stderr: its flags stay as they are,
  // and this one call does not wait.
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(n);
  return ::sendmsg(out_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

bool AccessLogWriter::wait_writable() {
  for (;;) {
    if (switch_pending_) return false;
    pollfd p[2] = {{out_, POLLOUT, 0}, {wake_fd_, POLLIN, 0}};
    ::poll(p, 2, kTurnMs);
    // An error or a hang-up is writable too: the next write says which.
    if (p[0].revents != 0) return true;
    if (p[1].revents & POLLIN) {
      uint64_t wakes;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &wakes, sizeof(wakes));
    }
    bool stop, switching = switch_pending_;
    {
      std::lock_guard lock(mu_);
      stop = stop_;
      switching |= has_output_;
    }
    // A new output (SIGUSR1): the old one had its chance; run() switches at once.
    if (switching) return false;
    if (stop) {
      // One grace for the whole stop, however many turns and waits it takes.
      const auto now = Clock::now();
      if (!stop_give_up_at_) stop_give_up_at_ = now + kStopGrace;
      if (now >= *stop_give_up_at_) return false;
    }
  }
}

void AccessLogWriter::drain() {
  iov_.clear();
  for (size_t i = 0; i < rings_.size(); ++i) {
    const LineRing::Readable ready = rings_[i]->readable();
    gathered_[i] = ready.size();
    for (std::string_view span : {ready.first, ready.second})
      if (!span.empty()) iov_.push_back({const_cast<char*>(span.data()), span.size()});
  }
  if (iov_.empty()) return;
  write_out();
  // Only what was gathered: the workers may have added lines since.
  for (size_t i = 0; i < rings_.size(); ++i)
    if (gathered_[i]) rings_[i]->consume(gathered_[i]);
}

void AccessLogWriter::write_out() {
  uint64_t lines = 0;
  size_t total = 0;
  for (const auto& v : iov_) {
    lines += count_lines({static_cast<const char*>(v.iov_base), v.iov_len});
    total += v.iov_len;
  }
  if (out_ < 0) {
    lost_.fetch_add(lines, std::memory_order_relaxed);
    return;
  }
  if (torn_) {
    // End the piece of line a failed write left, so the next line starts on its own; until it
    // is ended, no line may follow it.
    iovec nl{const_cast<char*>("\n"), 1};
    for (;;) {
      const ssize_t n = put(&nl, 1);
      if (n == 1) {
        torn_ = false;
        break;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_writable()) continue;
      break;
    }
    if (torn_) {
      lost_.fetch_add(lines, std::memory_order_relaxed);
      return;
    }
  }
  std::vector<iovec>& rest = iov_;  // advanced as it is written
  size_t at = 0;
  uint64_t written_lines = 0;
  int error = 0;
  while (at < rest.size()) {
    const ssize_t n = put(rest.data() + at, rest.size() - at);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // The reader is behind: the workers' rings fill and drop (counted) while this waits.
        if (wait_writable()) continue;
        error = EAGAIN;
        break;
      }
      error = errno;
      break;
    }
    size_t left = static_cast<size_t>(n);
    if (left == total) {
      // All of it in one writev (the usual case): every line gathered is written, and the rings
      // hold whole lines only, so nothing is left torn and there is nothing to count again.
      written_lines = lines;
      torn_ = false;
      break;
    }
    while (left > 0) {
      iovec& v = rest[at];
      const size_t take = std::min(left, v.iov_len);
      const std::string_view piece(static_cast<const char*>(v.iov_base), take);
      written_lines += count_lines(piece);
      torn_ = piece.back() != '\n';
      v.iov_base = static_cast<char*>(v.iov_base) + take;
      v.iov_len -= take;
      left -= take;
      if (v.iov_len == 0) ++at;
    }
  }
  lines_.fetch_add(written_lines, std::memory_order_relaxed);
  if (error == 0) return;
  lost_.fetch_add(lines - written_lines, std::memory_order_relaxed);
  uint64_t held_back = 0;
  if (!error_log_.allow(Clock::now(), &held_back)) return;
  if (error == EAGAIN)
    LOG_ERROR("access log: the output took nothing while the log was stopping or reopened "
              "(a reader that does not read); %llu line(s) lost",
              static_cast<unsigned long long>(lines - written_lines));
  else
    LOG_ERROR("access log: write failed: %s; %llu line(s) lost", strerror(error),
              static_cast<unsigned long long>(lines - written_lines));
}

// ---------------------------------------------------------------------------------------------

int open_nonblocking_twin(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return -1;
  if (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode)) return fcntl(fd, F_DUPFD_CLOEXEC, 0);
  // A pipe or a terminal: a description of our own, which may be non-blocking without
  // changing the one stdout shares with the rest of the process and its parent.
  const int twin = ::open(("/proc/self/fd/" + std::to_string(fd)).c_str(),
                          O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (twin >= 0) return twin;
  // No /proc, or a pipe of another user's (sudo -u ... | logger): the blocking duplicate.
  LOG_WARN("access log: cannot open fd %d again without blocking (%s); a reader that stops "
           "reading will hold the access log's thread and the exit",
           fd, strerror(errno));
  return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

Result<int> open_access_log(const std::string& path) {
  // Non-blocking: a FIFO without a reader is an error here rather than a wait, and one whose
  // reader stops reading holds only the writer thread, never past kStopGrace at the end.
  const int fd = path == "stdout" ? open_nonblocking_twin(STDOUT_FILENO)
                                  : ::open(path.c_str(),
                                           O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC,
                                           0644);
  if (fd < 0 && errno == ENXIO)
    return Error{ErrorCode::Io,
                 "access log: " + path + " has no reader (a FIFO nobody reads, or a socket)"};
  if (fd < 0)
    return Error{ErrorCode::Io, "access log: cannot open " + path + ": " + strerror(errno)};
  return fd;
}

std::string check_access_log_path(const std::string& path) {
  if (path == "stdout") return "";
  if (::access(path.c_str(), F_OK) == 0) {
    if (::access(path.c_str(), W_OK) != 0)
      return "access log: " + path + " is not writable: " + strerror(errno);
    return "";
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return "access log: cannot create " + path + " in " + dir + ": " + strerror(errno);
  return "";
}

std::string render_access_log_metrics(const AccessLogWriter::Counters& c) {
  std::string out;
  out +=
      "# HELP h2mesh_access_log_lines_total Access log lines written.\n"
      "# TYPE h2mesh_access_log_lines_total counter\n"
      "h2mesh_access_log_lines_total " +
      std::to_string(c.lines) +
      "\n# HELP h2mesh_access_log_dropped_total Access log lines dropped: a worker's queue was "
      "full, or the write failed.\n"
      "# TYPE h2mesh_access_log_dropped_total counter\n"
      "h2mesh_access_log_dropped_total " +
      std::to_string(c.dropped) + "\n";
  return out;
}

}  // namespace h2mesh::observe
