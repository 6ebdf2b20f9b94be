// Manifests as text: documents split and kept byte for byte, YAML read with Kubernetes' meaning
// (YAML 1.1 scalars, anchors, merge keys), and the emitter's output read back as the same data.

#include "inject/manifest_io.h"

#include <gtest/gtest.h>

#include <cmath>

namespace h2mesh::inject {
namespace {

Json read(const std::string& text) {
  auto r = read_document(ManifestDocument{{}, text, 1});
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : Json();
}

std::string read_error(const std::string& text, int first_line = 1) {
  auto r = read_document(ManifestDocument{{}, text, first_line});
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? std::string() : r.error().message;
}

TEST(SplitDocuments, ConcatenationGivesBackTheText) {
  const std::string text = "# head\na: 1\n---\nb: 2\n--- # note\nc: 3\n----\n---x\n...\n---";
  auto docs = split_documents(text);
  ASSERT_EQ(docs.size(), 4u);
  std::string joined;
  for (const auto& d : docs) joined += d.separator + d.body;
  EXPECT_EQ(joined, text);
  EXPECT_EQ(docs[0].separator, "");
  EXPECT_EQ(docs[1].first_line, 3);
  EXPECT_EQ(docs[2].separator, "--- # note\n");
  EXPECT_EQ(docs[2].body, "c: 3\n----\n---x\n...\n");  // "----" and "---x" are not separators
  EXPECT_EQ(docs[3].separator, "---");
}

TEST(ReadDocument, PlainScalarsHaveYaml11Meanings) {
  Json v = read(
      "nulls: [~, null, Null, NULL, ]\n"
      "trues: [true, True, TRUE, yes, Yes, YES, on, On, ON, y, Y]\n"
      "falses: [false, False, FALSE, no, No, NO, off, Off, OFF, n, N]\n"
      "ints: [0, -7, +3, 0x1F, 0o17, 017, 0b101, 1_000, 18446744073709551615]\n"
      "floats: [1.5, -0.25, .5, 1e3, 2.5E-1, 1.]\n"
      "strings: ['yes', \"12\", 1.2.3, 0x, 12:30, 08a, 1e400, -, .]\n");
  for (const Json& n : v["nulls"]) EXPECT_TRUE(n.is_null()) << n;
  for (const Json& t : v["trues"]) EXPECT_EQ(t, true);
  for (const Json& f : v["falses"]) EXPECT_EQ(f, false);
  EXPECT_EQ(v["ints"], Json::parse("[0, -7, 3, 31, 15, 15, 5, 1000, 18446744073709551615]"));
  for (const Json& i : v["ints"]) EXPECT_TRUE(i.is_number_integer()) << i;
  EXPECT_EQ(v["floats"], Json::parse("[1.5, -0.25, 0.5, 1000.0, 0.25, 1.0]"));
  for (const Json& f : v["floats"]) EXPECT_TRUE(f.is_number_float()) << f;
  EXPECT_EQ(v["strings"], Json::parse(R"(["yes", "12", "1.2.3", "0x", "12:30", "08a", "1e400",
                                          "-", "."])"));
}

TEST(ReadDocument, InfinityAndNanAreFloats) {
  Json v = read("a: .inf\nb: -.Inf\nc: .NaN\nd: '.nan'\n");
  EXPECT_TRUE(std::isinf(v["a"].get<double>()) && v["a"].get<double>() > 0);
  EXPECT_TRUE(std::isinf(v["b"].get<double>()) && v["b"].get<double>() < 0);
  EXPECT_TRUE(std::isnan(v["c"].get<double>()));
  EXPECT_EQ(v["d"], ".nan");
  EXPECT_EQ(emit_yaml(v), "a: .inf\nb: -.inf\nc: .nan\nd: \".nan\"\n");
}

TEST(ReadDocument, AnchorsAliasesAndMergeKeysAreResolved) {
  Json v = read(
      "base: &base {image: app, env: [{name: A, value: '1'}]}\n"
      "extra: &extra {port: 80, image: other}\n"
      "one:\n  <<: *base\n  name: one\n"
      "two:\n  <<: [*extra, *base]\n  image: mine\n"
      "list: [*base, *base]\n");
  EXPECT_EQ(v["one"], Json::parse(R"({"image":"app","env":[{"name":"A","value":"1"}],
                                      "name":"one"})"));
  // Own keys win over merged ones; among merged maps, the first wins.
  EXPECT_EQ(v["two"], Json::parse(R"({"port":80,"env":[{"name":"A","value":"1"}],
                                      "image":"mine"})"));
  EXPECT_EQ(v["list"][0], v["base"]);
  EXPECT_EQ(v["list"][1], v["base"]);
  // A quoted "<<" is an ordinary key.
  EXPECT_EQ(read("'<<': {a: 1}\n"), Json::parse(R"({"<<": {"a": 1}})"));
}

TEST(ReadDocument, ErrorsGiveLineAndColumnInTheStream) {
  EXPECT_NE(read_error("a: 1\nb: [1, 2\n", 10).find("line 1"), std::string::npos);
  const std::string dup = read_error("a: 1\nb: 2\na: 3\n", 5);
  EXPECT_NE(dup.find("line 7, column 1"), std::string::npos) << dup;
  EXPECT_NE(dup.find("'a' is given twice"), std::string::npos) << dup;
  EXPECT_NE(read_error("a: {b: 1}\nc:\n  <<: 3\n").find("merge key"), std::string::npos);
  EXPECT_NE(read_error("[1]: x\n").find("key must be a scalar"), std::string::npos);
  // The yaml-cpp trap guard runs first (this text would make LoadAll loop for ever).
  EXPECT_NE(read_error("- a\n,\n").find("line 2"), std::string::npos);
}

TEST(ReadDocument, AliasBombIsRefused) {
  std::string text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'h'; ++c) {
    std::string prev(1, static_cast<char>(c - 1));
    text += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) text += (i ? ", *" : "*") + prev;
    text += "]\n";
  }
  EXPECT_NE(read_error(text).find("expands"), std::string::npos);
}

