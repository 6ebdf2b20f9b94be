#include "common/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace h2mesh {

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
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return make_error(ErrorCode::Io, std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    execv(args[0], args.data());
    dprintf(STDERR_FILENO, "exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
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

}  // namespace h2mesh
