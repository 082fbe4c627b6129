#include "wire_client.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstring>

#include "frames.hpp"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace bench {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Larger frames than this end the connection: no server frame of the
// benchmark comes near it.
constexpr std::uint64_t max_frame_bytes = 64 * 1024 * 1024;
// A response header block larger than this is not a WebSocket upgrade.
constexpr std::size_t max_response_header_bytes = 16 * 1024;

// Binds `sock` to `source` with the port left to connect(), which then only
// needs the 4-tuple to be unique (IP_BIND_ADDRESS_NO_PORT), not the port.
error_code bind_source(tcp::socket& sock, const tcp::endpoint& to,
                       const asio::ip::address& source) {
  error_code ec;
  sock.open(to.protocol(), ec);
  if (ec) return ec;
  using no_port = asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>;
  sock.set_option(no_port(true), ec);
  if (ec) return ec;
  sock.bind(tcp::endpoint(source, 0), ec);
  return ec;
}

// A Sec-WebSocket-Key: the base64 form of 16 bytes.
std::string websocket_key(std::uint64_t& state) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string key;
  for (int i = 0; i < 21; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    key += alphabet[state % 64];
  }
  key += "AQgw"[state % 4];  // the last 2 bits of the 16th byte, then 4 zero bits
  key += "==";
  return key;
}

// XORs `n` bytes at `p` with the 4-byte mask `key` (bytes in wire order).
void apply_mask(char* p, std::size_t n, const unsigned char key[4]) {
  std::uint64_t k8;
  std::memcpy(&k8, key, 4);
  std::memcpy(reinterpret_cast<char*>(&k8) + 4, key, 4);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= k8;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i)
    p[i] = static_cast<char>(p[i] ^ key[i % 4]);
}

}  // namespace

bool parse_address(std::string_view text, std::string& host, std::string& port) {
  if (text.starts_with("ws://")) text.remove_prefix(5);
  if (auto slash = text.find('/'); slash != std::string_view::npos) text = text.substr(0, slash);
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return false;
  std::string_view h = text.substr(0, colon), p = text.substr(colon + 1);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  host = h;
  port = p;
  return true;
}

wire_client::wire_client(asio::io_context& ioc, std::size_t buffer_bytes)
    : socket_(ioc),
      in_(new char[std::max<std::size_t>(buffer_bytes, 256)]),
      in_size_(std::max<std::size_t>(buffer_bytes, 256)),
      mask_state_(
          static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) |
          1) {}

std::uint32_t wire_client::next_mask() {
  // xorshift64*: masks need no secrecy here, only to be masks.
  mask_state_ ^= mask_state_ >> 12;
  mask_state_ ^= mask_state_ << 25;
  mask_state_ ^= mask_state_ >> 27;
  return static_cast<std::uint32_t>((mask_state_ * 0x2545F4914F6CDD1Dull) >> 32);
}

void wire_client::make_room(std::size_t want) {
  if (rd_ == wr_) rd_ = wr_ = 0;
  if (in_size_ - wr_ >= want) return;
  if (rd_ > 0) {
    std::memmove(in_.get(), in_.get() + rd_, wr_ - rd_);
    wr_ -= rd_;
    rd_ = 0;
  }
  if (in_size_ - wr_ >= want) return;
  std::size_t size = std::max(in_size_ * 2, wr_ + want);
  std::unique_ptr<char[]> bigger(new char[size]);
  std::memcpy(bigger.get(), in_.get(), wr_);
  in_ = std::move(bigger);
  in_size_ = size;
}

