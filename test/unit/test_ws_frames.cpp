#define BOOST_TEST_MODULE ws_frames
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "switchboard/ws_frames.hpp"

namespace ws = switchboard::ws;

namespace {

// Opcodes (RFC 6455 section 5.2), spelled out here rather than taken from
// the reader, so that the frames below do not share its mistakes.
namespace op {
constexpr std::uint8_t continuation = 0x0;
constexpr std::uint8_t text = 0x1;
constexpr std::uint8_t binary = 0x2;
constexpr std::uint8_t close = 0x8;
constexpr std::uint8_t ping = 0x9;
constexpr std::uint8_t pong = 0xA;
}  // namespace op

constexpr std::size_t no_limit = std::size_t{1} << 20;

enum class length_form { shortest, bits16, bits64 };

struct frame_options {
  bool fin = true;
  std::uint8_t rsv = 0;  // the three RSV bits, 0..7
  bool masked = true;
  length_form form = length_form::shortest;
  // Written in the header instead of the payload's size (the payload
  // itself is still appended, masked, whatever its size).
  std::optional<std::uint64_t> claimed_length = {};
};

// A client frame, encoded independently of the reader. Every frame gets a
// new masking key with no zero byte, so that a reader that skipped or
// misapplied the mask, or reused an earlier key, would read garbage.
std::string frame(std::uint8_t opcode, std::string_view payload, frame_options o = {}) {
  static std::uint32_t key_state = 0x37fa213d;
  key_state = key_state * 1103515245u + 12345u;
  const std::uint32_t key_bits = key_state | 0x01010101u;
  const unsigned char key[4] = {
      static_cast<unsigned char>(key_bits >> 24), static_cast<unsigned char>(key_bits >> 16),
      static_cast<unsigned char>(key_bits >> 8), static_cast<unsigned char>(key_bits)};

  std::string out;
  out.push_back(static_cast<char>((o.fin ? 0x80 : 0) | (o.rsv << 4) | opcode));
  const std::uint64_t length = o.claimed_length.value_or(payload.size());
  const int mask_bit = o.masked ? 0x80 : 0;
  length_form form = o.form;
  if (form == length_form::shortest && length > 125)
    form = length <= 0xFFFF ? length_form::bits16 : length_form::bits64;
  switch (form) {
    case length_form::shortest:
      out.push_back(static_cast<char>(mask_bit | static_cast<int>(length)));
      break;
    case length_form::bits16:
      out.push_back(static_cast<char>(mask_bit | 126));
      for (int shift = 8; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((length >> shift) & 0xFF));
      break;
    case length_form::bits64:
      out.push_back(static_cast<char>(mask_bit | 127));
      for (int shift = 56; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((length >> shift) & 0xFF));
      break;
  }
  if (o.masked) out.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    out.push_back(o.masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  return out;
}

// The payload of a close frame: the code in network order, then the reason.
std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string out{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  out += reason;
  return out;
}

// `n` bytes that differ from one position to the next (ASCII, so also text).
std::string filler(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return out;
}

// Payloads in failure messages: printable bytes as they are, others as \xNN,
// long ones by their size only (their bytes are compared through
// `payloads`).
std::string quoted(std::string_view bytes) {
  if (bytes.size() > 32) return "<" + std::to_string(bytes.size()) + " bytes>";
  std::string out = "'";
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) {
      out.push_back(c);
    } else {
      constexpr std::string_view hex = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xF]);
    }
  }
  return out + "'";
}

// A frame_reader driven the way the session drives it: prepare(), copy in
// what the socket would have read, commit(), then next() until monostate.
// What next() returns is written down as text at once (its views die with
// the next call), so that a whole sequence is compared in one BOOST_TEST.
class harness {
 public:
  explicit harness(std::size_t max_message_bytes = no_limit) : reader(max_message_bytes) {}

