// The built binary as a child process, for smoke and crash tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace switchboard::test {

class child_process {
 public:
  // Starts SWITCHBOARD_BINARY (or the binary named by the environment
  // variable SWITCHBOARD_TEST_BINARY, to measure another build) with
  // `args`; stdout and stderr are captured.
  explicit child_process(const std::vector<std::string>& args);
  // Starts `program` (found on the PATH) with `args` instead (gdb...).
  child_process(const std::string& program, const std::vector<std::string>& args);
  ~child_process();  // kills it if still running

  // Reads stdout until a line starts with `prefix`; returns that line, or
  // "" at end of output or after `timeout`.
  std::string wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout);
  // The port of its `listening on ADDR:PORT` line; throws if it never comes.
  std::uint16_t wait_listening(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // The exit code, or 128 + signal; -1 if it did not end within `timeout`.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  std::string stdout_text() const { return out_; }
  std::string stderr_text();  // everything it wrote to stderr so far

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  int status_ = -1;
};

// Options that run the binary on a SQLite file, on a free loopback port,
// with the suite's --threads.
std::vector<std::string> server_args(const std::string& db,
                                     const std::vector<std::string>& extra = {});

// The binary on a SQLite file, listening. Its stderr is printed when the
// test case failed or is being left by an exception.
class server_process {
 public:
  // `extra`: more options after --listen, --store and --threads.
  explicit server_process(const std::string& db, const std::vector<std::string>& extra = {});
  ~server_process();

  std::uint16_t port() const { return port_; }
  child_process& process() { return process_; }

  // kill -9: nothing gets a chance to run.
  void crash();

 private:
  child_process process_;
  std::uint16_t port_ = 0;
};

}  // namespace switchboard::test
