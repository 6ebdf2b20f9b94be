#include "lab/lab.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/subprocess.h"

namespace h2mesh::lab {
namespace {

constexpr const char* kNetnsDir = "/run/netns";
constexpr const char* kEtcNetnsDir = "/etc/netns";
constexpr int kMaxPodName = 30;

std::atomic<int> g_labs_made{0};

Error lab_error(const std::string& message) { return make_error(ErrorCode::Io, message); }

bool valid_pod_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxPodName || name == "node") return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

// The pid in "<prefix>-<pid>-...", or 0 when the name is not one of ours.
pid_t pid_in_name(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix + "-", 0) != 0) return 0;
  size_t start = prefix.size() + 1;
  size_t end = name.find('-', start);
  if (end == std::string::npos || end == start) return 0;
  pid_t pid = 0;
  for (size_t i = start; i < end; ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

std::vector<std::string> dir_entries(const char* dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir)) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  return out;
}

// Runs a tool to completion; returns its stdout, or an error with what it printed on stderr.
Result<std::string> run_tool(const std::vector<std::string>& argv, std::string_view input = {}) {
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
  auto r = run_command(argv, input);
  if (!r) return lab_error(command + ": " + r.error().message);
  if (r->exit_code != 0) {
    std::string err = r->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return lab_error(command + ": exit code " + std::to_string(r->exit_code) +
                     (err.empty() ? "" : ": " + err));
  }
  return r->out;
}

// SIGKILLs every process of the namespace (`ip netns pids`), so that deleting it frees it.
void kill_netns_processes(const std::string& ip, const std::string& netns) {
  auto pids = run_tool({ip, "netns", "pids", netns});
  if (!pids) return;
  std::istringstream in(*pids);
  pid_t pid;
  while (in >> pid)
    if (pid > 1 && pid != getpid()) ::kill(pid, SIGKILL);
}

void delete_netns(const std::string& netns) {
  std::string ip = find_tool("ip");
  if (!ip.empty()) {
    kill_netns_processes(ip, netns);
    (void)run_tool({ip, "netns", "delete", netns});
  }
  std::error_code ec;
  std::filesystem::remove_all(std::string(kEtcNetnsDir) + "/" + netns, ec);
}

}  // namespace

