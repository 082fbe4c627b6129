#include "switchboard/ws_frames.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include <boost/beast/websocket/detail/frame.hpp>

namespace switchboard::ws {

namespace {

constexpr std::uint8_t op_continuation = 0;
constexpr std::uint8_t op_text = 1;
constexpr std::uint8_t op_binary = 2;
constexpr std::uint8_t op_close = 8;
constexpr std::uint8_t op_ping = 9;
constexpr std::uint8_t op_pong = 10;

// Reads grow up to this while they fill the room they were given.
constexpr std::size_t max_read_size = 64 * 1024;
// Above this the buffer is given back once it is empty.
constexpr std::size_t kept_buffer_bytes = 16 * 1024;

// XORs the payload with the 4-byte key, 8 bytes at a time.
void unmask(char* data, std::size_t size, const unsigned char key[4]) {
  std::uint64_t wide;
  unsigned char k8[8];
  for (int i = 0; i < 8; ++i)
    k8[i] = key[i % 4];
  std::memcpy(&wide, k8, 8);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t chunk;
    std::memcpy(&chunk, data + i, 8);
    chunk ^= wide;
    std::memcpy(data + i, &chunk, 8);
  }
  for (; i < size; ++i)
    data[i] = static_cast<char>(data[i] ^ key[i % 4]);
}

bool valid_utf8(std::string_view text) {
  beast::websocket::detail::utf8_checker checker;
  return checker.write(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()) &&
         checker.finish();
}

}  // namespace

asio::mutable_buffer frame_reader::prepare() {
  if (start_ == end_) {
    start_ = end_ = 0;
  } else if (start_ != 0) {
    std::memmove(in_.data(), in_.data() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  const std::size_t room = std::max(read_size_, wanted_);
  if (in_.size() < end_ + room) in_.resize(end_ + room);
  return asio::buffer(in_.data() + end_, in_.size() - end_);
}

void frame_reader::commit(std::size_t n) {
  // A read that filled its room suggests more is coming: read more at once.
  if (n == in_.size() - end_ && read_size_ < max_read_size) read_size_ *= 2;
  end_ += n;
}

void frame_reader::release_if_idle() {
  if (start_ != end_) return;
  start_ = end_ = 0;
  if (in_.capacity() > kept_buffer_bytes) {
    std::vector<char>().swap(in_);
    read_size_ = 512;
  }
  if (message_.capacity() > kept_buffer_bytes && !in_message_) std::vector<char>().swap(message_);
}

void frame_reader::release_while_waiting() {
  if (start_ != end_) return;
  start_ = end_ = 0;
  std::vector<char>().swap(in_);
  if (!in_message_) std::vector<char>().swap(message_);
}

input_event frame_reader::fail(std::uint16_t code) {
  failed_ = true;
  return input::failure{code};
}

input_event frame_reader::next() {
  if (clear_message_) {
    message_.clear();
    clear_message_ = false;
  }
  wanted_ = 0;
  for (;;) {
    if (failed_) return std::monostate{};
    std::size_t avail = end_ - start_;
    if (skip_ != 0) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, avail));
      start_ += n;
      skip_ -= n;
      if (skip_ != 0) return std::monostate{};
      avail -= n;
    }
    if (avail < 2) return std::monostate{};
    const auto* p = reinterpret_cast<const unsigned char*>(in_.data() + start_);
    const bool fin = (p[0] & 0x80) != 0;
    const std::uint8_t rsv = p[0] & 0x70;
    const std::uint8_t op = p[0] & 0x0f;
    const bool masked = (p[1] & 0x80) != 0;
    std::uint64_t length = p[1] & 0x7f;
    std::size_t header = 2;
    if (length == 126) {
      if (avail < 4) return std::monostate{};
      length = (std::uint64_t{p[2]} << 8) | p[3];
      if (length < 126) return fail(close_code::protocol_error);  // not the shortest form
      header = 4;
    } else if (length == 127) {
      if (avail < 10) return std::monostate{};
      length = 0;
      for (int i = 2; i < 10; ++i)
        length = (length << 8) | p[i];
      if (length < 65536 || (length >> 63) != 0) return fail(close_code::protocol_error);
      header = 10;
    }
    if (rsv != 0 || !masked) return fail(close_code::protocol_error);
    const bool control = (op & 0x8) != 0;
    if (control) {
      if (op != op_close && op != op_ping && op != op_pong) return fail(close_code::protocol_error);
      if (!fin || length > 125) return fail(close_code::protocol_error);
    } else {
      if (op != op_continuation && op != op_text && op != op_binary)
        return fail(close_code::protocol_error);
      if ((op == op_continuation) != in_message_) return fail(close_code::protocol_error);
    }
    header += 4;  // the masking key
    if (avail < header) return std::monostate{};

    if (!control) {
      const std::size_t so_far = op == op_continuation ? message_size_ : 0;
      if (discarding_ || length > max_message_bytes_ - so_far) {
        // Skipped as it arrives, however long it claims to be.
        start_ += header;
        skip_ = length;
        in_message_ = !fin;
        if (discarding_) continue;
        discarding_ = true;
        message_.clear();
        return input::too_large{};
      }
    }
    const auto size = static_cast<std::size_t>(length);
    if (avail < header + size) {
      wanted_ = header + size - avail;
      return std::monostate{};
    }
    unsigned char key[4];
    std::memcpy(key, p + header - 4, 4);
    char* payload = in_.data() + start_ + header;
    unmask(payload, size, key);
    start_ += header + size;
    const std::string_view data(payload, size);

    switch (op) {
      case op_ping:
        return input::ping{data};
      case op_pong:
        return input::pong{};
      case op_close: {
        if (size == 0) return input::close{};
        if (size == 1) return fail(close_code::protocol_error);
        const auto code = static_cast<std::uint16_t>((static_cast<unsigned char>(data[0]) << 8) |
                                                     static_cast<unsigned char>(data[1]));
        if (!beast::websocket::detail::is_valid_close_code(code))
          return fail(close_code::protocol_error);
        const auto reason = data.substr(2);
        if (!valid_utf8(reason)) return fail(close_code::bad_payload);
        return input::close{code, reason};
      }
      default: {
        auto result = data_frame(fin, op, payload, size);
        if (!std::holds_alternative<std::monostate>(result)) return result;
      }
    }
  }
}

input_event frame_reader::data_frame(bool fin, std::uint8_t op, char* payload, std::size_t size) {
  if (op != op_continuation) {
    text_ = op == op_text;
    message_size_ = 0;
    utf8_.reset();
  }
  message_size_ += size;
  if (text_) {
    // Checked frame by frame, so that bad text fails before the rest arrives.
    if (!utf8_.write(reinterpret_cast<const std::uint8_t*>(payload), size) ||
        (fin && !utf8_.finish()))
      return fail(close_code::bad_payload);
  }
  if (fin && op != op_continuation) {
    // One frame, one message: handed out where it lies, without a copy.
    in_message_ = false;
    return input::message{text_, std::string_view(payload, size)};
  }
  message_.insert(message_.end(), payload, payload + size);
  in_message_ = !fin;
  if (!fin) return std::monostate{};
  clear_message_ = true;
  return input::message{text_, std::string_view(message_.data(), message_.size())};
}

}  // namespace switchboard::ws
