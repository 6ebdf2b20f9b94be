// The webhook's decision for each AdmissionReview: which pods get the sidecar, that the patch
// turns the pod into exactly what inject_pod makes, and that everything else is allowed
// unchanged (with the uid echoed, and a warning where the user should hear why).

#include "webhook/admission.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace h2mesh::webhook {
namespace {

using Json = inject::Json;

struct FakeNamespaces : NamespaceLabels {
  bool is_synced = true;
  std::map<std::string, std::map<std::string, std::string>> known = {
      {"grpcdemo", {{"h2mesh-injection", "enabled"}}},
      {"plain", {{"team", "a"}}},
      {"off", {{"h2mesh-injection", "disabled"}}},
  };
  bool synced() const override { return is_synced; }
  const std::map<std::string, std::string>* labels(const std::string& name) const override {
    auto it = known.find(name);
    return it == known.end() ? nullptr : &it->second;
  }
};

Json pod(Json annotations = nullptr) {
  Json p = {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"generateName", "greeter-7d9f-"}, {"labels", {{"app", "greeter"}}}}},
            {"spec", {{"containers", Json::array({{{"name", "app"}, {"image", "greeter:1"}}})}}}};
  if (!annotations.is_null()) p["metadata"]["annotations"] = annotations;
  return p;
}

Json request(const Json& object, const std::string& ns, const std::string& uid = "uid-1") {
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", uid},
            {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
            {"resource", {{"group", ""}, {"version", "v1"}, {"resource", "pods"}}},
            {"namespace", ns},
            {"operation", "CREATE"},
            {"object", object},
            {"dryRun", false}}}};
}

Json response_of(const Review& r) {
  Json j = Json::parse(r.response);
  EXPECT_EQ(j["apiVersion"], "admission.k8s.io/v1");
  EXPECT_EQ(j["kind"], "AdmissionReview");
  EXPECT_EQ(j["response"]["allowed"], true);
  return j["response"];
}

std::string base64_decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : 63;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    acc = (acc << 6) | value(c);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// Objects compare without their key order (ordered_json's == heeds it; the API server does not).
::testing::AssertionResult same(const Json& a, const Json& b) {
  if (nlohmann::json::parse(a.dump()) == nlohmann::json::parse(b.dump()))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a.dump() << "\n  differs from\n" << b.dump();
}

class Admission : public ::testing::Test {
 protected:
  Review run(const Json& body) { return review(body.dump(), namespaces_, options_); }
  // The pod the API server would store after applying the answer's patch.
  Json patched(const Json& object, const Json& response) {
    EXPECT_EQ(response["patchType"], "JSONPatch");
    return object.patch(Json::parse(base64_decode(response["patch"].get<std::string>())));
  }
  Json injected(Json object) {
    auto r = inject::inject_pod(object, options_);
    EXPECT_TRUE(r.ok());
    return object;
  }
  FakeNamespaces namespaces_;
  inject::Options options_{"h2mesh:test", false};
};

TEST_F(Admission, PodInLabelledNamespaceGetsThePatchOfInjectPod) {
  Review r = run(request(pod(), "grpcdemo"));
  EXPECT_EQ(r.result, ReviewResult::Injected);
  EXPECT_EQ(r.pod, "grpcdemo/greeter-7d9f-*");
  Json response = response_of(r);
  EXPECT_EQ(response["uid"], "uid-1");
  EXPECT_TRUE(same(patched(pod(), response), injected(pod())));
  EXPECT_FALSE(response.contains("warnings"));
}