TEST(EmitYaml, BlockStyleWithSequencesOfMapsAsDashKey) {
  Json v = Json::parse(R"({"kind":"Pod","spec":{"containers":[{"name":"a","args":["x","z"]}],
      "volumes":[],"nodeSelector":{}},"m":[[1,2],[]]})");
  EXPECT_EQ(emit_yaml(v),
            "kind: Pod\n"
            "spec:\n"
            "  containers:\n"
            "    - name: a\n"
            "      args:\n"
            "        - x\n"
            "        - z\n"
            "  volumes: []\n"
            "  nodeSelector: {}\n"
            "m:\n"
            "  - - 1\n"
            "    - 2\n"
            "  - []\n");
}

TEST(EmitYaml, StringsAreQuotedOnlyWhenPlainWouldReadDifferently) {
  Json v = Json::parse(R"({"plain":"nginx:1.25","flag":"--port","path":"/ready",
      "num":"8080","bool":"on","null":"~","empty":"","colon":"a: b","hash":"a #b",
      "lead":" x","star":"*x","json":"{\"a\":1}","tab":"a\tb","dash":"-"})");
  EXPECT_EQ(emit_yaml(v),
            "plain: nginx:1.25\nflag: --port\npath: /ready\nnum: \"8080\"\nbool: \"on\"\n"
            "\"null\": \"~\"\nempty: \"\"\ncolon: \"a: b\"\nhash: \"a #b\"\nlead: \" x\"\n"
            "star: \"*x\"\njson: '{\"a\":1}'\ntab: \"a\\tb\"\ndash: \"-\"\n");
}

TEST(EmitYaml, MultiLineStringsAreLiteralBlocks) {
  Json v = Json::parse(R"({"a":"one\ntwo\n","b":["x\n\ny"],"c":"  indented\nsecond",
                           "d":"two trailing\n\n"})");
  EXPECT_EQ(emit_yaml(v),
            "a: |\n  one\n  two\n"
            "b:\n  - |-\n    x\n\n    y\n"
            "c: \"  indented\\nsecond\"\n"
            "d: \"two trailing\\n\\n\"\n");
}

TEST(EmitYaml, OutputReadsBackAsTheSameData) {
  const Json v = Json::parse(R"({"s":["yes","No","0x10","1e3","-1","+1",".5","null","~",
      "a'b","q\"","back\\slash","é ü","x\u0085y","#c","&a","!t","%d","@e","`f","|",">",
      "? q",": c","[a]","{b}","a,b","---","...","- x","key:","\r\n"],
      "n":[1,-2,1.5,-0.0,1e100,18446744073709551615,true,false,null],
      "nested":{"": "empty key","a b":{"c: d":[{"x":{"y":[[]]}}]}},"multi":"l1\n l2\n"})");
  auto back = read_document(ManifestDocument{{}, emit_yaml(v), 1});
  ASSERT_TRUE(back.ok()) << back.error().message << "\n" << emit_yaml(v);
  EXPECT_EQ(*back, v) << emit_yaml(v);
}

