// wire_client: the client end of one WebSocket connection, written directly
// on a TCP socket so that it costs the load client little per message.
//
// A Beast stream costs a posted completion and a coroutine resumption per
// message read or written; at the rates the server is meant to reach (several
// hundred thousand messages per second on one core) that made the client
// dearer than the server, which then measured the client. Here:
// - reading: one read_some fills a 64 KiB buffer (by default) and every
//   complete frame in it is handed to the caller in one loop, without
//   suspending; pings are answered, a close frame is answered and the
//   connection read to its end;
// - writing: the caller appends frames (masked, as a client must) to one
//   output buffer and calls flush(): one socket write per batch, one write in
//   flight at a time, what is appended meanwhile goes in the next. Pongs and
//   close frames go through the same buffer, so frames never interleave.
// The upgrade is a plain HTTP/1.1 request; the response must be 101.
#pragma once

#include <boost/asio.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// What the server speaks.
enum class protocol {
  // PROTOCOL.md: a CONNECT welcome first; delivered frames carry seq, sender
  // and ts; receipts for SENDs with an id.
  switchboard,
  // The original design (../shared/baselines/seed-go): no welcome, no seq,
  // no receipts; a SEND is forwarded to the receiver as it was sent.
  seed,
};

struct server_target {
  std::string host;  // as given, for the Host header
  std::string port;
  std::vector<tcp::endpoint> endpoints;  // resolved once, tried in order
  protocol speaks = protocol::switchboard;
};

// Reads a server address as --url and --receiver-url take it: HOST:PORT,
// with an optional ws:// in front and anything from the first '/' after it
// ignored; an IPv6 host may be bracketed ([::1]:8080, the brackets dropped).
// Sets host and port and returns true, or returns false with both untouched.
bool parse_address(std::string_view text, std::string& host, std::string& port);

struct open_result {
  bool ok = false;
  std::uint64_t welcome_seq = 0;  // the welcome's seq (Switchboard); 0 otherwise
  std::string error;              // what failed, when !ok
};

// How a connection ended.
struct end_reason {
  error_code ec;                 // the read error; eof after a close exchange
  std::optional<unsigned> code;  // the close code of the server's close frame, if any
  std::string reason;            // and its reason text
  bool protocol_error = false;   // a frame a server may not send
};

class wire_client {
 public:
  // `buffer_bytes`: the read buffer's initial size (it grows for a larger frame).
  explicit wire_client(asio::io_context& ioc, std::size_t buffer_bytes = 64 * 1024);
  wire_client(const wire_client&) = delete;
  wire_client& operator=(const wire_client&) = delete;

  // TCP connect (bound to `source` first if given, its port left to connect,
  // to spread many connections over several source addresses' ephemeral
  // ports), the upgrade to /ws/{user}, and for Switchboard the welcome.
  asio::awaitable<open_result> open(const server_target& target, std::uint64_t user,
                                    std::optional<asio::ip::address> source = {});

  // Reads until the connection ends, calling on_message(std::string_view) for
  // every text or binary message, the view valid during the call. Returns
  // once the server closed the TCP connection (after a close exchange, or
  // not) or reading failed, with the socket closed.
  template <class OnMessage>
  asio::awaitable<end_reason> read_loop(OnMessage on_message);

  // Appends one text frame; it is written at the next flush().
  void append_text(std::string_view payload);
  // Starts writing what was appended, unless a write is in flight: its
  // completion writes the rest.
  void flush();
  // Sends a close frame (1000) once; read_loop ends when the server has
  // answered and closed.
  void close();
  // Drops the TCP connection.
  void abort();

  bool is_open() const { return socket_.is_open(); }
  bool close_sent() const { return close_sent_; }
  std::uint64_t socket_writes() const { return writes_; }

 private:
  enum class step { need_more, message, consumed, closed, failed };
  // Takes the next frame out of the read buffer: a message (in `payload`), a
  // control frame handled here, or not enough bytes yet.
  step next_frame(std::string_view& payload);
  // Makes room at the end of the read buffer for at least `want` more bytes.
  void make_room(std::size_t want);
  void append_frame(unsigned opcode, std::string_view payload);
  std::uint32_t next_mask();

  tcp::socket socket_;
  std::unique_ptr<char[]> in_;  // read buffer: [rd_, wr_) unconsumed
  std::size_t in_size_, rd_ = 0, wr_ = 0;
  std::string fragments_;  // a fragmented message, until its last frame
  bool in_fragmented_ = false;
  std::string pending_;    // appended, not yet handed to the socket
  std::string in_flight_;  // the socket write in progress
  bool writing_ = false;
  error_code write_error_;
  std::uint64_t writes_ = 0;
  bool close_sent_ = false;
  bool close_received_ = false;
  end_reason end_;
  std::uint64_t mask_state_;
};

template <class OnMessage>
asio::awaitable<end_reason> wire_client::read_loop(OnMessage on_message) {
  for (;;) {
    std::string_view payload;
    step s;
    while ((s = next_frame(payload)) != step::need_more) {
      if (s == step::message) on_message(payload);
      if (s == step::failed) {
        abort();
        co_return end_;
      }
    }
    make_room(4096);
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(in_.get() + wr_, in_size_ - wr_),
                                                    asio::as_tuple(asio::use_awaitable));
    if (ec) {
      // The end of the connection (a server waits for it after the close
      // exchange), or a failure: either way this side is done with it.
      end_.ec = ec;
      abort();
      co_return end_;
    }
    wr_ += n;
  }
}

}  // namespace bench
