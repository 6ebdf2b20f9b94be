// TCP relay throughput and CPU: one stream of --mib MiB from a sender thread to a receiver
// thread over loopback, either direct or through a relay that runs on a thread of its own:
//
//   direct   sender ──TCP──> receiver
//   h2mesh   sender ──TCP──> proxy::TcpRelay on a net::EventLoop (what a worker runs) ──TCP──> receiver
//   splice   the same through a minimal splice(2) relay (a pipe per direction, 64 KiB each, the
//            same bound and epoll states as TcpRelay): the alternative TcpRelay's comment
//            weighs, kept here so that the choice can be checked again on another machine
//
// Targets alternate within every round; the table gives medians (min–max) of: MiB/s (bytes /
// time from the first byte sent to the receiver's end of stream), the relay thread's CPU
// seconds per GiB (CLOCK_THREAD_CPUTIME_ID), and the whole process's CPU seconds per GiB
// (getrusage: sender, receiver and relay together). A benchmark, not a test: it checks only
// that every byte arrived.

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "net/event_loop.h"
#include "net/socket.h"
#include "proxy/tcp_relay.h"

namespace h2mesh {
namespace {

constexpr size_t kChunk = 256 * 1024;  // the sender's and the receiver's read/write size

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

double wall_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "relay_bench: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

int blocking_connect(uint16_t port) {
  auto sa = net::to_sockaddr({"127.0.0.1", port});
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, sa->get(), sa->len) != 0) die("connect");
  return fd;
}

int listen_loopback(uint16_t* port) {
  auto fd = net::listen_tcp({"127.0.0.1", 0}, false);
  if (!fd) die("listen");
  // The benchmark's accepts block: clear the O_NONBLOCK listen_tcp sets.
  fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK);
  *port = net::local_port(*fd);
  return *fd;
}

// ---- the splice(2) relay, for comparison ----------------------------------------------------

// One direction through a pipe: splice from the socket into the pipe (at most kPipeBytes in
// it), from the pipe into the other socket. While the pipe holds bytes the source is not read.
struct SpliceFlow {
  int from = -1, to = -1;
  int pipe_r = -1, pipe_w = -1;
  size_t in_pipe = 0;
  bool eof = false, shut = false;
};
constexpr size_t kPipeBytes = proxy::TcpRelay::kBufferBytes;

bool splice_pump(SpliceFlow& f) {  // false on an error
  while (f.in_pipe > 0) {
    ssize_t n = splice(f.pipe_r, nullptr, f.to, nullptr, f.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) return errno == EAGAIN;
    f.in_pipe -= static_cast<size_t>(n);
  }
  if (!f.eof) {
    ssize_t n = splice(f.from, nullptr, f.pipe_w, nullptr, kPipeBytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno != EAGAIN) return false;
    if (n == 0) f.eof = true;
    if (n > 0) {
      f.in_pipe = static_cast<size_t>(n);
      while (f.in_pipe > 0) {
        ssize_t w = splice(f.pipe_r, nullptr, f.to, nullptr, f.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (w < 0) {
          if (errno != EAGAIN) return false;
          break;
        }
        f.in_pipe -= static_cast<size_t>(w);
      }
    }
  }
  if (f.eof && f.in_pipe == 0 && !f.shut) {
    shutdown(f.to, SHUT_WR);
    f.shut = true;
  }
  return true;
}

void splice_relay(int client, uint16_t destination_port) {
  int upstream = blocking_connect(destination_port);
  for (int fd : {client, upstream}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  SpliceFlow flows[2];
  flows[0].from = client;
  flows[0].to = upstream;
  flows[1].from = upstream;
  flows[1].to = client;
  for (auto& f : flows) {
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) die("pipe2");
    f.pipe_r = p[0];
    f.pipe_w = p[1];
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  uint32_t interest[2] = {0, 0};
  auto update = [&](int i) {  // side i: read for flows[i], write for flows[1 - i]
    uint32_t want = 0;
    if (!flows[i].eof && flows[i].in_pipe == 0) want |= EPOLLIN;
    if (flows[1 - i].in_pipe > 0) want |= EPOLLOUT;
    epoll_event ev{};
    ev.events = want;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, interest[i] == 0xffffffff ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, flows[i].from, &ev);
    interest[i] = want;
  };
  interest[0] = interest[1] = 0xffffffff;
  update(0);
  update(1);
  while (!(flows[0].shut && flows[1].shut)) {
    epoll_event events[2];
    int n = epoll_wait(ep, events, 2, -1);
    for (int e = 0; e < n; ++e) {
      const int i = static_cast<int>(events[e].data.u32);
      if ((events[e].events & EPOLLERR) || !splice_pump(flows[i]) || !splice_pump(flows[1 - i])) {
        std::fprintf(stderr, "relay_bench: splice relay: connection error\n");
        std::exit(1);
      }
    }
    update(0);
    update(1);
  }
  for (auto& f : flows) {
    close(f.pipe_r);
    close(f.pipe_w);
  }
  close(ep);
  close(upstream);
  close(client);
}

// ---- one run ----------------------------------------------------------------------------------

enum class Target { Direct, H2mesh, Splice };
const char* target_name(Target t) {
  return t == Target::Direct ? "direct" : t == Target::H2mesh ? "h2mesh TcpRelay" : "splice relay";
}

struct Sample {
  double mib_per_s;
  double relay_cpu_per_gib;
  double process_cpu_per_gib;
};

Sample run_once(Target target, uint64_t bytes) {
  uint16_t receiver_port = 0;
  int receiver_listener = listen_loopback(&receiver_port);
  uint64_t received = 0;
  double end_wall = 0;
  std::thread receiver([&] {
    int fd = accept4(receiver_listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) die("accept (receiver)");
    std::vector<char> buf(kChunk);
    for (;;) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n < 0) die("read (receiver)");
      if (n == 0) break;
      received += static_cast<uint64_t>(n);
    }
    end_wall = wall_seconds();
    close(fd);
  });

  double relay_cpu = 0;
  std::thread relay;
  uint16_t connect_port = receiver_port;
  int front_listener = -1;
  if (target != Target::Direct) {
    front_listener = listen_loopback(&connect_port);
    relay = std::thread([&, target] {
      int client = accept4(front_listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) die("accept (relay)");
      const double start = thread_cpu_seconds();
      if (target == Target::Splice) {
        splice_relay(client, receiver_port);
      } else {
        net::EventLoop loop;
        proxy::RelayStats stats;
        proxy::TcpRelay r(loop, client, {"127.0.0.1", receiver_port}, proxy::RelayOptions{}, stats,
                          [&] { loop.stop(); });
        loop.run();
        if (stats.resets || stats.connect_failures) {
          std::fprintf(stderr, "relay_bench: TcpRelay ended with an error\n");
          std::exit(1);
        }
      }
      relay_cpu = thread_cpu_seconds() - start;
    });
  }

  std::vector<char> chunk(kChunk, 'x');
  const double cpu0 = process_cpu_seconds();
  const double wall0 = wall_seconds();
  int fd = blocking_connect(connect_port);
  for (uint64_t sent = 0; sent < bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, bytes - sent));
    ssize_t w = send(fd, chunk.data(), n, MSG_NOSIGNAL);
    if (w < 0) die("send");
    sent += static_cast<uint64_t>(w);
  }
  shutdown(fd, SHUT_WR);
  char c;
  while (read(fd, &c, 1) > 0) {
  }
  receiver.join();
  if (relay.joinable()) relay.join();
  const double cpu = process_cpu_seconds() - cpu0;
  close(fd);
  close(receiver_listener);
  if (front_listener >= 0) close(front_listener);
  if (received != bytes) {
    std::fprintf(stderr, "relay_bench: %s: received %llu of %llu bytes\n", target_name(target),
                 static_cast<unsigned long long>(received), static_cast<unsigned long long>(bytes));
    std::exit(1);
  }
  const double gib = static_cast<double>(bytes) / (1024.0 * 1024 * 1024);
  return {static_cast<double>(bytes) / (1024.0 * 1024) / (end_wall - wall0), relay_cpu / gib,
          cpu / gib};
}

