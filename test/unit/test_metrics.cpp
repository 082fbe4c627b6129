#define BOOST_TEST_MODULE metrics
#include <boost/test/unit_test.hpp>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "switchboard/metrics.hpp"

namespace sb = switchboard;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream lines(text);
  std::string current;
  while (std::getline(lines, current)) {
    if (current == line) return true;
  }
  return false;
}

#define CHECK_LINE(text, line) BOOST_TEST(has_line(text, line), "missing line: " << (line))

}  // namespace

BOOST_AUTO_TEST_CASE(every_series_from_the_start) {
  const sb::metrics m;
  const auto text = m.render();
  BOOST_TEST(text.back() == '\n');

  CHECK_LINE(text, "# TYPE switchboard_sessions gauge");
  CHECK_LINE(text, "switchboard_sessions 0");
  for (const char* counter :
       {"switchboard_sessions_opened_total", "switchboard_messages_received_total",
        "switchboard_messages_delivered_total", "switchboard_messages_replayed_total",
        "switchboard_messages_evicted_total"}) {
    CHECK_LINE(text, std::string("# TYPE ") + counter + " counter");
    CHECK_LINE(text, std::string(counter) + " 0");
    BOOST_TEST(text.find(std::string("# HELP ") + counter + " ") != std::string::npos);
  }
  for (const char* code : {"bad_json", "binary", "unknown_type", "bad_field", "sender_mismatch",
                           "rate_limited", "unavailable", "other"}) {
    CHECK_LINE(text, std::string("switchboard_errors_total{code=\"") + code + "\"} 0");
  }
  for (const char* code :
       {"bye", "replaced", "slow_consumer", "idle", "shutdown", "too_large", "other"}) {
    CHECK_LINE(text, std::string("switchboard_closes_total{code=\"") + code + "\"} 0");
  }
  for (const char* status : {"400", "401", "403", "404", "426", "431", "503", "other"}) {
    CHECK_LINE(text,
               std::string("switchboard_handshake_rejections_total{status=\"") + status + "\"} 0");
  }
  for (const char* family : {"switchboard_errors_total", "switchboard_closes_total",
                             "switchboard_handshake_rejections_total"}) {
    CHECK_LINE(text, std::string("# TYPE ") + family + " counter");
    BOOST_TEST(text.find(std::string("# HELP ") + family + " ") != std::string::npos);
  }
  CHECK_LINE(text, "# TYPE switchboard_store_append_seconds histogram");
  CHECK_LINE(text, "switchboard_store_append_seconds_bucket{le=\"1e-05\"} 0");
  CHECK_LINE(text, "switchboard_store_append_seconds_bucket{le=\"1\"} 0");
  CHECK_LINE(text, "switchboard_store_append_seconds_bucket{le=\"+Inf\"} 0");
  CHECK_LINE(text, "switchboard_store_append_seconds_sum 0");
  CHECK_LINE(text, "switchboard_store_append_seconds_count 0");
  CHECK_LINE(text, "# TYPE switchboard_build_info gauge");
  BOOST_TEST(text.find("switchboard_build_info{version=\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_line_is_well_formed) {
  sb::metrics m;
  m.count_error("bad_json");
  const auto text = m.render();
  std::istringstream lines(text);
  std::string line;
  std::string family;  // the last # TYPE seen: each sample must belong to it
  int samples = 0;
  while (std::getline(lines, line)) {
    BOOST_TEST_CONTEXT(line) {
      BOOST_TEST(!line.empty());
      if (line.starts_with("# HELP ")) continue;
      if (line.starts_with("# TYPE ")) {
        family = line.substr(7, line.find(' ', 7) - 7);
        continue;
      }
      BOOST_TEST(line.starts_with(family), family);
      BOOST_TEST(line.find(' ') != std::string::npos);
      ++samples;
    }
  }
  // 1 build_info + 1 gauge + 6 counters + 2 group counters + 12 fan-out buckets + sum + count
  // + 2 STATUS states + 9 errors + 7 closes + 8 rejections + 17 buckets + sum + count + the
  // store_available gauge.
  BOOST_TEST(samples == 1 + 1 + 6 + 2 + 12 + 2 + 2 + 9 + 7 + 8 + 17 + 2 + 1);
}

BOOST_AUTO_TEST_CASE(counters_move) {
  sb::metrics m;
  m.sessions += 3;
  m.sessions -= 1;
  m.sessions_opened_total += 3;
  m.messages_received_total += 10;
  m.messages_delivered_total += 7;
  m.messages_replayed_total += 2;
  m.messages_evicted_total += 1;
  m.count_error("bad_json");
  m.count_error("bad_json");
  m.count_error("rate_limited");
  m.count_error("something_new");
  m.count_close("slow_consumer");
  m.count_close("too_large");
  m.count_close("???");
  m.count_rejection(401);
  m.count_rejection(401);
  m.count_rejection(503);
  m.count_rejection(500);
  m.count_status(false);
  m.count_status(true);
  m.count_status(true);

  const auto text = m.render();
  CHECK_LINE(text, "switchboard_sessions 2");
  CHECK_LINE(text, "switchboard_sessions_opened_total 3");
  CHECK_LINE(text, "switchboard_messages_received_total 10");
  CHECK_LINE(text, "switchboard_messages_delivered_total 7");
  CHECK_LINE(text, "switchboard_messages_replayed_total 2");
  CHECK_LINE(text, "switchboard_messages_evicted_total 1");
  CHECK_LINE(text, "switchboard_errors_total{code=\"bad_json\"} 2");
  CHECK_LINE(text, "switchboard_errors_total{code=\"rate_limited\"} 1");
  CHECK_LINE(text, "switchboard_errors_total{code=\"binary\"} 0");
  CHECK_LINE(text, "switchboard_errors_total{code=\"other\"} 1");
  CHECK_LINE(text, "switchboard_closes_total{code=\"slow_consumer\"} 1");
  CHECK_LINE(text, "switchboard_closes_total{code=\"too_large\"} 1");
  CHECK_LINE(text, "switchboard_closes_total{code=\"bye\"} 0");
  CHECK_LINE(text, "switchboard_closes_total{code=\"other\"} 1");
  CHECK_LINE(text, "switchboard_handshake_rejections_total{status=\"401\"} 2");
  CHECK_LINE(text, "switchboard_handshake_rejections_total{status=\"503\"} 1");
  CHECK_LINE(text, "switchboard_handshake_rejections_total{status=\"400\"} 0");
  CHECK_LINE(text, "switchboard_handshake_rejections_total{status=\"other\"} 1");
  CHECK_LINE(text, "switchboard_status_appended_total{state=\"delivered\"} 1");
  CHECK_LINE(text, "switchboard_status_appended_total{state=\"read\"} 2");
}

BOOST_AUTO_TEST_CASE(negative_gauge) {
  sb::metrics m;
  m.sessions -= 1;  // a bug elsewhere must still render as a valid sample
  CHECK_LINE(m.render(), "switchboard_sessions -1");
}

BOOST_AUTO_TEST_CASE(histogram_cumulative) {
  sb::metrics m;
  m.observe_store_append(0.000005);  // le 1e-05
  m.observe_store_append(0.00001);   // le 1e-05: a bound is inclusive
  m.observe_store_append(0.0003);    // le 0.0005
  m.observe_store_append(0.25);      // le 0.25
  m.observe_store_append(0.5);       // le 0.5
  m.observe_store_append(2.0);       // +Inf only
  m.observe_store_append(-1.0);      // counted as 0: le 1e-05

  const auto text = m.render();
  const std::vector<std::pair<std::string, int>> expected{
      {"1e-05", 3}, {"2.5e-05", 3}, {"5e-05", 3}, {"0.0001", 3}, {"0.00025", 3}, {"0.0005", 4},
      {"0.001", 4}, {"0.0025", 4},  {"0.005", 4}, {"0.01", 4},   {"0.025", 4},   {"0.05", 4},
      {"0.1", 4},   {"0.25", 5},    {"0.5", 6},   {"1", 6},      {"+Inf", 7}};
  for (const auto& [le, count] : expected) {
    CHECK_LINE(text, "switchboard_store_append_seconds_bucket{le=\"" + le + "\"} " +
                         std::to_string(count));
  }
  // Buckets appear in increasing order of le.
  std::size_t previous = 0;
  for (const auto& [le, count] : expected) {
    const auto at = text.find("switchboard_store_append_seconds_bucket{le=\"" + le + "\"}");
    BOOST_TEST(at > previous, le);
    previous = at;
  }
  CHECK_LINE(text, "switchboard_store_append_seconds_count 7");
  // 5e-06 + 1e-05 + 0.0003 + 0.25 + 0.5 + 2 + 0, counted in whole nanoseconds.
  CHECK_LINE(text, "switchboard_store_append_seconds_sum 2.750315");
}

// Copies per group message (PROTOCOL.md section 10): buckets of counts.
BOOST_AUTO_TEST_CASE(group_fanout_histogram) {
  sb::metrics m;
  for (const std::uint64_t copies : {0, 1, 2, 3, 999, 1000, 5000})
    m.group_fanout.observe(copies);
  const auto text = m.render();
  CHECK_LINE(text, "# TYPE switchboard_group_fanout histogram");
  const std::vector<std::pair<std::string, int>> expected{
      {"0", 1},  {"1", 2},   {"2", 3},   {"5", 4},   {"10", 4},   {"20", 4},
      {"50", 4}, {"100", 4}, {"200", 4}, {"500", 4}, {"1000", 6}, {"+Inf", 7}};
  for (const auto& [le, count] : expected)
    CHECK_LINE(text, "switchboard_group_fanout_bucket{le=\"" + le + "\"} " + std::to_string(count));
  CHECK_LINE(text, "switchboard_group_fanout_sum 7005");
  CHECK_LINE(text, "switchboard_group_fanout_count 7");
  CHECK_LINE(text, "switchboard_group_messages_total 0");
  CHECK_LINE(text, "switchboard_errors_total{code=\"not_member\"} 0");
}

BOOST_AUTO_TEST_CASE(concurrent_updates_are_not_lost) {
  sb::metrics m;
  constexpr int threads = 4;
  constexpr int per_thread = 10000;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&m] {
      for (int i = 0; i < per_thread; ++i) {
        m.messages_received_total.fetch_add(1, std::memory_order_relaxed);
        m.count_error("binary");
        m.observe_store_append(0.001);
      }
    });
  }
  for (auto& worker : workers)
    worker.join();
  const auto text = m.render();
  CHECK_LINE(text, "switchboard_messages_received_total 40000");
  CHECK_LINE(text, "switchboard_errors_total{code=\"binary\"} 40000");
  CHECK_LINE(text, "switchboard_store_append_seconds_count 40000");
  CHECK_LINE(text, "switchboard_store_append_seconds_bucket{le=\"0.001\"} 40000");
  CHECK_LINE(text, "switchboard_store_append_seconds_sum 40");
}