TEST_F(Admission, NamespaceLabelMakesItsPodsStrictUnlessThePodSaysOtherwise) {
  namespaces_.known["strictns"] = {{"h2mesh-injection", "enabled"},
                                   {"h2mesh.io/mtls-mode", "strict"}};
  auto mode_of = [&](const Json& p) -> Json {
    Review r = run(request(p, "strictns"));
    EXPECT_EQ(r.result, ReviewResult::Injected);
    Json after = patched(p, response_of(r));
    for (const Json& e : after["spec"]["initContainers"][1]["env"])
      if (e["name"] == "H2MESH_MTLS_MODE") return e["value"];
    return Json();
  };
  EXPECT_EQ(mode_of(pod()), "strict");
  EXPECT_EQ(mode_of(pod({{"h2mesh.io/mtls-mode", "permissive"}})), "permissive");
  // The label of another namespace does not leak.
  Review plain = run(request(pod(), "grpcdemo"));
  Json after = patched(pod(), response_of(plain));
  for (const Json& e : after["spec"]["initContainers"][1]["env"])
    EXPECT_NE(e["name"], "H2MESH_MTLS_MODE");
}

TEST_F(Admission, LegacyOptionGivesTheLegacyPod) {
  options_.legacy_sidecar = true;
  Review r = run(request(pod(), "grpcdemo"));
  ASSERT_EQ(r.result, ReviewResult::Injected);
  Json after = patched(pod(), response_of(r));
  EXPECT_TRUE(same(after, injected(pod())));
  EXPECT_EQ(after["spec"]["containers"][0]["name"], "h2mesh-proxy");
}

// By the time a webhook is called the API server's ServiceAccount admission has set the pod's
// serviceAccountName; with --mtls-source secret the patch mounts that account's Secret.
TEST_F(Admission, SecretSourceMountsTheSecretOfThePodsServiceAccount) {
  options_.mtls_source = inject::MtlsSource::Secret;
  Json p = pod();
  p["spec"]["serviceAccountName"] = "greeter";
  Review r = run(request(p, "grpcdemo"));
  ASSERT_EQ(r.result, ReviewResult::Injected);
  Json after = patched(p, response_of(r));
  EXPECT_TRUE(same(after, injected(p)));
  EXPECT_EQ(after["spec"]["volumes"].back(),
            Json::parse(R"({"name":"h2mesh-tls","secret":{"secretName":"h2mesh-mesh-tls-greeter",
                            "defaultMode":292}})"));
  // A service account whose Secret name would be invalid: admitted unchanged, with a warning
  // naming the field.
  p["spec"]["serviceAccountName"] = std::string(250, 'a');
  Review bad = run(request(p, "grpcdemo"));
  EXPECT_EQ(bad.result, ReviewResult::Error);
  Json response = response_of(bad);
  EXPECT_FALSE(response.contains("patch"));
  EXPECT_NE(response["warnings"][0].get<std::string>().find("spec.serviceAccountName"),
            std::string::npos)
      << response.dump();
}

TEST_F(Admission, UnlabelledOrUnknownNamespaceIsNotSelected) {
  for (const char* ns : {"plain", "off", "nowhere", ""}) {
    Review r = run(request(pod(), ns));
    EXPECT_EQ(r.result, ReviewResult::NotSelected) << ns;
    EXPECT_FALSE(response_of(r).contains("patch")) << ns;
  }
}

TEST_F(Admission, AnnotatedPodIsInjectedAnywhereEvenBeforeTheNamespacesAreKnown) {
  Json p = pod({{"h2mesh.io/inject", "enabled"}});
  EXPECT_EQ(run(request(p, "plain")).result, ReviewResult::Injected);
  namespaces_.is_synced = false;
  Review r = run(request(p, "plain"));
  EXPECT_EQ(r.result, ReviewResult::Injected);
  EXPECT_TRUE(same(patched(p, response_of(r)), injected(p)));
}

TEST_F(Admission, BeforeTheNamespacesAreKnownPodsAreAdmittedUnchanged) {
  namespaces_.is_synced = false;
  Review r = run(request(pod(), "grpcdemo"));
  EXPECT_EQ(r.result, ReviewResult::NotSelected);
  EXPECT_TRUE(r.unsynced);
  EXPECT_FALSE(response_of(r).contains("patch"));
}

TEST_F(Admission, OptOutAnnotationWinsOverTheLabel) {
  Review r = run(request(pod({{"h2mesh.io/inject", "disabled"}}), "grpcdemo"));
  EXPECT_EQ(r.result, ReviewResult::Skipped);
  EXPECT_FALSE(response_of(r).contains("patch"));
}

