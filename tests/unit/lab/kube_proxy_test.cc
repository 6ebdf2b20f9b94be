// The node's Service rules as text: what kube-proxy's iptables mode would write for them.

#include "lab/kube_proxy.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace h2mesh::lab {
namespace {

ServiceRule greeter(std::vector<std::string> endpoints) {
  return {"grpcdemo", "greeter", "grpc", "10.96.0.10", 50051, 8080, std::move(endpoints)};
}

std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

TEST(KubeProxyRules, EachOfFourEndpointsIsPickedWithAQuarterOverall) {
  const ServiceRule s = greeter({"10.244.0.10", "10.244.0.11", "10.244.0.12", "10.244.0.13"});
  const std::string text = kube_proxy_rules({s});
  auto picks = lines_with(text, "-A " + service_chain(s) + " ");
  ASSERT_EQ(picks.size(), 4u);
  // 1/4, then 1/3 of the rest, then 1/2, then whatever is left: 1/4 each.
  EXPECT_NE(picks[0].find("-m statistic --mode random --probability 0.2500000000 -j "),
            std::string::npos);
  EXPECT_NE(picks[1].find("--probability 0.3333333333 -j "), std::string::npos);
  EXPECT_NE(picks[2].find("--probability 0.5000000000 -j "), std::string::npos);
  EXPECT_EQ(picks[3].find("statistic"), std::string::npos);
  for (size_t i = 0; i < 4; ++i)
    EXPECT_NE(picks[i].find("-j " + endpoint_chain(s, s.endpoints[i])), std::string::npos);
}

TEST(KubeProxyRules, ClusterIpPortJumpsToTheServiceAndEndpointsDnatToTheTargetPort) {
  const ServiceRule s = greeter({"10.244.0.10"});
  const std::string text = kube_proxy_rules({s});
  EXPECT_EQ(text.rfind("*nat\n", 0), 0u);
  EXPECT_NE(text.find("\nCOMMIT\n"), std::string::npos);
  EXPECT_NE(text.find("-A PREROUTING "), std::string::npos);  // from pods
  EXPECT_NE(text.find("-A OUTPUT "), std::string::npos);      // from the node itself
  auto portal = lines_with(text, "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 50051");
  ASSERT_EQ(portal.size(), 1u);
  EXPECT_NE(portal[0].find("-j " + service_chain(s)), std::string::npos);
  auto dnat = lines_with(text, "-j DNAT --to-destination 10.244.0.10:8080");
  ASSERT_EQ(dnat.size(), 1u);
  EXPECT_EQ(dnat[0].rfind("-A " + endpoint_chain(s, "10.244.0.10") + " -p tcp", 0), 0u);
}

TEST(KubeProxyRules, PodReachingItselfThroughItsServiceIsMasqueraded) {
  const ServiceRule s = greeter({"10.244.0.10"});
  const std::string text = kube_proxy_rules({s});
  EXPECT_EQ(
      lines_with(text, "-A " + endpoint_chain(s, "10.244.0.10") +
                           " -s 10.244.0.10/32 -m comment --comment \"grpcdemo/greeter:grpc\" "
                           "-j KUBE-MARK-MASQ")
          .size(),
      1u);
  EXPECT_EQ(
      lines_with(text, "-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE").size(),
      1u);
}

TEST(KubeProxyRules, ServiceWithoutEndpointsHasNoPortal) {
  const std::string text = kube_proxy_rules({greeter({})});
  EXPECT_TRUE(lines_with(text, "10.96.0.10").empty());
  EXPECT_TRUE(lines_with(text, "KUBE-SVC-").empty());
}

TEST(KubeProxyRules, ChainNamesAreStableAndDistinct) {
  const ServiceRule a = greeter({"10.244.0.10"});
  ServiceRule b = a;
  b.name = "other";
  EXPECT_EQ(service_chain(a), service_chain(greeter({"10.244.0.99"})));  // endpoints do not matter
  EXPECT_NE(service_chain(a), service_chain(b));
  EXPECT_NE(endpoint_chain(a, "10.244.0.10"), endpoint_chain(a, "10.244.0.11"));
  EXPECT_NE(endpoint_chain(a, "10.244.0.10"), endpoint_chain(b, "10.244.0.10"));
  // iptables refuses chain names longer than 28 characters.
  EXPECT_LE(service_chain(a).size(), 28u);
  EXPECT_LE(endpoint_chain(a, "10.244.0.10").size(), 28u);
  // Every chain used is declared once.
  const std::string text = kube_proxy_rules({a, b});
  EXPECT_EQ(lines_with(text, ":" + service_chain(a) + " ").size(), 1u);
  EXPECT_EQ(lines_with(text, ":" + service_chain(b) + " ").size(), 1u);
}

TEST(KubeProxyRules, ProbabilityOfTheIthOfN) {
  EXPECT_EQ(endpoint_probability(0, 2), "0.5000000000");
  EXPECT_EQ(endpoint_probability(0, 3), "0.3333333333");
  EXPECT_EQ(endpoint_probability(1, 3), "0.5000000000");
  EXPECT_EQ(endpoint_probability(2, 3), "1.0000000000");
}

}  // namespace
}  // namespace h2mesh::lab
