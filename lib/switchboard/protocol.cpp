#include "switchboard/protocol.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include "switchboard/net.hpp"
#include "switchboard/user_id.hpp"

namespace switchboard::protocol {
namespace {

// What a frame holds under one of the names the protocol reads: the kind of
// its last value and, for an integer, the value. Boost.JSON's parser reports
// a number as int64 when it fits, as uint64 above that, and as a double when
// it has a fraction or exponent or exceeds 2^64-1, so the kind alone tells an
// unsigned integer from anything else. A double, true, false, null, an array
// and an object are all "other": nothing the protocol reads may be one.
struct field {
  enum class kind : unsigned char { absent, int64, uint64, string, boolean, other };
  kind of = kind::absent;
  std::uint64_t bits = 0;  // an int64 (two's complement) or a uint64

  std::optional<std::uint64_t> as_unsigned() const {
    if (of == kind::uint64) return bits;
    if (of == kind::int64 && static_cast<std::int64_t>(bits) >= 0) return bits;
    return std::nullopt;
  }
};

// A string kept only while it is short. A longer one is counted, not kept:
// no name the protocol reads is longer than 8 bytes, no valid id than 64.
template <std::size_t Capacity>
class short_text {
 public:
  void clear() { size_ = 0; }
  void append(json::string_view part) {
    if (!part.empty() && size_ <= Capacity && part.size() <= Capacity - size_) {
      std::memcpy(data_ + size_, part.data(), part.size());
    }
    size_ += part.size();
  }
  std::size_t size() const { return size_; }
  bool kept() const { return size_ <= Capacity; }
  std::string_view view() const { return {data_, kept() ? size_ : 0}; }

 private:
  char data_[Capacity];
  std::size_t size_ = 0;
};

// The Boost.JSON SAX handler (basic_parser) of parse_client_frame. It keeps
// only what the protocol reads from the top-level object, and keeps for each
// name its last value, as the DOM did (Boost.JSON 1.81's object keeps the
// last of duplicated keys, object(unchecked_object&&)). Nested values are
// parsed for their syntax and dropped. Nothing is allocated but the content
// itself, which the frame returns anyway. A typical SEND (callgrind, 64 bytes
// of content) cost about 3,050 instructions with a json::value and
// if_contains, 1,330 with this handler, most of them Boost.JSON's parser.
//
// A value belongs to the top-level object when it follows one of its keys
// directly: current_ points at that key's field from the key to the first
// event of its value, which is at depth 1 however deep the value goes.
class frame_reader {
 public:
  // The DOM parser's limits (boost/json/detail/handler.hpp), so that the
  // same texts are refused.
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code&) {
    if (depth_ == 0) is_object_ = true;
    value(field::kind::other);
    ++depth_;
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    --depth_;
    return true;
  }
  bool on_array_begin(json::error_code&) {
    value(field::kind::other);
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth_;
    return true;
  }

  bool on_key_part(json::string_view part, std::size_t, json::error_code&) {
    if (depth_ == 1) key_.append(part);
    return true;
  }
  bool on_key(json::string_view part, std::size_t, json::error_code&) {
    if (depth_ != 1) return true;
    if (key_.size() == 0) {
      select(part);  // the whole key in one piece, the usual case
    } else {
      key_.append(part);
      select(key_.view());
      key_.clear();
    }
    return true;
  }

  bool on_string_part(json::string_view part, std::size_t, json::error_code&) {
    string_part(part);
    return true;
  }
  bool on_string(json::string_view part, std::size_t, json::error_code&) {
    string_part(part);
    value(field::kind::string);
    return true;
  }

  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t n, json::string_view, json::error_code&) {
    value(field::kind::int64, static_cast<std::uint64_t>(n));
    return true;
  }
  bool on_uint64(std::uint64_t n, json::string_view, json::error_code&) {
    value(field::kind::uint64, n);
    return true;
  }
  bool on_double(double, json::string_view, json::error_code&) {
    value(field::kind::other);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    value(field::kind::boolean, b ? 1 : 0);
    return true;
  }
  bool on_null(json::error_code&) {
    value(field::kind::other);
    return true;
  }
  // Comments are not allowed (parse_options), so these are never called.
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  bool is_object() const { return is_object_; }
  const field& type() const { return type_; }
  const field& id() const { return id_; }
  const field& receiver() const { return receiver_; }
  const field& group() const { return group_; }
  const field& content() const { return content_; }
  const field& sender() const { return sender_; }
  const field& seq() const { return seq_; }
  const field& notify() const { return notify_; }
  // The bytes of a string id, when it is at most max_id_bytes long.
  const short_text<max_id_bytes>& id_text() const { return id_text_; }
  // The bytes of a string content; moved out by the caller.
  std::string& content_text() { return content_text_; }

