// A private redis-server for the Redis client tests: its own free loopback
// port and fresh directory, started and killed by pid (never the system
// service Debian may have started), so that a test can kill, restart, pause
// and resume it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace switchboard::test {

struct redis_server_options {
  // --appendonly yes --appendfsync always: what was acknowledged survives kill()/restart().
  bool append_only = false;
  std::optional<std::string> password;  // requirepass (the default user's password)
  // An ACL user allowed everything, with this password.
  std::optional<std::string> acl_user, acl_password;
};

class redis_server {
 public:
  explicit redis_server(redis_server_options opt = {});
  ~redis_server();  // SIGKILL, removes the directory
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }

  void kill();     // SIGKILL and reap: nothing gets a chance to run
  void restart();  // kill() if running, then start again on the same port and directory
  void pause();    // SIGSTOP: accepts connections (the kernel does), never answers
  void resume();   // SIGCONT

  // `redis-cli -p PORT [-a PASSWORD] args...`; its stdout. Throws if it does
  // not end within 5 s or exits non-zero.
  std::string cli(std::initializer_list<std::string> args);
  std::string cli(const std::vector<std::string>& args);

 private:
  void start();
  // Until a reply to PING (PONG or NOAUTH) comes; throws after `timeout`.
  void wait_ready(std::chrono::milliseconds timeout);

  redis_server_options options_;
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace switchboard::test