  // Copies `bytes` in without calling next(): as many reads as the room
  // prepare() gives takes, at most `chunk` bytes each. Returns the number of reads.
  int feed(std::string_view bytes, std::size_t chunk = std::numeric_limits<std::size_t>::max()) {
    int reads = 0;
    while (!bytes.empty()) {
      const auto room = reader.prepare();
      const std::size_t n = std::min({bytes.size(), room.size(), chunk});
      BOOST_REQUIRE(n > 0);
      std::memcpy(room.data(), bytes.data(), n);
      reader.commit(n);
      bytes.remove_prefix(n);
      ++reads;
    }
    return reads;
  }

  // Every event the bytes read so far complete, as "kind payload | ...".
  std::string drain() {
    std::string out;
    for (;;) {
      const auto event = reader.next();
      if (std::holds_alternative<std::monostate>(event)) return out;
      if (!out.empty()) out += " | ";
      out += describe(event);
    }
  }

  // Reads of at most `chunk` bytes, each followed by drain().
  std::string read(std::string_view bytes,
                   std::size_t chunk = std::numeric_limits<std::size_t>::max()) {
    std::string out;
    while (!bytes.empty()) {
      const std::size_t n = std::min(bytes.size(), chunk);
      feed(bytes.substr(0, n));
      bytes.remove_prefix(n);
      const auto events = drain();
      if (!events.empty() && !out.empty()) out += " | ";
      out += events;
    }
    return out;
  }

  ws::frame_reader reader;
  // The payload of every message and ping, and the reason of every close, in order.
  std::vector<std::string> payloads;

 private:
  std::string describe(const ws::input_event& event) {
    if (const auto* m = std::get_if<ws::input::message>(&event)) {
      payloads.emplace_back(m->payload);
      return (m->text ? "text " : "binary ") + quoted(m->payload);
    }
    if (const auto* p = std::get_if<ws::input::ping>(&event)) {
      payloads.emplace_back(p->payload);
      return "ping " + quoted(p->payload);
    }
    if (std::holds_alternative<ws::input::pong>(event)) return "pong";
    if (const auto* c = std::get_if<ws::input::close>(&event)) {
      payloads.emplace_back(c->reason);
      if (c->code == 0 && c->reason.empty()) return "close";
      return "close " + std::to_string(c->code) + " " + quoted(c->reason);
    }
    if (std::holds_alternative<ws::input::too_large>(event)) return "too_large";
    const auto& f = std::get<ws::input::failure>(event);
    return "failure " + std::to_string(f.code);
  }
};

// What a fresh reader makes of `bytes` read at once.
std::string read_all(std::string_view bytes, std::size_t max_message_bytes = no_limit) {
  harness h(max_message_bytes);
  return h.read(bytes);
}

// A stream with a bit of everything: a single-frame message, a 16-bit
// length, a message in three fragments with a ping and a pong between them,
// a split UTF-8 code point, a close.
std::string mixed_stream() {
  return frame(op::text, "Hello") + frame(op::binary, filler(200)) +
         frame(op::text, "one \xe2\x82", {.fin = false}) + frame(op::ping, "p") +
         frame(op::continuation, "\xac two ", {.fin = false}) + frame(op::pong, "") +
         frame(op::continuation, "three") + frame(op::close, close_payload(1000, "bye"));
}
constexpr std::string_view mixed_events =
    "text 'Hello' | binary <200 bytes> | ping 'p' | pong | text 'one \\xe2\\x82\\xac two three' | "
    "close 1000 'bye'";

}  // namespace

BOOST_AUTO_TEST_CASE(text_message_in_one_frame) {
  harness h;
  BOOST_TEST(h.read(frame(op::text, "Hello, world")) == "text 'Hello, world'");
  BOOST_TEST(std::holds_alternative<std::monostate>(h.reader.next()));
  BOOST_TEST(h.read(frame(op::text, "")) == "text ''");
  BOOST_TEST(h.read(frame(op::binary, "\x01\x02")) == "binary '\\x01\\x02'");
}