std::string find_tool(const std::string& name) {
  std::string dirs;
  if (const char* path = getenv("PATH")) dirs = path;
  dirs += ":/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin";
  std::istringstream in(dirs);
  std::string dir;
  while (std::getline(in, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return "";
}

Result<void> in_netns(const std::string& netns, const std::function<void()>& fn) {
  std::string path = std::string(kNetnsDir) + "/" + netns;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return lab_error("open " + path + ": " + strerror(errno));
  std::string failure;
  // setns changes only the calling thread's namespace: a thread of its own keeps the caller's.
  std::thread t([&] {
    if (setns(fd, CLONE_NEWNET) != 0) {
      failure = std::string("setns ") + path + ": " + strerror(errno);
      return;
    }
    fn();
  });
  t.join();
  ::close(fd);
  if (!failure.empty()) return lab_error(failure);
  return {};
}

Result<int> socket_in(const std::string& netns, int domain, int type) {
  int fd = -1;
  int err = 0;
  auto entered = in_netns(netns, [&] {
    fd = ::socket(domain, type | SOCK_CLOEXEC, 0);
    err = errno;
  });
  if (!entered) return entered.error();
  if (fd < 0) return lab_error(std::string("socket: ") + strerror(err));
  return fd;
}

int connect_in(const std::string& netns, const std::string& ip, uint16_t port, int timeout_s) {
  auto fd = socket_in(netns, AF_INET, SOCK_STREAM);
  if (!fd) return -1;
  timeval tv{timeout_s, 0};
  setsockopt(*fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // bounds connect() too
  setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  if (connect(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(*fd);
    errno = err;
    return -1;
  }
  return *fd;
}

Result<bool> write_sysctl(const std::string& netns, const std::string& key,
                          const std::string& value) {
  std::string failure;
  bool missing = false;
  // /proc/sys/net answers for the namespace of the thread that opens it.
  auto entered = in_netns(netns, [&] {
    std::string path = "/proc/sys/" + key;
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    missing = fd < 0 && errno == ENOENT;
    if (fd < 0 || ::write(fd, value.data(), value.size()) != static_cast<ssize_t>(value.size()))
      failure = "sysctl " + key + "=" + value + ": " + strerror(errno);
    if (fd >= 0) ::close(fd);
  });
  if (!entered) return entered.error();
  if (missing) return false;
  if (!failure.empty()) return lab_error(failure);
  return true;
}

Result<HttpReply> http_get_in(const std::string& netns, const std::string& ip, uint16_t port,
                              const std::string& target, int timeout_ms,
                              const std::string& bearer_token) {
  auto fd = socket_in(netns, AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
  if (!fd) return fd.error();
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{*fd};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) return lab_error("bad address " + ip);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto wait = [&](short events) -> bool {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{*fd, events, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) > 0;
  };
  const std::string where = ip + ":" + std::to_string(port);
  if (::connect(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) return lab_error("connect " + where + ": " + strerror(errno));
    if (!wait(POLLOUT)) return lab_error("connect " + where + ": timed out");
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(*fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return lab_error("connect " + where + ": " + strerror(err));
  }
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: " + where + "\r\n";
  if (!bearer_token.empty()) request += "Authorization: Bearer " + bearer_token + "\r\n";
  request += "Connection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(*fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (errno != EAGAIN || !wait(POLLOUT)) {
      return lab_error("send to " + where + " failed");
    }
  }
  std::string reply;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(*fd, buf, sizeof(buf), 0);
    if (n > 0) {
      reply.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EAGAIN || !wait(POLLIN)) {
      return lab_error("no complete reply from " + where);
    }
  }
  size_t head_end = reply.find("\r\n\r\n");
  if (reply.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || reply.size() < 12)
    return lab_error("not an HTTP reply from " + where);
  HttpReply out;
  out.status = atoi(reply.c_str() + 9);
  out.body = reply.substr(head_end + 4);
  return out;
}

std::vector<std::string> netns_with_prefix(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& n : dir_entries(kNetnsDir))
    if (n.rfind(prefix, 0) == 0) out.push_back(n);
  return out;
}

int remove_stale(const std::string& prefix) {
  int removed = 0;
  for (const auto& n : dir_entries(kNetnsDir)) {
    pid_t pid = pid_in_name(n, prefix);
    if (pid <= 0 || process_alive(pid)) continue;
    delete_netns(n);
    ++removed;
  }
  for (const auto& n : dir_entries(kEtcNetnsDir)) {
    pid_t pid = pid_in_name(n, prefix);
    if (pid <= 0 || process_alive(pid)) continue;
    std::error_code ec;
    std::filesystem::remove_all(std::string(kEtcNetnsDir) + "/" + n, ec);
  }
  return removed;
}

Lab::Lab(Settings settings) : settings_(std::move(settings)) {
  id_ = settings_.prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(g_labs_made++);
  node_netns_ = id_ + "-node";
  node_ip_ = settings_.subnet + ".1";
}

Result<std::unique_ptr<Lab>> Lab::create(Settings settings) {
  if (settings.work_dir.empty()) return lab_error("lab: no work directory");
  for (const char* t : {"ip", "iptables-restore"})
    if (find_tool(t).empty())
      return lab_error(std::string("lab: `") + t + "` not found (Debian: apt-get install " +
                       (std::string(t) == "ip" ? "iproute2" : "iptables") + ")");
  remove_stale(settings.prefix);
  std::unique_ptr<Lab> lab(new Lab(std::move(settings)));
  if (auto ok = lab->build_node(); !ok) return ok.error();  // the destructor removes the rest
  return lab;
}

Result<std::string> Lab::tool(const std::vector<std::string>& argv) {
  std::vector<std::string> full = argv;
  full[0] = find_tool(argv[0]);
  if (full[0].empty()) return lab_error("`" + argv[0] + "` not found");
  return run_tool(full);
}

Result<void> Lab::build_node() {
  if (auto r = tool({"ip", "netns", "add", node_netns_}); !r) return r.error();
  node_made_ = true;
  // Before the bridge exists, so that it inherits "no redirects" from `default`: a node that
  // told pods to talk to each other directly would take itself off the path of the replies that
  // its DNAT must translate back.
  const std::pair<const char*, const char*> sysctls[] = {
      {"net/ipv4/conf/all/send_redirects", "0"},
      {"net/ipv4/conf/default/send_redirects", "0"},
      {"net/ipv4/ip_forward", "1"},
  };
  for (const auto& [key, value] : sysctls) {
    auto written = write_sysctl(node_netns_, key, value);
    if (!written) return written.error();
    if (!*written) return lab_error(std::string("the node namespace has no sysctl ") + key);
  }
  // A bridge without an address of its own takes the lowest MAC of its ports, and takes another
  // when that port leaves: the pods' neighbour entries for the gateway would then point at a MAC
  // nobody answers for, and their traffic would stop until the entries expire (removing a pod
  // cut the others off for half a minute). A fixed, locally administered MAC never changes.
  const std::vector<std::vector<std::string>> steps = {
      {"ip", "-n", node_netns_, "link", "set", "lo", "up"},
      {"ip", "-n", node_netns_, "link", "add", "br0", "address", "02:48:32:6d:00:01", "type",
       "bridge"},
      {"ip", "-n", node_netns_, "addr", "add", node_ip_ + "/24", "dev", "br0"},
      {"ip", "-n", node_netns_, "link", "set", "br0", "up"},
  };
  for (const auto& s : steps)
    if (auto r = tool(s); !r) return r.error();
  // With br_netfilter loaded, bridged frames go through iptables at the bridge: a DNAT to a pod
  // on the same bridge port (a pod calling itself through its Service) would then need hairpin
  // mode, and the path would differ from host to host. Off in the node, every packet between
  // pods is routed by the node's IP layer, module or not. Per namespace since Linux 5.3; older
  // kernels have no such file in a new namespace, and then the module's global setting is left.
  for (const char* key :
       {"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"}) {
    if (auto written = write_sysctl(node_netns_, key, "0"); !written) return written.error();
  }
  auto lo = tool({"ip", "-n", node_netns_, "-o", "link", "show", "lo"});
  if (!lo) return lo.error();
  if (lo->find(",UP") == std::string::npos)
    return lab_error("the node's loopback is not up: " + *lo);
  return apply_rules();
}

Result<Pod> Lab::add_pod(const std::string& name) {
  if (!valid_pod_name(name))
    return make_error(ErrorCode::InvalidArgument, "lab: bad pod name '" + name + "'");
  if (pod(name)) return make_error(ErrorCode::InvalidArgument, "lab: pod " + name + " exists");
  if (next_host_ > 250) return lab_error("lab: no address left in " + settings_.subnet + ".0/24");
  Pod p{name, id_ + "-" + name, settings_.subnet + "." + std::to_string(next_host_++)};
  const std::string veth = "veth" + std::to_string(next_veth_++);
  if (auto r = tool({"ip", "netns", "add", p.netns}); !r) return r.error();
  pods_.push_back(p);  // from here on, the destructor removes it
  // The veth is made inside the node namespace with its peer moved straight into the pod's:
  // nothing ever appears in the namespace the lab runs from, so no name there can collide.
  const std::vector<std::vector<std::string>> steps = {
      {"ip", "-n", p.netns, "link", "set", "lo", "up"},
      {"ip", "-n", node_netns_, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
       "netns", p.netns},
      {"ip", "-n", node_netns_, "link", "set", veth, "master", "br0", "up"},
      {"ip", "-n", p.netns, "addr", "add", p.ip + "/32", "dev", "eth0"},
      {"ip", "-n", p.netns, "link", "set", "eth0", "up"},
      // A /32 and the gateway on-link: even a neighbour on the bridge is reached through the
      // node, where the Service DNAT and its conntrack live.
      {"ip", "-n", p.netns, "route", "add", node_ip_, "dev", "eth0", "scope", "link"},
      {"ip", "-n", p.netns, "route", "add", "default", "via", node_ip_, "dev", "eth0"},
  };
  for (const auto& s : steps)
    if (auto r = tool(s); !r) return r.error();
  auto lo = tool({"ip", "-n", p.netns, "-o", "link", "show", "lo"});
  if (!lo) return lo.error();
  if (lo->find(",UP") == std::string::npos)
    return lab_error("pod " + name + ": the loopback is not up: " + *lo);
  if (auto ok = set_hosts(name, {}); !ok) return ok.error();
  // Nothing answers DNS in the lab: names come from the pod's /etc/hosts. A resolver that asks
  // the host's nameserver anyway (gRPC's c-ares asks for AAAA records a hosts file lacks) must
  // be refused at once, not time out on an address the pod cannot reach: the pod's own loopback
  // answers with ICMP port unreachable.
  std::ofstream resolv(std::string(kEtcNetnsDir) + "/" + p.netns + "/resolv.conf", std::ios::trunc);
  resolv << "nameserver 127.0.0.1\nsearch grpcdemo.svc.cluster.local svc.cluster.local "
            "cluster.local\noptions timeout:1 attempts:1\n";
  if (!resolv) return lab_error("cannot write the resolv.conf of pod " + name);
  return p;
}

const Pod* Lab::pod(const std::string& name) const {
  for (const auto& p : pods_)
    if (p.name == name) return &p;
  return nullptr;
}

void Lab::destroy_pod(const Pod& p) { delete_netns(p.netns); }

Result<void> Lab::remove_pod(const std::string& name) {
  for (auto it = pods_.begin(); it != pods_.end(); ++it) {
    if (it->name != name) continue;
    destroy_pod(*it);
    pods_.erase(it);
    return {};
  }
  return make_error(ErrorCode::InvalidArgument, "lab: no pod " + name);
}

Result<void> Lab::set_hosts(const std::string& pod_name,
                            const std::vector<std::pair<std::string, std::string>>& entries) {
  const Pod* p = pod(pod_name);
  if (!p) return make_error(ErrorCode::InvalidArgument, "lab: no pod " + pod_name);
  std::string dir = std::string(kEtcNetnsDir) + "/" + p->netns;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return lab_error("mkdir " + dir + ": " + ec.message());
  std::ofstream hosts(dir + "/hosts", std::ios::trunc);
  hosts << "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        << p->ip << "\t" << p->name << "\n";
  for (const auto& [address, names] : entries) hosts << address << "\t" << names << "\n";
  hosts.close();
  if (!hosts) return lab_error("cannot write " + dir + "/hosts");
  return {};
}

Result<void> Lab::set_service(const ServiceRule& rule) {
  bool replaced = false;
  for (auto& s : services_) {
    if (s.namespace_ == rule.namespace_ && s.name == rule.name && s.port_name == rule.port_name) {
      s = rule;
      replaced = true;
    }
  }
  if (!replaced) services_.push_back(rule);
  return apply_rules();
}

Result<void> Lab::apply_rules() {
  std::string text = kube_proxy_rules(services_);
  // Also in a file of the work directory, for a person looking at what the node does.
  std::string path = settings_.work_dir + "/" + node_netns_ + ".rules";
  {
    std::ofstream f(path, std::ios::trunc);
    f << text;
    if (!f) return lab_error("cannot write " + path);
  }
  auto r = run_tool({find_tool("ip"), "netns", "exec", node_netns_, find_tool("iptables-restore")},
                    text);
  if (!r) return r.error();
  return {};
}

std::vector<std::string> Lab::exec_argv(const Pod& p, const std::vector<std::string>& argv,
                                        std::optional<uid_t> uid) const {
  std::vector<std::string> out = {find_tool("ip"), "netns", "exec", p.netns};
  if (uid) {
    const std::string id = std::to_string(*uid);
    out.insert(out.end(),
               {find_tool("setpriv"), "--reuid=" + id, "--regid=" + id, "--clear-groups", "--"});
  }
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Result<std::string> Lab::run(const Pod* p, const std::vector<std::string>& argv) {
  std::vector<std::string> full = {"ip", "netns", "exec", p ? p->netns : node_netns_};
  full.insert(full.end(), argv.begin(), argv.end());
  if (argv.empty()) return make_error(ErrorCode::InvalidArgument, "lab: no command");
  if (argv[0].find('/') == std::string::npos) {
    full[4] = find_tool(argv[0]);
    if (full[4].empty()) return lab_error("`" + argv[0] + "` not found");
  }
  return tool(full);
}

Lab::~Lab() {
  for (const auto& p : pods_) destroy_pod(p);
  pods_.clear();
  if (node_made_) delete_netns(node_netns_);
}

}  // namespace h2mesh::lab