 private:
  // A key of the top-level object: the field its value goes to, if any.
  void select(std::string_view name) {
    switch (name.size()) {
      case 2:
        current_ = name == "id" ? &id_ : nullptr;
        break;
      case 3:
        current_ = name == "seq" ? &seq_ : nullptr;
        break;
      case 4:
        current_ = name == "type" ? &type_ : nullptr;
        break;
      case 5:
        current_ = name == "group" ? &group_ : nullptr;
        break;
      case 6:
        current_ = name == "sender" ? &sender_ : name == "notify" ? &notify_ : nullptr;
        break;
      case 7:
        current_ = name == "content" ? &content_ : nullptr;
        break;
      case 8:
        current_ = name == "receiver" ? &receiver_ : nullptr;
        break;
      default:
        current_ = nullptr;
    }
    // A later value under the same name replaces the earlier one.
    if (current_ == &id_) id_text_.clear();
    if (current_ == &content_) content_text_.clear();
  }
  void string_part(json::string_view part) {
    if (current_ == &content_) {
      content_text_.append(part.data(), part.size());
    } else if (current_ == &id_) {
      id_text_.append(part);
    }
  }
  // The first event of a value: it ends the value of a top-level key.
  void value(field::kind kind, std::uint64_t bits = 0) {
    if (!current_) return;
    *current_ = field{kind, bits};
    current_ = nullptr;
  }

  std::size_t depth_ = 0;     // objects and arrays open
  bool is_object_ = false;    // the document is an object
  field* current_ = nullptr;  // where the value being parsed goes
  short_text<8> key_;         // the top-level key being parsed
  field type_, id_, receiver_, content_, sender_, seq_, group_, notify_;
  short_text<max_id_bytes> id_text_;
  std::string content_text_;
};

// `id` is read before anything else so that every later error can echo it.
struct id_field {
  bool valid = true;  // absent counts as valid
  std::optional<message_id> id;
};

id_field read_id(const frame_reader& frame) {
  const field& v = frame.id();
  if (v.of == field::kind::absent) return {};
  if (v.of == field::kind::string) {
    const auto& text = frame.id_text();
    if (text.size() == 0 || text.size() > max_id_bytes) return {false, std::nullopt};
    return {true, message_id{std::string(text.view()), false}};
  }
  if (const auto n = v.as_unsigned()) return {true, message_id{std::to_string(*n), true}};
  return {false, std::nullopt};
}

frame_error refuse(error_code code, std::string message, const std::optional<message_id>& id) {
  return frame_error{code, std::move(message), id};
}

client_frame parse_send(frame_reader& frame, const id_field& id, user_id self) {
  if (!id.valid) {
    return refuse(error_code::bad_field,
                  "id must be a string of 1 to 64 bytes or an unsigned integer", std::nullopt);
  }

  const bool has_receiver = frame.receiver().of != field::kind::absent;
  const bool has_group = frame.group().of != field::kind::absent;
  if (has_receiver == has_group) {
    return refuse(
        error_code::bad_field,
        has_receiver ? "receiver and group cannot both be given" : "receiver (or group) is missing",
        id.id);
  }
  const auto target = (has_receiver ? frame.receiver() : frame.group()).as_unsigned();
  if (!target || *target == 0) {
    return refuse(error_code::bad_field,
                  has_receiver ? "receiver must be a user id, an integer in 1..18446744073709551615"
                               : "group must be a group id, an integer in 1..18446744073709551615",
                  id.id);
  }

  if (frame.content().of == field::kind::absent) {
    return refuse(error_code::bad_field, "content is missing", id.id);
  }
  if (frame.content().of != field::kind::string) {
    return refuse(error_code::bad_field, "content must be a string", id.id);
  }

  const field& notify = frame.notify();
  if (notify.of != field::kind::absent && notify.of != field::kind::boolean) {
    return refuse(error_code::bad_field, "notify must be true or false", id.id);
  }

  // The server stamps the sender itself; a client-supplied one is only
  // checked, so that a client confused about who it is hears about it.
  if (frame.sender().of != field::kind::absent) {
    const auto sender = frame.sender().as_unsigned();
    if (!sender) {
      return refuse(error_code::bad_field, "sender must be an unsigned integer", id.id);
    }
    if (*sender != self) {
      return refuse(error_code::sender_mismatch, "sender is not the user of this session", id.id);
    }
  }

  // Notifications are about direct messages the sender can name (section
  // 11); on a group SEND `notify` is ignored.
  const bool wants_status =
      has_receiver && notify.of == field::kind::boolean && notify.bits != 0 && id.id;
  send_frame send{has_receiver ? *target : 0, has_group ? *target : 0,
                  std::move(frame.content_text()), id.id, wants_status};
  return send;
}

