#include "config/config.h"

namespace h2mesh::config {

const char* lb_policy_name(LbPolicy p) {
  switch (p) {
    case LbPolicy::RoundRobin:
      return "round_robin";
    case LbPolicy::Random:
      return "random";
    case LbPolicy::LeastRequest:
      return "least_request";
  }
  return "unknown";
}

}  // namespace h2mesh::config