// The unmasking works 8 bytes at a time, then byte by byte: every payload
// size across a few words, at every offset in the buffer.
BOOST_AUTO_TEST_CASE(payloads_of_every_small_size_are_unmasked) {
  harness h;
  for (std::size_t n = 0; n <= 40; ++n) {
    BOOST_TEST_INFO("payload size " << n);
    h.read(frame(op::binary, filler(n)));
    BOOST_REQUIRE(h.payloads.size() == n + 1);
    BOOST_TEST(h.payloads.back() == filler(n));
  }
}

BOOST_AUTO_TEST_CASE(several_frames_in_one_read) {
  harness h;
  const auto bytes = frame(op::text, "one") + frame(op::binary, std::string("\x00\xff", 2)) +
                     frame(op::ping, "p") + frame(op::pong, "q") + frame(op::text, "two") +
                     frame(op::close, close_payload(1000, "bye"));
  BOOST_TEST(h.feed(bytes) == 1);  // one commit, then the events in order
  BOOST_TEST(h.drain() ==
             "text 'one' | binary '\\x00\\xff' | ping 'p' | pong | text 'two' | close 1000 'bye'");
  BOOST_TEST(std::holds_alternative<std::monostate>(h.reader.next()));
  BOOST_TEST(std::holds_alternative<std::monostate>(h.reader.next()));
}

BOOST_AUTO_TEST_CASE(split_at_every_byte_boundary) {
  const auto bytes = mixed_stream();
  BOOST_TEST(read_all(bytes) == mixed_events);

  // One byte per read, next() after each.
  harness one_by_one;
  BOOST_TEST(one_by_one.read(bytes, 1) == mixed_events);
  BOOST_TEST(one_by_one.payloads[1] == filler(200));

  // Two reads, split at each position.
  for (std::size_t split = 1; split < bytes.size(); ++split) {
    BOOST_TEST_INFO("split at " << split);
    harness h;
    const auto first = h.read(std::string_view(bytes).substr(0, split));
    const auto second = h.read(std::string_view(bytes).substr(split));
    BOOST_TEST(first + (first.empty() || second.empty() ? "" : " | ") + second == mixed_events);
  }

  // A message is returned with its last byte, not before.
  const auto single = frame(op::text, filler(300));
  harness h;
  for (std::size_t i = 0; i + 1 < single.size(); ++i) {
    BOOST_TEST_INFO("after byte " << i);
    BOOST_TEST(h.read(single.substr(i, 1)) == "");
  }
  BOOST_TEST(h.read(single.substr(single.size() - 1)) == "text <300 bytes>");
  BOOST_TEST(h.payloads.back() == filler(300));
}

// Each header length (2 + 0, 2 or 8 + 4 bytes) cut at each of its bytes.
BOOST_AUTO_TEST_CASE(headers_split_at_every_byte) {
  for (const std::size_t n : {5u, 200u, 65541u}) {
    const auto bytes = frame(op::binary, filler(n));
    const std::size_t header = n < 126 ? 6 : n <= 0xFFFF ? 8 : 14;
    for (std::size_t split = 1; split <= header; ++split) {
      BOOST_TEST_INFO("payload size " << n << ", split at " << split);
      harness h;
      BOOST_TEST(h.read(bytes.substr(0, split)) == "");
      BOOST_TEST(h.read(bytes.substr(split)) == "binary " + quoted(filler(n)));
      BOOST_TEST(h.payloads.at(0) == filler(n));
    }
  }
  // A refusal waits for the bytes it rests on: the last byte of a 64-bit
  // length (5, not in its shortest form) is not read before it arrives.
  const auto not_shortest = frame(op::binary, filler(5), {.form = length_form::bits64});
  harness h;
  BOOST_TEST(h.read(not_shortest.substr(0, 9), 1) == "");
  BOOST_TEST(h.read(not_shortest.substr(9, 1)) == "failure 1002");
}

