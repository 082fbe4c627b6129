// Fuzzes ws::frame_reader (ws_frames.hpp), which reads every byte a client
// sends after the upgrade. The input's first byte chooses how the rest is
// cut into socket reads; the rest is the byte stream. The limit is small
// (300 bytes) so that too_large and skipping are reached.
//
// Beyond "no crash, no sanitizer report", it checks:
// - what the reader returns, fed the stream in one turn, equals what a
//   reference written here from RFC 6455 section 5 makes of the whole
//   stream at once (kinds, payload bytes, codes), with its own UTF-8
//   validator and list of close codes;
// - fed one byte per read, and in reads of the sizes the first byte
//   chooses (with release_if_idle after each, as the session does), it
//   returns the same events: the reader does not depend on how the bytes
//   arrive;
// - on every event, independently of the reference: a message is at most
//   300 bytes and none comes after too_large; a text message and a close
//   reason are UTF-8; a ping's payload is at most 125 bytes; a close code is
//   one a peer may send; a failure is 1002 or 1007, and nothing comes after
//   it, even when more bytes are read; too_large comes at most once;
// - the room prepare() offers stays bounded (skipped payloads are not
//   buffered).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fuzz_support.hpp"
#include "switchboard/ws_frames.hpp"

namespace {

namespace ws = switchboard::ws;

constexpr std::size_t max_message = 300;

// What next() returned, copied out: its views die with the next call.
struct event {
  enum kind_t { text, binary, ping, pong, close, too_large, failure } kind;
  std::string payload;  // message, ping, close reason
  std::uint16_t code = 0;
  bool operator==(const event&) const = default;
};

// 0: not UTF-8; 1: UTF-8; 2: UTF-8 up to a code point cut short at the end
// (a prefix of valid text). Table 3-7 of the Unicode standard.
int utf8_state(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
    if (b <= 0x7F) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      length = 2;
    } else if (b == 0xE0) {
      length = 3, low = 0xA0;
    } else if (b == 0xED) {
      length = 3, high = 0x9F;
    } else if (b >= 0xE1 && b <= 0xEF) {
      length = 3;
    } else if (b == 0xF0) {
      length = 4, low = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
      length = 4;
    } else if (b == 0xF4) {
      length = 4, high = 0x8F;
    } else {
      return 0;
    }
    for (std::size_t k = 1; k < length; ++k) {
      if (i + k == s.size()) return 2;
      const auto c = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (c < low || c > high) : (c < 0x80 || c > 0xBF)) return 0;
    }
    i += length;
  }
  return 1;
}

// RFC 6455 section 7.4: the codes defined for an endpoint to send (1000-1003,
// 1007-1011), the ones IANA registered since (1012, 1013), and the ranges
// for libraries and applications (3000-4999). Above 4999 nothing is defined;
// the reader may refuse those or not.
bool sendable_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1013) ||
         (code >= 3000 && code <= 4999);
}

bool unspecified_close_code(std::uint16_t code) {
  return code >= 5000;
}

// The reference: the whole stream read at once, frame after frame, each
// rule checked in the order section 5 gives it. A violation in a header is
// reported once its length field is complete; too_large once the masking
// key is there (before the payload); anything else with the whole frame.
class reference {
 public:
  explicit reference(std::string_view in) { read(in); }

  std::vector<event> events;
  // It stopped at a close code above 4999, where either answer is right:
  // only the events before it are compared.
  bool open_ended = false;

 private:
  void fail(std::uint16_t code) { events.push_back({event::failure, {}, code}); }

