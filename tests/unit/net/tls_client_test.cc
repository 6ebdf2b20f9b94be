// The client side of TLS that needs no peer: the name check on certificates (DNS with
// wildcards, IP, exact URI, never the CN) and TlsClientContext's reload of changed files.
// Certificates come from tests/fakes/test_pki.py in a temporary directory.

#include "net/tls_client.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace h2mesh::net {
namespace {

namespace fs = std::filesystem;

class TlsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/h2mesh-tls-client-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    pki("ca ca");
    pki("ca other");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void pki(const std::string& args) {
    const std::string cmd = "/usr/bin/python3 " + std::string(H2MESH_SOURCE_DIR) +
                            "/tests/fakes/test_pki.py --dir " + dir_ + " " + args + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

  // Whether dir/NAME.crt carries one of `names`; *why gets the mismatch text.
  bool matches(const std::string& name, const std::vector<std::string>& names,
               std::string* why = nullptr) {
    FILE* f = fopen(file(name + ".crt").c_str(), "r");
    EXPECT_NE(f, nullptr);
    if (!f) return false;
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    fclose(f);
    EXPECT_NE(cert, nullptr);
    std::string ignored;
    const bool ok = check_peer_names(cert, names, why ? why : &ignored);
    X509_free(cert);
    return ok;
  }

  std::string dir_;
};

TEST_F(TlsClientTest, NamesMatchDnsWildcardIpAndExactUri) {
  pki("leaf a --ca ca --dns greeter.internal --dns *.svc.internal --ip 10.0.0.1 --ip fd00::1 "
      "--uri spiffe://cluster.local/ns/grpcdemo/sa/greeter");
  std::string why;
  EXPECT_TRUE(matches("a", {"greeter.internal"}));
  EXPECT_TRUE(matches("a", {"GREETER.internal"}));  // DNS names compare without case
  EXPECT_TRUE(matches("a", {"billing.svc.internal"}));
  EXPECT_FALSE(matches("a", {"a.b.svc.internal"}));  // a wildcard stands for one label
  EXPECT_TRUE(matches("a", {"10.0.0.1"}));
  EXPECT_TRUE(matches("a", {"fd00::1"}));
  EXPECT_FALSE(matches("a", {"10.0.0.2"}));
  EXPECT_TRUE(matches("a", {"spiffe://cluster.local/ns/grpcdemo/sa/greeter"}));
  // URIs match exactly: no prefix, no case folding.
  EXPECT_FALSE(matches("a", {"spiffe://cluster.local/ns/grpcdemo/sa/greet"}));
  EXPECT_FALSE(matches("a", {"spiffe://cluster.local/ns/grpcdemo/sa/Greeter"}));
  // Any one of the list is enough.
  EXPECT_TRUE(matches("a", {"spiffe://cluster.local/ns/other/sa/x", "10.0.0.1"}));
  EXPECT_FALSE(
      matches("a", {"billing.internal", "spiffe://cluster.local/ns/grpcdemo/sa/billing"}, &why));
  EXPECT_EQ(why,
            "the server certificate carries none of the expected names (billing.internal, "
            "spiffe://cluster.local/ns/grpcdemo/sa/billing); it has DNS:greeter.internal, "
            "DNS:*.svc.internal, IP:10.0.0.1, IP:fd00::1, "
            "URI:spiffe://cluster.local/ns/grpcdemo/sa/greeter");
  EXPECT_TRUE(matches("a", {}));  // nothing expected: the chain alone decides
}

TEST_F(TlsClientTest, TheSubjectCommonNameIsNeverAName) {
  pki("leaf cn-only --ca ca --cn greeter.internal");
  std::string why;
  EXPECT_FALSE(matches("cn-only", {"greeter.internal"}, &why));
  EXPECT_NE(why.find("it has no SAN"), std::string::npos) << why;
}

TEST_F(TlsClientTest, ContextReloadsChangedFilesAndKeepsTheOldOnesWhenTheNewDoNotLoad) {
  pki("leaf client --ca ca --client");
  fs::copy_file(file("ca.crt"), file("bundle.crt"));
  TlsClientFiles files;
  files.ca = file("bundle.crt");
  files.cert = file("client.crt");
  files.key = file("client.key");
  auto ctx = TlsClientContext::load(files);
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  TimePoint now{};
  SSL_CTX* first = (*ctx)->current(now);
  EXPECT_EQ((*ctx)->generation(), 0u);
  // Unchanged files: the same context, even after the check interval.
  now += std::chrono::seconds(2);
  EXPECT_EQ((*ctx)->current(now), first);
  // A new CA bundle (renamed into place): a new context and generation, from the next look on.
  fs::copy_file(file("other.crt"), file("bundle.tmp"));
  fs::rename(file("bundle.tmp"), file("bundle.crt"));
  EXPECT_EQ((*ctx)->current(now + std::chrono::milliseconds(500)), first);  // within the interval
  now += std::chrono::seconds(2);
  SSL_CTX* second = (*ctx)->current(now);
  EXPECT_NE(second, first);
  EXPECT_EQ((*ctx)->generation(), 1u);
  // A key that does not match the certificate: the current context stays.
  pki("leaf stray --ca ca --client");
  fs::copy_file(file("stray.key"), file("client.tmp"));
  fs::rename(file("client.tmp"), file("client.key"));
  now += std::chrono::seconds(2);
  EXPECT_EQ((*ctx)->current(now), second);
  EXPECT_EQ((*ctx)->generation(), 1u);
  EXPECT_EQ((*ctx)->reload_failures(), 1u);
  now += std::chrono::seconds(2);
  EXPECT_EQ((*ctx)->current(now), second);
  EXPECT_EQ((*ctx)->reload_failures(), 1u);  // the same bad files are not tried again
}

TEST_F(TlsClientTest, LoadNamesTheFileThatIsWrong) {
  TlsClientFiles files;
  files.ca = file("missing.crt");
  auto missing = TlsClientContext::load(files);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message,
            "cannot read " + file("missing.crt") + ": No such file or directory");
  std::ofstream(file("junk.crt")) << "not a certificate\n";
  files.ca = file("junk.crt");
  auto junk = TlsClientContext::load(files);
  ASSERT_FALSE(junk.ok());
  EXPECT_EQ(junk.error().message, "no PEM certificate in the CA bundle " + file("junk.crt"));
  files.ca = "";
  files.cert = file("ca.crt");
  files.key = file("other.key");
  auto mismatch = TlsClientContext::load(files);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(
      mismatch.error().message.find("the client key " + file("other.key") +
                                    " does not match the client certificate " + file("ca.crt")),
      std::string::npos)
      << mismatch.error().message;
}

}  // namespace
}  // namespace h2mesh::net
