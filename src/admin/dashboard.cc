#include "admin/dashboard.h"

#include <utility>

namespace h2mesh::admin {

Dashboard::Dashboard(net::EventLoop& loop, Collect collect)
    : loop_(loop), collect_(std::move(collect)), ticker_(loop, [this] { tick(); }) {}

void Dashboard::with_fresh(Ready ready) {
  last_look_ = loop_.now();
  if (!ticker_.armed()) ticker_.arm(kInterval);
  const LiveSample* newest = history_.newest();
  if (!collecting_ && newest && loop_.now() - newest->at < kInterval) {
    ready(history_);
    return;
  }
  waiting_.push_back(std::move(ready));
  if (!collecting_) collect_now();
}

void Dashboard::tick() {
  if (loop_.now() - last_look_ > kWatchedFor) {
    // Nobody looked for a while: no more collections, and the memory of the history goes.
    history_.clear();
    return;
  }
  const LiveSample* newest = history_.newest();
  // A request may just have collected: keep the samples about a second apart.
  if (!collecting_ && (!newest || loop_.now() - newest->at >= kInterval * 9 / 10)) collect_now();
  ticker_.arm(kInterval);
}

void Dashboard::collect_now() {
  collecting_ = true;
  collect_([this](proxy::WorkerStats stats) {
    collecting_ = false;
    history_.push(make_live_sample(stats, loop_.now()));
    std::vector<Ready> waiting = std::exchange(waiting_, {});
    for (auto& ready : waiting) ready(history_);
  });
}

}  // namespace h2mesh::admin