wire_client::step wire_client::next_frame(std::string_view& payload) {
  const std::size_t avail = wr_ - rd_;
  if (avail < 2) return step::need_more;
  const auto* p = reinterpret_cast<const unsigned char*>(in_.get() + rd_);
  const bool fin = p[0] & 0x80;
  const unsigned opcode = p[0] & 0x0f;
  const bool masked = p[1] & 0x80;
  std::uint64_t len = p[1] & 0x7f;
  std::size_t header = 2;
  if (len == 126) {
    if (avail < 4) return step::need_more;
    len = (std::uint64_t{p[2]} << 8) | p[3];
    header = 4;
  } else if (len == 127) {
    if (avail < 10) return step::need_more;
    len = 0;
    for (int i = 2; i < 10; ++i)
      len = (len << 8) | p[i];
    header = 10;
  }
  const std::size_t key_at = header;
  if (masked) header += 4;
  auto fail = [&] {
    end_.protocol_error = true;
    return step::failed;
  };
  if ((p[0] & 0x70) != 0 || len > max_frame_bytes) return fail();
  if (avail < header + len) {
    // make_room, before the next read, keeps the frame's start and finds room for its end.
    if (in_size_ - rd_ < header + len) make_room(header + len - avail);
    return step::need_more;
  }
  char* data = in_.get() + rd_ + header;
  if (masked) {  // a server must not mask; unmask anyway
    unsigned char key[4];
    std::memcpy(key, p + key_at, 4);
    apply_mask(data, len, key);
  }
  rd_ += header + len;
  std::string_view body(data, len);

  if (opcode >= 8) {  // control frames: whole and short
    if (!fin || len > 125) return fail();
    if (opcode == 0x9) {  // ping: pong with the same payload
      if (!close_sent_) {
        append_frame(0xA, body);
        flush();
      }
    } else if (opcode == 0x8) {  // close: remember why, answer once
      if (!close_received_) {
        close_received_ = true;
        if (body.size() >= 2) {
          end_.code =
              (static_cast<unsigned char>(body[0]) << 8) | static_cast<unsigned char>(body[1]);
          end_.reason.assign(body.substr(2));
        }
        if (!close_sent_) {
          close_sent_ = true;
          append_frame(0x8, body.substr(0, std::min<std::size_t>(body.size(), 2)));
          flush();
        }
      }
    } else if (opcode != 0xA) {
      return fail();
    }
    return step::consumed;
  }
  if (close_received_) return step::consumed;  // nothing counts after a close
  if (opcode == 0x1 || opcode == 0x2) {
    if (in_fragmented_) return fail();
    if (fin) {
      payload = body;
      return step::message;
    }
    fragments_.assign(body);
    in_fragmented_ = true;
    return step::consumed;
  }
  if (opcode == 0x0) {
    if (!in_fragmented_) return fail();
    fragments_.append(body);
    if (!fin) return step::consumed;
    in_fragmented_ = false;
    payload = fragments_;
    return step::message;
  }
  return fail();
}

void wire_client::append_frame(unsigned opcode, std::string_view payload) {
  unsigned char header[14];
  std::size_t n = 0;
  header[n++] = static_cast<unsigned char>(0x80 | opcode);
  const std::uint64_t len = payload.size();
  if (len < 126) {
    header[n++] = static_cast<unsigned char>(0x80 | len);
  } else if (len <= 0xffff) {
    header[n++] = 0x80 | 126;
    header[n++] = static_cast<unsigned char>(len >> 8);
    header[n++] = static_cast<unsigned char>(len);
  } else {
    header[n++] = 0x80 | 127;
    for (int shift = 56; shift >= 0; shift -= 8)
      header[n++] = static_cast<unsigned char>(len >> shift);
  }
  const std::uint32_t mask = next_mask();
  unsigned char* key = header + n;
  std::memcpy(key, &mask, 4);
  n += 4;
  const std::size_t at = pending_.size();
  pending_.resize(at + n + len);
  std::memcpy(pending_.data() + at, header, n);
  std::memcpy(pending_.data() + at + n, payload.data(), len);
  apply_mask(pending_.data() + at + n, len, key);
}

void wire_client::append_text(std::string_view payload) {
  append_frame(0x1, payload);
}

