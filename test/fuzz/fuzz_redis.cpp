// Fuzzes what a cluster node reads from Redis, or from whatever answers on
// its port: the RESP2 decoder (redis::decoder over hiredis 0.14's
// redisReader, resp.hpp) and the formats of store/redis_codec.hpp that the
// node parses out of the replies (inbox entries, publishes, channel names,
// numbers). The input's first byte chooses the mode; the rest is the bytes.
//
// Decoder mode (first byte & 3 != 3; its other bits choose how the rest is
// cut into reads), beyond "no crash, no sanitizer report":
// - fed in one piece, one byte per feed, and in reads of fuzzed sizes
//   (next() drained after each, as the connection does), the decoder yields
//   the same replies, compared as whole trees, and fails at the same point
//   with the same message, or not at all: it does not depend on how the
//   bytes arrive;
// - it never loops: every reply takes at least 3 bytes ("+\r\n");
// - once it threw protocol_error, feed() and next() throw it again, even
//   when what comes next is a valid reply;
// - every reply is well formed (a string has no elements, an integer no
//   text...) and nests no deeper than hiredis's limit (8 arrays, the
//   outermost and 7 levels inside it);
// - every reply, written back as RESP by a reference encoder written here
//   (+, -, :, $, * and $-1 for nil), decodes to one equal reply and nothing
//   else.
//
// Codec mode (first byte & 3 == 3; first byte >> 2 is the database number):
// - parse_u64 accepts exactly the canonical decimal text of a uint64 (a
//   reference on the text) and reads its value;
// - channel_user accepts only a name channel() writes, for a non-zero user;
// - decode_message, decode_entry and decode_published accept only text in
//   canonical form: the message they read, encoded again (encode_message,
//   with a group copy's prefix, or encode_status for a STATUS), is exactly
//   the bytes they read (a kick is "k " and its non-empty id);
// - (ts, sender, id, content) drawn from the input, encoded, decode to the
//   same fields, as a message, an inbox entry and a publish; so do (ts,
//   user, state, upto) encoded as a STATUS;
// - a command of arguments drawn from the input, encoded by append_command
//   (what the node sends), is exactly the reference encoding of an array of
//   those strings, and decodes back to them.
//
// Its two findings are fixed (docs/security.md, "Fuzzing"); the switches
// that kept them out while they were open stay, set to check everything:
// skip_huge_array_claims (off) and ts_must_be_canonical (on).
#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fuzz_support.hpp"
#include "switchboard/redis/resp.hpp"
#include "switchboard/store/redis_codec.hpp"

namespace {

namespace redis = switchboard::redis;
namespace codec = switchboard::store::redis_codec;
namespace store = switchboard::store;
using redis::reply;

// ---------------------------------------------------------------- decoder

bool same(const reply& a, const reply& b) {
  if (a.type != b.type || a.str != b.str || a.integer != b.integer ||
      a.elements.size() != b.elements.size())
    return false;
  for (std::size_t i = 0; i < a.elements.size(); ++i)
    if (!same(a.elements[i], b.elements[i])) return false;
  return true;
}

bool same(const std::vector<reply>& a, const std::vector<reply>& b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(),
                    [](const reply& x, const reply& y) { return same(x, y); });
}

// Arrays nested in `r`, itself included: 0 for a scalar.
int depth(const reply& r) {
  int deepest = 0;
  for (const auto& e : r.elements)
    deepest = std::max(deepest, depth(e));
  return r.type == reply::kind::array ? deepest + 1 : 0;
}

// Only what its kind uses is set.
void check_well_formed(const reply& r) {
  FUZZ_CHECK(r.is_error() == (r.type == reply::kind::error));
  switch (r.type) {
    case reply::kind::status:
    case reply::kind::error:
      // A line: it ended at the first CR LF.
      FUZZ_CHECK(r.str.find("\r\n") == std::string::npos);
      [[fallthrough]];
    case reply::kind::string:
      FUZZ_CHECK(r.integer == 0 && r.elements.empty());
      return;
    case reply::kind::integer:
      FUZZ_CHECK(r.str.empty() && r.elements.empty());
      return;
    case reply::kind::nil:
      FUZZ_CHECK(r.str.empty() && r.integer == 0 && r.elements.empty());
      return;
    case reply::kind::array:
      FUZZ_CHECK(r.str.empty() && r.integer == 0);
      for (const auto& e : r.elements)
        check_well_formed(e);
      return;
  }
  FUZZ_CHECK(!"a reply kind outside the enum");
}