TEST_F(Admission, HostNetworkPodIsSkippedWithAWarning) {
  Json p = pod();
  p["spec"]["hostNetwork"] = true;
  Review r = run(request(p, "grpcdemo"));
  EXPECT_EQ(r.result, ReviewResult::Skipped);
  Json response = response_of(r);
  EXPECT_FALSE(response.contains("patch"));
  ASSERT_TRUE(response.contains("warnings"));
  EXPECT_NE(response["warnings"][0].get<std::string>().find("hostNetwork"), std::string::npos);
}

TEST_F(Admission, AlreadyInjectedPodIsLeftAlone) {
  Review r = run(request(injected(pod()), "grpcdemo"));
  EXPECT_EQ(r.result, ReviewResult::AlreadyInjected);
  EXPECT_FALSE(response_of(r).contains("patch"));
}

TEST_F(Admission, InjectorErrorIsAllowedWithAWarningNamingTheAnnotation) {
  Review r = run(request(pod({{"h2mesh.io/skip-outbound-ports", "http"}}), "grpcdemo"));
  EXPECT_EQ(r.result, ReviewResult::Error);
  Json response = response_of(r);
  EXPECT_FALSE(response.contains("patch"));
  EXPECT_EQ(response["uid"], "uid-1");
  EXPECT_NE(response["warnings"][0].get<std::string>().find("h2mesh.io/skip-outbound-ports"),
            std::string::npos);
}

TEST_F(Admission, DryRunIsPatchedLikeTheCreateAndUpdatesAreNot) {
  // kubectl apply --dry-run=server shows the pod the create would make.
  Json dry = request(pod(), "grpcdemo");
  dry["request"]["dryRun"] = true;
  Review dry_run = run(dry);
  EXPECT_EQ(dry_run.result, ReviewResult::Injected);
  EXPECT_EQ(response_of(dry_run)["patch"], response_of(run(request(pod(), "grpcdemo")))["patch"]);
  Json update = request(pod(), "grpcdemo");
  update["request"]["operation"] = "UPDATE";
  Review r = run(update);
  EXPECT_EQ(r.result, ReviewResult::NotSelected);
  EXPECT_FALSE(response_of(r).contains("patch"));
}

TEST_F(Admission, UnreadableReviewsAreAllowedAndEchoTheUidWhenThereIsOne) {
  Review garbage =
      review("{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\"", namespaces_, options_);
  EXPECT_EQ(garbage.result, ReviewResult::Invalid);
  EXPECT_EQ(response_of(garbage)["uid"], "");

  Json old_version = request(pod(), "grpcdemo", "uid-2");
  old_version["apiVersion"] = "admission.k8s.io/v1beta1";
  Json service = request(pod(), "grpcdemo", "uid-3");
  service["request"]["kind"]["kind"] = "Service";
  Json subresource = request(pod(), "grpcdemo", "uid-4");
  subresource["request"]["subResource"] = "ephemeralcontainers";
  Json no_object = request(pod(), "grpcdemo", "uid-5");
  no_object["request"].erase("object");
  Json no_spec = request(pod(), "grpcdemo", "uid-6");
  no_spec["request"]["object"].erase("spec");
  Json wrong_kind = request(pod(), "grpcdemo", "uid-7");
  wrong_kind["kind"] = "ConversionReview";
  for (const Json& body : {old_version, service, subresource, no_object, no_spec, wrong_kind}) {
    Review r = run(body);
    EXPECT_EQ(r.result, ReviewResult::Invalid) << body.dump();
    EXPECT_FALSE(r.detail.empty());
    Json response = response_of(r);
    EXPECT_EQ(response["uid"], body["request"]["uid"]);
    EXPECT_FALSE(response.contains("patch"));
  }
  for (const char* text : {"[]", "null", "42", "{\"request\": 3}", ""}) {
    Review r = review(text, namespaces_, options_);
    EXPECT_EQ(r.result, ReviewResult::Invalid) << text;
    response_of(r);
  }
}

TEST(Base64, MatchesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("\xff\xfe"), "//4=");
}

}  // namespace
}  // namespace h2mesh::webhook