// RECEIVE and READ: a cumulative seq.
template <class Frame>
client_frame parse_seq_frame(const frame_reader& frame, const id_field& id) {
  if (frame.seq().of == field::kind::absent) {
    return refuse(error_code::bad_field, "seq is missing", id.id);
  }
  const auto seq = frame.seq().as_unsigned();
  if (!seq) return refuse(error_code::bad_field, "seq must be an unsigned integer", id.id);
  return Frame{*seq};
}

// The id goes back in the form the sender wrote it. A numeric id whose text
// is not canonical cannot come from parse_client_frame; if a store hands one
// back anyway, a string still makes valid JSON.
json::value id_to_json(const message_id& id) {
  if (id.is_number) {
    if (const auto n = parse_seq(id.value)) return json::value(*n);
  }
  return json::value(json::string_view(id.value));
}

// Decimal digits two at a time, "00" to "99": one table look-up and one
// division by 100 per two digits.
constexpr auto digit_pairs = [] {
  std::array<char, 200> pairs{};
  for (int i = 0; i < 100; ++i) {
    pairs[static_cast<std::size_t>(2 * i)] = static_cast<char>('0' + i / 10);
    pairs[static_cast<std::size_t>(2 * i + 1)] = static_cast<char>('0' + i % 10);
  }
  return pairs;
}();

// n < 100 as exactly two digits.
inline char* put_2_digits(char* out, std::uint32_t n) {
  std::memcpy(out, &digit_pairs[2 * n], 2);
  return out + 2;
}

// n < 10^8 as exactly eight digits.
inline char* put_8_digits(char* out, std::uint32_t n) {
  const std::uint32_t high = n / 10000, low = n % 10000;
  out = put_2_digits(out, high / 100);
  out = put_2_digits(out, high % 100);
  out = put_2_digits(out, low / 100);
  return put_2_digits(out, low % 100);
}

// n < 10^4 without leading zeros.
inline char* put_up_to_4_digits(char* out, std::uint32_t n) {
  if (n < 10) {
    *out = static_cast<char>('0' + n);
    return out + 1;
  }
  if (n < 100) return put_2_digits(out, n);
  if (n < 1000) {
    *out = static_cast<char>('0' + n / 100);
    return put_2_digits(out + 1, n % 100);
  }
  return put_2_digits(put_2_digits(out, n / 100), n % 100);
}

// n < 10^8 without leading zeros.
inline char* put_up_to_8_digits(char* out, std::uint32_t n) {
  if (n < 10000) return put_up_to_4_digits(out, n);
  out = put_up_to_4_digits(out, n / 10000);
  const std::uint32_t low = n % 10000;
  return put_2_digits(put_2_digits(out, low / 100), low % 100);
}

