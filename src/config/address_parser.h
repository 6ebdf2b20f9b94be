#pragma once

// Parsing of "IP:port" text, shared by the readers of listener, admin and endpoint addresses and
// of DNS resolvers. Internal to config/. Pure functions: no state, any thread.

#include <string>
#include <string_view>

#include "config/config.h"

namespace h2mesh::config {

enum class AddressProblem { None, Malformed, NoPort, NotIp, BadPort };

struct AddressParse {
  AddressProblem problem = AddressProblem::None;
  std::string host;  // as written (without brackets), kept on failure for hints
  SocketAddress address;
  std::string error;  // "invalid address '...': reason" when problem != None
};

// "1.2.3.4:80", "[::1]:80"; the host of a valid address is in canonical form. Port 0 is valid
// here: each use decides whether it accepts it.
AddressParse parse_address(std::string_view text);

// Letters, digits, '.' and '-' with at least one letter: a host name rather than a broken IP.
bool looks_like_hostname(const std::string& host);

}  // namespace h2mesh::config