TEST(LeadingComments, LinesBeforeTheFirstKey) {
  EXPECT_EQ(leading_comments("# a\n\n  # b\nkind: Pod\n# c\n"), "# a\n\n  # b\n");
  EXPECT_EQ(leading_comments("kind: Pod\n"), "");
  EXPECT_EQ(leading_comments("# only"), "# only\n");
}

TEST(InjectManifest, NonWorkloadsAndSkippedDocumentsKeepTheirText) {
  const std::string text =
      "kind: Service   # odd spacing, kept\nmetadata: {name: s}\n"
      "---\n# a host-network pod\nkind: Pod\nmetadata: {name: h}\n"
      "spec: {hostNetwork: true, containers: [{name: c}]}\n"
      "---\n\n--- !!map\n{kind: ConfigMap}\n";
  std::vector<DocumentReport> reports;
  auto out = inject_manifest(text, Options{}, OutputFormat::Yaml, &reports);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, text);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].index, 1);
  EXPECT_EQ(reports[0].what, "Pod/h");
  EXPECT_EQ(reports[0].outcome, Outcome::Skipped);
}

TEST(InjectManifest, InjectedDocumentKeepsItsLeadingCommentsAndSeparator) {
  const std::string text =
      "kind: ConfigMap\n---  # the app\n# owner: team-a\nkind: Pod  # lost\n"
      "metadata: {name: p}\nspec: {containers: [{name: c}]}\n";
  auto out = inject_manifest(text, Options{}, OutputFormat::Yaml, nullptr);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_TRUE(out->starts_with("kind: ConfigMap\n---  # the app\n# owner: team-a\nkind: Pod\n"))
      << *out;
  EXPECT_EQ(out->find("# lost"), std::string::npos);
  // A separator carrying content is replaced by a plain one: the content is in the body now.
  auto tagged = inject_manifest("--- {kind: Pod, spec: {containers: [{name: c}]}}\n", Options{},
                                OutputFormat::Yaml, nullptr);
  ASSERT_TRUE(tagged.ok()) << tagged.error().message;
  EXPECT_TRUE(tagged->starts_with("---\nkind: Pod\n")) << *tagged;
}

TEST(InjectManifest, ErrorNamesTheDocumentAndTheField) {
  const std::string text =
      "kind: ConfigMap\n---\nkind: Deployment\nmetadata: {name: web}\n"
      "spec:\n  template:\n    metadata:\n      annotations: {h2mesh.io/log-level: loud}\n"
      "    spec: {containers: [{name: c}]}\n";
  auto out = inject_manifest(text, Options{}, OutputFormat::Yaml, nullptr);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("document 2 (Deployment/web)"), std::string::npos)
      << out.error().message;
  EXPECT_NE(out.error().message.find("h2mesh.io/log-level"), std::string::npos);
  auto syntax = inject_manifest("a: 1\n---\nb: c: d\n", Options{}, OutputFormat::Yaml, nullptr);
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.error().message.find("document 2: line 3"), std::string::npos)
      << syntax.error().message;
}

TEST(InjectManifest, JsonOutputIsOneValuePerDocument) {
  auto out = inject_manifest("kind: ConfigMap\n---\n---\nkind: Pod\nspec: {containers: []}\n",
                             Options{}, OutputFormat::Json, nullptr);
  ASSERT_TRUE(out.ok()) << out.error().message;
  const size_t newline = out->find('\n');
  ASSERT_NE(newline, std::string::npos);
  EXPECT_EQ(out->substr(0, newline), R"({"kind":"ConfigMap"})");
  Json pod = Json::parse(out->substr(newline + 1));
  EXPECT_EQ(pod["spec"]["initContainers"].size(), 2u);
}

TEST(UninjectManifest, DropsTheLegacyNoteAndKeepsOtherComments) {
  const std::string text = "# mine\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n"
                           "    - name: c\n";
  Options legacy;
  legacy.legacy_sidecar = true;
  auto injected = inject_manifest(text, legacy, OutputFormat::Yaml, nullptr);
  ASSERT_TRUE(injected.ok());
  EXPECT_TRUE(injected->starts_with("# h2mesh legacy sidecar: ")) << *injected;
  auto back = uninject_manifest(*injected, OutputFormat::Yaml, nullptr);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, text);
}

}  // namespace
}  // namespace h2mesh::inject
