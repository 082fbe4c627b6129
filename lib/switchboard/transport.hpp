// The byte stream under a session: TCP, or TLS over TCP, with every write
// going through one per-connection output buffer; or, for fuzzing, a
// connection held in memory (memory_link.hpp).
//
// Why a stream of our own under Beast (docs/performance.md):
//   - One socket write per batch. The writer appends every frame it has
//     (append_text_frame) and then flushes once; a send() costs about 2 µs on
//     loopback, so one per frame cannot relay fast.
//   - Nothing interleaves on the wire. Every frame (the writer's messages,
//     pings and close frames, the reader's pongs) and Beast's 101 response
//     (async_write_some) land in the same buffer, whole, so frames never
//     mix, and at most one socket write is in flight at a time.
//   - The same session code serves ws and wss: the transport hides whether
//     TLS is under it.
//
// Everything here runs on the connection's I/O thread. Beast's upgrade (and
// async_shutdown() here) find teardown(), async_teardown() and
// beast_close_socket() below by argument-dependent lookup.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include "switchboard/memory_link.hpp"
#include "switchboard/net.hpp"
#include "switchboard/readable_wait.hpp"

namespace switchboard {

class transport {
 public:
  using socket_type = asio::ip::tcp::socket;
  using tls_stream = asio::ssl::stream<socket_type>;
  using executor_type = socket_type::executor_type;

  // Clear text.
  explicit transport(socket_type socket);
  // TLS: the handshake is still to be done (async_handshake).
  transport(socket_type socket, asio::ssl::context& tls);
  // In memory, with no socket (memory_link.hpp): clear text.
  explicit transport(std::shared_ptr<memory_link> link);

  transport(transport&& other) noexcept;
  transport& operator=(transport&&) = delete;
  ~transport();

  executor_type get_executor() { return socket().get_executor(); }
  bool is_tls() const { return tls_ != nullptr; }
  socket_type& socket() { return tls_ ? tls_->next_layer() : socket_; }

  // Closes the socket at once: pending operations end with operation_aborted.
  void close();
  // Shuts down the sending side (after an HTTP answer).
  void shutdown_send();

