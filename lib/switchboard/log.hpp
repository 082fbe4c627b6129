// Logging to stderr, one line per event, as text (the default):
//
//   2026-11-26T20:51:03.123Z info  session 7 opened user=3 remote=10.0.0.5:51234
//
// or, with `--log-format json`, one JSON object per line for log pipelines:
//
//   {"time":"2026-11-26T20:51:03.123Z","level":"info","message":"session 7 opened",
//    "user":3,"remote":"10.0.0.5:51234"}                           (on one line)
//
// SB_LOG(info).field("user", user).field("remote", remote) << "session " << id << " opened";
//
// Fields are what a pipeline filters on (user, session, node, remote, close
// code): in text they follow the message as name=value, in JSON they are
// members of their own ("node" is added to every line of a cluster node).
//
// A disabled level costs one relaxed atomic load and evaluates none of the
// operands. An enabled line is built in memory and handed to the kernel with
// one write(2), so lines from different threads never interleave.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "switchboard/config.hpp"

namespace switchboard {

// The name used in log lines and on the command line (`--log-level`).
std::string_view to_string(log_level level) noexcept;

// Every line names this node after its level: "... info  [node-a] ...".
// A cluster node sets it at start. Safe to call from any thread.
void set_log_node(std::string_view node_id);

// Lines below `level` are dropped from now on. Safe to call from any thread.
void set_log_level(log_level level) noexcept;

// Text lines or JSON lines from now on. Safe to call from any thread.
void set_log_format(log_format format) noexcept;

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

  // A named value of the event. Integers stay numbers in JSON; anything
  // else is written as with << and becomes a JSON string.
  template <class T>
  log_line& field(std::string_view name, const T& value) {
    std::ostringstream text;
    text << value;
    fields_.push_back({std::string(name), std::move(text).str(),
                       std::is_integral_v<T> && !std::is_same_v<T, bool>});
    return *this;
  }

 private:
  struct log_field {
    std::string name;
    std::string value;
    bool number;  // written without quotes in JSON
  };
  log_level level_;
  std::chrono::system_clock::time_point time_;
  std::ostringstream stream_;      // the message
  std::vector<log_field> fields_;  // empty for most lines: no allocation
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
