#pragma once

// A small Kubernetes-like network built from Linux network namespaces, for `h2mesh demo --mesh`
// and the root integration tests. One "node" namespace holds a bridge (the pods' gateway) and
// kube-proxy-like DNAT rules for Service cluster IPs; each "pod" is a namespace joined to the
// bridge by a veth pair, with one address from the lab's /24. Pods get /32 addresses and reach
// everything, each other included, through the node's IP layer (as with Calico's routing; the
// node's bridge-nf-call-iptables is off where the kernel has it per namespace): the node's
// conntrack sees both directions of every connection, so a DNAT to a pod is undone on the reply,
// and a pod reaching itself through its Service is masqueraded as kube-proxy does.
//
// Everything is made with the real `ip` and `iptables-restore` binaries and removed on
// destruction: the processes running in the namespaces, the namespaces (their veths and rules go
// with them) and the pods' /etc/netns files. Names carry the creating process's pid, so parallel
// runs do not collide, and create() first removes what runs of dead processes left behind.
// Nothing is added to the namespace the lab is created from.
//
// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for the namespaces). Not thread-safe: one thread
// drives a lab; the functions running code in a namespace may be called from any thread.

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "lab/kube_proxy.h"

namespace h2mesh::lab {

struct Pod {
  std::string name;   // "greeter-1"
  std::string netns;  // "h2lab-4242-0-greeter-1", under /run/netns
  std::string ip;     // "10.244.0.11"
};

class Lab {
 public:
  struct Settings {
    std::string work_dir;             // required: the node's rules are written here (to read)
    std::string prefix = "h2lab";     // namespace names: <prefix>-<pid>-<n>-<node|pod name>
    std::string subnet = "10.244.0";  // the lab's /24: the node is .1, pods from .10 on
  };

  // Builds the node namespace (loopback, bridge, forwarding on, no ICMP redirects: the node must
  // stay on the path of pod-to-pod traffic). Removes the leftovers of dead runs first.
  static Result<std::unique_ptr<Lab>> create(Settings settings);
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  const std::string& node_netns() const { return node_netns_; }
  const std::string& node_ip() const { return node_ip_; }  // the pods' gateway, on the bridge

  // A new pod namespace with the next free address, reachable from every other pod, with its
  // /etc/hosts (set_hosts) and a resolv.conf whose nameserver is the pod's loopback, where
  // nothing listens: lookups of names missing from /etc/hosts fail at once. `name`:
  // [a-z0-9-], at most 30 characters (it is part of the namespace's name), unique in the lab.
  Result<Pod> add_pod(const std::string& name);
  // Stops what runs in the pod and removes it (its veth and /etc/netns files go too).
  Result<void> remove_pod(const std::string& name);
  const Pod* pod(const std::string& name) const;
  const std::vector<Pod>& pods() const { return pods_; }

  // The pod's /etc/hosts, as processes started with exec_argv() see it (`ip netns exec` binds
  // /etc/netns/<netns>/hosts over /etc/hosts): localhost, the pod's own name, then `entries`
  // (address, names separated by spaces).
  Result<void> set_hosts(const std::string& pod,
                         const std::vector<std::pair<std::string, std::string>>& entries);

  // Adds or replaces a Service port's kube-proxy rules in the node namespace (all Services'
  // rules are rewritten at once; connections already made keep their pod).
  Result<void> set_service(const ServiceRule& rule);

  // The command line that runs `argv` inside the pod, with its /etc/hosts; with `uid`, as that
  // uid and the same gid, without supplementary groups (a sidecar's identity). For Subprocess.
  std::vector<std::string> exec_argv(const Pod& pod, const std::vector<std::string>& argv,
                                     std::optional<uid_t> uid = std::nullopt) const;
  // Runs a short command in the pod (or, with `pod` null, in the node namespace) to completion.
  // An error says what failed, with the command's stderr, when it does not exit 0.
  Result<std::string> run(const Pod* pod, const std::vector<std::string>& argv);

 private:
  explicit Lab(Settings settings);
  Result<void> build_node();
  Result<void> apply_rules();
  Result<std::string> tool(const std::vector<std::string>& argv);
  void destroy_pod(const Pod& pod);

  Settings settings_;
  std::string id_;  // <prefix>-<pid>-<n>
  std::string node_netns_;
  std::string node_ip_;
  std::vector<Pod> pods_;
  int next_host_ = 10;  // the next pod's last address byte
  int next_veth_ = 0;
  bool node_made_ = false;
  std::vector<ServiceRule> services_;
};

// Calls `fn` on a thread that entered the network namespace /run/netns/<netns>: the sockets it
// creates belong to that namespace for their whole life, whichever thread uses them later.
Result<void> in_netns(const std::string& netns, const std::function<void()>& fn);

// A socket (e.g. AF_INET, SOCK_STREAM) of the namespace, close-on-exec. The caller owns the fd.
Result<int> socket_in(const std::string& netns, int domain, int type);

// A blocking TCP connection to ip:port (IPv4) made inside the namespace; -1 with errno on
// failure. `timeout_s` bounds the connect and every later send and receive, so that a test
// fails instead of hanging. The caller owns the fd.
int connect_in(const std::string& netns, const std::string& ip, uint16_t port, int timeout_s);

// Writes a sysctl of the namespace ("net/ipv4/ip_forward" under /proc/sys); false when the
// namespace has no such sysctl.
Result<bool> write_sysctl(const std::string& netns, const std::string& key,
                          const std::string& value);

// A plain HTTP/1.1 GET (Connection: close) to ip:port from inside the namespace, with a bearer
// token when one is given; the status and body, read until the server closes, within
// `timeout_ms` for the whole exchange.
struct HttpReply {
  int status = 0;
  std::string body;
};
Result<HttpReply> http_get_in(const std::string& netns, const std::string& ip, uint16_t port,
                              const std::string& target, int timeout_ms,
                              const std::string& bearer_token = "");

// Removes the namespaces (and what runs in them) and /etc/netns directories named
// <prefix>-<pid>-... whose pid is no longer alive. Returns how many namespaces went.
int remove_stale(const std::string& prefix);

// The names of the namespaces under /run/netns starting with `prefix` (for tests).
std::vector<std::string> netns_with_prefix(const std::string& prefix);

// The path of an executable found in $PATH or the sbin directories (`ip` and `iptables` live in
// /usr/sbin, which a non-login shell's PATH may lack); "" when there is none.
std::string find_tool(const std::string& name);

}  // namespace h2mesh::lab
