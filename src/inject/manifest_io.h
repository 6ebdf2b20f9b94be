#pragma once

// Kubernetes manifests as text: a multi-document YAML stream split into documents (each keeping
// its original text, so what is not changed is written back byte for byte), each document read
// into JSON with the meaning Kubernetes gives it, and JSON written back as block-style YAML.
// No I/O: the callers read and write the files.

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "inject/injector.h"

namespace h2mesh::inject {

struct ManifestDocument {
  std::string separator;  // the "---" line before it, with its line break; empty for a first
                          // document without one
  std::string body;       // everything after that up to the next separator line
  int first_line = 1;     // 1-based line of the separator (or of the body when there is none)
};

// Splits at lines that start with "---" followed by nothing, a space or a tab. Concatenating
// separator + body of every document gives back `text`.
std::vector<ManifestDocument> split_documents(std::string_view text);

// One document (separator + body) as JSON, with Kubernetes' YAML meaning (go-yaml v2, YAML 1.1):
// plain scalars are null (~, null, empty), booleans (true/false, yes/no, on/off, y/n in their
// three spellings), integers (decimal, 0x, 0o, 0b, a leading 0 for octal, '_' ignored), floats
// (.inf, .nan too) or strings; quoted and block scalars are strings; anchors and aliases are
// resolved and '<<' merge keys applied. An empty document is null. Errors: "line L, column C:
// message", counted from the start of the stream.
Result<Json> read_document(const ManifestDocument& document);

// `value` as block-style YAML: 2-space indents, maps' keys in their order, sequences of maps as
// "- key: v", strings quoted only when plain would read as something else, multi-line strings as
// literal block scalars. Ends with a line break. read_document gives `value` back.
std::string emit_yaml(const Json& value);

// The lines of `body` before its first line of content: comments and blank lines.
std::string leading_comments(std::string_view body);

// What inject_manifest and uninject_manifest did with one document.
struct DocumentReport {
  int index = 0;          // 0-based, in the stream
  std::string what;       // "Deployment/web" (kind/name), for messages
  Outcome outcome = Outcome::Skipped;  // inject: what inject_pod said
  std::string reason;                  // why Skipped or AlreadyInjected
  bool changed = false;                // injected, or (uninject) a sidecar removed
};

enum class OutputFormat { Yaml, Json };

// Injects every pod template of every document of `text`. Documents left unchanged come out as
// their original text; an injected one as the comments before its first key followed by
// emit_yaml. With Json, one JSON value per line per non-empty document. An error names the
// document ("document 2 (Deployment/web): ...") and nothing is written.
Result<std::string> inject_manifest(std::string_view text, const Options& options,
                                    OutputFormat format, std::vector<DocumentReport>* reports);

// Removes what inject_manifest added; documents without it come out as their original text.
Result<std::string> uninject_manifest(std::string_view text, OutputFormat format,
                                      std::vector<DocumentReport>* reports);

}  // namespace h2mesh::inject
