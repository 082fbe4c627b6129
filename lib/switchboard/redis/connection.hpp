// The Redis command connection: a TCP socket of our own driven by C++20
// coroutines, with hiredis as the RESP codec only (resp.hpp).
//
// Threads: a connection (and a subscriber) lives on the ONE executor given at
// construction, a single-threaded io_context or a strand. Every member
// function, the coroutines they return and the callbacks are run there, which
// is why there is no lock: call stop() and the destructor there too (or
// after that io_context stopped running). Only `counters` is read from other
// threads.
//
// Lifetime: the background coroutines share the state with the object, not
// the object itself, so after stop() (or the destructor) they only find out
// that they are stopped and end; nothing touches the connection, its
// callbacks or its counters any more. Destroy it before its io_context, and
// let that io_context run (or be destroyed) to free what was pending.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "switchboard/net.hpp"
#include "switchboard/redis/resp.hpp"

namespace switchboard::redis {

// Thrown by exec/subscribe when Redis is unreachable, does not answer within
// the deadline, or the connection broke.
class unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by exec when the commands were (or may have been) written and the
// connection broke or the deadline passed before every reply came: Redis may
// have run some of them, a prefix in order. A plain `unavailable` from exec
// means nothing was sent.
class indeterminate : public unavailable {
 public:
  using unavailable::unavailable;
};

struct endpoint {
  std::string host;
  std::uint16_t port = 6379;
  std::optional<std::string> user;      // ACL user: AUTH user password ("" if no password)
  std::optional<std::string> password;  // AUTH password
  unsigned db = 0;                      // SELECT db (command connection only; not sent for 0)
};

// Counters the server's /metrics reads (atomics, relaxed; read from other threads).
struct counters {
  std::atomic<std::uint64_t> round_trips{0};  // exec() calls that got their replies
  // Successful connects after the first, both connections.
  std::atomic<std::uint64_t> reconnects{0};
  std::atomic<std::uint64_t> messages{0};  // pub/sub messages received
  std::atomic<bool> command_up{false}, subscriber_up{false};
};

struct options {
  std::chrono::milliseconds deadline{3000};  // every call, connect and handshake included
  // Reconnect delays: capped, jittered exponential (retry.hpp).
  std::chrono::milliseconds backoff_min{50}, backoff_max{2000};
};

// The command connection. start() connects in the background and keeps
// reconnecting (capped jittered backoff) whenever it is down. Handshake on
// every connect, pipelined in one write: AUTH (with user if given), SELECT db,
// then the caller's setup commands (e.g. SCRIPT LOAD), each reply checked (an
// error reply = handshake failed: logged, retried with backoff).
class connection {
 public:
  connection(asio::any_io_executor ex, endpoint ep, options opt, counters& c,
             std::vector<std::vector<std::string>> setup = {});
  ~connection();  // stop()
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  void start();  // once; after stop() it does nothing
  // Closes, no more reconnects; a pending exec throws unavailable. on_state
  // is not called for this last change.
  void stop();
  bool connected() const;  // handshake done and not failed since

  // Writes `commands` (already encoded, `count` of them) in ONE socket write,
  // reads exactly `count` replies, returns them in order (error replies are
  // returned, not thrown). One exec at a time: the caller serialises (a
  // second concurrent call throws std::logic_error). Throws unavailable at
  // once if not connected (nothing sent); on I/O error or when the deadline
  // passes, closes the socket (so late replies are never mistaken for the
  // next call's), starts reconnecting and throws indeterminate. Await it on
  // the connection's executor.
  asio::awaitable<std::vector<reply>> exec(std::string commands, std::size_t count);

  // Optional: called on every up/down change. Must not throw.
  std::function<void(bool up)> on_state;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;  // shared with the background coroutines
};

}  // namespace switchboard::redis
