#pragma once

#include <optional>

#include "config/config.h"

namespace h2mesh::net {

// Where a client meant to go. When iptables REDIRECTs (or DNATs) an outbound connection to the
// sidecar, the accepted socket's local address is the sidecar's own; conntrack keeps the address
// the client dialled, read here with SO_ORIGINAL_DST (IPv4, also for an IPv4 client accepted on
// a dual-stack IPv6 socket, whose v4-mapped address is reported as plain IPv4) or
// IP6T_SO_ORIGINAL_DST (IPv6). A connection conntrack did not rewrite (not tracked, or no
// conntrack in this network namespace at all) was not redirected: its original destination is
// its local address. nullopt when the socket has no address (not connected) or the kernel
// refuses. Any thread; costs one or two system calls.
std::optional<config::SocketAddress> original_destination(int fd);

// A socket's local address (getsockname), v4-mapped addresses as plain IPv4; nullopt on error.
std::optional<config::SocketAddress> local_address(int fd);

// The loop guard of the outbound listener: whether `original` (the original destination of the
// connection `accepted_fd`, accepted on that listener) is the listener itself, so that relaying
// to it would come straight back (rules that redirect the sidecar's own connections, or a client
// dialling the outbound port). The rule: the same port as the accepted socket's local port (the
// listener's port: REDIRECT rewrites the port to it), and an address that reaches this host: the
// accepted socket's own local address (a connection that was not redirected), a loopback or
// unspecified address, or an address of one of this host's interfaces (getifaddrs, read only
// when the port matches, which a normal connection never does). A listener bound to one address
// refuses the other local addresses too: nothing else of ours listens on its port there.
bool is_own_listener(int accepted_fd, const config::SocketAddress& original);

}  // namespace h2mesh::net
