#pragma once

// `h2mesh webhook`: the mutating admission webhook process (docs/webhook.md). One thread: the
// HTTPS server, the namespace watch and the admin server share the main loop; an admission
// review is about a millisecond of JSON work, and a cluster creates far fewer pods per second
// than one core reviews.

#include <string>

#include "config/config.h"
#include "inject/injector.h"

namespace h2mesh::webhook {

struct WebhookSettings {
  std::string cert_file;  // PEM chain, reloaded when it changes
  std::string key_file;
  config::SocketAddress listen{"0.0.0.0", 9443};
  config::SocketAddress admin{"127.0.0.1", 9902};
  std::string kubeconfig;  // "": in-cluster credentials
  inject::Options inject;
};

// Runs until SIGTERM or SIGINT, then drains; returns the exit code (0 after a clean drain, 1 when
// it could not start).
int run_webhook(const WebhookSettings& settings);

}  // namespace h2mesh::webhook