// The reference encoder: RESP2 as Redis writes it.
void encode(const reply& r, std::string& out) {
  switch (r.type) {
    case reply::kind::string:
      out += '$' + std::to_string(r.str.size()) + "\r\n";
      out += r.str;
      out += "\r\n";
      return;
    case reply::kind::status:
      out += '+' + r.str + "\r\n";
      return;
    case reply::kind::error:
      out += '-' + r.str + "\r\n";
      return;
    case reply::kind::integer:
      out += ':' + std::to_string(r.integer) + "\r\n";
      return;
    case reply::kind::nil:
      out += "$-1\r\n";
      return;
    case reply::kind::array:
      out += '*' + std::to_string(r.elements.size()) + "\r\n";
      for (const auto& e : r.elements)
        encode(e, out);
      return;
  }
}

// What a decoder made of a stream: its replies, then its failure if any.
struct outcome {
  std::vector<reply> replies;
  std::optional<std::string> failure;
};

// Calls next() until it has nothing more; false once it threw. `fed` is
// every byte fed so far: each reply takes at least 3 of them, so a decoder
// that yields more is looping.
bool drain(redis::decoder& d, outcome& o, std::size_t fed) {
  for (;;) {
    std::optional<reply> r;
    try {
      r = d.next();
    } catch (const redis::protocol_error& e) {
      o.failure = e.what();
      return false;
    }
    if (!r) return true;
    FUZZ_CHECK(3 * (o.replies.size() + 1) <= fed);
    check_well_formed(*r);
    // hiredis 0.14 keeps 9 read tasks and refuses a task at depth 8: an
    // array holds arrays 7 levels deep at most, 8 arrays in all.
    FUZZ_CHECK(depth(*r) <= 8);
    o.replies.push_back(std::move(*r));
  }
}

// A failed decoder stays failed: more bytes, even a valid reply, bring
// only the same exception.
void check_stays_failed(redis::decoder& d) {
  bool threw = false;
  try {
    d.feed("+OK\r\n", 5);
  } catch (const redis::protocol_error&) {
    threw = true;
  }
  FUZZ_CHECK(threw);
  for (int i = 0; i < 2; ++i) {
    threw = false;
    try {
      (void)d.next();
    } catch (const redis::protocol_error&) {
      threw = true;
    }
    FUZZ_CHECK(threw);
  }
}

// Feeds `bytes` in reads whose sizes `next_size` chooses, draining after
// each; stops feeding at the first failure, as the connection does.
template <class NextSize>
outcome decode_in_reads(std::string_view bytes, NextSize next_size) {
  redis::decoder d;
  outcome o;
  std::size_t fed = 0;
  while (fed < bytes.size()) {
    const std::size_t n = std::min(next_size(), bytes.size() - fed);
    d.feed(bytes.data() + fed, n);  // throws only once failed, and then we stopped
    fed += n;
    if (!drain(d, o, fed)) break;
  }
  if (o.failure) check_stays_failed(d);
  return o;
}

outcome decode_in_one_piece(std::string_view bytes) {
  return decode_in_reads(bytes, [&] { return bytes.size(); });
}

// A reply written back decodes to itself, alone.
void check_reencodes(const reply& r) {
  std::string bytes;
  encode(r, bytes);
  const auto again = decode_in_one_piece(bytes);
  FUZZ_CHECK(!again.failure);
  FUZZ_CHECK(again.replies.size() == 1);
  FUZZ_CHECK(same(again.replies[0], r));
}

// FINDING (docs/security.md, "Fuzzing"): an array header claiming n
// elements, "*2147483647\r\n", makes hiredis 0.14 calloc n pointers at once
// (16 GiB of address space; 2 GiB of RSS under ASan), and freeing the
// unfinished reply, when the decoder is destroyed, visits all n slots:
// about a minute of CPU for 13 bytes, in link::connect() on the I/O thread.
// Until the decoder refuses such claims, inputs holding one are skipped, so
// that CI does not time out on it. The scan is on the raw text, so it also
// skips a '*' and digits inside a string: a little coverage lost. Claims
// above INT_MAX stay in: hiredis refuses those at once.
constexpr long long max_claimed_elements = 1 << 16;
constexpr bool skip_huge_array_claims = false;

bool claims_huge_array(std::string_view bytes) {
  for (std::size_t i = bytes.find('*'); i != std::string_view::npos; i = bytes.find('*', i + 1)) {
    long long n = 0;
    for (std::size_t j = i + 1; j < bytes.size() && bytes[j] >= '0' && bytes[j] <= '9'; ++j) {
      n = n * 10 + (bytes[j] - '0');
      if (n > INT_MAX) break;
    }
    if (n > max_claimed_elements && n <= INT_MAX) return true;
  }
  return false;
}

