// Sidecar injection over arbitrary YAML text: read each document, inject, write it, read it
// again. What comes back must be the same data (a round trip through our emitter and Kubernetes'
// reading of YAML), and injecting the injected manifest again must change nothing. Never a
// crash, a hang or an expansion out of proportion to the input.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "inject/injector.h"
#include "inject/manifest_io.h"

namespace inject = h2mesh::inject;
using inject::Json;

namespace {

// Equality of data as Kubernetes sees it; NaN (from .nan) equals itself here.
bool same(const Json& a, const Json& b) {
  if (a.is_number_float() && b.is_number_float()) {
    const double x = a.get<double>(), y = b.get<double>();
    return (std::isnan(x) && std::isnan(y)) || x == y;
  }
  if (a.type() != b.type() || a.size() != b.size()) return a == b;
  if (a.is_object()) {
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
      if (ia.key() != ib.key() || !same(ia.value(), ib.value())) return false;
    return true;
  }
  if (a.is_array()) {
    for (size_t i = 0; i < a.size(); ++i)
      if (!same(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  inject::Options options;
  options.legacy_sidecar = size > 0 && (data[0] & 1);  // both modes from one corpus

  for (const inject::ManifestDocument& document : inject::split_documents(text)) {
    auto read = inject::read_document(document);
    if (!read.ok()) {
      if (read.error().message.empty()) abort();
      continue;
    }
    Json value = std::move(*read);
    for (Json* pod : inject::pod_templates(value)) {
      const Json before = *pod;
      auto outcome = inject::inject_pod(*pod, options);
      // Anything but Injected leaves the pod as it was.
      if ((!outcome.ok() || outcome->outcome != inject::Outcome::Injected) && *pod != before)
        abort();
    }
    const std::string emitted = inject::emit_yaml(value);
    auto again = inject::read_document(inject::ManifestDocument{{}, emitted, 1});
    if (!again.ok() || !same(*again, value)) abort();
  }

  auto once = inject::inject_manifest(text, options, inject::OutputFormat::Yaml, nullptr);
  if (once.ok()) {
    auto twice = inject::inject_manifest(*once, options, inject::OutputFormat::Yaml, nullptr);
    if (!twice.ok() || *twice != *once) abort();
  }
  return 0;
}
