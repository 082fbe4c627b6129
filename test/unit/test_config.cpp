#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include "switchboard/config.hpp"

namespace sb = switchboard;
using namespace std::chrono_literals;

namespace {

// `environment`: NAME=value entries, as the process would see them. The
// tests never read the real environment, whatever CI sets.
sb::config_result parse(std::initializer_list<std::string> args,
                        std::initializer_list<std::string> environment = {}) {
  std::vector<std::string> words{"switchboard"};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& word : words)
    argv.push_back(word.c_str());
  argv.push_back(nullptr);
  std::vector<const char*> envp;
  for (const auto& entry : environment)
    envp.push_back(entry.data());
  envp.push_back(nullptr);
  return sb::parse_config(static_cast<int>(words.size()), argv.data(), envp.data());
}

sb::config parsed(std::initializer_list<std::string> args,
                  std::initializer_list<std::string> environment = {}) {
  auto result = parse(args, environment);
  if (const auto* exit = std::get_if<sb::config_exit>(&result)) {
    BOOST_FAIL("unexpected exit " << exit->code << ": " << exit->output);
  }
  return std::get<sb::config>(result);
}

sb::config_exit exited(std::initializer_list<std::string> args,
                       std::initializer_list<std::string> environment = {}) {
  auto result = parse(args, environment);
  BOOST_REQUIRE_MESSAGE(std::holds_alternative<sb::config_exit>(result), "expected an exit");
  return std::get<sb::config_exit>(result);
}

// Exit 2, naming the option first and pointing at --help.
void check_usage_error(std::initializer_list<std::string> args, const std::string& option) {
  const auto exit = exited(args);
  BOOST_TEST(exit.code == 2);
  BOOST_TEST(exit.output.starts_with("switchboard: --" + option + ": "), exit.output);
  BOOST_TEST(exit.output.find("try --help") != std::string::npos, exit.output);
  BOOST_TEST(exit.output.back() == '\n');
}

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  BOOST_REQUIRE(::gethostname(name, sizeof name - 1) == 0);
  return name;
}

