// The series served at GET /metrics (PROTOCOL.md section 6). Every member is
// a relaxed atomic: sessions on any thread update them without a lock, and a
// scrape sees each series at some recent value (the series are not a
// consistent snapshot of one instant, which Prometheus does not expect).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace switchboard {

// A Prometheus histogram of durations in seconds over metrics::append_buckets.
class latency_histogram {
 public:
  // Negative or NaN values (a clock stepping back) count as 0.
  void observe(double seconds) noexcept;
  void render(std::string& out, std::string_view name, std::string_view help) const;

 private:
  // Per bucket, not cumulative (one increment per observation); the last
  // slot is +Inf. render() accumulates.
  std::array<std::atomic<std::uint64_t>, 17> counts_{};
  // Nanoseconds: integer addition is exact and needs no CAS loop.
  std::atomic<std::uint64_t> sum_ns_{0};
};

// A Prometheus histogram of counts (members per group message) over
// metrics::fanout_buckets.
class count_histogram {
 public:
  void observe(std::uint64_t value) noexcept;
  void render(std::string& out, std::string_view name, std::string_view help) const;

 private:
  std::array<std::atomic<std::uint64_t>, 12> counts_{};  // per bucket; the last is +Inf
  std::atomic<std::uint64_t> sum_{0};
};

class metrics {
 public:
  // Label values known in advance, so that every series is exposed (at 0)
  // from the first scrape: a series that appears late breaks rate() and
  // alerts on absent(). A value not listed here is counted under "other"
  // rather than dropped, so the totals stay true.
  static constexpr std::array<std::string_view, 8> error_codes{
      "bad_json",        "binary",       "unknown_type", "bad_field",
      "sender_mismatch", "rate_limited", "unavailable",  "not_member"};
  static constexpr std::array<std::string_view, 6> close_codes{"bye",  "replaced", "slow_consumer",
                                                               "idle", "shutdown", "too_large"};
  // The states of STATUS entries (PROTOCOL.md section 11).
  static constexpr std::array<std::string_view, 2> status_states{"delivered", "read"};
  static constexpr std::array<unsigned, 7> rejection_statuses{400, 401, 403, 404, 426, 431, 503};
  // Upper bounds in seconds of the histograms: an append
  // takes about 10 µs in memory and up to a second for an fsync on a busy disk.
  static constexpr std::array<double, 16> append_buckets{
      0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
      0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   0.5,   1.0};

  std::atomic<std::int64_t> sessions{0};  // gauge: open sessions
  std::atomic<std::uint64_t> sessions_opened_total{0};
  // Frames refused for sessions that were already closing (abort_session):
  // counted here instead of a log line each.
  std::atomic<std::uint64_t> frames_dropped_total{0};
  std::atomic<std::uint64_t> messages_received_total{0};   // every SEND frame, refused or not
  std::atomic<std::uint64_t> messages_delivered_total{0};  // frames of type 1 written
  std::atomic<std::uint64_t> messages_replayed_total{0};
  std::atomic<std::uint64_t> messages_evicted_total{0};
  // Group SENDs stored (PROTOCOL.md section 10), the copies they made, and
  // the copies per message (members but the sender).
  static constexpr std::array<std::uint64_t, 11> fanout_buckets{0,  1,   2,   5,   10,  20,
                                                                50, 100, 200, 500, 1000};
  std::atomic<std::uint64_t> group_messages_total{0};
  std::atomic<std::uint64_t> group_copies_total{0};
  count_histogram group_fanout;

  // The store can take writes (always, but for a cluster whose Redis is
  // unreachable): /healthz answers 503 store_unavailable without it.
  std::atomic<bool> store_available{true};

  // The cluster's Redis figures (redis:// store), rendered once `cluster`
  // is set.
  std::atomic<bool> cluster{false};
  std::atomic<std::uint64_t> redis_round_trips_total{0};
  std::atomic<std::uint64_t> redis_reconnects_total{0};
  std::atomic<std::uint64_t> redis_publishes_received_total{0};
  // Batches of appends run again after their reply was lost (redis_backend.cpp).
  std::atomic<std::uint64_t> redis_append_reruns_total{0};
  latency_histogram redis_round_trip_seconds;  // one pipelined batch of commands or scripts

  void count_error(std::string_view code) noexcept;
  void count_close(std::string_view code) noexcept;
  void count_rejection(unsigned http_status) noexcept;
  // A STATUS entry appended to a sender's inbox.
  void count_status(bool read) noexcept;
  // From the SEND being parsed to it being stored. Negative or NaN values
  // (a clock stepping back) count as 0.
  void observe_store_append(double seconds) noexcept;

  // Prometheus text exposition format 0.0.4.
  std::string render() const;

 private:
  // One slot per known label value, then one for "other".
  std::array<std::atomic<std::uint64_t>, error_codes.size() + 1> errors_{};
  std::array<std::atomic<std::uint64_t>, close_codes.size() + 1> closes_{};
  std::array<std::atomic<std::uint64_t>, rejection_statuses.size() + 1> rejections_{};
  std::array<std::atomic<std::uint64_t>, status_states.size()> statuses_{};  // no "other"
  latency_histogram append_;
};

}  // namespace switchboard
