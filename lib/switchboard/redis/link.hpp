// Internal to the Redis client (connection.cpp, subscriber.cpp): one TCP
// connection to Redis and the decoder for what it reads, plus the deadline
// every call runs under. Not for the rest of the library: use connection or
// subscriber.
#pragma once

#include <array>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "switchboard/net.hpp"
#include "switchboard/redis/connection.hpp"
#include "switchboard/redis/resp.hpp"

namespace switchboard::redis::detail {

// Runs `op` and keeps its outcome, value or exception: the branch of `||`
// in within() must not throw, see there.
template <class T>
asio::awaitable<void> capture(asio::awaitable<T> op, std::optional<T>& value,
                              std::exception_ptr& error) {
  try {
    value.emplace(co_await std::move(op));
  } catch (...) {
    error = std::current_exception();
  }
}

inline asio::awaitable<void> capture(asio::awaitable<void> op, std::optional<bool>& done,
                                     std::exception_ptr& error) {
  try {
    co_await std::move(op);
    done.emplace(true);
  } catch (...) {
    error = std::current_exception();
  }
}

// Runs `op`, or throws unavailable(`what` + ": no answer within N ms") once
// `limit` has passed; `op` is cancelled then, whatever it was in the middle
// of (the caller must close the socket: a write may be half done).
//
// Asio 1.81's `a || b` waits for the first branch that *succeeds*: a branch
// that throws does not end the race, the other one still runs to its end.
// So `op` runs inside capture(), which never throws, and its exception is
// rethrown here at once instead of after the deadline.
template <class T>
asio::awaitable<T> within(std::chrono::milliseconds limit, const char* what,
                          asio::awaitable<T> op) {
  using namespace asio::experimental::awaitable_operators;
  using value_type = std::conditional_t<std::is_void_v<T>, bool, T>;
  std::optional<value_type> value;
  std::exception_ptr error;
  asio::steady_timer timer(co_await asio::this_coro::executor, limit);
  const auto winner =
      co_await (capture(std::move(op), value, error) || timer.async_wait(asio::use_awaitable));
  // When the timer won, `op` was cancelled and may have stored an outcome of
  // that (operation_aborted): it is not an answer.
  if (winner.index() == 0 && error) std::rethrow_exception(error);
  if (winner.index() == 1 || !value)
    throw unavailable(std::string(what) + ": no answer within " + std::to_string(limit.count()) +
                      " ms");
  if constexpr (!std::is_void_v<T>) co_return std::move(*value);
}

// "host:port", for log lines.
std::string describe(const endpoint& ep);
// Why an I/O operation failed, for log lines and unavailable's message.
std::string describe(const boost::system::error_code& ec);
// The same for whatever a connect, handshake or exchange threw.
std::string describe(const std::exception& e);

class link {
 public:
  explicit link(asio::any_io_executor ex) : resolver_(ex), socket_(ex) {}

  // Resolves and connects, with a fresh decoder: nothing of an earlier
  // connection is left over. Throws system_error.
  asio::awaitable<void> connect(const endpoint& ep);
  // The next reply. Throws system_error (EOF included) or protocol_error.
  asio::awaitable<reply> read();
  // Writes every byte. Throws system_error.
  asio::awaitable<void> write(std::string_view bytes);
  // Ends whatever is pending on this connection (it completes with
  // operation_aborted); connect() opens it again.
  void close();
  bool is_open() const { return socket_.is_open(); }

 private:
  asio::ip::tcp::resolver resolver_;
  asio::ip::tcp::socket socket_;
  std::optional<decoder> decoder_;  // one per TCP connection
  // One read buffer for the connection's lifetime; the decoder copies out.
  std::array<char, 16 * 1024> buffer_;
};

}  // namespace switchboard::redis::detail
