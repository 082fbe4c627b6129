#include "switchboard/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <list>
#include <mutex>
#include <string>

namespace switchboard {

namespace detail {
std::atomic<int> log_threshold{static_cast<int>(log_level::info)};
}  // namespace detail

std::string_view to_string(log_level level) noexcept {
  switch (level) {
    case log_level::trace:
      return "trace";
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    case log_level::error:
      return "error";
  }
  return "?";
}

void set_log_level(log_level level) noexcept {
  detail::log_threshold.store(static_cast<int>(level), std::memory_order_relaxed);
}

namespace detail {

namespace {

// "[node] " or null: set at start (set_log_node()). An atomic pointer into
// a list that only grows, because tests run several nodes in one process and
// a line may be built while another node starts.
std::atomic<const std::string*> node_tag{nullptr};
std::mutex node_tags_mutex;
std::list<std::string> node_tags;  // every tag ever set, so none is freed while in use

// "2026-11-26T20:51:03.123Z info  ": UTC, so that the logs of several nodes
// sort together; the level padded so that messages line up.
std::string line_prefix(log_level level) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  const std::time_t seconds = system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  const int size =
      std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s ",
                    utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                    utc.tm_sec, static_cast<int>(millis), std::string(to_string(level)).c_str());
  std::string prefix(buffer, size > 0 ? static_cast<std::size_t>(size) : 0);
  if (const auto* tag = node_tag.load(std::memory_order_acquire)) prefix += *tag;
  return prefix;
}

}  // namespace

log_line::log_line(log_level level) {
  const std::string prefix = line_prefix(level);
  prefix_size_ = prefix.size();
  stream_ << prefix;
}

log_line::~log_line() {
  std::string line = std::move(stream_).str();
  // Messages quote client input (user ids, frame contents): a newline or
  // other control character in it must not start a forged log line.
  std::string text;
  text.reserve(line.size() + 1);
  text.append(line, 0, prefix_size_);
  for (std::size_t i = prefix_size_; i < line.size(); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (c >= 0x20 && c != 0x7f) {
      text.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      text += "\\n";
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      text += escaped;
    }
  }
  text.push_back('\n');

  // One write(2) per line keeps lines whole across threads; the loop only
  // runs again after a signal or a short write, both rare on stderr.
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t written = ::write(STDERR_FILENO, data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      return;  // stderr is gone: there is nowhere left to report it
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
}

}  // namespace detail

void set_log_node(std::string_view node_id) {
  const std::string* tag = nullptr;
  if (!node_id.empty()) {
    std::lock_guard lock(detail::node_tags_mutex);
    tag = &detail::node_tags.emplace_back("[" + std::string(node_id) + "] ");
  }
  detail::node_tag.store(tag, std::memory_order_release);
}

}  // namespace switchboard