// A file in the temporary directory, removed at the end of the test.
struct temp_file {
  std::filesystem::path path;
  explicit temp_file(const std::string& content)
      : path(std::filesystem::temp_directory_path() /
             ("switchboard_test_config_" + std::to_string(::getpid()) + ".conf")) {
    std::ofstream(path) << content;
  }
  ~temp_file() { std::filesystem::remove(path); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(defaults) {
  const auto c = parsed({});
  BOOST_TEST(c.listen_host == "127.0.0.1");
  BOOST_TEST(c.listen_port == 8080);
  BOOST_TEST(c.threads == std::max(1u, std::thread::hardware_concurrency()));
  BOOST_TEST(c.store == "sqlite:switchboard.db");
  BOOST_TEST((c.sync == sb::sync_mode::normal));
  BOOST_TEST(c.node_id == host_name() + ":8080");
  BOOST_TEST(c.dedup_window.count() == 600);
  BOOST_TEST(c.handshake_timeout.count() == 10);
  BOOST_TEST(c.max_message_bytes == 65536u);
  BOOST_TEST(c.max_connections == 100000u);
  BOOST_TEST(c.max_sessions_per_user == 4u);
  BOOST_TEST(c.send_queue_bytes == 1048576u);
  BOOST_TEST(c.rate_limit == 0u);
  BOOST_TEST(c.ping_interval.count() == 30);
  BOOST_TEST(c.idle_timeout.count() == 75);
  BOOST_TEST(c.retention.count() == 604800);
  BOOST_TEST(c.inbox_limit == 10000u);
  BOOST_TEST(c.inbox_bytes == 16u * 1024 * 1024);
  BOOST_TEST(c.memory_store_bytes == 256u * 1024 * 1024);
  BOOST_TEST(c.store_queue_bytes == 64u * 1024 * 1024);
  BOOST_TEST(c.drain_timeout.count() == 10);
  BOOST_TEST(!c.jwt_secret_file.has_value());
  BOOST_TEST(!c.tls_cert.has_value());
  BOOST_TEST(!c.tls_key.has_value());
  BOOST_TEST(c.allow_origins.empty());
  BOOST_TEST((c.level == sb::log_level::info));
  BOOST_TEST((c.format == sb::log_format::text));
}

BOOST_AUTO_TEST_CASE(every_option) {
  const auto c = parsed({"--listen",
                         "0.0.0.0:9000",
                         "--threads",
                         "3",
                         "--store",
                         "memory:",
                         "--sync",
                         "full",
                         "--node-id",
                         "node-a",
                         "--dedup-window",
                         "60",
                         "--handshake-timeout",
                         "5",
                         "--max-message-bytes",
                         "1024",
                         "--max-connections",
                         "50",
                         "--max-sessions-per-user",
                         "1",
                         "--send-queue-bytes",
                         "4096",
                         "--rate-limit",
                         "20",
                         "--ping-interval",
                         "7",
                         "--idle-timeout",
                         "20",
                         "--retention",
                         "3600",
                         "--inbox-limit",
                         "9",
                         "--inbox-bytes",
                         "5000",
                         "--memory-store-bytes",
                         "70000",
                         "--store-queue-bytes",
                         "80000",
                         "--drain-timeout",
                         "0",
                         "--jwt-secret-file",
                         "/etc/secret",
                         "--tls-cert",
                         "cert.pem",
                         "--tls-key",
                         "key.pem",
                         "--allow-origin",
                         "https://a.example",
                         "--allow-origin",
                         "https://b.example",
                         "--log-level",
                         "debug",
                         "--log-format",
                         "json"});
  BOOST_TEST(c.listen_host == "0.0.0.0");
  BOOST_TEST(c.listen_port == 9000);
  BOOST_TEST(c.threads == 3u);
  BOOST_TEST(c.store == "memory:");
  BOOST_TEST((c.sync == sb::sync_mode::full));
  BOOST_TEST(c.node_id == "node-a");
  BOOST_TEST(c.dedup_window.count() == 60);
  BOOST_TEST(c.handshake_timeout.count() == 5);
  BOOST_TEST(c.max_message_bytes == 1024u);
  BOOST_TEST(c.max_connections == 50u);
  BOOST_TEST(c.max_sessions_per_user == 1u);
  BOOST_TEST(c.send_queue_bytes == 4096u);
  BOOST_TEST(c.rate_limit == 20u);
  BOOST_TEST(c.ping_interval.count() == 7);
  BOOST_TEST(c.idle_timeout.count() == 20);
  BOOST_TEST(c.retention.count() == 3600);
  BOOST_TEST(c.inbox_limit == 9u);
  BOOST_TEST(c.inbox_bytes == 5000u);
  BOOST_TEST(c.memory_store_bytes == 70000u);
  BOOST_TEST(c.store_queue_bytes == 80000u);
  BOOST_TEST(c.drain_timeout.count() == 0);
  BOOST_TEST(c.jwt_secret_file.value() == "/etc/secret");
  BOOST_TEST(c.tls_cert.value() == "cert.pem");
  BOOST_TEST(c.tls_key.value() == "key.pem");
  BOOST_TEST(
      c.allow_origins == (std::vector<std::string>{"https://a.example", "https://b.example"}),
      boost::test_tools::per_element());
  BOOST_TEST((c.level == sb::log_level::debug));
  BOOST_TEST((c.format == sb::log_format::json));
}

BOOST_AUTO_TEST_CASE(environment) {
  const auto c = parsed({}, {"SWITCHBOARD_MAX_CONNECTIONS=77", "SWITCHBOARD_LISTEN=0.0.0.0:7001",
                             "SWITCHBOARD_LOG_FORMAT=json", "SWITCHBOARD_JWT_SECRET_FILE=/run/s",
                             "SWITCHBOARD_ALLOW_ORIGIN=https://a.example, https://b.example",
                             "SWITCHBOARD_SKIP_FUZZ=1", "OTHER=2"});
  BOOST_TEST(c.max_connections == 77u);
  BOOST_TEST(c.listen_port == 7001);
  BOOST_TEST((c.format == sb::log_format::json));
  BOOST_TEST(c.jwt_secret_file.value() == "/run/s");
  BOOST_TEST(
      c.allow_origins == (std::vector<std::string>{"https://a.example", "https://b.example"}),
      boost::test_tools::per_element());

  // The command line wins over the environment, the environment over the file.
  const temp_file file("max-connections = 5\nthreads = 3\nstore = memory:\n");
  const auto mixed = parsed({"--config", file.path.string(), "--threads", "2"},
                            {"SWITCHBOARD_MAX_CONNECTIONS=77", "SWITCHBOARD_THREADS=9"});
  BOOST_TEST(mixed.threads == 2u);
  BOOST_TEST(mixed.max_connections == 77u);
  BOOST_TEST(mixed.store == "memory:");

  // --config itself may come from the environment.
  const auto from_file = parsed({}, {"SWITCHBOARD_CONFIG=" + file.path.string()});
  BOOST_TEST(from_file.max_connections == 5u);

  // An empty variable is a value like any other: refused where a value is required.
  BOOST_TEST(exited({}, {"SWITCHBOARD_THREADS="}).code == 2);
}

BOOST_AUTO_TEST_CASE(bad_environment) {
  // Exit 2, naming the variable (and the option it sets).
  const auto bad = exited({}, {"SWITCHBOARD_MAX_CONNECTIONS=lots"});
  BOOST_TEST(bad.code == 2);
  BOOST_TEST(bad.output.starts_with(
                 "switchboard: SWITCHBOARD_MAX_CONNECTIONS (--max-connections): not a number"),
             bad.output);
  BOOST_TEST(bad.output.find("try --help") != std::string::npos, bad.output);

  const auto format = exited({}, {"SWITCHBOARD_LOG_FORMAT=xml"});
  BOOST_TEST(format.code == 2);
  BOOST_TEST(format.output.starts_with("switchboard: SWITCHBOARD_LOG_FORMAT (--log-format): "),
             format.output);

  // A bad variable that the command line overrides is not used, so not refused;
  // the same value on the command line is named as the option.
  BOOST_TEST(parsed({"--threads", "2"}, {"SWITCHBOARD_THREADS=x"}).threads == 2u);
  check_usage_error({"--threads", "x"}, "threads");

  // Half of TLS from the environment: the missing half is named.
  const auto tls = exited({}, {"SWITCHBOARD_TLS_CERT=c.pem"});
  BOOST_TEST(tls.code == 2);
  BOOST_TEST(tls.output.starts_with("switchboard: --tls-key: required with --tls-cert"),
             tls.output);

  // --help works whatever the environment says.
  BOOST_TEST(exited({"--help"}, {"SWITCHBOARD_THREADS=x"}).code == 0);
}

BOOST_AUTO_TEST_CASE(equals_form_and_each_log_level) {
  BOOST_TEST(parsed({"--threads=2"}).threads == 2u);
  BOOST_TEST((parsed({"--log-level", "trace"}).level == sb::log_level::trace));
  BOOST_TEST((parsed({"--log-level", "info"}).level == sb::log_level::info));
  BOOST_TEST((parsed({"--log-level", "warn"}).level == sb::log_level::warn));
  BOOST_TEST((parsed({"--log-level", "error"}).level == sb::log_level::error));
  BOOST_TEST((parsed({"--sync", "normal"}).sync == sb::sync_mode::normal));
}

BOOST_AUTO_TEST_CASE(listen_forms) {
  auto c = parsed({"--listen", "localhost:0"});
  BOOST_TEST(c.listen_host == "localhost");
  BOOST_TEST(c.listen_port == 0);
  BOOST_TEST(c.node_id == host_name() + ":0");

  c = parsed({"--listen", "[::1]:65535"});
  BOOST_TEST(c.listen_host == "::1");
  BOOST_TEST(c.listen_port == 65535);

  c = parsed({"--listen", "[::]:8081"});
  BOOST_TEST(c.listen_host == "::");
  BOOST_TEST(c.listen_port == 8081);
  BOOST_TEST(c.node_id == host_name() + ":8081");
}

BOOST_AUTO_TEST_CASE(bad_listen) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                          "127.0.0.1:80x", "256.0.0.1:80", "1.2.3:80", "example.com:80", ":80",
                          "::1:80", "[::1]80", "[::1:80", "[nope]:80", "[127.0.0.1]:80", ""}) {
    BOOST_TEST_CONTEXT(bad) {
      check_usage_error({"--listen", bad}, "listen");
    }
  }
}

