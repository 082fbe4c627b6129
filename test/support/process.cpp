#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include <boost/test/unit_test.hpp>

#include <thread>
#include "support/test_support.hpp"

extern char** environ;

namespace switchboard::test {

namespace {
void drain(int fd, std::string& into) {
  char buffer[4096];
  for (;;) {
    const auto n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return;
    into.append(buffer, static_cast<std::size_t>(n));
  }
}
}  // namespace

namespace {
std::string server_binary() {
  const char* from_env = std::getenv("SWITCHBOARD_TEST_BINARY");
  return from_env != nullptr && *from_env != 0 ? from_env : SWITCHBOARD_BINARY;
}
}  // namespace

child_process::child_process(const std::vector<std::string>& args)
    : child_process(server_binary(), args) {}

child_process::child_process(const std::string& program, const std::vector<std::string>& args) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  const std::string& binary = program;
  std::vector<std::string> all{binary};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawnp(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  ::fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  ::fcntl(err_fd_, F_SETFL, O_NONBLOCK);
  if (rc != 0) throw std::runtime_error("cannot start " + binary);
}

child_process::~child_process() {
  if (pid_ > 0 && status_ < 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  ::close(out_fd_);
  ::close(err_fd_);
}

std::string child_process::wait_for_line(const std::string& prefix,
                                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t scanned = 0;
  for (;;) {
    for (auto eol = out_.find('\n', scanned); eol != std::string::npos;
         eol = out_.find('\n', scanned)) {
      auto line = out_.substr(scanned, eol - scanned);
      scanned = eol + 1;
      if (line.rfind(prefix, 0) == 0) return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    const auto before = out_.size();
    drain(out_fd_, out_);
    if (out_.size() == before && (p.revents & (POLLHUP | POLLERR))) return "";
  }
}

std::uint16_t child_process::wait_listening(std::chrono::milliseconds timeout) {
  const auto line = wait_for_line("listening on ", timeout);
  if (line.empty()) throw std::runtime_error("no `listening on` line; stderr: " + stderr_text());
  return static_cast<std::uint16_t>(std::stoul(line.substr(line.rfind(':') + 1)));
}

void child_process::signal(int sig) {
  ::kill(pid_, sig);
}

int child_process::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (status_ < 0) {
    int status = 0;
    const auto r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  drain(out_fd_, out_);
  return status_;
}

std::vector<std::string> server_args(const std::string& db, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"--listen",     "127.0.0.1:0", "--store",
                                "sqlite:" + db, "--threads",   std::to_string(test_threads())};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

server_process::server_process(const std::string& db, const std::vector<std::string>& extra)
    : process_(server_args(db, extra)) {
  try {
    port_ = process_.wait_listening();
  } catch (...) {
    std::cerr << "server on " << db << " did not start; stderr:\n"
              << process_.stderr_text() << std::endl;
    throw;
  }
}

server_process::~server_process() {
  if (std::uncaught_exceptions() > 0 || current_test_failed())
    std::cerr << "--- server stderr (" << boost::unit_test::framework::current_test_case().p_name
              << ") ---\n"
              << process_.stderr_text() << "--- end ---" << std::endl;
}

void server_process::crash() {
  process_.signal(SIGKILL);
  BOOST_REQUIRE_EQUAL(process_.wait(std::chrono::seconds(10)), 128 + SIGKILL);
}

std::string child_process::stderr_text() {
  drain(err_fd_, err_);
  return err_;
}

}  // namespace switchboard::test
