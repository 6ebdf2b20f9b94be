#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace h2mesh {
namespace {

// Forks and runs argv[0] (a path) with `in` (or /dev/null when -1), `out` and `err` as its
// standard streams, every signal unblocked and SIGPIPE at its default. The child reports a
// failed exec on its stderr and exits 127. Returns the pid, or -1 with errno from fork.
pid_t fork_exec(const std::vector<std::string>& argv, int in, int out, int err) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid != 0) return pid;
  if (in < 0) in = ::open("/dev/null", O_RDONLY);
  if (in >= 0) dup2(in, STDIN_FILENO);
  dup2(out, STDOUT_FILENO);
  dup2(err, STDERR_FILENO);
  // An ignored SIGPIPE would survive exec; the command gets the defaults and no blocked signal.
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execv(args[0], args.data());
  dprintf(STDERR_FILENO, "exec %s: %s\n", args[0], strerror(errno));
  _exit(127);
}

}  // namespace

Result<std::unique_ptr<Subprocess>> Subprocess::spawn(const std::vector<std::string>& argv,
                                                      const std::string& dir,
                                                      const std::string& name) {
  std::unique_ptr<Subprocess> p(new Subprocess());
  p->out_path_ = dir + "/" + name + ".out";
  p->err_path_ = dir + "/" + name + ".err";
  int out = ::open(p->out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = ::open(p->err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0 || err < 0) {
    if (out >= 0) ::close(out);
    if (err >= 0) ::close(err);
    return make_error(ErrorCode::Io, "cannot create log files in " + dir);
  }
  pid_t pid = fork_exec(argv, -1, out, err);
  if (pid < 0) {
    const int fork_errno = errno;
    ::close(out);
    ::close(err);
    return make_error(ErrorCode::Io, std::string("fork: ") + strerror(fork_errno));
  }
  ::close(out);
  ::close(err);
  p->pid_ = pid;
  return p;
}

Subprocess::~Subprocess() {
  if (running()) {
    send_signal(SIGKILL);
    (void)wait(std::chrono::seconds(5));
  }
}

std::string Subprocess::read_all(Stream stream) const {
  std::ifstream f(stream == Stream::Stdout ? out_path_ : err_path_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::optional<std::string> Subprocess::wait_for_line(
    Stream stream, const std::function<bool(const std::string&)>& pred, Duration timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    bool exited = !running();
    std::istringstream lines(read_all(stream));
    std::string line;
    while (std::getline(lines, line))
      if (pred(line)) return line;
    if (exited || Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a log file
  }
}

void Subprocess::send_signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

bool Subprocess::running() {
  if (status_ || pid_ <= 0) return false;
  int st;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    return false;
  }
  return true;
}

std::optional<int> Subprocess::wait(Duration timeout) {
  auto deadline = Clock::now() + timeout;
  while (running()) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

std::string self_dir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

namespace {

// The three pipes of run_command: [0] is the read end, [1] the write end.
struct Pipes {
  int in[2] = {-1, -1};
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  ~Pipes() {
    for (int* p : {in, out, err})
      for (int i = 0; i < 2; ++i)
        if (p[i] >= 0) ::close(p[i]);
  }
  static void close_end(int* fd) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
};

// Writing to a command that exited without reading its input raises SIGPIPE, which would kill
// the caller. Blocked for the calling thread while the command runs; a SIGPIPE our own write
// caused is taken off the pending set again, one that was pending before is left alone.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeGuard() {
    if (caused_ && !was_pending_) {
      timespec zero{};
      while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  void caused() { caused_ = true; }

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
  bool caused_ = false;
};

}  // namespace

Result<CommandOutput> run_command(const std::vector<std::string>& argv, std::string_view input) {
  if (argv.empty()) return make_error(ErrorCode::InvalidArgument, "run_command: no command");
  Pipes p;
  if (pipe2(p.in, O_CLOEXEC) < 0 || pipe2(p.out, O_CLOEXEC) < 0 || pipe2(p.err, O_CLOEXEC) < 0)
    return make_error(ErrorCode::Io, std::string("pipe: ") + strerror(errno));
  SigpipeGuard sigpipe;
  pid_t pid = fork_exec(argv, p.in[0], p.out[1], p.err[1]);
  if (pid < 0) return make_error(ErrorCode::Io, std::string("fork: ") + strerror(errno));
  Pipes::close_end(&p.in[0]);
  Pipes::close_end(&p.out[1]);
  Pipes::close_end(&p.err[1]);
  fcntl(p.in[1], F_SETFL, O_NONBLOCK);
  if (input.empty()) Pipes::close_end(&p.in[1]);

  CommandOutput result;
  size_t written = 0;
  char buf[4096];
  while (p.in[1] >= 0 || p.out[0] >= 0 || p.err[0] >= 0) {
    pollfd fds[3] = {{p.in[1], POLLOUT, 0}, {p.out[0], POLLIN, 0}, {p.err[0], POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      // Only without memory: stop the command rather than wait for it to fill a pipe nobody
      // reads any more.
      ::kill(pid, SIGKILL);
      break;
    }
    if (p.in[1] >= 0 && fds[0].revents) {
      ssize_t n = ::write(p.in[1], input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno == EPIPE) sigpipe.caused();
      // The command stopped reading (it exited, or failed early): what it said tells why.
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size())
        Pipes::close_end(&p.in[1]);
    }
    for (int i : {1, 2}) {
      int* fd = i == 1 ? &p.out[0] : &p.err[0];
      if (*fd < 0 || !fds[i].revents) continue;
      ssize_t n = ::read(*fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 1 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        Pipes::close_end(fd);
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return make_error(ErrorCode::Io, std::string("waitpid: ") + strerror(errno));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return result;
}

std::string find_executable(std::string_view name) {
  if (name.empty()) return "";
  if (name.find('/') != std::string_view::npos) return std::string(name);
  const char* path = getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    std::string candidate = (dir.empty() ? "." : dir) + "/" + std::string(name);
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    if (colon == std::string_view::npos) return "";
    dirs.remove_prefix(colon + 1);
  }
}

}  // namespace h2mesh
