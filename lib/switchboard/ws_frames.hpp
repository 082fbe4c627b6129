// The frames a WebSocket client sends (RFC 6455 section 5), read on the
// server side from bytes the session reads itself. Pure: no I/O, no clock.
//
// Why not Beast's read (docs/performance.md): Beast reads one message per
// call and posts every completion, so a socket read that brought 16 frames
// cost 16 trips through the scheduler and the coroutine machinery, about a
// third of all the CPU a relayed message cost. Here one socket read is
// followed by every frame it completed, in one turn. Beast still does the
// HTTP upgrade; the session writes its own frames (transport.hpp).
//
// What a server must enforce, and does here: client frames are masked; no
// RSV bit (no extension is negotiated); known opcodes; control frames
// unfragmented and at most 125 bytes; continuations only inside a
// fragmented message and data frames only outside one; lengths in their
// shortest form; text is UTF-8 (close 1007 otherwise); a close frame's code
// is one a peer may send and its reason UTF-8. Any other violation is close
// code 1002. A message over the size limit is reported once (too_large) and
// its payload, and every data frame after it, is skipped without being
// buffered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/websocket/detail/utf8_checker.hpp>

#include "switchboard/net.hpp"

namespace switchboard::ws {

// The close codes the server sends (RFC 6455 section 7.4.1).
namespace close_code {
constexpr std::uint16_t normal = 1000;
constexpr std::uint16_t protocol_error = 1002;
constexpr std::uint16_t bad_payload = 1007;
constexpr std::uint16_t too_big = 1009;
}  // namespace close_code

// Bytes of an unmasked frame (a server's) with a payload of `payload` bytes:
// the payload and its 2, 4 or 10 byte header (RFC 6455 section 5.2).
constexpr std::size_t frame_bytes(std::size_t payload) {
  return payload + (payload < 126 ? 2 : payload <= 0xffff ? 4 : 10);
}

namespace input {
// A whole message, unmasked and reassembled from its fragments.
struct message {
  bool text = true;
  std::string_view payload;
};
struct ping {
  std::string_view payload;
};
struct pong {};
// code 0: the close frame had no code (1005, "no status received").
struct close {
  std::uint16_t code = 0;
  std::string_view reason;
};
// The message in progress is over the size limit: close with 1009.
struct too_large {};
// The peer broke the protocol: close with `code`; nothing more is read.
struct failure {
  std::uint16_t code = close_code::protocol_error;
};
}  // namespace input

// std::monostate: nothing complete yet, read more.
using input_event = std::variant<std::monostate, input::message, input::ping, input::pong,
                                 input::close, input::too_large, input::failure>;

class frame_reader {
 public:
  explicit frame_reader(std::size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Room for the next socket read. Invalidates the views next() gave.
  asio::mutable_buffer prepare();
  // `n` bytes were read into the room prepare() gave.
  void commit(std::size_t n);

  // The next message or control frame among the bytes read; monostate when
  // it is not complete yet. Its views stay valid until the next call to
  // next() or prepare().
  input_event next();

  // Gives large buffers back when nothing is buffered.
  void release_if_idle();
  // Gives the read buffer back if nothing is buffered, whatever its size:
  // before a session waits for the socket to become readable, so that an
  // idle session holds no read buffer (docs/performance.md).
  void release_while_waiting();

 private:
  input_event fail(std::uint16_t code);
  input_event data_frame(bool fin, std::uint8_t op, char* payload, std::size_t size);

  const std::size_t max_message_bytes_;
  std::vector<char> in_;  // bytes read: [start_, end_) not parsed yet
  std::size_t start_ = 0;
  std::size_t end_ = 0;
  std::size_t read_size_ = 512;  // next read; doubles while reads fill it
  std::size_t wanted_ = 0;       // bytes the frame in progress still lacks
  std::uint64_t skip_ = 0;       // payload bytes of a skipped frame still to come
  std::vector<char> message_;    // fragments of the message in progress
  std::size_t message_size_ = 0;
  bool in_message_ = false;  // between a non-final data frame and its last fragment
  bool text_ = false;        // the message in progress is text
  bool discarding_ = false;  // after too_large: data frames are skipped
  bool failed_ = false;
  bool clear_message_ = false;  // message_ was handed out: clear it first next time
  beast::websocket::detail::utf8_checker utf8_;
};

}  // namespace switchboard::ws
