#pragma once

// DNS discovery with c-ares. The resolver itself is created by make_dns_resolver()
// (discovery/resolver.h); this header exposes its scheduling rules, which are pure functions so
// tests can check them without a DNS server.
//
// What a resolution round does, and what the resolver decides from it:
// - A and AAAA are asked in parallel (ares_search: the system's search domains and ndots apply,
//   a trailing dot disables them), from the configured resolvers or /etc/resolv.conf.
// - Both answers must be definitive for the round to count. Records, NODATA and NXDOMAIN are
//   definitive; a timeout, SERVFAIL, REFUSED, an unreachable server or a malformed answer is
//   not, and a round with any of them changes nothing: the last known set stays in use,
//   last_error() says why, and the next round follows the retry backoff.
// - A definitive answer without records is authoritative (a headless Service scaled to zero):
//   it empties the set, but only once a second answer, min_interval later, agrees, so a single
//   stray negative answer cannot take every endpoint away at once.
// - The set reported is sorted and deduplicated; the callback runs on the first definitive
//   answer and afterwards only when the set changed.

#include <cstdint>
#include <optional>

#include "common/time.h"
#include "config/config.h"

namespace h2mesh::discovery {

// When to resolve again after a definitive answer: the smallest TTL of its records, kept within
// [min_interval, max_interval]; min_interval when it had no records (nothing to cache, and a
// Service that scales up from zero is noticed quickly).
Duration dns_refresh_delay(std::optional<uint32_t> min_ttl_seconds,
                           const config::DnsDiscovery& dns);

// When to try again after `failures` (>= 1) rounds in a row failed: min_interval, doubled per
// further failure, at most max_interval.
Duration dns_retry_delay(uint32_t failures, const config::DnsDiscovery& dns);

}  // namespace h2mesh::discovery