  void read(std::string_view in) {
    bool in_message = false;  // a fragmented message is in progress
    bool text = false;
    bool skipping = false;  // after too_large
    std::string fragments;
    std::size_t pos = 0;
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(in[pos + i]); };
    for (;;) {
      const std::size_t left = in.size() - pos;
      if (left < 2) return;
      const bool fin = byte(0) & 0x80;
      const int rsv = byte(0) & 0x70;
      const int op = byte(0) & 0x0F;
      const bool masked = byte(1) & 0x80;
      const int length7 = byte(1) & 0x7F;
      const std::size_t extended = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
      if (left < 2 + extended) return;
      std::uint64_t length = length7;
      if (extended != 0) {
        length = 0;
        for (std::size_t i = 0; i < extended; ++i)
          length = length * 256 + byte(2 + i);
      }
      if ((length7 == 126 && length < 126) || (length7 == 127 && length < 65536) ||
          length >= (std::uint64_t{1} << 63))
        return fail(1002);
      const bool control = op >= 8;
      if (rsv != 0 || !masked) return fail(1002);
      if (op != 0 && op != 1 && op != 2 && op != 8 && op != 9 && op != 10) return fail(1002);
      if (control && (!fin || length > 125)) return fail(1002);
      if (!control && (op == 0) != in_message) return fail(1002);
      const std::size_t header = 2 + extended + 4;
      if (left < header) return;

      if (!control) {
        const std::size_t so_far = op == 0 ? fragments.size() : 0;
        if (skipping || so_far + length > max_message) {
          if (!skipping) events.push_back({event::too_large, {}, 0});
          skipping = true;
          in_message = !fin;
          if (length > left - header) return;  // the rest is all payload
          pos += header + length;
          continue;
        }
      }
      if (length > left - header) return;
      std::string payload(in.substr(pos + header, length));
      for (std::size_t i = 0; i < payload.size(); ++i)
        payload[i] = static_cast<char>(payload[i] ^ byte(2 + extended + i % 4));
      pos += header + length;

      if (op == 9) {
        events.push_back({event::ping, payload, 0});
      } else if (op == 10) {
        events.push_back({event::pong, {}, 0});
      } else if (op == 8) {
        if (payload.empty()) {
          events.push_back({event::close, {}, 0});
          continue;
        }
        if (payload.size() == 1) return fail(1002);
        const auto code = static_cast<std::uint16_t>(static_cast<unsigned char>(payload[0]) * 256 +
                                                     static_cast<unsigned char>(payload[1]));
        if (unspecified_close_code(code)) {
          open_ended = true;
          return;
        }
        if (!sendable_close_code(code)) return fail(1002);
        if (utf8_state(std::string_view(payload).substr(2)) != 1) return fail(1007);
        events.push_back({event::close, payload.substr(2), code});
      } else {
        if (op != 0) {
          text = op == 1;
          fragments.clear();
        }
        fragments += payload;
        // Text fails as soon as a fragment cannot begin valid UTF-8.
        const int state = text ? utf8_state(fragments) : 1;
        if (state == 0 || (fin && state == 2)) return fail(1007);
        in_message = !fin;
        if (fin) events.push_back({text ? event::text : event::binary, fragments, 0});
      }
    }
  }
};

// Records what a reader returns and checks each event on its own.
class recorder {
 public:
  explicit recorder(ws::frame_reader& reader) : reader_(reader) {}

  void drain() {
    for (;;) {
      const auto in = reader_.next();
      if (std::holds_alternative<std::monostate>(in)) return;
      FUZZ_CHECK(!failed_);  // nothing after a failure
      if (const auto* m = std::get_if<ws::input::message>(&in)) {
        FUZZ_CHECK(m->payload.size() <= max_message);
        FUZZ_CHECK(!too_large_);  // data frames after it are skipped
        if (m->text) FUZZ_CHECK(utf8_state(m->payload) == 1);
        events.push_back({m->text ? event::text : event::binary, std::string(m->payload), 0});
      } else if (const auto* p = std::get_if<ws::input::ping>(&in)) {
        FUZZ_CHECK(p->payload.size() <= 125);
        events.push_back({event::ping, std::string(p->payload), 0});
      } else if (std::holds_alternative<ws::input::pong>(in)) {
        events.push_back({event::pong, {}, 0});
      } else if (const auto* c = std::get_if<ws::input::close>(&in)) {
        if (c->code == 0) {
          FUZZ_CHECK(c->reason.empty());
        } else {
          FUZZ_CHECK(sendable_close_code(c->code) || unspecified_close_code(c->code));
          FUZZ_CHECK(c->reason.size() <= 123);
          FUZZ_CHECK(utf8_state(c->reason) == 1);
        }
        events.push_back({event::close, std::string(c->reason), c->code});
      } else if (std::holds_alternative<ws::input::too_large>(in)) {
        FUZZ_CHECK(!too_large_);
        too_large_ = true;
        events.push_back({event::too_large, {}, 0});
      } else {
        const auto code = std::get<ws::input::failure>(in).code;
        FUZZ_CHECK(code == 1002 || code == 1007);
        failed_ = true;
        events.push_back({event::failure, {}, code});
      }
    }
  }

