#pragma once

// The access log (docs/observability.md#access-log): one line per call, made on the worker that
// ran the call and written to the file by a thread of its own, so that a slow or blocked disk
// never holds a worker.
//
//   worker: AccessLogObserver::on_call_end → sample → LineFormat → the worker's LineRing
//   writer thread: every 100 ms, or when a ring passes half full, the lines of every ring in one
//                  writev(2); a full ring drops the line and counts it.
//
// Threads: the main thread owns the AccessLogWriter (made the first time a config turns the log
// on, kept until the process ends, after the workers are gone) and hands each worker its ring;
// each worker owns its observer.

#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/random.h"
#include "common/result.h"
#include "config/config.h"
#include "observe/line_format.h"
#include "observe/line_ring.h"
#include "common/wall_anchor.h"
#include "proxy/call_event.h"

namespace h2mesh::observe {

// A worker's observer: logs its calls (a share `sample_ratio` of them, drawn from the worker's
// random source) into the worker's ring. Worker thread only. Nothing allocated per call once the
// line buffer grew to the longest line.
class AccessLogObserver final : public proxy::CallObserver {
 public:
  // `ring` (owned by the writer) and `random` (the worker's) outlive the observer.
  AccessLogObserver(std::shared_ptr<const LineFormat> format, LineRing& ring, Random& random);
  void on_attempt_end(const proxy::CallEvent&, const proxy::AttemptEvent&) override {}
  void on_call_end(const proxy::CallEvent& call) override;

 private:
  std::shared_ptr<const LineFormat> format_;
  LineRing& ring_;
  Random& random_;
  std::string line_;  // reused: keeps its capacity
  SecondText second_;
  WallAnchor anchor_;
};

// The writer thread and the rings it drains, one per worker.
class AccessLogWriter {
 public:
  // Starts the thread. `queue_bytes`: each ring's capacity (rounded up to a power of two).
  AccessLogWriter(size_t workers, size_t queue_bytes);
  // Writes what the rings hold (the workers are gone by then), closes the output, joins.
  ~AccessLogWriter();
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  // The ring of worker `i`: its producer is that worker's observer.
  LineRing& ring(size_t i) { return *rings_[i]; }
  size_t queue_bytes() const { return queue_bytes_; }

  // Main thread. Lines go to `fd` (owned; -1: nowhere, they are dropped and counted) from the
  // writer's next turn; what the rings hold at that turn is written to the previous output
  // first (when there is one), which is then closed. Returns at once.
  void set_output(int fd);
  // Main thread, tests: returns once every line pushed before the call is written (or dropped).
  void flush();

  struct Counters {
    uint64_t lines = 0;    // written to the output
    uint64_t dropped = 0;  // never written: a full ring, a failed write, no output
  };
  // Any thread.
  Counters counters() const;

 private:
  void run();
  // One turn: every ring's lines to the output, in one writev when it takes them all.
  void drain();
  // Writes iov_ (whole lines of the rings, in order) to out_; counts lines written and lost.
  // An output that takes nothing (EAGAIN) is waited for, until the process stops (for
  // kStopGrace at most) or the output is switched: then the rest is counted as lost.
  void write_out();
  // out_ = fd, and how to write to it.
  void use_output(int fd);
  // One writev(2), or for a socket one sendmsg(2) that does not wait.
  ssize_t put(const struct iovec* iov, size_t count);
  // Until out_ takes bytes (true), or the process is stopping past the grace or a new output is
  // waiting (false).
  bool wait_writable();

  size_t queue_bytes_;
  int wake_fd_;  // eventfd: rings passing half full, commands
  std::vector<std::unique_ptr<LineRing>> rings_;
  std::thread thread_;

  // Writer thread only.
  int out_ = -1;
  bool out_socket_ = false;
  bool switch_pending_ = false;  // this turn's lines are the last for out_: a new one is waiting
  std::optional<TimePoint> stop_give_up_at_;  // set when a wait first sees the stop
  bool torn_ = false;  // a failed write left part of a line in the output
  std::vector<struct iovec> iov_;
  std::vector<size_t> gathered_;  // per ring: the bytes of this turn
  log::Limiter error_log_{seconds(10)};
  uint64_t drops_logged_ = 0;  // ring drops already reported in the log

  std::atomic<uint64_t> lines_{0};
  std::atomic<uint64_t> lost_{0};  // dropped by the writer (failed write, no output)

  // Commands from the main thread.
  std::mutex mu_;
  std::condition_variable flushed_cv_;
  bool stop_ = false;
  bool has_output_ = false;
  int next_output_ = -1;
  uint64_t flush_requested_ = 0;
  uint64_t flush_done_ = 0;
};

// Opens an access log's output for appending, non-blocking ("stdout": a description of the
// process's standard output of its own, so that closing it or its O_NONBLOCK leave stdout alone).
// Main thread.
Result<int> open_access_log(const std::string& path);
// `fd` again as a new descriptor: for a pipe or a terminal a new open file description with
// O_NONBLOCK (through /proc/self/fd), for a file or a socket a plain duplicate (the writer sends
// to a socket without waiting anyway). -1 on failure.
int open_nonblocking_twin(int fd);

// `h2mesh check`: why `path` could not be opened for appending ("" when it could), without
// creating or changing anything.
std::string check_access_log_path(const std::string& path);

// The access log's counters in Prometheus text: h2mesh_access_log_lines_total and
// h2mesh_access_log_dropped_total (0 when the log was never on).
std::string render_access_log_metrics(const AccessLogWriter::Counters& counters);

}  // namespace h2mesh::observe
