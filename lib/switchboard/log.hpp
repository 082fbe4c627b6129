// Logging to stderr, one line per event:
//
//   2026-11-26T20:51:03.123Z info  session 7 opened
//
// SB_LOG(info) << "session " << id << " opened";
//
// A disabled level costs one relaxed atomic load and evaluates none of the
// operands. An enabled line is built in memory and handed to the kernel with
// one write(2), so lines from different threads never interleave.
#pragma once

#include <atomic>
#include <cstddef>
#include <sstream>
#include <string_view>

#include "switchboard/config.hpp"

namespace switchboard {

// The name used in log lines and on the command line (`--log-level`).
std::string_view to_string(log_level level) noexcept;

// Every line names this node after its level: "... info  [node-a] ...".
// A cluster node sets it at start. Safe to call from any thread.
void set_log_node(std::string_view node_id);

// Lines below `level` are dropped from now on. Safe to call from any thread.
void set_log_level(log_level level) noexcept;

namespace detail {
// Relaxed: a thread that sees a new level a little late logs or drops a line
// or two, which is harmless; nothing else is ordered by it.
extern std::atomic<int> log_threshold;

// One line being built; its destructor writes it out.
class log_line {
 public:
  explicit log_line(log_level level);
  ~log_line();
  log_line(const log_line&) = delete;
  log_line& operator=(const log_line&) = delete;

  template <class T>
  log_line& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::size_t prefix_size_;  // timestamp and level, kept apart from the escaping
  std::ostringstream stream_;
};

// Turns the streamed expression into void so that SB_LOG fits in a
// conditional expression: `&` binds looser than `<<`, so every operand is
// streamed first.
struct log_voidify {
  void operator&(const log_line&) const noexcept {}
};
}  // namespace detail

inline bool log_enabled(log_level level) noexcept {
  return static_cast<int>(level) >= detail::log_threshold.load(std::memory_order_relaxed);
}

}  // namespace switchboard

// A conditional expression rather than an `if`, so that
// `if (x) SB_LOG(info) << "..."; else ...` binds the `else` as written.
#define SB_LOG(level)                                          \
  !::switchboard::log_enabled(::switchboard::log_level::level) \
      ? (void)0                                                \
      : ::switchboard::detail::log_voidify{} &                 \
            ::switchboard::detail::log_line(::switchboard::log_level::level)
