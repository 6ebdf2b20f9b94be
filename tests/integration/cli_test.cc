// The h2mesh command line, run as a user runs it: help and version on stdout with exit code 0,
// and every mistake (unknown command or flag, missing value) an error naming it, exit code 2.

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"

namespace h2mesh_test {
namespace {

using namespace std::chrono_literals;

struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

class CliTest : public ::testing::Test {
 protected:
  CliRun h2mesh(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {bin_dir() + "/h2mesh"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = Subprocess::spawn(argv, dir_, "h2mesh-" + std::to_string(runs_++));
    EXPECT_TRUE(p.ok());
    CliRun r;
    if (!p.ok()) return r;
    std::optional<int> code = (*p)->wait(20s);
    EXPECT_TRUE(code.has_value()) << "h2mesh did not exit";
    r.code = code.value_or(-1);
    r.out = (*p)->read_all(Subprocess::Stream::Stdout);
    r.err = (*p)->read_all(Subprocess::Stream::Stderr);
    return r;
  }
  std::string write_config() {
    const std::string path = dir_ + "/good.yaml";
    std::ofstream(path) << simple_config({"127.0.0.1:50051"}, "round_robin");
    return path;
  }

  std::string dir_ = make_temp_dir();
  int runs_ = 0;
};

TEST_F(CliTest, CheckWithAValidConfigSucceeds) {
  CliRun r = h2mesh({"check", "--config", write_config()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("OK"), std::string::npos) << r.out;
  r = h2mesh({"check", "--config=" + write_config()});
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(CliTest, UnknownFlagIsAnErrorWithDidYouMean) {
  CliRun r = h2mesh({"check", "--config", write_config(), "--bogus"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown flag '--bogus'"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;

  r = h2mesh({"check", "--confg", write_config()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown flag '--confg'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean --config?"), std::string::npos) << r.err;

  r = h2mesh({"run", "--config", write_config(), "--log-levl", "debug"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("did you mean --log-level?"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("listening"), std::string::npos) << "run started anyway:\n" << r.err;
}

TEST_F(CliTest, MissingFlagValueAndStrayArgumentsAreErrors) {
  CliRun r = h2mesh({"check", "--config"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--config needs a value"), std::string::npos) << r.err;

  r = h2mesh({"run", "--config", "--log-level", "info"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--config needs a value"), std::string::npos) << r.err;

  r = h2mesh({"check", "--config", write_config(), "extra"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unexpected argument 'extra'"), std::string::npos) << r.err;

  r = h2mesh({"check", "--config", write_config(), "--config", write_config()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("given twice"), std::string::npos) << r.err;

  r = h2mesh({"check"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--config FILE is required"), std::string::npos) << r.err;

  {
    const std::string mesh = dir_ + "/mesh.yaml";
    std::ofstream(mesh) << "mesh:\n  services:\n    greeter.grpcdemo: { lb_policy: random }\n";
    r = h2mesh({"check", "--config", mesh});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("mesh mode on outbound port 15001, 1 Service override(s)"),
              std::string::npos)
        << r.out;
  }

  r = h2mesh({"run", "--kubeconfig", "/k"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--kubeconfig is a mesh setting: add --mesh"), std::string::npos) << r.err;

  r = h2mesh({"run", "--mesh=yes"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--mesh takes no value"), std::string::npos) << r.err;

  r = h2mesh({"run", "--mesh", "--outbound-port", "0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--outbound-port: '0' is not a port"), std::string::npos) << r.err;

  r = h2mesh({"run", "--mesh", "--outbound-port", "9901"});
  EXPECT_EQ(r.code, 1) << "the outbound port is the default admin port";
  EXPECT_NE(r.err.find("also the admin port"), std::string::npos) << r.err;

  r = h2mesh({"run", "--config", dir_ + "/missing.yaml", "--log-level", "warning"});
  EXPECT_EQ(r.code, 2) << "a bad flag is reported before the config is read";
  EXPECT_NE(r.err.find("unknown log level 'warning' (did you mean warn?)"), std::string::npos)
      << r.err;

  r = h2mesh({"demo", "--calls", "7"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("multiple of 4"), std::string::npos) << r.err;
}

TEST_F(CliTest, UnknownCommandIsAnErrorWithDidYouMean) {
  CliRun r = h2mesh({"chekc", "--config", write_config()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'chekc'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean check?"), std::string::npos) << r.err;
  r = h2mesh({});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("usage:"), std::string::npos) << r.err;
}

TEST_F(CliTest, HelpGoesToStdoutWithExitCodeZero) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, {"-h"}, {"help"}}) {
    CliRun r = h2mesh(args);
    EXPECT_EQ(r.code, 0) << args[0];
    EXPECT_TRUE(r.err.empty()) << r.err;
    EXPECT_TRUE(r.out.starts_with("usage: h2mesh COMMAND")) << r.out;
    for (const char* cmd : {"run", "check", "demo", "version"})
      EXPECT_NE(r.out.find(std::string("h2mesh ") + cmd), std::string::npos) << cmd << "\n" << r.out;
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"check", "--help"}, {"check", "-h"}, {"help", "check"},
        {"check", "--config", "x.yaml", "--help"}}) {
    CliRun r = h2mesh(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(r.out.starts_with("usage: h2mesh check --config FILE")) << r.out;
  }
}

TEST_F(CliTest, VersionPrintsTheVersion) {
  for (const char* arg : {"version", "--version"}) {
    CliRun r = h2mesh({arg});
    EXPECT_EQ(r.code, 0) << arg << ": " << r.err;
    EXPECT_TRUE(r.out.starts_with("h2mesh ")) << r.out;
    EXPECT_TRUE(r.out.size() > 8 && r.out.back() == '\n') << r.out;
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
  CliRun r = h2mesh({"version", "--verbose"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown flag '--verbose'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace h2mesh_test