  // The server side of the TLS handshake. Only for a TLS transport.
  template <class Token>
  auto async_handshake(Token&& token) {
    return tls_->async_handshake(asio::ssl::stream_base::server, std::forward<Token>(token));
  }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          if (tls_)
            tls_->async_read_some(b, std::move(handler));
          else if (mem_)
            memory_read_some(first_buffer(b), std::move(handler));
          else
            socket_.async_read_some(b, std::move(handler));
        },
        token, buffers);
  }

  // Clear text only: reads what the socket has now, without waiting
  // (would_block when nothing), and waits until the socket is readable
  // without holding a buffer. Together they let an idle session wait with
  // no read buffer; see session.cpp. `more`: read again before waiting
  // (there is more to read, or may be). The wait costs no system call of
  // its own (readable_wait.hpp), which holds only if the reads before it
  // went on while `more` said so: where the kernel cannot say what is left
  // (TCP_INQ), it is async_wait, which re-arms the socket in epoll and so
  // also reports what is already there.
  std::size_t read_some_now(asio::mutable_buffer buffer, boost::system::error_code& ec,
                            bool& more) {
    more = false;
    if (mem_) {
      const std::size_t n = mem_->read(buffer.data(), buffer.size(), ec);
      more = !ec && n == buffer.size();
      return n;
    }
    if (reads_report_rest()) return read_reporting_rest(socket_, buffer, ec, more);
    if (!socket_.non_blocking()) socket_.non_blocking(true, ec);
    if (ec) return 0;
    const std::size_t n = socket_.read_some(buffer, ec);
    more = !ec && n == buffer.size();
    return n;
  }
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) {
          if (mem_)
            mem_->wait_readable(std::move(handler));
          else if (reads_report_rest())
            wait_until_readable(socket_, std::move(handler));
          else
            socket_.async_wait(socket_type::wait_read, std::move(handler));
        },
        token);
  }

  // Takes every byte at once into the output buffer and starts a socket
  // write unless one is in flight. Completes (posted) with all bytes taken,
  // or with the error that ended an earlier write.
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          auto ec = out_->error;
          std::size_t taken = 0;
          if (!ec) {
            for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b);
                 ++it) {
              const asio::const_buffer piece(*it);
              out_->pending.append(static_cast<const char*>(piece.data()), piece.size());
              taken += piece.size();
            }
            sync_held();
            start_write();
          }
          auto executor = get_executor();
          asio::post(executor, beast::bind_front_handler(std::move(handler), ec, taken));
        },
        token, buffers);
  }

  // Appends one unfragmented, unmasked WebSocket frame (a server's frame,
  // RFC 6455 section 5.2) without writing it: the next flush does. The
  // session sends nothing after a close frame.
  void append_frame(std::uint8_t opcode, std::string_view payload);
  void append_text_frame(std::string_view payload) { append_frame(0x1, payload); }
  // A close frame with `code` (RFC 6455 section 5.5.1) and a reason of at
  // most 123 bytes.
  void append_close_frame(std::uint16_t code, std::string_view reason);

  // Starts writing what was appended, without waiting: for pongs, which no
  // one awaits.
  void flush_soon() { start_write(); }

  // Bytes appended and not yet handed to the kernel, in the buffer or in
  // the socket write in flight.
  std::size_t unwritten() const { return out_->pending.size() + out_->writing.size(); }
  // The same, readable from any thread (the session's byte bound counts it).
  std::shared_ptr<const std::atomic<std::size_t>> held() const { return {out_, &out_->held}; }

  // The writing state (GET /api/sessions): bytes appended and not yet in a
  // socket write, bytes of the write in flight, and the flushes waiting.
  struct write_view {
    std::size_t pending = 0;
    std::size_t writing = 0;
    bool in_flight = false;
    std::size_t waiters = 0;
  };
  write_view write_state() const {
    return {out_->pending.size(), out_->writing.size(), out_->in_flight, out_->waiters.size()};
  }

  // Drops what was appended and is not yet in a socket write (whole frames
  // only: the write in flight is left alone).
  void discard_pending() {
    out_->pending.clear();
    sync_held();
  }

  // Gives the output buffers' memory back when nothing is buffered or being
  // written (an idle session keeps none; session.cpp's sweeper calls it).
  void release_buffers() {
    auto& out = *out_;
    if (out.in_flight || !out.pending.empty()) return;
    if (out.pending.capacity() > 15) std::string().swap(out.pending);
    if (out.writing.capacity() > 15) std::string().swap(out.writing);
    if (out.waiters.capacity() != 0) decltype(out.waiters)().swap(out.waiters);
  }

  // Writes everything appended so far; completes once the kernel took it
  // all, or with the error that ended the writing.
  template <class Token>
  auto async_flush(Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) {
          start_write();
          if (!out_->in_flight) {
            auto executor = get_executor();
            asio::post(executor, beast::bind_front_handler(std::move(handler), out_->error));
            return;
          }
          out_->waiters.emplace_back(std::move(handler));
        },
        token);
  }

  // Ends the connection after the close frames (RFC 6455 section 7.1.1):
  // flushes, then TLS close_notify, or over TCP shuts down the sending side
  // and reads until the client closes its own. The caller bounds the time.
  template <class Token>
  auto async_shutdown(Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) {
          async_teardown(beast::role_type::server, *this, std::move(handler));
        },
        token);
  }

  // What Beast's close path calls (found by argument-dependent lookup).
  friend void teardown(beast::role_type role, transport& t, boost::system::error_code& ec);
  template <class Handler>
  friend void async_teardown(beast::role_type role, transport& t, Handler&& handler) {
    // Close frames are in the buffer: they go out before the TCP or TLS
    // shutdown.
    t.async_flush(
        [&t, role, h = std::forward<Handler>(handler)](boost::system::error_code) mutable {
          if (t.tls_)
            beast::async_teardown(role, *t.tls_, std::move(h));
          else if (t.mem_)
            t.memory_teardown(std::move(h));
          else
            beast::websocket::async_teardown(role, t.socket_, std::move(h));
        });
  }
  friend void beast_close_socket(transport& t) { t.close(); }

 private:
  // The writing state, shared with the handler of the socket write in
  // flight, which can outlive the transport (it then finds owner null).
  struct output {
    transport* owner = nullptr;
    std::string pending;  // appended, not yet in a socket write
    std::string writing;  // the bytes of the socket write in flight
    bool in_flight = false;
    boost::system::error_code error;  // the first write error; sticky
    std::vector<asio::any_completion_handler<void(boost::system::error_code)>> waiters;
    std::atomic<std::size_t> held{0};  // pending + writing, for other threads
  };
  void sync_held() {
    out_->held.store(out_->pending.size() + out_->writing.size(), std::memory_order_relaxed);
  }

  void start_write();
  class write_owner;
  // The memory_link side of the operations above.
  static asio::mutable_buffer first_buffer(asio::mutable_buffer b) { return b; }
  template <class MutableBufferSequence>
  static asio::mutable_buffer first_buffer(const MutableBufferSequence& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it)
      if (asio::mutable_buffer b(*it); b.size() != 0) return b;
    return {};
  }
  void memory_read_some(
      asio::mutable_buffer buffer,
      asio::any_completion_handler<void(boost::system::error_code, std::size_t)> handler);
  void memory_teardown(asio::any_completion_handler<void(boost::system::error_code)> handler);
  static void memory_write(const std::shared_ptr<memory_link>& link, write_owner owner,
                           std::size_t offset);
  static void wrote(const std::shared_ptr<output>& out, boost::system::error_code ec);

  // Whether read_some_now's reads say what is left (readable_wait.hpp),
  // asked of the kernel once, on the first wait or read.
  bool reads_report_rest() {
    if (rest_hint_ == rest_hint::unknown)
      rest_hint_ = report_what_is_left(socket_) ? rest_hint::on : rest_hint::off;
    return rest_hint_ == rest_hint::on;
  }
  enum class rest_hint : std::uint8_t { unknown, on, off };

  socket_type socket_;  // clear text; empty with TLS
  // Owns the socket with TLS. Shared with the socket write in flight: an
  // ssl::stream must outlive its operations, and that write can outlive the
  // transport (a pong Beast wrote just before the session ended).
  std::shared_ptr<tls_stream> tls_;
  std::shared_ptr<memory_link> mem_;  // in memory: no socket, no TLS
  std::shared_ptr<output> out_;
  rest_hint rest_hint_ = rest_hint::unknown;
};

}  // namespace switchboard