void fuzz_decoder(std::uint8_t mode, std::string_view bytes) {
  if (skip_huge_array_claims && claims_huge_array(bytes)) return;
  constexpr std::size_t max_chunks[8] = {1, 2, 3, 5, 7, 16, 64, 4096};
  const std::size_t max_chunk = max_chunks[(mode >> 2) & 7];
  std::uint32_t state = (mode >> 5) * 2654435761u + 1;

  const auto whole = decode_in_one_piece(bytes);
  const auto bytewise = decode_in_reads(bytes, [] { return std::size_t{1}; });
  const auto chunked = decode_in_reads(bytes, [&] {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return 1 + state % max_chunk;
  });
  for (const auto* other : {&bytewise, &chunked}) {
    FUZZ_CHECK(same(other->replies, whole.replies));
    FUZZ_CHECK(other->failure == whole.failure);
  }
  for (const auto& r : whole.replies)
    check_reencodes(r);
}

// ------------------------------------------------------------------ codec

// The reference for parse_u64: digits only, no leading zero, at most 2^64-1.
bool canonical_u64(std::string_view text) {
  if (text.empty() || text.size() > 20) return false;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  if (text.size() > 1 && text[0] == '0') return false;
  return text.size() < 20 || text <= "18446744073709551615";
}

// What decode_message read, written back: a STATUS as encode_status
// writes it, a group copy with the `g<group>.<gseq>.` the group script puts
// before the id kind, anything else as encode_message writes it.
std::string reencode(const store::stored_message& m) {
  if (m.kind == store::entry_kind::status) {
    FUZZ_CHECK(m.group == 0 && m.gseq == 0 && !m.id && m.content.empty());
    return codec::encode_status(m.ts_ms, m.sender, m.state, m.upto);
  }
  auto text = codec::encode_message(m.ts_ms, m.sender, m.id, m.content);
  FUZZ_CHECK((m.group == 0) == (m.gseq == 0));
  if (m.group != 0) {
    // After "<ts> <sender> ".
    const auto at = text.find(' ', text.find(' ') + 1) + 1;
    text.insert(at, 'g' + std::to_string(m.group) + '.' + std::to_string(m.gseq) + '.');
  }
  return text;
}

// decode_message accepts a ts with leading zeros or "-0" ("007 5 -:x" is
// ts 7), which encode_message writes as "7" (see docs/security.md,
// "Fuzzing"). Until decode_message refuses them, the canonical check leaves
// the ts word out when it is not canonical; everything after it is still
// compared byte for byte. Set to true once the library is fixed.
constexpr bool ts_must_be_canonical = true;

// `text` is exactly `prefix` + the message `m` encoded.
void check_canonical(std::string_view text, std::string_view prefix,
                     const store::stored_message& m) {
  const std::string written = std::string(prefix) + reencode(m);
  if (ts_must_be_canonical || written == text) {
    FUZZ_CHECK(written == text);
    return;
  }
  // The ts word is the one before the first space after the prefix.
  FUZZ_CHECK(text.starts_with(prefix));
  const auto body = text.substr(prefix.size());
  const auto space = body.find(' ');
  FUZZ_CHECK(space != std::string_view::npos);
  FUZZ_CHECK(body.substr(0, space) != std::to_string(m.ts_ms));  // that word alone differs
  FUZZ_CHECK(std::string(prefix) + std::to_string(m.ts_ms) + std::string(body.substr(space)) ==
             written);
}

void check_message_fields(const store::stored_message& m, store::seq_t seq,
                          store::user_id receiver) {
  FUZZ_CHECK(m.seq == seq && m.receiver == receiver);
  if (m.id) FUZZ_CHECK(!m.id->value.empty());
}

// Reads little-endian integers and strings off the front of the input,
// zeros once it runs out.
class drawer {
 public:
  explicit drawer(std::string_view bytes) : bytes_(bytes) {}

  std::uint8_t byte() {
    if (bytes_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(bytes_[0]);
    bytes_.remove_prefix(1);
    return b;
  }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= std::uint64_t{byte()} << (8 * i);
    return v;
  }
  std::string text(std::size_t n) {
    n = std::min(n, bytes_.size());
    std::string s(bytes_.substr(0, n));
    bytes_.remove_prefix(n);
    return s;
  }
  std::string rest() { return text(bytes_.size()); }
  bool empty() const { return bytes_.empty(); }

 private:
  std::string_view bytes_;
};

