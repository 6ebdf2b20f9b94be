#include "proxy/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace h2mesh::proxy {

namespace {

// Capacity of each worker for weights `w`: the burst split by weight over one token each, so
// every worker can admit a call; with fewer burst calls than workers, one token each.
Tokens capacity_for(uint32_t burst, size_t workers, double w) {
  const Tokens spare = (static_cast<Tokens>(burst) - static_cast<Tokens>(workers)) * kToken;
  if (spare <= 0) return kToken;
  return kToken + static_cast<Tokens>(std::llround(static_cast<double>(spare) * w));
}

// "20", "0.5": the rate as it was written.
std::string format_rate(double calls_per_second) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.6g", calls_per_second);
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TokenBucket

void TokenBucket::start(double calls_per_second, Tokens capacity, TimePoint now) {
  rate_ = calls_per_second;
  capacity_ = capacity;
  tokens_ = capacity;
  last_ = now;
}

void TokenBucket::refill(TimePoint now) {
  if (now <= last_) return;
  const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count();
  last_ = now;
  if (tokens_ >= capacity_) return;
  // calls_per_second tokens per second is calls_per_second billionths per nanosecond. Computed
  // in double and cut to the room left, so long idle times cannot overflow.
  const double earned = rate_ * static_cast<double>(elapsed);
  const Tokens room = capacity_ - tokens_;
  tokens_ += earned >= static_cast<double>(room) ? room : static_cast<Tokens>(earned);
}

bool TokenBucket::has_token(TimePoint now) {
  refill(now);
  return tokens_ >= kToken;
}

void TokenBucket::apply(const RateShare& share, TimePoint now) {
  refill(now);
  rate_ = share.calls_per_second;
  capacity_ = share.capacity;
  tokens_ = std::min(tokens_ + share.token_delta, capacity_);
}

// ---------------------------------------------------------------------------------------------
// Shares

RateShare initial_share(const config::RateLimit& limit, size_t workers) {
  const double w = 1.0 / static_cast<double>(std::max<size_t>(workers, 1));
  return RateShare{limit.calls_per_second * w, capacity_for(limit.burst, workers, w), 0};
}

std::vector<RateShare> share_limit(const config::RateLimit& limit,
                                   std::span<const WorkerDemand> reports) {
  const size_t n = reports.size();
  std::vector<RateShare> shares(n);
  if (n == 0) return shares;
  uint64_t demand = 0;
  Tokens total = 0;
  for (const WorkerDemand& r : reports) {
    demand += r.calls;
    total += r.tokens;
  }
  const Tokens ready = static_cast<Tokens>(n) * kToken;
  std::vector<Tokens> targets(n);
  for (size_t i = 0; i < n; ++i) {
    // Each worker's weight is its share of the calls of the last period: every call had the
    // same chance, as with a single bucket. Nobody asked: equal parts.
    const double w = demand == 0
                         ? 1.0 / static_cast<double>(n)
                         : static_cast<double>(reports[i].calls) / static_cast<double>(demand);
    RateShare& s = shares[i];
    s.calls_per_second = limit.calls_per_second * w;
    s.capacity = capacity_for(limit.burst, n, w);
    // While there are enough tokens, every worker keeps one ready so that its next call does not
    // wait for a period; the rest follows demand. Below that, all follow demand.
    targets[i] =
        total >= ready
            ? kToken + static_cast<Tokens>(std::floor(static_cast<double>(total - ready) * w))
            : static_cast<Tokens>(std::floor(static_cast<double>(total) * w));
  }
  // Products in double may round up by a few billionths: take them back from the largest
  // target, so that a redistribution never creates tokens.
  const Tokens excess = std::accumulate(targets.begin(), targets.end(), Tokens{0}) - total;
  if (excess > 0) *std::max_element(targets.begin(), targets.end()) -= excess;
  for (size_t i = 0; i < n; ++i) {
    shares[i].token_delta = std::min(targets[i], shares[i].capacity) - reports[i].tokens;
  }
  return shares;
}

std::vector<RateLimitSpec> rate_limit_specs(const config::Config& config) {
  std::vector<RateLimitSpec> specs;
  for (const config::Listener& l : config.listeners) {
    if (l.rate_limit) specs.push_back({RateLimitKey{l.name, -1}, *l.rate_limit});
    for (size_t i = 0; i < l.routes.size(); ++i) {
      if (l.routes[i].rate_limit)
        specs.push_back({RateLimitKey{l.name, static_cast<int>(i)}, *l.routes[i].rate_limit});
    }
  }
  return specs;
}

// ---------------------------------------------------------------------------------------------
// RateLimits

void RateLimits::configure(std::shared_ptr<const config::Config> config, size_t workers,
                           TimePoint now, WorkerStats& stats) {
  std::vector<RateLimitSpec> specs = rate_limit_specs(*config);
  std::vector<std::unique_ptr<Limiter>> next;
  for (RateLimitSpec& spec : specs) {
    auto same = std::find_if(limiters_.begin(), limiters_.end(), [&](const auto& l) {
      return l && l->key == spec.key && l->limit == spec.limit;
    });
    if (same != limiters_.end()) {
      // Unchanged by a reload: its bucket and share go on (the other workers keep theirs too).
      next.push_back(std::move(*same));
      continue;
    }
    auto limiter = std::make_unique<Limiter>();
    limiter->key = spec.key;
    limiter->limit = spec.limit;
    const RateShare share = initial_share(spec.limit, workers);
    limiter->bucket.start(share.calls_per_second, share.capacity, now);
    limiter->limited = &stats.rate_limited[spec.key];  // keeps its count if only settings changed
    next.push_back(std::move(limiter));
  }
  // Counters of limits that are gone would otherwise stay in /metrics forever.
  for (auto it = stats.rate_limited.begin(); it != stats.rate_limited.end();) {
    const bool kept = std::any_of(specs.begin(), specs.end(),
                                  [&](const RateLimitSpec& s) { return s.key == it->first; });
    it = kept ? std::next(it) : stats.rate_limited.erase(it);
  }
  limiters_ = std::move(next);
  config_ = std::move(config);
  by_listener_.clear();
  for (const auto& limiter : limiters_) {
    const config::Listener* listener = nullptr;
    for (const auto& l : config_->listeners)
      if (l.name == limiter->key.listener) listener = &l;
    ListenerLimits& entry = by_listener_[listener->name];
    entry.routes.resize(listener->routes.size());
    if (limiter->key.route < 0) {
      entry.listener = limiter.get();
    } else {
      entry.routes[static_cast<size_t>(limiter->key.route)] = limiter.get();
    }
  }
}

const RateLimits::Limiter* RateLimits::admit_limited(std::string_view listener, size_t route_index,
                                                     TimePoint now) {
  auto it = by_listener_.find(listener);
  if (it == by_listener_.end()) return nullptr;
  Limiter* route =
      route_index < it->second.routes.size() ? it->second.routes[route_index] : nullptr;
  Limiter* whole = it->second.listener;
  if (route) {
    route->demand++;
    if (!route->bucket.has_token(now)) {
      ++*route->limited;
      return route;
    }
  }
  if (whole) {
    // Asked only by calls their route admitted: those are the calls this token decides.
    whole->demand++;
    if (!whole->bucket.has_token(now)) {
      ++*whole->limited;
      return whole;
    }
    whole->bucket.take();
  }
  if (route) route->bucket.take();
  return nullptr;
}

std::string RateLimits::refusal_message(const Limiter& limiter) {
  std::string what = limiter.key.route < 0 ? "listener " + limiter.key.listener
                                           : "route " + std::to_string(limiter.key.route) +
                                                 " of listener " + limiter.key.listener;
  return "h2mesh: rate limit of " + what + " exceeded (" +
         format_rate(limiter.limit.calls_per_second) + " calls/s, burst " +
         std::to_string(limiter.limit.burst) + ")";
}

std::vector<WorkerDemand> RateLimits::collect(TimePoint now) {
  std::vector<WorkerDemand> out;
  out.reserve(limiters_.size());
  for (const auto& l : limiters_) {
    out.push_back(WorkerDemand{l->demand, l->bucket.tokens(now)});
    l->demand = 0;
  }
  return out;
}

void RateLimits::apply(std::span<const RateShare> shares, TimePoint now) {
  if (shares.size() != limiters_.size()) return;
  for (size_t i = 0; i < shares.size(); ++i) limiters_[i]->bucket.apply(shares[i], now);
}

}  // namespace h2mesh::proxy
