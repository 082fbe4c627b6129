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

std::atomic<bool> json_lines{false};

// The node's name or null: set at start (set_log_node()). An atomic pointer
// into a list that only grows, because tests run several nodes in one
// process and a line may be built while another node starts.
std::atomic<const std::string*> node_name{nullptr};
std::mutex node_names_mutex;
std::list<std::string> node_names;  // every name ever set, so none is freed while in use

// "2026-11-26T20:51:03.123Z": UTC, so that the logs of several nodes sort together.
std::string timestamp(std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  const std::time_t seconds = system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  const int size = std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                                 utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                                 utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  return std::string(buffer, size > 0 ? static_cast<std::size_t>(size) : 0);
}

// Messages quote client input (user ids, frame contents): a newline or
// other control character in it must not start a forged log line.
void append_escaped_text(std::string& out, std::string_view text) {
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f) {
      out.push_back(ch);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
}

// A JSON string; bytes that are not UTF-8 pass through as they are (log
// pipelines replace them), control characters never do.
void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

}  // namespace

log_line::log_line(log_level level) : level_(level), time_(std::chrono::system_clock::now()) {}

log_line::~log_line() {
  const std::string message = std::move(stream_).str();
  const std::string* node = node_name.load(std::memory_order_acquire);
  std::string text;
  text.reserve(message.size() + 64);
  if (json_lines.load(std::memory_order_relaxed)) {
    text += "{\"time\":\"" + timestamp(time_) + "\",\"level\":\"";
    text += to_string(level_);
    text += '"';
    if (node != nullptr) {
      text += ",\"node\":";
      append_json_string(text, *node);
    }
    text += ",\"message\":";
    append_json_string(text, message);
    for (const auto& f : fields_) {
      text += ',';
      append_json_string(text, f.name);
      text += ':';
      if (f.number) {
        text += f.value;
      } else {
        append_json_string(text, f.value);
      }
    }
    text += '}';
  } else {
    // "2026-11-26T20:51:03.123Z info  [node] message name=value": the level
    // padded so that messages line up.
    char level[8];
    std::snprintf(level, sizeof level, "%-5s ", std::string(to_string(level_)).c_str());
    text += timestamp(time_) + " " + level;
    if (node != nullptr) text += "[" + *node + "] ";
    append_escaped_text(text, message);
    for (const auto& f : fields_) {
      text += ' ' + f.name + '=';
      append_escaped_text(text, f.value);
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

void set_log_format(log_format format) noexcept {
  detail::json_lines.store(format == log_format::json, std::memory_order_relaxed);
}

void set_log_node(std::string_view node_id) {
  const std::string* name = nullptr;
  if (!node_id.empty()) {
    std::lock_guard lock(detail::node_names_mutex);
    name = &detail::node_names.emplace_back(node_id);
  }
  detail::node_name.store(name, std::memory_order_release);
}

}  // namespace switchboard