BOOST_AUTO_TEST_CASE(lengths_in_16_and_64_bits) {
  for (const std::size_t n : {126u, 1000u, 65535u, 65536u, 70000u}) {
    BOOST_TEST_INFO("payload size " << n);
    const auto bytes = frame(op::binary, filler(n));
    BOOST_TEST((static_cast<unsigned char>(bytes[1]) & 0x7F) == (n <= 0xFFFF ? 126 : 127));
    harness h;
    BOOST_TEST(h.read(bytes) == "binary <" + std::to_string(n) + " bytes>");
    BOOST_TEST(h.payloads.at(0) == filler(n));
  }
}

BOOST_AUTO_TEST_CASE(lengths_not_in_their_shortest_form) {
  BOOST_TEST(read_all(frame(op::text, "hi", {.form = length_form::bits16})) == "failure 1002");
  BOOST_TEST(read_all(frame(op::text, filler(125), {.form = length_form::bits16})) ==
             "failure 1002");
  BOOST_TEST(read_all(frame(op::text, filler(126), {.form = length_form::bits16})) ==
             "text <126 bytes>");
  BOOST_TEST(read_all(frame(op::binary, "", {.form = length_form::bits64})) == "failure 1002");
  BOOST_TEST(read_all(frame(op::binary, filler(65535), {.form = length_form::bits64})) ==
             "failure 1002");
  BOOST_TEST(read_all(frame(op::binary, filler(65536), {.form = length_form::bits64})) ==
             "binary <65536 bytes>");
  // The most significant bit of a 64-bit length must be 0: refused from the
  // header alone.
  BOOST_TEST(read_all(frame(op::binary, "", {.claimed_length = std::uint64_t{1} << 63})) ==
             "failure 1002");
}

BOOST_AUTO_TEST_CASE(unmasked_frame) {
  BOOST_TEST(read_all(frame(op::text, "hi", {.masked = false})) == "failure 1002");
  BOOST_TEST(read_all(frame(op::ping, "", {.masked = false})) == "failure 1002");
  // After a good frame too.
  BOOST_TEST(read_all(frame(op::text, "a") + frame(op::text, "b", {.masked = false})) ==
             "text 'a' | failure 1002");
}

BOOST_AUTO_TEST_CASE(rsv_bits) {
  for (std::uint8_t rsv = 1; rsv <= 7; ++rsv) {
    BOOST_TEST_INFO("rsv " << int{rsv});
    BOOST_TEST(read_all(frame(op::text, "hi", {.rsv = rsv})) == "failure 1002");
    BOOST_TEST(read_all(frame(op::ping, "", {.rsv = rsv})) == "failure 1002");
  }
}

BOOST_AUTO_TEST_CASE(reserved_opcodes) {
  for (const std::uint8_t opcode : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
    BOOST_TEST_INFO("opcode " << int{opcode});
    BOOST_TEST(read_all(frame(opcode, "x")) == "failure 1002");
    BOOST_TEST(read_all(frame(opcode, "")) == "failure 1002");
  }
}

BOOST_AUTO_TEST_CASE(fragmented_text_with_control_frames_between) {
  const auto bytes = frame(op::text, "Hel", {.fin = false}) + frame(op::ping, "p1") +
                     frame(op::continuation, "lo, ", {.fin = false}) + frame(op::pong, "") +
                     frame(op::continuation, "", {.fin = false}) + frame(op::ping, "p2") +
                     frame(op::continuation, "world") + frame(op::text, "next");
  const std::string expected = "ping 'p1' | pong | ping 'p2' | text 'Hello, world' | text 'next'";
  BOOST_TEST(read_all(bytes) == expected);
  harness h;
  BOOST_TEST(h.read(bytes, 1) == expected);
}

BOOST_AUTO_TEST_CASE(fragmented_messages_one_after_another) {
  // The second message must not start with what is left of the first.
  const auto bytes = frame(op::text, "ab", {.fin = false}) + frame(op::continuation, "cd") +
                     frame(op::binary, "ef", {.fin = false}) + frame(op::continuation, "gh") +
                     frame(op::text, "ij") + frame(op::text, "k", {.fin = false}) +
                     frame(op::continuation, "l");
  BOOST_TEST(read_all(bytes) == "text 'abcd' | binary 'efgh' | text 'ij' | text 'kl'");
}

