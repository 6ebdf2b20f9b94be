#pragma once

// Text that Debian 12's yaml-cpp 0.7 must not be handed to YAML::LoadAll, found and refused
// with its position first. Two rules:
//
// 1. A control character (YAML 1.2 section 5.1 allows none but tab, CR and LF). yaml-cpp takes
//    most of them as text, so a stray byte would silently become part of a value.
//
// 2. A document on which yaml-cpp's parser makes no progress. LoadAll calls
//    Parser::HandleNextDocument until no token is left; each call reads one node, and a token
//    that cannot begin a node is left where it is while the call returns an empty document. The
//    next call starts at the same token, and so on for ever, each round appending one more empty
//    document (a 619-byte config reached 22 GB). yaml-cpp meets such a token after a document's
//    top-level value has ended but the text has not: a ',' outside [ ] and { } (",a", "'a'\n,",
//    "- a\n,", "&x ,", and "  a: 1\n,", where the indented map ends at the unindented line), or a
//    '?' its scanner took for a key with no map to hold it ("&x a\n? b", "[]a\n? b").
//    The check runs yaml-cpp's own parser over the text one document at a time, building no
//    nodes, and reports the first document that starts where the one before it did: exactly the
//    text on which LoadAll would not return, whatever the token. YAML::Load reads only the first
//    document and cannot loop, but it stops at such a token without an error (",apiVersion: v1"
//    reads as an empty kubeconfig), so the kubeconfig reader refuses the same text.
//
// No config is refused that was valid: the token comes after the top-level value, where a config
// (one map) has nothing. Of the 94,080 texts of 1 to 5 pieces (",", "a", "- ", ": ", "? ",
// brackets, quotes, anchors, "|", markers, blanks, line breaks) that stall yaml-cpp, PyYAML
// rejects all but 676, and those it reads as a scalar that yaml-cpp misreads, never as a map.

#include <optional>
#include <string>
#include <string_view>

namespace h2mesh::config {

struct YamlTextProblem {
  int line = 0;    // 1-based
  int column = 0;  // 1-based, in bytes as yaml-cpp counts them
  std::string message;
  std::string hint;  // what to change
};

// The first place in `text` that yaml-cpp 0.7 would not return from (rule 2) or that is not
// YAML text (rule 1), or nullopt. Any thread; bounded by the size of the text: each document
// the check reads either consumes a token or is the one reported. A syntax error ends the check
// without a problem: yaml-cpp reports it again, at the same place, when the text is loaded.
std::optional<YamlTextProblem> find_yaml_parser_trap(std::string_view text);

}  // namespace h2mesh::config
