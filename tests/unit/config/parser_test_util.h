#pragma once

// Helpers shared by the config parser tests.

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "config/parser.h"

namespace h2mesh::config {

// Test documents are raw strings that start with a newline so that line 1 is the first line
// written after R"(; the line numbers the tests assert are the visible ones.
inline ParseResult parse(std::string_view text) {
  if (text.starts_with('\n')) text.remove_prefix(1);
  return parse_config(text, "test.yaml");
}

inline std::string dump(const ParseResult& result) {
  std::string out;
  for (const auto& e : result.errors) out += "\n  " + e.to_string();
  return out.empty() ? " (no errors)" : out;
}

// Exactly one error, in test.yaml at `line` (any column > 0), whose message and hint contain the
// given parts, and no config.
inline ::testing::AssertionResult has_one_error(const ParseResult& result, int line,
                                                std::string_view message_part,
                                                std::string_view hint_part = {}) {
  if (result.errors.size() != 1) {
    return ::testing::AssertionFailure()
           << "expected one error, got " << result.errors.size() << ":" << dump(result);
  }
  const ConfigError& error = result.errors[0];
  const bool matches = error.file == "test.yaml" && error.line == line && error.column > 0 &&
                       error.message.find(message_part) != std::string::npos &&
                       error.hint.find(hint_part) != std::string::npos &&
                       !result.config.has_value() && !result.ok();
  if (matches) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "expected an error on line " << line << " with message containing '" << message_part
         << "' and hint containing '" << hint_part << "', got:" << dump(result);
}

// A valid listener and cluster, appended to documents that test other sections; they occupy
// the lines after the section under test.
inline constexpr std::string_view kListenerAndCluster = R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - cluster: greeter
clusters:
  - name: greeter
    endpoints: ["127.0.0.1:50052"]
)";

inline ParseResult parse_with_base(std::string_view head) {
  std::string text(head);
  if (text.starts_with('\n')) text.erase(0, 1);
  return parse_config(text + std::string(kListenerAndCluster), "test.yaml");
}

// A document whose last cluster, "greeter", continues with `cluster_body` (at line 7, so its
// first line is line 8); the listener routes to it.
inline ParseResult parse_cluster(std::string_view cluster_body) {
  std::string text = R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - cluster: greeter
clusters:
  - name: greeter
)";
  std::string body(cluster_body);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_config(text + body, "test.yaml");
}

// A document whose cluster "greeter" has `discovery:` on line 8, continued by `discovery_body`
// from line 9 (indented by 6 spaces).
inline ParseResult parse_discovery(std::string_view discovery_body) {
  std::string body(discovery_body);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_cluster("    discovery:\n" + body);
}

// A document whose only listener, "public", continues with `listener_body` from line 4 (after its
// name and address) and then routes every call to the cluster "greeter".
inline ParseResult parse_listener(std::string_view listener_body) {
  std::string body(listener_body);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_config(R"(listeners:
  - name: public
    address: "127.0.0.1:0"
)" + body + R"(    routes: [{ cluster: greeter }]
clusters:
  - name: greeter
    endpoints: ["127.0.0.1:50052"]
)",
                      "test.yaml");
}

// A document whose only route, "- cluster: greeter" on line 5, continues with `route_body` from
// line 6 (indented by 8 spaces).
inline ParseResult parse_route(std::string_view route_body) {
  std::string body(route_body);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_config(R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - cluster: greeter
)" + body + R"(clusters:
  - name: greeter
    endpoints: ["127.0.0.1:50052"]
)",
                      "test.yaml");
}

}  // namespace h2mesh::config