// n in decimal, as std::to_chars writes it. User ids and timestamps have 13
// to 20 digits: in blocks of 8, with 32-bit arithmetic, this costs less than
// half of libstdc++'s std::to_chars (a digit count, then two digits and a
// 64-bit division per step): about 90 instructions instead of 190.
inline char* put_decimal(char* out, std::uint64_t n) {
  constexpr std::uint64_t e8 = 100'000'000;
  if (n < e8) return put_up_to_8_digits(out, static_cast<std::uint32_t>(n));
  const std::uint64_t high = n / e8;
  if (high < e8) {
    out = put_up_to_8_digits(out, static_cast<std::uint32_t>(high));
  } else {
    out = put_up_to_4_digits(out, static_cast<std::uint32_t>(high / e8));  // at most 1844
    out = put_8_digits(out, static_cast<std::uint32_t>(high % e8));
  }
  return put_8_digits(out, static_cast<std::uint32_t>(n % e8));
}

// Whether a byte needs escaping in a JSON string: a control character
// (below 0x20), a quote or a backslash (RFC 8259 section 7).
constexpr auto byte_needs_escape = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 0x20; ++c)
    table[static_cast<std::size_t>(c)] = true;
  table['"'] = true;
  table['\\'] = true;
  return table;
}();

// Whether one of the 8 bytes of `block` needs escaping. Each test is the
// classic "has a byte below n" bit trick (exact for n <= 128): a byte below n
// borrows in the subtraction and keeps its high bit, no other byte can set
// one. A quote or a backslash is a byte below 1 once xored with that byte.
constexpr bool needs_escape(std::uint64_t block) {
  constexpr std::uint64_t ones = 0x0101010101010101;
  constexpr std::uint64_t highs = 0x8080808080808080;
  // Each test is (v - ones * n) & ~v & highs; the three share ~v & highs,
  // since xoring with a byte below 0x80 keeps every high bit.
  const std::uint64_t below =
      (block - ones * 0x20) | ((block ^ (ones * '"')) - ones) | ((block ^ (ones * '\\')) - ones);
  return (below & ~block & highs) != 0;
}

// needs_escape agrees with byte_needs_escape for each byte value in each
// place of a block, among neighbours near the values it tests for.
constexpr bool needs_escape_matches_bytes() {
  for (const unsigned filler : {0x21u, 0x23u, 0x5bu, 0x5du, 0x61u, 0x7fu, 0x80u, 0xffu}) {
    for (unsigned c = 0; c < 256; ++c) {
      for (unsigned at = 0; at < 8; ++at) {
        std::uint64_t block = 0;
        for (unsigned i = 0; i < 8; ++i)
          block |= std::uint64_t{i == at ? c : filler} << (8 * i);
        if (needs_escape(block) != byte_needs_escape[c]) return false;
      }
    }
  }
  return true;
}
static_assert(needs_escape_matches_bytes());

// The frames written once per message are built by hand: building a
// json::object and serialising it cost about 4,000 instructions per frame,
// a fifth of the whole relay (docs/performance.md). The output is the same
// JSON, in the same key order.
//
// The text is written through a pointer into a string sized once for the
// whole frame (only escapes can outgrow it), not appended piece by piece:
// each std::string::append is an out-of-line call and a capacity check.
// With that, 8-byte escape checks and put_decimal, a delivery of 64 bytes
// costs about 890 instructions instead of 1,990.
class frame_text {
 public:
  // `capacity`: the frame's length if its strings need no escaping.
  explicit frame_text(std::size_t capacity) { out_.resize(capacity); }