  bool failed() const { return failed_; }

  std::vector<event> events;

 private:
  ws::frame_reader& reader_;
  bool failed_ = false;
  bool too_large_ = false;
};

// Copies up to `n` bytes into the room prepare() gives; returns how many.
std::size_t read_some(ws::frame_reader& reader, std::string_view& bytes, std::size_t n) {
  const auto room = reader.prepare();
  FUZZ_CHECK(room.size() > 0);
  n = std::min({n, room.size(), bytes.size()});
  std::memcpy(room.data(), bytes.data(), n);
  reader.commit(n);
  bytes.remove_prefix(n);
  return n;
}

// After a failure, more bytes (a valid ping) bring nothing.
void check_silent_after_failure(ws::frame_reader& reader, recorder& r) {
  if (!r.failed()) return;
  std::string_view ping("\x89\x80\x01\x02\x03\x04", 6);
  while (!ping.empty())
    read_some(reader, ping, ping.size());
  r.drain();  // checks that nothing comes
}

// Every byte read before next() is called at all.
std::vector<event> in_one_turn(std::string_view bytes) {
  ws::frame_reader reader(max_message);
  recorder r(reader);
  while (!bytes.empty())
    read_some(reader, bytes, bytes.size());
  r.drain();
  check_silent_after_failure(reader, r);
  return r.events;
}

// Reads of 1..max_chunk bytes from a generator seeded by `seed`, each
// followed by next() until monostate and release_if_idle(), as the session
// does; max_chunk 1 is one byte per read.
std::vector<event> in_reads(std::string_view bytes, std::size_t max_chunk, std::uint32_t seed) {
  ws::frame_reader reader(max_message);
  recorder r(reader);
  std::uint32_t state = seed * 2654435761u + 1;
  while (!bytes.empty()) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    read_some(reader, bytes, 1 + state % max_chunk);
    r.drain();
    if (!r.failed()) {
      // Unparsed bytes are at most a partial frame whose payload fits the
      // limit; reads grow to 64 KiB at most.
      FUZZ_CHECK(reader.prepare().size() <= 64 * 1024 + 2 * (14 + max_message));
    }
    reader.release_if_idle();
  }
  check_silent_after_failure(reader, r);
  return r.events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  constexpr std::size_t max_chunks[8] = {1, 2, 3, 5, 8, 16, 64, 4096};
  const std::size_t max_chunk = max_chunks[data[0] & 7];
  const std::uint32_t seed = data[0] >> 3;
  const auto bytes = switchboard::fuzz::as_text(data + 1, size - 1);

  const reference expected(bytes);
  const auto at_once = in_one_turn(bytes);
  if (expected.open_ended)
    FUZZ_CHECK(at_once.size() > expected.events.size() &&
               std::equal(expected.events.begin(), expected.events.end(), at_once.begin()));
  else
    FUZZ_CHECK(at_once == expected.events);
  FUZZ_CHECK(in_reads(bytes, 1, seed) == at_once);
  FUZZ_CHECK(in_reads(bytes, max_chunk, seed) == at_once);
  return 0;
}
