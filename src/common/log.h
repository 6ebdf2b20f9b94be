#pragma once

#include <cstdint>
#include <cstdio>
#include <string_view>

#include "common/time.h"

namespace h2mesh::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

// Set once at startup (main thread) before workers start; read without synchronization after.
void set_level(Level level);
Level level();
bool parse_level(std::string_view text, Level* out);

// Thread-safe: each line is formatted into a local buffer and written with one write(2).
void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Bounds how often one kind of line is written when a peer can trigger it at will (a client
// sending bad requests must not be able to flood the log). Lets one line through per interval
// and counts the ones held back, so the next line can say how many there were. Not thread-safe:
// one per thread (e.g. a worker's), used on that thread only.
class Limiter {
 public:
  explicit Limiter(Duration interval) : interval_(interval) {}
  // True when a line may be written at `now`; then *held_back is how many were not since the
  // last one written.
  bool allow(TimePoint now, uint64_t* held_back);

 private:
  Duration interval_;
  TimePoint next_{};  // the epoch: the first line always passes
  uint64_t held_back_ = 0;
};

}  // namespace h2mesh::log

#define H2_LOG(lvl, ...)                                                   \
  do {                                                                     \
    if (::h2mesh::log::Level::lvl >= ::h2mesh::log::level())               \
      ::h2mesh::log::write(::h2mesh::log::Level::lvl, __VA_ARGS__);        \
  } while (0)
#define LOG_DEBUG(...) H2_LOG(Debug, __VA_ARGS__)
#define LOG_INFO(...) H2_LOG(Info, __VA_ARGS__)
#define LOG_WARN(...) H2_LOG(Warn, __VA_ARGS__)
#define LOG_ERROR(...) H2_LOG(Error, __VA_ARGS__)