BOOST_AUTO_TEST_CASE(continuation_without_a_start) {
  BOOST_TEST(read_all(frame(op::continuation, "x")) == "failure 1002");
  BOOST_TEST(read_all(frame(op::continuation, "x", {.fin = false})) == "failure 1002");
  // The message before it was complete.
  BOOST_TEST(read_all(frame(op::text, "a") + frame(op::continuation, "b")) ==
             "text 'a' | failure 1002");
  BOOST_TEST(read_all(frame(op::text, "a", {.fin = false}) + frame(op::continuation, "b") +
                      frame(op::continuation, "c")) == "text 'ab' | failure 1002");
}

BOOST_AUTO_TEST_CASE(new_data_frame_inside_a_fragmented_message) {
  BOOST_TEST(read_all(frame(op::text, "a", {.fin = false}) + frame(op::text, "b")) ==
             "failure 1002");
  BOOST_TEST(read_all(frame(op::text, "a", {.fin = false}) + frame(op::binary, "b")) ==
             "failure 1002");
  BOOST_TEST(read_all(frame(op::binary, "a", {.fin = false}) + frame(op::ping, "") +
                      frame(op::text, "b", {.fin = false})) == "ping '' | failure 1002");
}

BOOST_AUTO_TEST_CASE(fragmented_control_frames) {
  BOOST_TEST(read_all(frame(op::ping, "p", {.fin = false})) == "failure 1002");
  BOOST_TEST(read_all(frame(op::pong, "p", {.fin = false})) == "failure 1002");
  BOOST_TEST(read_all(frame(op::close, close_payload(1000), {.fin = false})) == "failure 1002");
}

BOOST_AUTO_TEST_CASE(control_frames_over_125_bytes) {
  harness h;
  BOOST_TEST(h.read(frame(op::ping, filler(125))) == "ping <125 bytes>");
  BOOST_TEST(h.payloads.at(0) == filler(125));
  BOOST_TEST(read_all(frame(op::ping, filler(126))) == "failure 1002");
  BOOST_TEST(read_all(frame(op::pong, filler(126))) == "failure 1002");
  BOOST_TEST(read_all(frame(op::close, close_payload(1000, filler(124)))) == "failure 1002");
  // A 7-bit length can say 126 only as the 16-bit marker; 125 in 16 bits is
  // refused for its form as well.
  BOOST_TEST(read_all(frame(op::ping, filler(125), {.form = length_form::bits16})) ==
             "failure 1002");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_text) {
  for (const std::string_view bad : {
           "\xff",                  // never in UTF-8
           "a\x80",                 // continuation byte without a lead
           "\xc0\xaf",              // overlong '/'
           "\xe0\x80\xaf",          // overlong, 3 bytes
           "\xed\xa0\x80",          // surrogate U+D800
           "\xf4\x90\x80\x80",      // above U+10FFFF
           "\xf8\x88\x80\x80\x80",  // 5-byte form
           "ok \xe2\x82",           // cut short at the end of the message
       }) {
    BOOST_TEST_INFO("text " << quoted(bad));
    BOOST_TEST(read_all(frame(op::text, bad)) == "failure 1007");
    BOOST_TEST(read_all(frame(op::binary, bad)) == "binary " + quoted(bad));
  }
  for (const std::string_view good : {"\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
                                      "\xed\x9f\xbf", "\xc2\x80", "\xef\xbf\xbf"}) {
    BOOST_TEST_INFO("text " << quoted(good));
    BOOST_TEST(read_all(frame(op::text, good)) == "text " + quoted(good));
  }
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_a_fragment_fails_before_the_message_ends) {
  BOOST_TEST(read_all(frame(op::text, "ok", {.fin = false}) +
                      frame(op::continuation, "\xff", {.fin = false})) == "failure 1007");
  // A code point left unfinished by the last fragment.
  BOOST_TEST(read_all(frame(op::text, "a\xe2", {.fin = false}) + frame(op::continuation, "\x82")) ==
             "failure 1007");
}

