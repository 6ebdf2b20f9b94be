#include "config/address_parser.h"

#include <arpa/inet.h>

#include <cstdint>

namespace h2mesh::config {

namespace {

AddressParse fail(AddressParse parse, AddressProblem problem, std::string_view text,
                  const std::string& reason) {
  parse.problem = problem;
  parse.error = "invalid address '" + std::string(text) + "': " + reason;
  return parse;
}

bool parse_port(std::string_view text, uint16_t* port) {
  if (text.empty() || text.size() > 5) return false;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return false;
  *port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

AddressParse parse_address(std::string_view text) {
  AddressParse parse;
  std::string_view port_text;
  const bool bracketed = text.starts_with('[');
  if (bracketed) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return fail(parse, AddressProblem::Malformed, text, "missing ']' after the IPv6 address");
    }
    parse.host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(':')) return fail(parse, AddressProblem::NoPort, text, "no port");
    port_text = rest.substr(1);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      parse.host = std::string(text);
      return fail(parse, AddressProblem::NoPort, text, "no port");
    }
    parse.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (parse.host.find(':') != std::string::npos) {
      return fail(parse, AddressProblem::Malformed, text,
                  "an IPv6 address must be in brackets, e.g. [::1]:50051");
    }
  }
  if (parse.host.empty()) return fail(parse, AddressProblem::Malformed, text, "no host");
  if (!parse_port(port_text, &parse.address.port)) {
    return fail(parse, AddressProblem::BadPort, text,
                "port '" + std::string(port_text) + "' is not a number in 0..65535");
  }
  const int family = bracketed ? AF_INET6 : AF_INET;
  unsigned char binary[sizeof(in6_addr)];
  char canonical[INET6_ADDRSTRLEN];
  if (inet_pton(family, parse.host.c_str(), binary) != 1 ||
      inet_ntop(family, binary, canonical, sizeof(canonical)) == nullptr) {
    return fail(parse, AddressProblem::NotIp, text,
                "'" + parse.host + "' is not an " + (bracketed ? "IPv6" : "IPv4") + " address");
  }
  parse.address.host = canonical;
  return parse;
}

bool looks_like_hostname(const std::string& host) {
  bool has_letter = false;
  for (char c : host) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    has_letter = has_letter || letter;
    if (!letter && !(c >= '0' && c <= '9') && c != '.' && c != '-') return false;
  }
  return has_letter;
}

}  // namespace h2mesh::config
