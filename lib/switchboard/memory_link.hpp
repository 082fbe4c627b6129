// A connection held in memory, with no socket: the server's side is a
// transport (transport.hpp) like a TCP one, the client's side is driven by
// hand. fuzz_session feeds sessions through it (test/fuzz), so that what a
// client can send reaches the real listener, sessions, hub and store without
// the kernel in between, deterministically and fast.
//
// It behaves like a TCP connection where it matters to the server: the
// "kernel" takes at most `window` bytes the client has not read (a client
// that stops reading makes the server's writes wait, and the bytes pile up
// in the transport, where --send-queue-bytes counts them); the client's
// bytes arrive in the order written, then end of stream once the client
// shuts down its side; a close by the server ends both directions, but what
// the kernel took is still delivered (as TCP does before its FIN).
//
// Single-threaded: the client side must be driven from the thread that runs
// the transport's I/O context. Implemented in transport.cpp, with the
// transport's side of it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_code.hpp>

#include "switchboard/net.hpp"

namespace switchboard {

class transport;

class memory_link {
 public:
  memory_link(asio::any_io_executor executor, std::size_t window)
      : executor_(std::move(executor)), window_(window) {}
  memory_link(const memory_link&) = delete;
  memory_link& operator=(const memory_link&) = delete;

  // The client's side.
  // Sends bytes to the server (dropped once the server closed).
  void client_write(std::string_view bytes);
  // The client shuts down its sending side: the server reads end of stream.
  void client_shutdown();
  // Takes everything the server wrote so far, which makes room for its
  // blocked writes.
  std::string client_read();
  // The server sent its FIN (shutdown of its sending side, or close()).
  bool server_done() const { return server_shut_send_ || closed_; }
  // The server closed the connection.
  bool closed() const { return closed_; }
  // Drops the waiting handlers without running them (at the end of a run
  // whose context is gone: they own coroutine frames that own the link).
  void reset();

 private:
  friend class transport;
  using wait_handler = asio::any_completion_handler<void(boost::system::error_code)>;
  using room_handler = asio::any_completion_handler<void()>;

  // The server's side, for transport.
  bool readable() const { return !inbound_.empty() || client_eof_ || closed_; }
  void wait_readable(wait_handler handler);
  // Copies into `buffer` what the client sent; would_block when nothing is
  // there yet, eof once the client shut down and everything was read.
  std::size_t read(void* data, std::size_t size, boost::system::error_code& ec);
  // Takes what fits into the window; the rest waits for the client to read.
  std::size_t accept(std::string_view bytes);
  // Not `on_room_ = std::move(handler)`: Boost 1.81's move assignment of
  // any_completion_handler copies from an lvalue into its converting
  // constructor, which wraps it in itself until the stack overflows.
  void wait_room(room_handler handler) { handler.swap(on_room_); }
  void shutdown_send() { server_shut_send_ = true; }
  void close();

  asio::any_io_executor executor_;
  const std::size_t window_;
  std::string inbound_;   // sent by the client, not yet read by the server
  std::string outbound_;  // taken by the "kernel", not yet read by the client
  bool client_eof_ = false;
  bool server_shut_send_ = false;
  bool closed_ = false;
  wait_handler on_readable_;  // the server waits for input
  room_handler on_room_;      // the server's write waits for the client to read
};

}  // namespace switchboard