BOOST_AUTO_TEST_CASE(code_point_split_across_fragments) {
  BOOST_TEST(read_all(frame(op::text, "\xe2\x82", {.fin = false}) +
                      frame(op::continuation, "\xac")) == "text '\\xe2\\x82\\xac'");
  BOOST_TEST(read_all(frame(op::text, "\xf0", {.fin = false}) + frame(op::ping, "\xff") +
                      frame(op::continuation, "\x9f", {.fin = false}) +
                      frame(op::continuation, "\x98", {.fin = false}) +
                      frame(op::continuation, "\x80!")) ==
             "ping '\\xff' | text '\\xf0\\x9f\\x98\\x80!'");
  // Split or not, a surrogate is still refused.
  BOOST_TEST(read_all(frame(op::text, "\xed", {.fin = false}) +
                      frame(op::continuation, "\xa0\x80")) == "failure 1007");
}

BOOST_AUTO_TEST_CASE(binary_messages_are_not_utf8_checked) {
  BOOST_TEST(read_all(frame(op::binary, "\xe2\x82", {.fin = false}) +
                      frame(op::continuation, "\xff")) == "binary '\\xe2\\x82\\xff'");
}

BOOST_AUTO_TEST_CASE(close_frames) {
  BOOST_TEST(read_all(frame(op::close, "")) == "close");
  BOOST_TEST(read_all(frame(op::close, "\x03")) == "failure 1002");
  BOOST_TEST(read_all(frame(op::close, close_payload(1000, "bye \xe2\x82\xac"))) ==
             "close 1000 'bye \\xe2\\x82\\xac'");
  BOOST_TEST(read_all(frame(op::close, close_payload(1000, filler(123)))) ==
             "close 1000 <123 bytes>");
  BOOST_TEST(read_all(frame(op::close, close_payload(1000, "\xff"))) == "failure 1007");
  BOOST_TEST(read_all(frame(op::close, close_payload(1000, "\xe2\x82"))) == "failure 1007");
}

BOOST_AUTO_TEST_CASE(close_codes) {
  for (const std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999}) {
    BOOST_TEST_INFO("code " << code);
    BOOST_TEST(read_all(frame(op::close, close_payload(code))) == "failure 1002");
  }
  for (const std::uint16_t code :
       {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
    BOOST_TEST_INFO("code " << code);
    BOOST_TEST(read_all(frame(op::close, close_payload(code))) ==
               "close " + std::to_string(code) + " ''");
  }
}

BOOST_AUTO_TEST_CASE(message_at_the_size_limit) {
  harness h(100);
  BOOST_TEST(h.read(frame(op::text, filler(100))) == "text <100 bytes>");
  BOOST_TEST(h.read(frame(op::binary, filler(40), {.fin = false}) +
                    frame(op::continuation, filler(60))) == "binary <100 bytes>");
  BOOST_TEST(h.payloads.at(1) == filler(40) + filler(60));
  BOOST_TEST(h.read(frame(op::text, "")) == "text ''");
}

BOOST_AUTO_TEST_CASE(message_over_the_size_limit_is_skipped) {
  // The rest of that message, and the data frames after it, are skipped;
  // control frames still come through.
  const auto bytes = frame(op::text, filler(101), {.fin = false}) + frame(op::ping, "p1") +
                     frame(op::continuation, "rest") + frame(op::text, "later") +
                     frame(op::binary, "b", {.fin = false}) + frame(op::continuation, "c") +
                     frame(op::ping, "p2") + frame(op::close, close_payload(1000));
  const std::string expected = "too_large | ping 'p1' | ping 'p2' | close 1000 ''";
  BOOST_TEST(read_all(bytes, 100) == expected);
  harness h(100);
  BOOST_TEST(h.read(bytes, 1) == expected);
  // A frame over the limit is reported with its header, before its payload.
  harness early(100);
  const auto big = frame(op::binary, filler(101));
  BOOST_TEST(early.read(big.substr(0, 6)) == "too_large");
  BOOST_TEST(early.read(big.substr(6) + frame(op::pong, "")) == "pong");
}

