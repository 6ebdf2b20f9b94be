#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/time.h"

namespace h2mesh {

// A child process whose stdout and stderr go to files, for the demo and the integration tests.
// The destructor kills (SIGKILL) and reaps a child that is still running.
class Subprocess {
 public:
  enum class Stream { Stdout, Stderr };

  // `dir` receives <name>.out and <name>.err.
  static Result<std::unique_ptr<Subprocess>> spawn(const std::vector<std::string>& argv,
                                                   const std::string& dir,
                                                   const std::string& name);
  ~Subprocess();

  // Waits until a line of `stream` satisfies `pred`; returns that line, or nullopt after
  // `timeout` or when the process exited without printing it.
  std::optional<std::string> wait_for_line(Stream stream,
                                           const std::function<bool(const std::string&)>& pred,
                                           Duration timeout);
  std::string read_all(Stream stream) const;

  pid_t pid() const { return pid_; }
  void send_signal(int sig);
  // Exit code (>= 0) or -signal number; nullopt if still running after `timeout`.
  std::optional<int> wait(Duration timeout);
  bool running();

 private:
  Subprocess() = default;
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string out_path_, err_path_;
};

// Directory of the running executable (for finding sibling binaries).
std::string self_dir();

// How a command run to completion ended, and what it printed.
struct CommandOutput {
  int exit_code = -1;  // >= 0, or -signal number
  std::string out;
  std::string err;
};

// Runs argv[0] (a path: see find_executable) without a shell, writes `input` to its stdin, then
// closes it, and collects stdout and stderr until the command exits. For short-lived tools
// (iptables-restore and friends); the calling thread blocks. An error only when the command
// could not be started.
Result<CommandOutput> run_command(const std::vector<std::string>& argv,
                                  std::string_view input = {});

// The path of the first executable file `name` in $PATH, or "" when there is none.
std::string find_executable(std::string_view name);

}  // namespace h2mesh