BOOST_AUTO_TEST_CASE(store_uris) {
  BOOST_TEST(parsed({"--store", "sqlite:/var/lib/sb.db"}).store == "sqlite:/var/lib/sb.db");
  BOOST_TEST(parsed({"--store", "redis://127.0.0.1:6379"}).store == "redis://127.0.0.1:6379");
  BOOST_TEST(parsed({"--store", "redis://redis-1.internal:6380"}).store ==
             "redis://redis-1.internal:6380");

  const auto redis = sb::parse_store_uri("redis://[::1]:6379");
  BOOST_REQUIRE(redis.has_value());
  BOOST_TEST((redis->type == sb::store_location::kind::redis));
  BOOST_TEST(redis->host == "::1");
  BOOST_TEST(redis->port == 6379);
  BOOST_TEST(redis->user.empty());
  BOOST_TEST(redis->db == 0u);

  const auto full = sb::parse_store_uri("redis://switchboard@redis-1.internal:6380/3");
  BOOST_REQUIRE(full.has_value());
  BOOST_TEST(full->user == "switchboard");
  BOOST_TEST(full->host == "redis-1.internal");
  BOOST_TEST(full->port == 6380);
  BOOST_TEST(full->db == 3u);
  const auto v6 = sb::parse_store_uri("redis://app@[::1]:6379/15");
  BOOST_REQUIRE(v6.has_value());
  BOOST_TEST(v6->host == "::1");
  BOOST_TEST(v6->db == 15u);

  const auto sqlite = sb::parse_store_uri("sqlite:a.db");
  BOOST_REQUIRE(sqlite.has_value());
  BOOST_TEST((sqlite->type == sb::store_location::kind::sqlite));
  BOOST_TEST(sqlite->path == "a.db");

  const auto memory = sb::parse_store_uri("memory:");
  BOOST_REQUIRE(memory.has_value());
  BOOST_TEST((memory->type == sb::store_location::kind::memory));
}

