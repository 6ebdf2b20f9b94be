#pragma once

// Reader of a cluster's `discovery` map: where its endpoints come from when they are not listed
// statically, the records of a DNS name or the EndpointSlices of a Kubernetes Service. Internal to
// config/: only parser.cc and the config tests include this. Like the other readers, it runs on
// the thread calling parse_config, reports every problem to `diag` and only writes fields whose
// value is valid.

#include <string>
#include <string_view>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace h2mesh::config {

// Reads `{ dns: {...} }` or `{ kubernetes: {...} }`. The type is set from the key written, even
// when the settings under it are wrong, so the cluster can still check that it lists no
// endpoints; with neither key or both it stays Static (and that is reported).
void read_discovery(const Located& value, Discovery* discovery, Diagnostics* diag);

// Pure text checks, exposed for tests. On failure they return false and fill *error (the reason,
// for "<path>: <error>") and *hint.
//
// A host name to resolve: labels of letters, digits and '-' (neither first nor last), 1..63
// characters each, joined by '.', at most 253 characters; one trailing '.' (a fully qualified
// name) is allowed and not counted. IP addresses and all-digit last labels are refused.
bool check_dns_name(std::string_view name, std::string* error, std::string* hint);
// A Kubernetes DNS-1123 label (namespace and Service names): lower-case letters, digits and '-'
// (neither first nor last), 1..63 characters.
bool check_dns_label(std::string_view label, std::string* error, std::string* hint);
// A Kubernetes port name (an IANA service name): a DNS-1123 label of at most 15 characters with
// at least one letter and no "--".
bool check_port_name(std::string_view name, std::string* error, std::string* hint);

}  // namespace h2mesh::config
