#include "common/subprocess.h"

#include <gtest/gtest.h>

#include <csignal>
#include <string>

namespace h2mesh {
namespace {

TEST(RunCommand, FeedsStdinAndCollectsBothOutputs) {
  Result<CommandOutput> r =
      run_command({"/bin/sh", "-c", "cat; echo oops >&2; exit 3"}, "line one\nline two\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "line one\nline two\n");
  EXPECT_EQ(r->err, "oops\n");
}

TEST(RunCommand, InputLargerThanAPipeIsNotDeadlockedByOutput) {
  // cat writes back while it is still being fed: both pipes fill unless they are served together.
  std::string input;
  for (int i = 0; input.size() < (4u << 20); ++i) input += "row " + std::to_string(i) + "\n";
  Result<CommandOutput> r = run_command({"/bin/cat"}, input);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out.size(), input.size());
  EXPECT_TRUE(r->out == input);
}

TEST(RunCommand, CommandThatIgnoresItsInputDoesNotKillTheCaller) {
  // /bin/true exits without reading: the write fails with EPIPE, and the SIGPIPE it raises
  // must neither kill this process nor stay pending.
  Result<CommandOutput> r = run_command({"/bin/true"}, std::string(1 << 20, 'x'));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->exit_code, 0);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
}

TEST(RunCommand, MissingBinaryExitsWith127AndSaysSo) {
  Result<CommandOutput> r = run_command({"/nonexistent/tool", "--flag"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_NE(r->err.find("exec /nonexistent/tool"), std::string::npos) << r->err;
}

TEST(RunCommand, KilledCommandReportsTheSignal) {
  Result<CommandOutput> r = run_command({"/bin/sh", "-c", "kill -TERM $$"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, -SIGTERM);
}

TEST(FindExecutable, SearchesPath) {
  EXPECT_FALSE(find_executable("sh").empty());
  EXPECT_EQ(find_executable("h2mesh-no-such-tool"), "");
  EXPECT_EQ(find_executable("/bin/sh"), "/bin/sh");  // a path is taken as it is
}

}  // namespace
}  // namespace h2mesh