  // A literal: its length is a constant, so the copy is a few moves.
  template <std::size_t N>
  frame_text& raw(const char (&text)[N]) {
    std::memcpy(room(N - 1), text, N - 1);
    size_ += N - 1;
    return *this;
  }
  frame_text& raw(std::string_view text) {
    std::memcpy(room(text.size()), text.data(), text.size());
    size_ += text.size();
    return *this;
  }
  // A JSON integer: seqs and user ids (unsigned), timestamps (signed).
  template <class Integer>
  frame_text& number(Integer n) {
    char* out = room(max_number_bytes);
    std::uint64_t magnitude = static_cast<std::uint64_t>(n);
    if constexpr (std::is_signed_v<Integer>) {
      if (n < 0) {
        *out++ = '-';
        magnitude = 0 - magnitude;
      }
    }
    size_ = static_cast<std::size_t>(put_decimal(out, magnitude) - out_.data());
    return *this;
  }
  // A JSON string. The text is valid UTF-8 (it was parsed from JSON or is
  // the server's own), so only quotes, backslashes and control characters
  // need escaping (RFC 8259 section 7). Plain runs are checked and copied 8
  // bytes at a time.
  frame_text& string(std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    const char* in = text.data();
    const char* const end = in + text.size();
    // Room for every byte unescaped and the quotes; each escape makes more.
    char* out = room(text.size() + 2);
    *out++ = '"';
    for (;;) {
      while (end - in >= 8) {
        std::uint64_t block;
        std::memcpy(&block, in, 8);
        if (needs_escape(block)) break;
        std::memcpy(out, &block, 8);
        in += 8;
        out += 8;
      }
      while (in != end && !byte_needs_escape[static_cast<unsigned char>(*in)]) {
        *out++ = *in++;
      }
      if (in == end) break;

      const auto c = static_cast<unsigned char>(*in++);
      size_ = static_cast<std::size_t>(out - out_.data());
      out = room(6 + static_cast<std::size_t>(end - in) + 1);
      const auto escape = [&out](std::string_view e) {
        std::memcpy(out, e.data(), e.size());
        out += e.size();
      };
      switch (c) {
        case '"':
          escape("\\\"");
          break;
        case '\\':
          escape("\\\\");
          break;
        case '\n':
          escape("\\n");
          break;
        case '\r':
          escape("\\r");
          break;
        case '\t':
          escape("\\t");
          break;
        case '\b':
          escape("\\b");
          break;
        case '\f':
          escape("\\f");
          break;
        default: {
          const char escaped[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
          escape(std::string_view(escaped, sizeof escaped));
        }
      }
    }
    *out++ = '"';
    size_ = static_cast<std::size_t>(out - out_.data());
    return *this;
  }
  // The id in the form the sender wrote it (see id_to_json).
  frame_text& id(const message_id& id) {
    if (id.is_number && parse_seq(id.value)) return raw(id.value);
    return string(id.value);
  }

  std::string take() {
    out_.resize(size_);
    return std::move(out_);
  }

  // The longest integer: "-9223372036854775808" or 18446744073709551615.
  static constexpr std::size_t max_number_bytes = 20;

 private:
  // Where the next n bytes go; the caller writes them and moves size_.
  char* room(std::size_t n) {
    if (out_.size() - size_ < n) [[unlikely]]
      grow(n);
    return out_.data() + size_;
  }
  [[gnu::noinline]] void grow(std::size_t n) { out_.resize(std::max(2 * out_.size(), size_ + n)); }

  std::string out_;  // out_[0, size_) is written; the rest is room
  std::size_t size_ = 0;
};

}  // namespace

std::string_view to_string(error_code code) {
  switch (code) {
    case error_code::bad_json:
      return "bad_json";
    case error_code::binary:
      return "binary";
    case error_code::unknown_type:
      return "unknown_type";
    case error_code::bad_field:
      return "bad_field";
    case error_code::sender_mismatch:
      return "sender_mismatch";
    case error_code::rate_limited:
      return "rate_limited";
    case error_code::unavailable:
      return "unavailable";
    case error_code::not_member:
      return "not_member";
  }
  return "unknown";
}

client_frame parse_client_frame(std::string_view text, user_id self) {
  json::parse_options options;
  options.max_depth = max_json_depth;
  json::basic_parser<frame_reader> parser(options);

  // What json::parse does with the DOM parser: one final buffer, and any
  // text left after the value is an error (parser::write, extra_data).
  boost::system::error_code ec;
  const std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (ec || used < text.size()) {
    if (ec == json::error::too_deep) {
      return refuse(error_code::bad_json, "frame is nested too deeply", std::nullopt);
    }
    return refuse(error_code::bad_json, "frame is not valid JSON", std::nullopt);
  }
  frame_reader& frame = parser.handler();
  if (!frame.is_object()) {
    return refuse(error_code::bad_json, "frame must be a JSON object", std::nullopt);
  }

  const id_field id = read_id(frame);

  const field& type = frame.type();
  if (type.of == field::kind::absent)
    return refuse(error_code::bad_field, "type is missing", id.id);
  if (type.of == field::kind::uint64) {
    return refuse(error_code::unknown_type,
                  "type " + std::to_string(type.bits) + " cannot be sent by a client", id.id);
  }
  if (type.of != field::kind::int64) {
    return refuse(error_code::bad_field, "type must be an integer", id.id);
  }

  switch (static_cast<std::int64_t>(type.bits)) {
    case 1: {
      auto result = parse_send(frame, id, self);
      if (auto* error = std::get_if<frame_error>(&result)) error->is_send = true;
      return result;
    }
    case 2:
      return parse_seq_frame<receive_frame>(frame, id);
    case 3:
      return close_frame{};
    case 6:
      return parse_seq_frame<read_frame>(frame, id);
    default:
      return refuse(error_code::unknown_type,
                    "type " + std::to_string(static_cast<std::int64_t>(type.bits)) +
                        " cannot be sent by a client",
                    id.id);
  }
}

