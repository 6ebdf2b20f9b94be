// mesh_call_loop: the client of the mesh tests' scaling and API-trouble scenarios. It runs inside
// a pod (a network namespace), where a gRPC channel of the test process itself could not be put,
// and makes unary SayHello calls in sequence over ONE channel until SIGTERM or SIGINT (or
// --max-calls), writing one line per call as soon as it ends, so that the test can tell which pod
// answered when:
//
//   <start_ns> <end_ns> ok <backend id>
//   <start_ns> <end_ns> error <CODE_NAME> <message>
//
// then "done ok=<n> failed=<m>" on the way out (exit code 0 when no call failed). Times are
// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the machine whatever its network
// namespace, the clock of the test's std::chrono::steady_clock.
//
//   mesh_call_loop --target HOST:PORT [--deadline-ms D] [--pause-ms P] [--max-calls N]

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <time.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>

#include "greeter/call_command.h"
#include "helloworld.grpc.pb.h"

namespace {

volatile sig_atomic_t g_stop = 0;

void on_stop(int) { g_stop = 1; }

long long monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

bool parse_count(std::string_view text, long long* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && *out >= 0;
}

int usage(const char* why) {
  fprintf(stderr,
          "mesh_call_loop: %s\nusage: mesh_call_loop --target HOST:PORT [--deadline-ms D] "
          "[--pause-ms P] [--max-calls N]\n",
          why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target;
  long long deadline_ms = 10000;
  long long pause_ms = 0;
  long long max_calls = 1000000;  // a bound, should the test never stop it
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const std::string_view value = argv[i + 1];
    bool ok = true;
    if (flag == "--target") {
      target = value;
    } else if (flag == "--deadline-ms") {
      ok = parse_count(value, &deadline_ms) && deadline_ms > 0;
    } else if (flag == "--pause-ms") {
      ok = parse_count(value, &pause_ms);
    } else if (flag == "--max-calls") {
      ok = parse_count(value, &max_calls);
    } else {
      return usage(("unknown flag " + std::string(flag)).c_str());
    }
    if (!ok) return usage(("bad value for " + std::string(flag)).c_str());
  }
  if (argc % 2 == 0) return usage("every flag takes a value");
  if (target.empty()) return usage("--target is required");

  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  // One channel, pick_first: every call rides the same HTTP/2 connection, as `greeter call`.
  auto stub =
      helloworld::Greeter::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  long long ok = 0, failed = 0;
  for (long long i = 0; i < max_calls && !g_stop; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    helloworld::HelloRequest request;
    request.set_name("loop");
    helloworld::HelloReply reply;
    const long long start = monotonic_ns();
    const grpc::Status status = stub->SayHello(&context, request, &reply);
    const long long end = monotonic_ns();
    auto backend = h2mesh::greeter::parse_backend_id(reply.message());
    if (status.ok() && backend) {
      ++ok;
      printf("%lld %lld ok %s\n", start, end, backend->c_str());
    } else {
      ++failed;
      printf("%lld %lld error %s %s\n", start, end,
             h2mesh::greeter::status_code_name(status.error_code()).c_str(),
             status.ok() ? ("unexpected reply: " + reply.message()).c_str()
                         : status.error_message().c_str());
    }
    fflush(stdout);  // the test reads the lines as they come
    if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
  }
  printf("done ok=%lld failed=%lld\n", ok, failed);
  fflush(stdout);
  return failed == 0 ? 0 : 1;
}
