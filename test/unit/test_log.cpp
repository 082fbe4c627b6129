#define BOOST_TEST_MODULE log
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <boost/json.hpp>

#include <cstdio>
#include <string>

#include "switchboard/log.hpp"

namespace sb = switchboard;

namespace {

// What the log lines written by `body` look like: stderr goes to a
// temporary file meanwhile.
template <class F>
std::string captured(F body) {
  std::FILE* file = std::tmpfile();
  BOOST_REQUIRE(file != nullptr);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(::fileno(file), STDERR_FILENO);
  body();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::rewind(file);
  std::string text;
  char buffer[4096];
  std::size_t size = 0;
  while ((size = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    text.append(buffer, size);
  std::fclose(file);
  return text;
}

// Every test leaves the logger as it found it.
struct restore_logger {
  ~restore_logger() {
    sb::set_log_format(sb::log_format::text);
    sb::set_log_node("");
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(text_lines) {
  restore_logger restore;
  const auto text = captured([] {
    SB_LOG(info) << "session " << 7 << " opened";
    SB_LOG(warn).field("user", 3u).field("remote", "10.0.0.5:51234") << "line\nbreak";
  });
  const auto first_end = text.find('\n');
  const auto first = text.substr(0, first_end);
  // 2026-11-26T20:51:03.123Z info  session 7 opened
  BOOST_TEST(first.size() == 24 + 1 + 6 + 16, first);
  BOOST_TEST(first[10] == 'T');
  BOOST_TEST(first.ends_with("Z info  session 7 opened"), first);
  const auto second = text.substr(first_end + 1);
  BOOST_TEST(second.ends_with("Z warn  line\\nbreak user=3 remote=10.0.0.5:51234\n"), second);
}

BOOST_AUTO_TEST_CASE(json_lines) {
  restore_logger restore;
  sb::set_log_format(sb::log_format::json);
  sb::set_log_node("node-a");
  const auto text = captured([] {
    SB_LOG(error)
            .field("user", 18446744073709551615ull)
            .field("session", "ab-1")
            .field("code", 4001)
        << "a \"quoted\"\tline\n";
  });
  BOOST_REQUIRE(text.ends_with("}\n"));
  BOOST_TEST(text.find('\n') == text.size() - 1, text);  // one line
  const auto line = boost::json::parse(text).as_object();
  BOOST_TEST(line.at("time").as_string().size() == 24u);
  BOOST_TEST(line.at("level").as_string() == "error");
  BOOST_TEST(line.at("node").as_string() == "node-a");
  BOOST_TEST(line.at("message").as_string() == "a \"quoted\"\tline\n");
  BOOST_TEST(line.at("user").as_uint64() == 18446744073709551615ull);
  BOOST_TEST(line.at("session").as_string() == "ab-1");
  BOOST_TEST(line.at("code").as_int64() == 4001);
}

BOOST_AUTO_TEST_CASE(disabled_levels_write_nothing) {
  restore_logger restore;
  sb::set_log_format(sb::log_format::json);
  const auto text = captured([] { SB_LOG(trace) << "never"; });
  BOOST_TEST(text.empty());
}