std::string welcome_frame(user_id self, seq_t highest, std::string_view session_id,
                          std::string_view device) {
  return json::serialize(json::object{
      {"type", 0},
      {"receiver", self},
      {"seq", highest},
      {"session", json::string_view(session_id.data(), session_id.size())},
      {"device", json::string_view(device.data(), device.size())},
  });
}

std::string deliver_frame(const store::stored_message& m) {
  // The keys, "type", four numbers, two quotes; the id with its key.
  constexpr std::size_t fixed = 72 + 6 * frame_text::max_number_bytes + 2;
  frame_text f(fixed + m.content.size() + (m.id ? 8 + m.id->value.size() : 0));
  f.raw(R"({"type":1,"sender":)").number(m.sender);
  if (m.group != 0) f.raw(R"(,"group":)").number(m.group);
  f.raw(R"(,"receiver":)").number(m.receiver);
  f.raw(R"(,"content":)").string(m.content);
  f.raw(R"(,"seq":)").number(m.seq);
  if (m.group != 0) f.raw(R"(,"gseq":)").number(m.gseq);
  f.raw(R"(,"ts":)").number(m.ts_ms);
  if (m.id) f.raw(R"(,"id":)").id(*m.id);
  f.raw("}");
  return f.take();
}

std::string status_frame(const store::stored_message& m) {
  // The keys, "type", the state, four numbers.
  frame_text f(64 + 4 * frame_text::max_number_bytes);
  f.raw(R"({"type":5,"receiver":)").number(m.sender);
  f.raw(m.state == store::status_state::read ? R"(,"state":"read")" : R"(,"state":"delivered")");
  f.raw(R"(,"upto":)").number(m.upto);
  f.raw(R"(,"seq":)").number(m.seq);
  f.raw(R"(,"ts":)").number(m.ts_ms);
  f.raw("}");
  return f.take();
}

std::string receipt_frame(const message_id& id, user_id receiver, seq_t seq, std::int64_t ts_ms) {
  // The keys, "type", three numbers, the id with its quotes.
  frame_text f(41 + 3 * frame_text::max_number_bytes + 2 + id.value.size());
  f.raw(R"({"type":2,"id":)").id(id);
  f.raw(R"(,"receiver":)").number(receiver);
  f.raw(R"(,"seq":)").number(seq);
  f.raw(R"(,"ts":)").number(ts_ms);
  f.raw("}");
  return f.take();
}

std::string group_receipt_frame(const message_id& id, store::group_id group, seq_t gseq,
                                std::int64_t ts_ms) {
  frame_text f(38 + 3 * frame_text::max_number_bytes + 2 + id.value.size());
  f.raw(R"({"type":2,"id":)").id(id);
  f.raw(R"(,"group":)").number(group);
  f.raw(R"(,"gseq":)").number(gseq);
  f.raw(R"(,"ts":)").number(ts_ms);
  f.raw("}");
  return f.take();
}

std::string close_frame_text(std::string_view code, std::string_view text) {
  return json::serialize(json::object{
      {"type", 3},
      {"code", json::string_view(code.data(), code.size())},
      {"content", json::string_view(text.data(), text.size())},
  });
}

std::string error_frame(error_code code, std::string_view text,
                        const std::optional<message_id>& id) {
  const std::string_view code_text = to_string(code);
  json::object frame{
      {"type", 4},
      {"code", json::string_view(code_text.data(), code_text.size())},
      {"content", json::string_view(text.data(), text.size())},
  };
  if (id) frame.emplace("id", id_to_json(*id));
  return json::serialize(frame);
}

}  // namespace switchboard::protocol
