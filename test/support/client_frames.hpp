// What a WebSocket client writes, byte for byte, for the tests that speak
// below Beast (malformed frames, floods, in-memory connections, fuzzing).
// Header-only: fuzz_session (test/fuzz) uses it without the test support
// library.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchboard::test {

using mask_key = std::array<std::uint8_t, 4>;
inline constexpr mask_key default_mask_key{0x37, 0xfa, 0x21, 0x3d};

// A client frame as RFC 6455 section 5.2 lays it out: `first` is its first
// byte as given (FIN, RSV, opcode); the payload masked with `key`, or sent
// unmasked (a protocol error) when `key` is nullopt. A zero key leaves the
// payload readable on the wire.
inline std::string client_frame(std::uint8_t first, std::string_view payload,
                                std::optional<mask_key> key = default_mask_key) {
  std::string out;
  out.push_back(static_cast<char>(first));
  const std::uint8_t mask_bit = key ? 0x80 : 0;
  const std::size_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i)
      out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xff));
  }
  if (key) out.append(reinterpret_cast<const char*>(key->data()), key->size());
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(key ? static_cast<char>(payload[i] ^ (*key)[i % 4]) : payload[i]);
  return out;
}

// A WebSocket upgrade request for `target` (for example "/ws/1?ack=manual").
inline std::string upgrade_request(std::string_view target, std::string_view host = "127.0.0.1") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: " + std::string(host) +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

}  // namespace switchboard::test
