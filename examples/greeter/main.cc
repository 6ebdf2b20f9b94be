// greeter: the demo backend (`serve`) and its client (`call`). See README.md.
#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "greeter/call_command.h"
#include "greeter/greeter_server.h"

namespace {

using h2mesh::greeter::CallOptions;
using h2mesh::greeter::ServerOptions;

constexpr std::chrono::milliseconds kShutdownGrace{5000};

constexpr const char* kUsage =
    "usage:\n"
    "  greeter serve --port P [--address A] [--id NAME] [--max-concurrent-streams N]"
    " [--fail-code C]\n"
    "                [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]\n"
    "  greeter call --target HOST:PORT -n N [--name NAME] [--deadline-ms D]"
    " [--metadata KEY=VALUE]...\n"
    "      [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]\n"
    "  greeter stats --target HOST:PORT\n";

int usage_error(const std::string& message) {
  std::cerr << "greeter: " << message << "\n" << kUsage;
  return 2;
}

std::optional<int> parse_int(std::string_view text, int min, int max) {
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

// gRPC rejects other keys at send time; say so up front.
bool valid_metadata_key(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Walks "--flag value" and "--flag=value" pairs. Every flag takes a value.
class FlagReader {
 public:
  FlagReader(int argc, char** argv, int first) : args_(argv + first, argv + argc) {}

  // Fills flag and value with the next pair; false at the end or on error (see error()).
  bool next(std::string* flag, std::string* value) {
    if (pos_ >= args_.size()) return false;
    std::string arg = args_[pos_++];
    if (arg.size() < 2 || arg[0] != '-') {
      error_ = "unexpected argument '" + arg + "'";
      return false;
    }
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      *flag = arg.substr(0, eq);
      *value = arg.substr(eq + 1);
      return true;
    }
    if (pos_ >= args_.size()) {
      error_ = "missing value for " + arg;
      return false;
    }
    *flag = arg;
    *value = args_[pos_++];
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  std::vector<std::string> args_;
  size_t pos_ = 0;
  std::string error_;
};

int run_serve(int argc, char** argv) {
  ServerOptions options;
  bool have_port = false;
  FlagReader flags(argc, argv, 2);
  std::string flag;
  std::string value;
  while (flags.next(&flag, &value)) {
    if (flag == "--port") {
      std::optional<int> port = parse_int(value, 0, 65535);
      if (!port) return usage_error("bad --port " + value);
      options.port = *port;
      have_port = true;
    } else if (flag == "--address") {
      options.address = value;
    } else if (flag == "--id") {
      options.id = value;
    } else if (flag == "--fail-code") {
      std::optional<int> code = parse_int(value, 0, 16);
      if (!code) return usage_error("--fail-code needs a grpc status code 0..16");
      options.fail_code = *code;
    } else if (flag == "--max-concurrent-streams") {
      std::optional<int> n = parse_int(value, 1, 1 << 30);
      if (!n) return usage_error("--max-concurrent-streams needs a positive number");
      options.max_concurrent_streams = *n;
    } else if (flag == "--tls-cert") {
      options.tls_cert_file = value;
    } else if (flag == "--tls-key") {
      options.tls_key_file = value;
    } else if (flag == "--tls-client-ca") {
      options.tls_client_ca_file = value;
    } else {
      return usage_error("unknown flag " + flag);
    }
  }
  if (!flags.error().empty()) return usage_error(flags.error());
  if (!have_port) return usage_error("serve needs --port (0 picks a free one)");
  if (options.tls_cert_file.empty() != options.tls_key_file.empty())
    return usage_error("--tls-cert and --tls-key go together");
  if (!options.tls_client_ca_file.empty() && options.tls_cert_file.empty())
    return usage_error("--tls-client-ca needs --tls-cert and --tls-key");

  // Block the stop signals before gRPC starts its threads, so they inherit the mask and only
  // sigwait() below ever sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::string error;
  auto server = h2mesh::greeter::GreeterServer::start(options, &error);
  if (!server) {
    std::cerr << "greeter: " << error << "\n";
    return 1;
  }
  std::cout << "greeter " << server->id() << " listening on " << server->listen_address()
            << std::endl;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->shutdown(kShutdownGrace);
  return 0;
}

// The whole of a small file (a PEM certificate or key), or nullopt when it cannot be read.
std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) return std::nullopt;
  return text.str();
}

int run_call(int argc, char** argv) {
  CallOptions options;
  std::string tls_ca, tls_cert, tls_key;
  bool have_count = false;
  FlagReader flags(argc, argv, 2);
  std::string flag;
  std::string value;
  while (flags.next(&flag, &value)) {
    if (flag == "--target") {
      options.target = value;
    } else if (flag == "-n") {
      std::optional<int> count = parse_int(value, 0, 100000000);
      if (!count) return usage_error("bad -n " + value);
      options.count = *count;
      have_count = true;
    } else if (flag == "--name") {
      options.name = value;
    } else if (flag == "--deadline-ms") {
      std::optional<int> deadline = parse_int(value, 1, 24 * 3600 * 1000);
      if (!deadline) return usage_error("bad --deadline-ms " + value);
      options.deadline_ms = *deadline;
    } else if (flag == "--metadata") {
      const size_t eq = value.find('=');
      if (eq == std::string::npos || !valid_metadata_key(value.substr(0, eq))) {
        return usage_error("--metadata needs KEY=VALUE with a lowercase key");
      }
      options.metadata.emplace_back(value.substr(0, eq), value.substr(eq + 1));
    } else if (flag == "--tls-ca") {
      tls_ca = value;
    } else if (flag == "--tls-cert") {
      tls_cert = value;
    } else if (flag == "--tls-key") {
      tls_key = value;
    } else if (flag == "--tls-server-name") {
      options.tls_server_name = value;
    } else {
      return usage_error("unknown flag " + flag);
    }
  }
  if (!flags.error().empty()) return usage_error(flags.error());
  if (options.target.empty()) return usage_error("call needs --target HOST:PORT");
  if (!have_count) return usage_error("call needs -n N");
  if (tls_cert.empty() != tls_key.empty()) return usage_error("--tls-cert and --tls-key go together");
  if ((!tls_cert.empty() || !options.tls_server_name.empty()) && tls_ca.empty())
    return usage_error("--tls-cert and --tls-server-name need --tls-ca");
  if (!tls_ca.empty()) {
    options.tls = true;
    for (auto [path, pem] : {std::pair{&tls_ca, &options.tls_ca_pem},
                             std::pair{&tls_cert, &options.tls_cert_pem},
                             std::pair{&tls_key, &options.tls_key_pem}}) {
      if (path->empty()) continue;
      auto text = read_small_file(*path);
      if (!text) return usage_error("cannot read " + *path);
      *pem = std::move(*text);
    }
  }
  return h2mesh::greeter::run_call_command(options, std::cout);
}

int run_stats(int argc, char** argv) {
  std::string target;
  FlagReader flags(argc, argv, 2);
  std::string flag;
  std::string value;
  while (flags.next(&flag, &value)) {
    if (flag != "--target") return usage_error("unknown flag " + flag);
    target = value;
  }
  if (!flags.error().empty()) return usage_error(flags.error());
  if (target.empty()) return usage_error("stats needs --target HOST:PORT");
  return h2mesh::greeter::run_stats_command(target, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "serve") return run_serve(argc, argv);
  if (command == "call") return run_call(argc, argv);
  if (command == "stats") return run_stats(argc, argv);
  if (command == "-h" || command == "--help") {
    std::cout << kUsage;
    return 0;
  }
  return usage_error(command.empty() ? "missing command" : "unknown command " + command);
}
