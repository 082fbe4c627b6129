// Keeps docs/debugging.md true: the debug build's server, with messages
// piled up for a receiver that stopped reading, under gdb in batch mode.
// It runs the guide's own commands (the "(gdb) " lines of its stuck-message
// transcript, and its unattended breakpoint script) with the extension of
// tools/gdb, and checks that they find the stuck messages' seqs and the
// coroutines waiting on them.
//
// ctest gives it the debug binary (SWITCHBOARD_TEST_BINARY) and the source
// tree (SWITCHBOARD_SOURCE_DIR). Where gdb may not attach (ptrace refused:
// a container without CAP_SYS_PTRACE, Yama's ptrace_scope 3) it says so and
// exits 77, which ctest reports as skipped.
#define BOOST_TEST_MODULE gdb
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/test_support.hpp"

using namespace switchboard::test;

namespace {

constexpr const char* key = "k3y-for-gdb";

std::string source_dir() {
  const char* dir = std::getenv("SWITCHBOARD_SOURCE_DIR");
  BOOST_REQUIRE_MESSAGE(dir != nullptr, "SWITCHBOARD_SOURCE_DIR is not set (ctest sets it)");
  return dir;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  BOOST_REQUIRE_MESSAGE(in, "cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The part of the guide from the heading that contains `title` to the next
// heading of the same level.
std::string section(const std::string& guide, const std::string& title) {
  const auto heading = guide.find("\n## " + title);
  BOOST_REQUIRE_MESSAGE(heading != std::string::npos, "docs/debugging.md lacks ## " + title);
  const auto end = guide.find("\n## ", heading + 1);
  return guide.substr(heading, end == std::string::npos ? std::string::npos : end - heading);
}

// The commands of a transcript: its "(gdb) " lines.
std::vector<std::string> typed_commands(const std::string& text) {
  std::vector<std::string> commands;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("(gdb) ", 0) == 0) commands.push_back(line.substr(6));
  return commands;
}

// The first ```gdb block of a text.
std::string gdb_block(const std::string& text) {
  const auto open = text.find("```gdb\n");
  BOOST_REQUIRE(open != std::string::npos);
  const auto start = open + 7;
  return text.substr(start, text.find("```", start) - start);
}

// The guide shows ids of its own run: the live session's replaces them.
std::string with_session(std::string text, const std::string& id) {
  static const std::regex session_id("[0-9a-f]{16}-[0-9a-f]+");
  return std::regex_replace(text, session_id, id);
}

struct gdb_run {
  int exit_code;
  std::string output;  // stdout and stderr
};

std::vector<std::string> gdb_args(pid_t pid, const std::string& script) {
  return {"-nx",  "-batch",
          "-iex", "add-auto-load-safe-path " + source_dir() + "/tools/gdb",
          "-p",   std::to_string(pid),
          "-x",   script};
}

gdb_run finish(child_process& gdb) {
  const int code = gdb.wait(std::chrono::seconds(120));
  return {code, gdb.stdout_text() + gdb.stderr_text()};
}

bool ptrace_refused(const std::string& output) {
  return output.find("ptrace: Operation not permitted") != std::string::npos ||
         output.find("Could not attach to process") != std::string::npos;
}

void expect_in(const std::string& output, const std::string& wanted) {
  BOOST_TEST(output.find(wanted) != std::string::npos, "gdb's output lacks: " << wanted);
}

std::string write_script(const std::string& name, const std::string& text) {
  const auto path = "/tmp/switchboard-test-gdb-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_guide_finds_a_stuck_message) {
  const auto guide = read_file(source_dir() + "/docs/debugging.md");
  const auto key_file = write_script("key", key);
  child_process server({"--listen", "127.0.0.1:0", "--store", "memory:", "--threads",
                        std::to_string(test_threads()), "--api-key-file", key_file,
                        "--idle-timeout", "3600", "--ping-interval", "3600"});
  const auto port = server.wait_listening();

  // Receiver 2 stops reading; sender 1 sends until messages wait in its queue.
  ws_client receiver(port, "/ws/2?device=phone", 4096);
  ws_client sender(port, "/ws/1");
  pile_up(port, sender, 2, key, 3);
  // Until the last SENDs reached the queue too: two answers alike.
  const std::map<std::string, std::string> auth{{"Authorization", std::string("Bearer ") + key}};
  std::string before, now = http_get(port, "/api/sessions?user=2", auth).body;
  for (int i = 0; i < 50 && now != before; ++i) {
    std::this_thread::sleep_for(200ms);
    before = std::exchange(now, http_get(port, "/api/sessions?user=2", auth).body);
  }
  const auto stuck = parse_object(now).at("sessions").at(0).as_object();
  const auto id = str(stuck.at("session"));
  const auto first = u64(stuck.at("queue").at("first_seq"));
  const auto last = u64(stuck.at("queue").at("last_seq"));
  BOOST_TEST_MESSAGE("session " << id << ": seqs " << first << ".." << last << " wait");

  // The guide's five commands, as its transcript types them.
  std::string script = "set pagination off\n";
  for (const auto& command : typed_commands(section(guide, "Finding a stuck message")))
    script += with_session(command, id) + "\n";
  BOOST_TEST_MESSAGE("running:\n" << script);
  child_process gdb("gdb", gdb_args(server.pid(), write_script("stuck.gdb", script)));
  const auto run = finish(gdb);
  if (ptrace_refused(run.output)) {
    std::cout << "SKIPPED: gdb may not attach here (ptrace refused); the guide was not checked:\n"
              << run.output << std::endl;
    server.signal(SIGKILL);
    server.wait();
    std::_Exit(77);
  }
  BOOST_TEST_MESSAGE(run.output);
  BOOST_TEST(run.exit_code == 0);
  BOOST_TEST(run.output.find("Python Exception") == std::string::npos);
  const auto seqs = std::to_string(first) + ".." + std::to_string(last);
  // sb sessions 2: the stuck seqs, and what holds them.
  expect_in(run.output, "session " + id + "  user 2  device \"phone\"");
  expect_in(run.output, "messages (seqs " + seqs + ")");
  expect_in(run.output, "bytes in the socket write in flight");
  expect_in(run.output, "reader: socket_readable  writer: socket_write");
  expect_in(run.output, "coroutines: reader parked, writer running");
  // sb async-bt: the writer coroutine waits for the kernel, spawned by
  // co_spawn; the reader is parked on the socket, with no coroutine.
  expect_in(run.output, "asynchronous operation switchboard::transport::async_flush");
  expect_in(run.output, "switchboard::(anonymous namespace)::writer at session.cpp:");
  expect_in(run.output, "co_await out.async_flush(use_tuple);");
  expect_in(run.output, "co_spawn_entry_point at co_spawn.hpp:");
  expect_in(run.output, "reader: parked, no coroutine");
  // sb hub, sb store, and the printers.
  expect_in(run.output, "user 2: highest seq " + std::to_string(last));
  expect_in(run.output, "session " + id + "  live above seq 0");
  expect_in(run.output, "store worker");
  expect_in(run.output, "session channel, ");
  expect_in(run.output, "message seq " + std::to_string(first) + ", ");

  // The unattended breakpoint script: stopped in the reader by a SEND from
  // user 3, it shows the frame and the stack, then detaches.
  const auto unattended = gdb_block(section(guide, "Stopping on a frame, unattended"));
  child_process watcher("gdb", gdb_args(server.pid(), write_script("unattended.gdb", unattended)));
  BOOST_REQUIRE_MESSAGE(!watcher.wait_for_line("attached", std::chrono::seconds(60)).empty(),
                        "gdb did not attach: " << watcher.stderr_text());
  ws_client third(port, "/ws/3");
  third.send(send_frame(1, "hello from 3", "m3"));
  const auto watched = finish(watcher);
  BOOST_TEST_MESSAGE(watched.output);
  BOOST_TEST(watched.exit_code == 0);
  BOOST_TEST(watched.output.find("Python Exception") == std::string::npos);
  expect_in(watched.output, "hello from 3");
  expect_in(watched.output, "switchboard::(anonymous namespace)::run_reader");
  expect_in(watched.output, "not in a coroutine (a handler: bt shows its whole chain)");
  // The server ran on after both: the receipt comes.
  const auto receipt = third.read_until([](const auto& f) { return type_of(f) == 2; });
  BOOST_TEST(str(receipt.at("id")) == "m3");
}
