// A rate limit for one kind of log line, so that nothing a client does can
// make the server write lines without bound (docs/security.md): at most
// `burst` lines per `period`; the lines held back are counted, and the next
// line written says how many.
//
//   static log_throttle throttle(10, std::chrono::seconds(1));
//   if (std::uint64_t held; throttle.allow(held))
//     SB_LOG(warn) << "accept failed: " << ec.message() << held_back(held);
//
// Thread-safe; it costs a mutex only where a line would be written.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace switchboard {

class log_throttle {
 public:
  log_throttle(unsigned burst, std::chrono::steady_clock::duration period)
      : burst_(burst), period_(period) {}

  // Whether this line may be written; `held` is then how many were held
  // back since the last one written.
  bool allow(std::uint64_t& held) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    if (now - window_start_ >= period_) {
      window_start_ = now;
      written_ = 0;
    }
    if (written_ == burst_) {
      ++held_;
      return false;
    }
    ++written_;
    held = held_;
    held_ = 0;
    return true;
  }

 private:
  const unsigned burst_;
  const std::chrono::steady_clock::duration period_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point window_start_{};
  unsigned written_ = 0;
  std::uint64_t held_ = 0;
};

// " (N similar lines held back)", or nothing.
inline std::string held_back(std::uint64_t held) {
  if (held == 0) return {};
  return " (" + std::to_string(held) + " similar lines held back)";
}

}  // namespace switchboard
