#pragma once

#include <cstdio>
#include <string_view>

namespace h2mesh::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

// Set once at startup (main thread) before workers start; read without synchronization after.
void set_level(Level level);
Level level();
bool parse_level(std::string_view text, Level* out);

// Thread-safe: each line is formatted into a local buffer and written with one write(2).
void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

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
