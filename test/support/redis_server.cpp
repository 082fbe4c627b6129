#include "support/redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace switchboard::test {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("redis_server: no free port");
  ::close(fd);
  return ntohs(addr.sin_port);
}

// posix_spawnp with stdout to `out_fd` (or inherited when -1) and stderr to /dev/null.
pid_t spawn(const std::vector<std::string>& args, int out_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  // Nothing else of the test process: a Redis started again must not hold
  // client sockets the test closed (they would never see their end).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
  return pid;
}

// Whether something on `port` answers "PING" with a RESP reply within `timeout`.
bool answers_ping(std::uint16_t port, milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, "PING\r\n", 6) == 6) {
    pollfd p{fd, POLLIN, 0};
    char c = 0;
    ok = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 && ::read(fd, &c, 1) == 1 &&
         (c == '+' || c == '-');
  }
  ::close(fd);
  return ok;
}

}  // namespace

redis_server::redis_server(redis_server_options opt) : options_(std::move(opt)) {
  auto pattern = (std::filesystem::temp_directory_path() / "switchboard-redis-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("redis_server: mkdtemp");
  dir_ = pattern;
  // A port found free may be taken before redis binds it: try a few.
  for (int attempt = 0;; ++attempt) {
    port_ = free_port();
    try {
      start();
      return;
    } catch (const std::exception& e) {
      kill();
      if (attempt == 4) {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
        throw;
      }
    }
  }
}

redis_server::~redis_server() {
  kill();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void redis_server::start() {
  std::vector<std::string> args{"redis-server",
                                "--port",
                                std::to_string(port_),
                                "--bind",
                                "127.0.0.1",
                                "--save",
                                "",
                                "--dir",
                                dir_,
                                "--logfile",
                                dir_ + "/redis.log",
                                "--daemonize",
                                "no"};
  if (options_.append_only) {
    args.insert(args.end(), {"--appendonly", "yes", "--appendfsync", "always"});
  } else {
    args.insert(args.end(), {"--appendonly", "no"});
  }
  if (options_.password) args.insert(args.end(), {"--requirepass", *options_.password});
  if (options_.acl_user)
    args.insert(args.end(), {"--user", *options_.acl_user, "on",
                             ">" + options_.acl_password.value_or(""), "~*", "&*", "+@all"});
  pid_ = spawn(args, -1);
  wait_ready(milliseconds(10000));
}

void redis_server::wait_ready(milliseconds timeout) {
  const auto deadline = steady_clock::now() + timeout;
  while (!answers_ping(port_, milliseconds(200))) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream log(dir_ + "/redis.log");
      throw std::runtime_error("redis-server exited at start: " +
                               std::string(std::istreambuf_iterator<char>(log), {}));
    }
    if (steady_clock::now() > deadline)
      throw std::runtime_error("redis-server does not answer PING on port " +
                               std::to_string(port_));
    std::this_thread::sleep_for(milliseconds(10));
  }
}

void redis_server::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void redis_server::restart() {
  kill();
  start();
}

void redis_server::pause() {
  ::kill(pid_, SIGSTOP);
}

void redis_server::resume() {
  ::kill(pid_, SIGCONT);
}

std::string redis_server::cli(std::initializer_list<std::string> args) {
  return cli(std::vector<std::string>(args));
}

std::string redis_server::cli(const std::vector<std::string>& args) {
  std::vector<std::string> all{"redis-cli", "-p", std::to_string(port_)};
  if (options_.password) all.insert(all.end(), {"--no-auth-warning", "-a", *options_.password});
  all.insert(all.end(), args.begin(), args.end());
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = -1;
  try {
    pid = spawn(all, out[1]);
  } catch (...) {
    ::close(out[0]);
    ::close(out[1]);
    throw;
  }
  ::close(out[1]);
  std::string text;
  const auto deadline = steady_clock::now() + milliseconds(5000);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()).count();
    pollfd p{out[0], POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      ::close(out[0]);
      throw std::runtime_error("redis-cli did not end within 5 s");
    }
    char buffer[4096];
    const auto n = ::read(out[0], buffer, sizeof buffer);
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("redis-cli failed: " + text);
  return text;
}

}  // namespace switchboard::test
