#include "switchboard/metrics.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <type_traits>

#ifndef SWITCHBOARD_VERSION
#define SWITCHBOARD_VERSION "0.0.0"
#endif

namespace switchboard {

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

template <class Labels, class Value>
std::size_t slot_of(const Labels& labels, const Value& value) noexcept {
  std::size_t i = 0;
  while (i < labels.size() && labels[i] != value)
    ++i;
  return i;  // labels.size() is the "other" slot
}

void append_integer(std::string& out, std::int64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

void append_unsigned(std::string& out, std::uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

// Shortest round-trip digits in %g style ("0.0001", "1e-05"), as
// Prometheus' Go clients print floats, so `le` labels match theirs.
void append_double(std::string& out, double value) {
  char buffer[32];
  const auto result =
      std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::general);
  out.append(buffer, result.ptr);
}

void append_header(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void append_counter(std::string& out, std::string_view name, std::string_view help,
                    const std::atomic<std::uint64_t>& value) {
  append_header(out, name, "counter", help);
  out += name;
  out += ' ';
  append_unsigned(out, value.load(relaxed));
  out += '\n';
}

template <class Labels, class Slots>
void append_labelled(std::string& out, std::string_view name, std::string_view label,
                     std::string_view help, const Labels& labels, const Slots& slots) {
  append_header(out, name, "counter", help);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    out += name;
    out += '{';
    out += label;
    out += "=\"";
    if (i == labels.size()) {
      out += "other";
    } else if constexpr (std::is_arithmetic_v<typename Labels::value_type>) {
      append_unsigned(out, labels[i]);
    } else {
      out += labels[i];  // known codes: no character needs escaping
    }
    out += "\"} ";
    append_unsigned(out, slots[i].load(relaxed));
    out += '\n';
  }
}

// One histogram's series: cumulative buckets over `bounds` (their counts
// per bucket, the last +Inf), then _sum (written by `append_sum`) and
// _count. The count is the sum of the buckets as read, so that +Inf and
// _count agree even while observations land during the scrape.
template <class Bounds, class Counts, class Sum>
void append_histogram(std::string& out, std::string_view name, std::string_view help,
                      const Bounds& bounds, const Counts& counts, Sum append_sum) {
  static_assert(std::tuple_size_v<Counts> == std::tuple_size_v<Bounds> + 1);
  append_header(out, name, "histogram", help);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i].load(relaxed);
    out += name;
    out += "_bucket{le=\"";
    if (i < bounds.size()) {
      if constexpr (std::is_floating_point_v<typename Bounds::value_type>)
        append_double(out, bounds[i]);
      else
        append_unsigned(out, bounds[i]);
    } else {
      out += "+Inf";
    }
    out += "\"} ";
    append_unsigned(out, cumulative);
    out += '\n';
  }
  out += name;
  out += "_sum ";
  append_sum(out);
  out += '\n';
  out += name;
  out += "_count ";
  append_unsigned(out, cumulative);
  out += '\n';
}

}  // namespace

void metrics::count_error(std::string_view code) noexcept {
  errors_[slot_of(error_codes, code)].fetch_add(1, relaxed);
}

void metrics::count_close(std::string_view code) noexcept {
  closes_[slot_of(close_codes, code)].fetch_add(1, relaxed);
}

void metrics::count_status(bool read) noexcept {
  statuses_[read ? 1 : 0].fetch_add(1, relaxed);
}

void metrics::count_rejection(unsigned http_status) noexcept {
  rejections_[slot_of(rejection_statuses, http_status)].fetch_add(1, relaxed);
}

void latency_histogram::observe(double seconds) noexcept {
  if (!(seconds > 0)) seconds = 0;  // also catches NaN
  const auto& buckets = metrics::append_buckets;
  std::size_t bucket = 0;
  while (bucket < buckets.size() && seconds > buckets[bucket])
    ++bucket;
  counts_[bucket].fetch_add(1, relaxed);
  // Clamped so that an absurd value cannot overflow the conversion.
  constexpr double max_seconds = 1e9;
  const double clamped = seconds < max_seconds ? seconds : max_seconds;
  sum_ns_.fetch_add(static_cast<std::uint64_t>(std::llround(clamped * 1e9)), relaxed);
}