void check_round_trip(std::string_view bytes) {
  drawer in(bytes);
  const auto ts = static_cast<std::int64_t>(in.u64());
  const store::user_id sender = in.u64();
  const store::seq_t seq = std::max<std::uint64_t>(in.u64(), 1);  // seqs start at 1
  const store::user_id receiver = in.u64();
  std::optional<store::message_id> id;
  if (const auto kind = in.byte() % 3; kind != 0) {
    // A client's id is never empty (protocol.cpp refuses ""): 1 to 256 bytes.
    id = store::message_id{in.text(1 + in.byte()), kind == 1};
    if (id->value.empty()) id->value = "0";
  }
  const auto content = in.rest();

  const auto text = codec::encode_message(ts, sender, id, content);
  const auto check = [&](const std::optional<store::stored_message>& m) {
    FUZZ_CHECK(m.has_value());
    check_message_fields(*m, seq, receiver);
    FUZZ_CHECK(m->ts_ms == ts && m->sender == sender && m->id == id && m->content == content);
  };
  check(codec::decode_message(text, seq, receiver));
  const auto entry = std::to_string(seq) + ' ' + text;
  check(codec::decode_entry(entry, receiver));
  const auto published = codec::decode_published("m " + entry, receiver);
  const auto* p = std::get_if<codec::published_message>(&published);
  FUZZ_CHECK(p != nullptr);
  check(p->message);

  // The same numbers as a STATUS about `sender`, up to `receiver`'s value.
  const auto state = ts % 2 == 0 ? store::status_state::delivered : store::status_state::read;
  const auto status = codec::decode_entry(
      std::to_string(seq) + ' ' + codec::encode_status(ts, sender, state, receiver), 42);
  FUZZ_CHECK(status.has_value() && status->kind == store::entry_kind::status);
  FUZZ_CHECK(status->seq == seq && status->ts_ms == ts && status->sender == sender &&
             status->state == state && status->upto == receiver && status->group == 0);
}

// A command of arguments drawn from the input (each a length byte, then up
// to that many bytes: CR LF, NUL, anything), encoded by append_command, is
// exactly what the reference encoder writes for an array of those strings
// (a command has one encoding), and decodes back to them. Message contents
// reach Redis this way.
void check_command(std::string_view bytes) {
  drawer in(bytes);
  std::vector<std::string> args;
  do {
    const auto n = in.byte();
    args.push_back(in.text(n));
  } while (!in.empty());
  const std::vector<std::string_view> views(args.begin(), args.end());

  reply expected;
  expected.type = reply::kind::array;
  for (const auto& a : args)
    expected.elements.push_back({reply::kind::string, a, 0, {}});
  std::string reference;
  encode(expected, reference);

  std::string owned("prefix");  // append_command appends
  redis::append_command(owned, std::span<const std::string>(args));
  FUZZ_CHECK(owned == "prefix" + reference);
  std::string viewed;
  redis::append_command(viewed, std::span<const std::string_view>(views));
  FUZZ_CHECK(viewed == reference);

  const auto decoded = decode_in_one_piece(reference);
  FUZZ_CHECK(!decoded.failure && decoded.replies.size() == 1);
  FUZZ_CHECK(same(decoded.replies[0], expected));
}

void fuzz_codec(std::uint8_t mode, std::string_view text) {
  const unsigned db = mode >> 2;
  constexpr store::user_id receiver = 42;

  const auto n = codec::parse_u64(text);
  FUZZ_CHECK(n.has_value() == canonical_u64(text));
  if (n) FUZZ_CHECK(std::to_string(*n) == text);

  if (const auto user = codec::channel_user(text, db)) {
    FUZZ_CHECK(*user != 0);
    FUZZ_CHECK(codec::channel(*user, db) == text);
  }

  if (const auto m = codec::decode_message(text, 7, receiver)) {
    check_message_fields(*m, 7, receiver);
    check_canonical(text, "", *m);
  }

  const auto entry = codec::decode_entry(text, receiver);
  if (entry) {
    FUZZ_CHECK(entry->seq != 0);
    check_message_fields(*entry, entry->seq, receiver);
    check_canonical(text, std::to_string(entry->seq) + ' ', *entry);
  }

  const auto published = codec::decode_published(text, receiver);
  if (const auto* p = std::get_if<codec::published_message>(&published)) {
    FUZZ_CHECK(text.starts_with("m "));
    check_canonical(text, "m " + std::to_string(p->message.seq) + ' ', p->message);
  } else if (const auto* k = std::get_if<codec::published_kick>(&published)) {
    FUZZ_CHECK(!k->session_id.empty());
    FUZZ_CHECK("k " + k->session_id == text);
  } else {
    // Neither: not a message entry behind "m ", not a kick.
    FUZZ_CHECK(!(text.starts_with("m ") && codec::decode_entry(text.substr(2), receiver)));
    FUZZ_CHECK(!(text.starts_with("k ") && text.size() > 2));
  }

  check_round_trip(text);
  check_command(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const auto bytes = switchboard::fuzz::as_text(data + 1, size - 1);
  if ((mode & 3) == 3)
    fuzz_codec(mode, bytes);
  else
    fuzz_decoder(mode, bytes);
  return 0;
}
