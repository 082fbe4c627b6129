#include "switchboard/redis/retry.hpp"

#include <algorithm>

#include "switchboard/log.hpp"

namespace switchboard::redis {

backoff::backoff(std::chrono::milliseconds min, std::chrono::milliseconds max)
    : min_(std::max(min, std::chrono::milliseconds(1))),
      max_(std::max(max, min_)),
      random_(std::random_device{}()) {}

std::chrono::milliseconds backoff::next() {
  // 2^20 times any sane minimum is past any sane cap: stop doubling there.
  const auto doublings = std::min(attempt_, 20u);
  if (attempt_ < 20) ++attempt_;
  const auto nominal = std::min<std::int64_t>(max_.count(), min_.count() << doublings);
  std::uniform_int_distribution<std::int64_t> pick(std::max<std::int64_t>(1, nominal / 2), nominal);
  return std::chrono::milliseconds(pick(random_));
}

void failure_log::failed(const std::string& why) {
  const auto now = std::chrono::steady_clock::now();
  if (!quiet_) {
    SB_LOG(warn) << name_ << ": cannot connect: " << why << " (retrying)";
    quiet_ = true;
    last_line_ = now;
    unlogged_ = 0;
    return;
  }
  ++unlogged_;
  if (now - last_line_ < interval_) return;
  SB_LOG(warn) << name_ << ": still down after " << unlogged_
               << " more attempts; last error: " << why;
  last_line_ = now;
  unlogged_ = 0;
}

void failure_log::up() {
  SB_LOG(info) << name_ << ": up";
  quiet_ = false;
  unlogged_ = 0;
}

void failure_log::down(const std::string& why) {
  SB_LOG(warn) << name_ << ": down: " << why;
  // This line stands for the first failure: the reconnect attempts that
  // follow are rate limited from here.
  quiet_ = true;
  last_line_ = std::chrono::steady_clock::now();
  unlogged_ = 0;
}

}  // namespace switchboard::redis
