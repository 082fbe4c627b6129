// The built binary, as an operator runs it: options, the `listening on`
// line, a real exchange, SIGTERM, exit codes.
#define BOOST_TEST_MODULE binary
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/test_support.hpp"

using namespace switchboard::test;
namespace json = boost::json;

BOOST_AUTO_TEST_CASE(exchange_then_sigterm_drains_and_exits_0) {
  child_process server({"--listen", "127.0.0.1:0", "--store", "memory:", "--threads", "2"});
  const auto port = server.wait_listening();
  BOOST_TEST(server.stdout_text().find("listening on 127.0.0.1:" + std::to_string(port) + "\n") ==
             0u);

  ws_client alice(port, "/ws/1");
  ws_client bob(port, "/ws/2");
  alice.send(send_frame(2, "over the real binary", "s1"));
  BOOST_TEST(alice.read().at("type").as_int64() == 2);
  BOOST_TEST(str(bob.read().at("content")) == "over the real binary");

  server.signal(SIGTERM);
  std::vector<json::object> fa, fb;
  BOOST_TEST(alice.read_until_closed(&fa) == 1001u);
  BOOST_TEST(bob.read_until_closed(&fb) == 1001u);
  BOOST_REQUIRE(!fa.empty());
  BOOST_REQUIRE(!fb.empty());
  BOOST_TEST(str(fa.back().at("code")) == "shutdown");
  BOOST_TEST(str(fb.back().at("code")) == "shutdown");
  BOOST_TEST(server.wait() == 0);
  // Exactly one line on stdout.
  const auto out = server.stdout_text();
  BOOST_TEST(std::count(out.begin(), out.end(), '\n') == 1);
}

BOOST_AUTO_TEST_CASE(sigint_also_exits_0) {
  child_process server({"--listen", "127.0.0.1:0", "--store", "memory:"});
  server.wait_listening();
  server.signal(SIGINT);
  BOOST_TEST(server.wait() == 0);
}

BOOST_AUTO_TEST_CASE(bad_options_exit_2_naming_the_option) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--no-such-option"}, "no-such-option"},
      {{"--threads", "abc"}, "threads"},
      {{"--max-message-bytes", "-1"}, "max-message-bytes"},
      {{"--listen", "nowhere"}, "listen"},
      {{"--store", "postgres://x"}, "store"},
      {{"--sync", "sometimes"}, "sync"},
  };
  for (const auto& [args, option] : cases) {
    child_process p(args);
    BOOST_TEST_CONTEXT(args.front()) {
      BOOST_TEST(p.wait() == 2);
      BOOST_TEST(p.stderr_text().find(option) != std::string::npos);
      BOOST_TEST(p.stdout_text().empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(help_and_version_exit_0) {
  child_process help({"--help"});
  BOOST_TEST(help.wait() == 0);
  BOOST_TEST(help.stdout_text().find("--max-sessions-per-user") != std::string::npos);
  child_process version({"--version"});
  BOOST_TEST(version.wait() == 0);
  BOOST_TEST(version.stdout_text().find("switchboard") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(port_in_use_exits_1_with_one_line) {
  boost::asio::io_context context;
  boost::asio::ip::tcp::acceptor taken(context, {boost::asio::ip::address_v4::loopback(), 0});
  const auto port = taken.local_endpoint().port();
  child_process p({"--listen", "127.0.0.1:" + std::to_string(port), "--store", "memory:"});
  BOOST_TEST(p.wait() == 1);
  const auto err = p.stderr_text();
  BOOST_TEST(err.find(std::to_string(port)) != std::string::npos);
  BOOST_TEST(err.substr(err.rfind('\n', err.size() - 2) + 1).find("switchboard:") !=
             std::string::npos);
  BOOST_TEST(p.stdout_text().empty());
}

BOOST_AUTO_TEST_CASE(unreadable_config_file_exits_1) {
  child_process p({"--config", "/nonexistent/switchboard.conf"});
  BOOST_TEST(p.wait() == 1);
  BOOST_TEST(!p.stderr_text().empty());
}

BOOST_AUTO_TEST_CASE(unusable_tls_files_exit_1_naming_the_option) {
  // A certificate that is not there, then a "certificate" that is not PEM.
  child_process missing({"--listen", "127.0.0.1:0", "--store", "memory:", "--tls-cert",
                         "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"});
  BOOST_TEST(missing.wait() == 1);
  BOOST_TEST(missing.stderr_text().find("--tls-cert") != std::string::npos);
  BOOST_TEST(missing.stdout_text().empty());

  const std::string junk = "/tmp/switchboard-junk-" + std::to_string(::getpid()) + ".pem";
  { std::ofstream(junk) << "not a certificate\n"; }
  child_process garbage(
      {"--listen", "127.0.0.1:0", "--store", "memory:", "--tls-cert", junk, "--tls-key", junk});
  BOOST_TEST(garbage.wait() == 1);
  BOOST_TEST(garbage.stderr_text().find("--tls-cert") != std::string::npos);
  std::remove(junk.c_str());
}

// With --log-format json each session's lines carry its id and user, and
// its close the reason and the WebSocket close code, as fields a log
// pipeline can filter on (docs/operations.md).
BOOST_AUTO_TEST_CASE(json_log_lines_name_the_session_and_why_it_closed) {
  child_process server({"--listen", "127.0.0.1:0", "--store", "memory:", "--log-format", "json",
                        "--log-level", "debug", "--max-sessions-per-user", "1"});
  const auto port = server.wait_listening();
  {
    ws_client first(port, "/ws/7");
    ws_client second(port, "/ws/7");  // replaces the first
    BOOST_TEST(first.read_until_closed() == 4001u);
  }
  server.signal(SIGTERM);
  BOOST_TEST(server.wait() == 0);

  std::istringstream lines(server.stderr_text());
  std::vector<json::object> logged;
  for (std::string line; std::getline(lines, line);) {
    boost::system::error_code ec;
    auto value = json::parse(line, ec);
    BOOST_TEST_REQUIRE(!ec, "not a JSON line: " << line);
    logged.push_back(value.as_object());
  }
  const auto has = [&](const auto& match) {
    return std::any_of(logged.begin(), logged.end(), match);
  };
  BOOST_TEST(has([](const json::object& l) {
    return l.contains("session") && l.contains("user") && l.at("user").to_number<int>() == 7 &&
           l.at("message").as_string().ends_with(" opened");
  }));
  BOOST_TEST(has([](const json::object& l) {
    return l.contains("close") && l.at("close") == "replaced" &&
           l.at("close_code").to_number<int>() == 4001 && l.at("user").to_number<int>() == 7;
  }));
}