BOOST_AUTO_TEST_CASE(bad_store) {
  for (const char* bad : {"",
                          "memory",
                          "memory:x",
                          "sqlite:",
                          "sqlite",
                          "redis://",
                          "redis://host",
                          "redis://host:",
                          "redis://host:0",
                          "redis://host:65536",
                          "redis://host:63x9",
                          "redis://:6379",
                          "redis://host:6379/",
                          "redis://host:6379/x",
                          "redis://host:6379/-1",
                          "redis://@host:6379",
                          "redis://a:b@host:6379",
                          "redis://a b:6379",
                          "postgres://h:5432",
                          "file:x.db"}) {
    BOOST_TEST_CONTEXT(bad) {
      check_usage_error({"--store", bad}, "store");
      BOOST_TEST(!sb::parse_store_uri(bad).has_value());
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_numbers) {
  // Each numeric option, with a negative, a word, an overflow and an empty value.
  for (const char* option :
       {"threads", "dedup-window", "handshake-timeout", "max-message-bytes", "max-connections",
        "max-sessions-per-user", "send-queue-bytes", "rate-limit", "ping-interval", "idle-timeout",
        "retention", "inbox-limit", "inbox-bytes", "memory-store-bytes", "store-queue-bytes",
        "drain-timeout"}) {
    for (const char* bad : {"-1", "-0", "ten", "1.5", "0x10", "+3", " 3", "3 ", "",
                            "18446744073709551616", "99999999999999999999999"}) {
      BOOST_TEST_CONTEXT(option << " " << bad) {
        check_usage_error({std::string("--") + option, bad}, option);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(negative_message_says_so) {
  const auto exit = exited({"--threads", "-1"});
  BOOST_TEST(exit.output.starts_with("switchboard: --threads: must not be negative"), exit.output);
  const auto equals = exited({"--max-connections=-5"});
  BOOST_TEST(equals.output.starts_with("switchboard: --max-connections: must not be negative"),
             equals.output);
}

BOOST_AUTO_TEST_CASE(number_limits) {
  // Zero where at least one is needed.
  for (const char* option :
       {"threads", "max-message-bytes", "max-connections", "max-sessions-per-user",
        "send-queue-bytes", "inbox-limit", "inbox-bytes", "memory-store-bytes", "store-queue-bytes",
        "idle-timeout", "ping-interval"}) {
    BOOST_TEST_CONTEXT(option) {
      check_usage_error({std::string("--") + option, "0"}, option);
    }
  }
  // Zero where it means off or immediately.
  BOOST_TEST(parsed({"--rate-limit", "0"}).rate_limit == 0u);
  BOOST_TEST(parsed({"--dedup-window", "0"}).dedup_window.count() == 0);
  BOOST_TEST(parsed({"--retention", "0"}).retention.count() == 0);
  BOOST_TEST(parsed({"--handshake-timeout", "0"}).handshake_timeout.count() == 0);

  // Upper limits: the type's range, threads and durations their own caps.
  BOOST_TEST(parsed({"--rate-limit", "18446744073709551615"}).rate_limit == 18446744073709551615u);
  BOOST_TEST(parsed({"--threads", "1024"}).threads == 1024u);
  check_usage_error({"--threads", "1025"}, "threads");
  check_usage_error({"--threads", "4294967296"}, "threads");
  BOOST_TEST(parsed({"--retention", "9223372036"}).retention.count() == 9223372036);
  check_usage_error({"--retention", "9223372037"}, "retention");
  BOOST_TEST(parsed({"--inbox-limit", "007"}).inbox_limit == 7u);
}

BOOST_AUTO_TEST_CASE(bad_words_and_paths) {
  check_usage_error({"--sync", "fast"}, "sync");
  check_usage_error({"--sync", "FULL"}, "sync");
  check_usage_error({"--log-level", "warning"}, "log-level");
  check_usage_error({"--log-level", ""}, "log-level");
  check_usage_error({"--node-id", ""}, "node-id");
  check_usage_error({"--jwt-secret-file", ""}, "jwt-secret-file");
  check_usage_error({"--allow-origin", ""}, "allow-origin");
  check_usage_error({"--tls-cert", "cert.pem"}, "tls-key");
  check_usage_error({"--tls-key", "key.pem"}, "tls-cert");
}

BOOST_AUTO_TEST_CASE(bad_command_lines) {
  check_usage_error({"--no-such-option"}, "no-such-option");
  check_usage_error({"--no-such-option", "1"}, "no-such-option");
  check_usage_error({"--thread", "4"}, "thread");  // no guessing of prefixes
  check_usage_error({"-x"}, "x");
  check_usage_error({"--threads"}, "threads");  // value missing
  check_usage_error({"--help=yes"}, "help");
  check_usage_error({"--threads", "2", "--threads", "3"}, "threads");

  const auto stray = exited({"--threads", "2", "stray"});
  BOOST_TEST(stray.code == 2);
  BOOST_TEST(stray.output.starts_with("switchboard: unexpected argument \"stray\"\n"),
             stray.output);
}

BOOST_AUTO_TEST_CASE(help_and_version) {
  const auto help = exited({"--help"});
  BOOST_TEST(help.code == 0);
  BOOST_TEST(help.output.starts_with("usage: switchboard [options]\n"));
  for (const char* option : {"--listen ADDR:PORT",
                             "--threads N",
                             "--store URI",
                             "--sync normal|full",
                             "--node-id NAME",
                             "--dedup-window S",
                             "--handshake-timeout S",
                             "--max-message-bytes N",
                             "--max-connections N",
                             "--max-sessions-per-user N",
                             "--send-queue-bytes N",
                             "--rate-limit N",
                             "--ping-interval S",
                             "--idle-timeout S",
                             "--retention S",
                             "--inbox-limit N",
                             "--inbox-bytes N",
                             "--memory-store-bytes N",
                             "--store-queue-bytes N",
                             "--drain-timeout S",
                             "--jwt-secret-file PATH",
                             "--tls-cert PATH",
                             "--tls-key PATH",
                             "--allow-origin ORIGIN",
                             "--log-level trace|debug|info|warn|error",
                             "--log-format text|json",
                             "--config FILE",
                             "--version",
                             "--help"}) {
    BOOST_TEST(help.output.find(std::string("  ") + option) != std::string::npos, option);
  }
  for (const char* default_text :
       {"(default: 127.0.0.1:8080)", "(default: sqlite:switchboard.db)", "(default: normal)",
        "(default: 600)", "(default: 65536)", "(default: 100000)", "(default: 1048576)",
        "(default: 604800)", "(default: 10000)", "(default: info)", "(default: 75)",
        "(default: text)"}) {
    BOOST_TEST(help.output.find(default_text) != std::string::npos, default_text);
  }

  BOOST_TEST(help.output.find("SWITCHBOARD_MAX_CONNECTIONS") != std::string::npos);

  // --help wins over the rest of the command line, even a wrong one.
  BOOST_TEST(exited({"--threads", "x", "--help"}).code == 0);

  const auto version = exited({"--version"});
  BOOST_TEST(version.code == 0);
  BOOST_TEST(version.output.starts_with("switchboard "));
  BOOST_TEST(version.output.back() == '\n');
  BOOST_TEST(version.output.find('.') != std::string::npos);
}

BOOST_AUTO_TEST_CASE(config_file) {
  const temp_file file(
      "# a comment\n"
      "\n"
      "listen = 0.0.0.0:7000\n"
      "threads=5\n"
      "store = memory:   # trailing comment\n"
      "  max-connections = 77\n"
      "allow-origin = https://x.example\n"
      "allow-origin = https://y.example\n"
      "log-level = warn\n");

  const auto c = parsed({"--config", file.path.string()});
  BOOST_TEST(c.listen_host == "0.0.0.0");
  BOOST_TEST(c.listen_port == 7000);
  BOOST_TEST(c.threads == 5u);
  BOOST_TEST(c.store == "memory:");
  BOOST_TEST(c.max_connections == 77u);
  BOOST_TEST(
      c.allow_origins == (std::vector<std::string>{"https://x.example", "https://y.example"}),
      boost::test_tools::per_element());
  BOOST_TEST((c.level == sb::log_level::warn));
  BOOST_TEST(c.node_id == host_name() + ":7000");

  // The command line wins, before or after --config; the rest still comes from the file.
  const auto both = parsed({"--threads", "2", "--config", file.path.string(), "--allow-origin",
                            "https://z.example", "--log-level", "error"});
  BOOST_TEST(both.threads == 2u);
  BOOST_TEST(both.allow_origins == std::vector<std::string>{"https://z.example"},
             boost::test_tools::per_element());
  BOOST_TEST((both.level == sb::log_level::error));
  BOOST_TEST(both.listen_port == 7000);
  BOOST_TEST(both.max_connections == 77u);
}

BOOST_AUTO_TEST_CASE(bad_config_file) {
  {
    const temp_file file("threads = -3\n");
    check_usage_error({"--config", file.path.string()}, "threads");
  }
  {
    const temp_file file("bogus = 1\n");
    const auto exit = exited({"--config", file.path.string()});
    BOOST_TEST(exit.code == 2);
    BOOST_TEST(exit.output.starts_with("switchboard: --bogus: unknown option (in " +
                                       file.path.string() + ")\n"),
               exit.output);
  }
  {
    // Command-line-only options are unknown in a file.
    const temp_file file("help = true\n");
    check_usage_error({"--config", file.path.string()}, "help");
  }
  {
    const temp_file file("store = redis://h\n");
    check_usage_error({"--config", file.path.string()}, "store");
  }
  {
    const temp_file file("just some words\n");
    BOOST_TEST(exited({"--config", file.path.string()}).code == 2);
  }
}

BOOST_AUTO_TEST_CASE(unreadable_config_file) {
  const auto missing = exited({"--config", "/nonexistent/switchboard.conf"});
  BOOST_TEST(missing.code == 1);
  BOOST_TEST(missing.output ==
             "switchboard: --config /nonexistent/switchboard.conf: cannot read: No such file or "
             "directory\n");

  const auto directory = std::filesystem::temp_directory_path().string();
  const auto is_directory = exited({"--config", directory});
  BOOST_TEST(is_directory.code == 1);
  BOOST_TEST(
      is_directory.output.starts_with("switchboard: --config " + directory + ": cannot read: "),
      is_directory.output);
}