BOOST_AUTO_TEST_CASE(fragments_together_over_the_size_limit) {
  harness h(100);
  BOOST_TEST(h.read(frame(op::text, filler(60), {.fin = false}) + frame(op::ping, "p") +
                    frame(op::continuation, filler(41)) + frame(op::text, "x") +
                    frame(op::ping, "q")) == "ping 'p' | too_large | ping 'q'");
  // Each fragment alone under the limit, more of them over it.
  harness many(100);
  std::string bytes = frame(op::binary, filler(30), {.fin = false});
  for (int i = 0; i < 5; ++i)
    bytes += frame(op::continuation, filler(30), {.fin = false});
  bytes += frame(op::continuation, "") + frame(op::close, "");
  BOOST_TEST(many.read(bytes) == "too_large | close");
}

// A frame may claim any length up to 2^63-1; over the limit, nothing is
// buffered for it, and its payload is never read as frames.
BOOST_AUTO_TEST_CASE(huge_frame_is_skipped_without_buffering) {
  harness h(100);
  const auto header = frame(op::binary, "", {.claimed_length = std::uint64_t{1} << 62});
  BOOST_TEST(h.read(header) == "too_large");
  const auto looks_like_frames = frame(op::ping, "inside") + frame(op::close, "");
  for (int i = 0; i < 1000; ++i)
    BOOST_TEST_REQUIRE(h.read(looks_like_frames) == "");
  BOOST_TEST(h.reader.prepare().size() <= 64 * 1024);
}

BOOST_AUTO_TEST_CASE(nothing_after_a_failure) {
  harness h;
  BOOST_TEST(h.read(frame(op::text, "a", {.masked = false}) + frame(op::text, "b")) ==
             "failure 1002");
  BOOST_TEST(h.read(frame(op::ping, "p") + frame(op::close, "")) == "");
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(std::holds_alternative<std::monostate>(h.reader.next()));

  harness bad_text;
  BOOST_TEST(bad_text.read(frame(op::text, "\xff") + frame(op::text, "ok")) == "failure 1007");
  BOOST_TEST(bad_text.read(frame(op::text, "ok")) == "");
}

BOOST_AUTO_TEST_CASE(release_if_idle_gives_a_large_buffer_back) {
  harness h;
  BOOST_TEST(h.read(frame(op::binary, filler(200000))) == "binary <200000 bytes>");
  BOOST_TEST(h.reader.prepare().size() >= 200000);
  h.reader.release_if_idle();
  BOOST_TEST(h.reader.prepare().size() < 16 * 1024);
  // Still a working reader.
  BOOST_TEST(h.read(mixed_stream()) == mixed_events);
  BOOST_TEST(h.read(frame(op::text, filler(70000))) == "text <70000 bytes>");
  BOOST_TEST(h.payloads.back() == filler(70000));
}

BOOST_AUTO_TEST_CASE(release_if_idle_keeps_what_is_not_parsed_yet) {
  harness h;
  const auto second = frame(op::text, filler(30000));
  BOOST_TEST(h.read(frame(op::binary, filler(40000)) + second.substr(0, 20000)) ==
             "binary <40000 bytes>");
  h.reader.release_if_idle();
  BOOST_TEST(h.read(second.substr(20000)) == "text <30000 bytes>");
  BOOST_TEST(h.payloads.back() == filler(30000));
}

BOOST_AUTO_TEST_CASE(release_if_idle_keeps_a_fragmented_message_in_progress) {
  harness h;
  BOOST_TEST(h.read(frame(op::text, filler(40000), {.fin = false})) == "");
  h.reader.release_if_idle();
  BOOST_TEST(h.read(frame(op::continuation, "end")) == "text <40003 bytes>");
  BOOST_TEST(h.payloads.back() == filler(40000) + "end");
  h.reader.release_if_idle();
  BOOST_TEST(h.read(frame(op::text, "a", {.fin = false}) + frame(op::continuation, "b")) ==
             "text 'ab'");
}
