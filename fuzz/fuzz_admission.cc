// The admission webhook's input: the bytes of one HTTP/1.1 request as the API server would send
// them (fed to the request parser in two pieces), and the same bytes as an AdmissionReview body.
// Whatever comes in, the answer must be an AdmissionReview v1 that allows the pod; a patch, when
// there is one, must apply to the pod that was sent, and the patched pod must then count as
// injected (a second review adds nothing).

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "webhook/admission.h"
#include "webhook/http_request.h"

namespace wh = h2mesh::webhook;
using Json = h2mesh::inject::Json;

namespace {

// Every namespace asks for injection, so the injector sees as many inputs as possible; except
// "plain", which is known and not labelled.
struct Namespaces : wh::NamespaceLabels {
  std::map<std::string, std::string> enabled = {{"h2mesh-injection", "enabled"}};
  std::map<std::string, std::string> none;
  bool synced() const override { return true; }
  const std::map<std::string, std::string>* labels(const std::string& name) const override {
    return name == "plain" ? &none : &enabled;
  }
};

std::string base64_decode(const std::string& in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) break;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

void check_review(std::string_view body) {
  static const Namespaces namespaces;
  static const h2mesh::inject::Options options;
  wh::Review r = wh::review(body, namespaces, options);
  Json answer = Json::parse(r.response, nullptr, false);
  if (answer.is_discarded() || answer["apiVersion"] != "admission.k8s.io/v1" ||
      answer["kind"] != "AdmissionReview" || answer["response"]["allowed"] != true ||
      !answer["response"]["uid"].is_string())
    abort();
  const bool has_patch = answer["response"].contains("patch");
  if (has_patch != (r.result == wh::ReviewResult::Injected)) abort();
  if (!has_patch) return;
  // The pod as sent, the patch applied to it, and the patched pod reviewed again.
  Json sent = Json::parse(body);
  Json& object = sent["request"]["object"];
  Json patched = object.patch(Json::parse(base64_decode(answer["response"]["patch"])));
  object = patched;
  wh::Review again = wh::review(sent.dump(), namespaces, options);
  if (again.result != wh::ReviewResult::AlreadyInjected) abort();
}

void check_parser(std::string_view data) {
  wh::HttpRequestParser parser;
  const size_t cut = data.empty() ? 0 : static_cast<uint8_t>(data[0]) % data.size();
  size_t offset = 0;
  for (int requests = 0; requests < 64 && offset <= data.size(); ++requests) {
    size_t used = 0;
    std::string_view rest = data.substr(offset);
    // The first piece ends at `cut`: a request's bytes rarely come in one read.
    std::string_view piece = offset < cut ? rest.substr(0, cut - offset) : rest;
    auto state = parser.feed(piece, &used);
    if (used > piece.size()) abort();
    offset += used;
    if (state == wh::HttpRequestParser::State::Failed) {
      const int s = parser.error_status();
      if (s != 400 && s != 413 && s != 431 && s != 501 && s != 505) abort();
      return;
    }
    if (state == wh::HttpRequestParser::State::Complete) {
      if (parser.request().body.size() > wh::HttpLimits{}.max_body) abort();
      parser.next();
      continue;
    }
    if (piece.size() == rest.size()) return;  // everything given, more needed
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_parser(bytes);
  check_review(bytes);
  return 0;
}