void wire_client::flush() {
  if (writing_ || pending_.empty() || write_error_ || !socket_.is_open()) return;
  writing_ = true;
  ++writes_;
  std::swap(pending_, in_flight_);
  asio::async_write(socket_, asio::buffer(in_flight_), [this](error_code ec, std::size_t) {
    writing_ = false;
    in_flight_.clear();
    if (ec) {
      write_error_ = ec;
      return;
    }
    flush();
  });
}

void wire_client::close() {
  if (close_sent_ || !socket_.is_open()) return;
  close_sent_ = true;
  append_frame(0x8, std::string_view("\x03\xe8", 2));  // 1000, normal closure
  flush();
}

void wire_client::abort() {
  error_code ec;
  socket_.close(ec);
}

asio::awaitable<open_result> wire_client::open(const server_target& target, std::uint64_t user,
                                               std::optional<asio::ip::address> source) {
  open_result r;
  auto fail = [&](const std::string& what, const std::string& why) {
    r.error = what + " (user " + std::to_string(user) + "): " + why;
    return r;
  };
  if (target.endpoints.empty()) co_return fail("connect", "no address");
  if (source) {
    // A bound socket can only try endpoints of its own family: take the first.
    auto to = target.endpoints.front();
    if (auto ec = bind_source(socket_, to, *source)) co_return fail("bind", ec.message());
    auto [cec] = co_await socket_.async_connect(to, use_tuple);
    if (cec) co_return fail("connect", cec.message());
  } else {
    auto [cec, ep] = co_await asio::async_connect(socket_, target.endpoints, use_tuple);
    if (cec) co_return fail("connect", cec.message());
  }
  error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);

  std::string request = "GET /ws/" + std::to_string(user) +
                        " HTTP/1.1\r\n"
                        "Host: " +
                        target.host + ":" + target.port +
                        "\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Key: " +
                        websocket_key(mask_state_) +
                        "\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n";
  auto [wec, wn] = co_await asio::async_write(socket_, asio::buffer(request), use_tuple);
  if (wec) co_return fail("handshake", wec.message());

  // The response header block; what follows it stays in the buffer.
  std::size_t header_end = std::string_view::npos;
  for (;;) {
    std::string_view got(in_.get() + rd_, wr_ - rd_);
    if (auto at = got.find("\r\n\r\n"); at != std::string_view::npos) {
      header_end = at + 4;
      break;
    }
    if (got.size() > max_response_header_bytes) co_return fail("handshake", "response too large");
    make_room(4096);
    auto [rec, n] =
        co_await socket_.async_read_some(asio::buffer(in_.get() + wr_, in_size_ - wr_), use_tuple);
    if (rec) co_return fail("handshake", rec.message());
    wr_ += n;
  }
  std::string_view response(in_.get() + rd_, header_end);
  std::string_view status = response.substr(0, response.find("\r\n"));
  if (!status.starts_with("HTTP/1.1 101")) co_return fail("handshake", std::string(status));
  rd_ += header_end;

  if (target.speaks == protocol::switchboard) {
    for (;;) {
      std::string_view payload;
      step s;
      while ((s = next_frame(payload)) != step::need_more) {
        if (s == step::failed) co_return fail("reading the welcome", "not a WebSocket frame");
        if (s != step::message) continue;
        frame_view frame;
        if (!frame.parse(payload) || frame.u64(frame_view::type) != 0u)
          co_return fail("reading the welcome", "the first frame is not a CONNECT welcome");
        r.welcome_seq = frame.u64(frame_view::seq).value_or(0);
        r.ok = true;
        co_return r;
      }
      if (close_received_) co_return fail("reading the welcome", "the server closed");
      make_room(4096);
      auto [rec, n] = co_await socket_.async_read_some(
          asio::buffer(in_.get() + wr_, in_size_ - wr_), use_tuple);
      if (rec) co_return fail("reading the welcome", rec.message());
      wr_ += n;
    }
  }
  r.ok = true;
  co_return r;
}

}  // namespace bench