std::string cell(std::vector<double> v, const char* fmt) {
  std::sort(v.begin(), v.end());
  char buf[128];
  const double median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  char m[32], lo[32], hi[32];
  std::snprintf(m, sizeof m, fmt, median);
  std::snprintf(lo, sizeof lo, fmt, v.front());
  std::snprintf(hi, sizeof hi, fmt, v.back());
  if (v.size() == 1) return m;
  std::snprintf(buf, sizeof buf, "%s (%s–%s)", m, lo, hi);
  return buf;
}

int main_impl(int argc, char** argv) {
  uint64_t mib = 2048;
  int rounds = 5;
  std::vector<Target> targets = {Target::Direct, Target::H2mesh, Target::Splice};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--mib" && i + 1 < argc) {
      mib = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--no-splice") {
      targets.pop_back();
    } else {
      std::fprintf(stderr, "usage: relay_bench [--mib N (2048)] [--rounds N (5)] [--no-splice]\n");
      return 2;
    }
  }
  if (mib == 0 || rounds <= 0) {
    std::fprintf(stderr, "relay_bench: --mib and --rounds must be positive\n");
    return 2;
  }
  std::vector<std::vector<Sample>> samples(targets.size());
  for (int r = 0; r < rounds; ++r) {
    for (size_t t = 0; t < targets.size(); ++t) {
      Sample s = run_once(targets[t], mib * 1024 * 1024);
      samples[t].push_back(s);
      std::fprintf(stderr, "round %d %-16s %8.0f MiB/s  relay %.3f  process %.3f CPU s/GiB\n",
                   r + 1, target_name(targets[t]), s.mib_per_s, s.relay_cpu_per_gib,
                   s.process_cpu_per_gib);
    }
  }
  std::printf("%llu MiB per run, %d rounds, medians (min–max)\n\n",
              static_cast<unsigned long long>(mib), rounds);
  std::printf("| | MiB/s | relay thread CPU s/GiB | process CPU s/GiB |\n|---|---:|---:|---:|\n");
  for (size_t t = 0; t < targets.size(); ++t) {
    std::vector<double> rate, relay, process;
    for (const Sample& s : samples[t]) {
      rate.push_back(s.mib_per_s);
      relay.push_back(s.relay_cpu_per_gib);
      process.push_back(s.process_cpu_per_gib);
    }
    std::printf("| %s | %s | %s | %s |\n", target_name(targets[t]), cell(rate, "%.0f").c_str(),
                targets[t] == Target::Direct ? "–" : cell(relay, "%.3f").c_str(),
                cell(process, "%.3f").c_str());
  }
  return 0;
}

}  // namespace
}  // namespace h2mesh

int main(int argc, char** argv) { return h2mesh::main_impl(argc, argv); }
