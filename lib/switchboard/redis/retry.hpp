// What both Redis connections do while Redis is away: wait a capped,
// jittered, exponentially growing delay between attempts, and log the
// attempts without flooding the log. Pure code, no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

namespace switchboard::redis {

// Delays min, 2min, 4min... capped at max, each drawn from [d/2, d] ("equal
// jitter": nodes that lost Redis together do not come back in lockstep, and
// no delay is shorter than half the nominal one).
class backoff {
 public:
  backoff(std::chrono::milliseconds min, std::chrono::milliseconds max);
  std::chrono::milliseconds next();
  void reset() { attempt_ = 0; }  // after a successful connect

 private:
  std::chrono::milliseconds min_, max_;
  unsigned attempt_ = 0;
  std::minstd_rand random_;
};

// Logs the first failed attempt after a success at warn, then at most one
// line per `interval` with the number of attempts since the last line.
class failure_log {
 public:
  explicit failure_log(std::string name,
                       std::chrono::steady_clock::duration interval = std::chrono::seconds(30))
      : name_(std::move(name)), interval_(interval) {}
  void failed(const std::string& why);
  void up();                          // logs "up" (at info) and rearms the first-failure line
  void down(const std::string& why);  // an up connection went down: always logged

 private:
  std::string name_;  // "redis command connection to host:port"
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_line_{};
  std::uint64_t unlogged_ = 0;  // failed attempts since the last line
  bool quiet_ = false;          // the first failure was logged already
};

}  // namespace switchboard::redis