void latency_histogram::render(std::string& out, std::string_view name,
                               std::string_view help) const {
  append_histogram(out, name, help, metrics::append_buckets, counts_, [this](std::string& o) {
    append_double(o, static_cast<double>(sum_ns_.load(relaxed)) / 1e9);
  });
}

void count_histogram::observe(std::uint64_t value) noexcept {
  const auto& buckets = metrics::fanout_buckets;
  std::size_t bucket = 0;
  while (bucket < buckets.size() && value > buckets[bucket])
    ++bucket;
  counts_[bucket].fetch_add(1, relaxed);
  sum_.fetch_add(value, relaxed);
}

void count_histogram::render(std::string& out, std::string_view name, std::string_view help) const {
  append_histogram(out, name, help, metrics::fanout_buckets, counts_,
                   [this](std::string& o) { append_unsigned(o, sum_.load(relaxed)); });
}

void metrics::observe_store_append(double seconds) noexcept {
  append_.observe(seconds);
}

std::string metrics::render() const {
  std::string out;
  out.reserve(4096);

  append_header(out, "switchboard_build_info", "gauge", "Build information; always 1.");
  out += "switchboard_build_info{version=\"" SWITCHBOARD_VERSION "\"} 1\n";

  append_header(out, "switchboard_sessions", "gauge", "Open WebSocket sessions.");
  out += "switchboard_sessions ";
  append_integer(out, sessions.load(relaxed));
  out += '\n';

  append_counter(out, "switchboard_sessions_opened_total", "WebSocket sessions opened.",
                 sessions_opened_total);
  append_counter(out, "switchboard_frames_dropped_total",
                 "Frames refused for sessions already closing (after slow_consumer...).",
                 frames_dropped_total);
  append_counter(out, "switchboard_messages_received_total",
                 "SEND frames received, refused or not.", messages_received_total);
  append_counter(out, "switchboard_messages_delivered_total",
                 "Message frames (type 1) written to a session.", messages_delivered_total);
  append_counter(out, "switchboard_messages_replayed_total",
                 "Message frames written as part of a replay.", messages_replayed_total);
  append_counter(out, "switchboard_messages_evicted_total",
                 "Unacknowledged messages dropped for retention or the inbox limit.",
                 messages_evicted_total);
  append_counter(out, "switchboard_group_messages_total",
                 "Group SENDs stored (PROTOCOL.md section 10).", group_messages_total);
  append_counter(out, "switchboard_group_copies_total",
                 "Copies of group messages stored, one per member but the sender.",
                 group_copies_total);
  group_fanout.render(out, "switchboard_group_fanout",
                      "Copies made per group message (the members but the sender).");

  append_labelled(out, "switchboard_status_appended_total", "state",
                  "STATUS entries appended to senders' inboxes (section 11), by state.",
                  status_states, statuses_);
  append_labelled(out, "switchboard_errors_total", "code", "ERROR frames sent, by code.",
                  error_codes, errors_);
  append_labelled(out, "switchboard_closes_total", "code",
                  "Sessions closed by the server or client, by code.", close_codes, closes_);
  append_labelled(out, "switchboard_handshake_rejections_total", "status",
                  "HTTP requests refused instead of upgraded, by status.", rejection_statuses,
                  rejections_);

  append_.render(out, "switchboard_store_append_seconds",
                 "Time from a SEND being parsed to it being stored, in seconds.");

  append_header(out, "switchboard_store_available", "gauge",
                "1 while the store can take messages; 0 while a cluster's Redis is unreachable.");
  out += "switchboard_store_available ";
  out += store_available.load(relaxed) ? '1' : '0';
  out += '\n';

  if (cluster.load(relaxed)) {
    append_counter(out, "switchboard_redis_round_trips_total",
                   "Pipelined batches of Redis commands answered.", redis_round_trips_total);
    append_counter(out, "switchboard_redis_reconnects_total",
                   "Connections to Redis made again after one was lost.", redis_reconnects_total);
    append_counter(out, "switchboard_redis_publishes_received_total",
                   "Messages received from Redis pub/sub.", redis_publishes_received_total);
    append_counter(out, "switchboard_redis_append_reruns_total",
                   "Batches of SENDs run again because Redis's reply was lost.",
                   redis_append_reruns_total);
    redis_round_trip_seconds.render(out, "switchboard_redis_round_trip_seconds",
                                    "Time for one pipelined batch of Redis scripts or commands "
                                    "to be answered, in seconds.");
  }
  return out;
}

}  // namespace switchboard
