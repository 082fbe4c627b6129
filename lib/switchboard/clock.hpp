// Wall-clock time as the protocol counts it. One definition, so `ts`,
// retention and token expiry can never disagree on the epoch or the unit.
#pragma once

#include <chrono>
#include <cstdint>

namespace switchboard {

// Milliseconds since the Unix epoch: the `ts` of frames, retention.
inline std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Seconds since the Unix epoch: JWT `exp` and `nbf`.
inline std::int64_t unix_seconds() {
  return unix_ms() / 1000;
}

}  // namespace switchboard
