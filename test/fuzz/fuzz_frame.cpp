// Fuzzes protocol::parse_client_frame, the parser and validator of every text
// frame a client sends (PROTOCOL.md section 2), and the server frames built
// from what it returns.
//
// Beyond "no crash, no sanitizer report, no exception", it checks:
// - the result is the one the DOM version of parse_client_frame gives
//   (test/support/protocol_reference.hpp), field by field, for the session's
//   user and for another; deliver_frame and receipt_frame write the same
//   bytes as their reference, with the input as content and id and numbers
//   taken from its first bytes;
// - bad_json exactly when the text is not one JSON object within
//   max_json_depth; the parser never returns a code only the session gives
//   (binary, rate_limited, unavailable);
// - every other result agrees with the JSON it came from: the kind of frame
//   with `type`, a SEND's receiver, content and id with those fields, a
//   RECEIVE's seq with `seq`; a SEND with a `sender` is accepted only when it
//   is the session's user, and with another session user it is
//   sender_mismatch; is_send exactly when `type` is 1;
// - an ERROR echoes the frame's id exactly when that id is valid;
// - a parsed frame written back as canonical JSON parses to the same frame,
//   and so does the server's own delivery of a SEND (deliver_frame) read back
//   as a client frame: what the server writes, it would accept;
// - every ERROR, delivery and receipt built from a result is valid JSON
//   with the fields it was built from.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <boost/json.hpp>

#include "fuzz_support.hpp"
#include "support/protocol_reference.hpp"
#include "switchboard/protocol.hpp"

namespace {

namespace json = boost::json;
namespace sp = switchboard::protocol;
namespace reference = switchboard::test::reference;
using switchboard::store::message_id;

constexpr sp::user_id self = 7;

// The input read by Boost.JSON directly, with the parser's depth bound:
// the reference the protocol's answer is compared with.
std::optional<json::object> as_object(std::string_view text) {
  json::parse_options options;
  options.max_depth = sp::max_json_depth;
  json::error_code ec;
  json::value v = json::parse(text, ec, {}, options);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

std::optional<std::uint64_t> as_unsigned(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() >= 0) return static_cast<std::uint64_t>(v->get_int64());
  return std::nullopt;
}

// The id the frame carries, when it is valid (PROTOCOL.md: a string of 1 to
// 64 bytes, or an unsigned integer, whose canonical text is its decimal form).
std::optional<message_id> valid_id(const json::object& frame) {
  const auto* v = frame.if_contains("id");
  if (!v) return std::nullopt;
  if (const auto* s = v->if_string()) {
    if (s->empty() || s->size() > sp::max_id_bytes) return std::nullopt;
    return message_id{std::string(*s), false};
  }
  if (const auto n = as_unsigned(v)) return message_id{std::to_string(*n), true};
  return std::nullopt;
}

json::value id_json(const message_id& id) {
  if (id.is_number) return json::value(std::stoull(id.value));
  return json::value(json::string(id.value));
}

bool same(const sp::send_frame& a, const sp::send_frame& b) {
  return a.receiver == b.receiver && a.content == b.content && a.id == b.id && a.notify == b.notify;
}

// The server's frames are parsed back as JSON objects; each must be one.
json::object parsed_object(const std::string& text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(v.is_object());
  return std::move(v.get_object());
}

// The id in a server frame: present exactly when known, as the client wrote it.
void check_echoed_id(const json::object& frame, const std::optional<message_id>& id) {
  const auto* v = frame.if_contains("id");
  FUZZ_CHECK((v != nullptr) == id.has_value());
  if (!id) return;
  if (id->is_number) {
    FUZZ_CHECK(as_unsigned(v) == std::stoull(id->value));
  } else {
    FUZZ_CHECK(v->is_string() && v->get_string() == id->value);
  }
}

void check_send(const sp::send_frame& send, const json::object& frame) {
  FUZZ_CHECK(send.receiver != 0);
  FUZZ_CHECK(as_unsigned(frame.if_contains("receiver")) == send.receiver);
  FUZZ_CHECK(frame.at("content").as_string() == send.content);
  FUZZ_CHECK(send.id == valid_id(frame));
  // Canonical JSON of the same frame. Only the fields the parser read are
  // written back: Boost.JSON reads a number beyond a double's range as an
  // infinity and writes that as `Infinity`, which no JSON parser reads, so a
  // frame carrying one elsewhere cannot be re-serialised as a whole.
  json::object canonical{{"type", 1}, {"receiver", send.receiver}, {"content", send.content}};
  if (send.id) canonical["id"] = id_json(*send.id);
  if (send.notify) canonical["notify"] = true;
  const auto again = sp::parse_client_frame(json::serialize(canonical), self);
  FUZZ_CHECK(std::holds_alternative<sp::send_frame>(again) &&
             same(std::get<sp::send_frame>(again), send));

  if (const auto* sender = frame.if_contains("sender")) {
    FUZZ_CHECK(as_unsigned(sender) == self);
    canonical["sender"] = self;
    const auto other = sp::parse_client_frame(json::serialize(canonical), self + 1);
    const auto* refused = std::get_if<sp::frame_error>(&other);
    FUZZ_CHECK(refused && refused->code == sp::error_code::sender_mismatch && refused->is_send &&
               refused->id == send.id);
  }

  // The delivery the server would write, read back as a frame from its sender.
  const switchboard::store::stored_message m{
      1, self, send.receiver, send.content, 1'700'000'000'000, send.id};
  const std::string delivered = sp::deliver_frame(m);
  const auto delivered_object = parsed_object(delivered);
  FUZZ_CHECK(delivered_object.at("content").as_string() == send.content);
  check_echoed_id(delivered_object, send.id);
  const auto read_back = sp::parse_client_frame(delivered, self);
  FUZZ_CHECK(std::holds_alternative<sp::send_frame>(read_back) &&
             same(std::get<sp::send_frame>(read_back), send));

  if (send.id)
    check_echoed_id(parsed_object(sp::receipt_frame(*send.id, send.receiver, 1, 0)), send.id);
}

void check_error(const sp::frame_error& error, const std::optional<json::object>& frame) {
  FUZZ_CHECK(error.code != sp::error_code::binary && error.code != sp::error_code::rate_limited &&
             error.code != sp::error_code::unavailable);
  FUZZ_CHECK(sp::to_string(error.code) != "unknown");
  FUZZ_CHECK(!error.message.empty());
  if (error.code == sp::error_code::bad_json) {
    FUZZ_CHECK(!frame && !error.id && !error.is_send);
  } else {
    FUZZ_CHECK(frame.has_value());
    FUZZ_CHECK(error.id == valid_id(*frame));
    const auto* type = frame->if_contains("type");
    FUZZ_CHECK(error.is_send == (type && type->is_int64() && type->get_int64() == 1));
    if (error.code == sp::error_code::sender_mismatch) {
      FUZZ_CHECK(as_unsigned(frame->if_contains("sender")).value_or(self) != self);
    }
  }
  const auto sent = parsed_object(sp::error_frame(error.code, error.message, error.id));
  FUZZ_CHECK(sent.at("type").as_int64() == 4);
  FUZZ_CHECK(sent.at("code").as_string() == sp::to_string(error.code));
  FUZZ_CHECK(sent.at("content").as_string() == error.message);
  check_echoed_id(sent, error.id);
}

std::optional<std::int64_t> type_of(const json::object& frame) {
  const auto* type = frame.if_contains("type");
  if (type && type->is_int64()) return type->get_int64();
  return std::nullopt;
}

// The server frames built from arbitrary bytes (not only valid UTF-8: the
// escaping must still match) and arbitrary numbers, against their reference.
void check_server_frames_match_reference(std::string_view text) {
  std::uint64_t numbers[4] = {1, 7, 8, 1'700'000'000'000};
  if (!text.empty()) std::memcpy(numbers, text.data(), std::min(text.size(), sizeof numbers));
  const auto ts = static_cast<std::int64_t>(numbers[3]);
  const std::optional<message_id> ids[] = {std::nullopt,
                                           message_id{std::string(text.substr(0, 80)), false},
                                           message_id{std::string(text.substr(0, 24)), true},
                                           message_id{std::to_string(numbers[0]), true}};
  for (const auto& id : ids) {
    const switchboard::store::stored_message m{numbers[0],        numbers[1], numbers[2],
                                               std::string(text), ts,         id};
    FUZZ_CHECK(sp::deliver_frame(m) == reference::deliver_frame(m));
    if (id) {
      FUZZ_CHECK(sp::receipt_frame(*id, numbers[2], numbers[0], ts) ==
                 reference::receipt_frame(*id, numbers[2], numbers[0], ts));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = switchboard::fuzz::as_text(data, size);
  const auto result = sp::parse_client_frame(text, self);
  FUZZ_CHECK(reference::same(result, reference::parse_client_frame(text, self)));
  FUZZ_CHECK(reference::same(sp::parse_client_frame(text, self + 1),
                             reference::parse_client_frame(text, self + 1)));
  check_server_frames_match_reference(text);
  const auto frame = as_object(text);

  if (const auto* error = std::get_if<sp::frame_error>(&result)) {
    FUZZ_CHECK((error->code == sp::error_code::bad_json) == !frame.has_value());
    check_error(*error, frame);
    return 0;
  }

  FUZZ_CHECK(frame.has_value());
  if (const auto* send = std::get_if<sp::send_frame>(&result)) {
    FUZZ_CHECK(type_of(*frame) == 1);
    check_send(*send, *frame);
  } else if (const auto* receive = std::get_if<sp::receive_frame>(&result)) {
    FUZZ_CHECK(type_of(*frame) == 2);
    FUZZ_CHECK(as_unsigned(frame->if_contains("seq")) == receive->seq);
    const auto again = sp::parse_client_frame(
        json::serialize(json::object{{"type", 2}, {"seq", receive->seq}}), self);
    FUZZ_CHECK(std::holds_alternative<sp::receive_frame>(again) &&
               std::get<sp::receive_frame>(again).seq == receive->seq);
  } else if (const auto* read = std::get_if<sp::read_frame>(&result)) {
    FUZZ_CHECK(type_of(*frame) == 6);
    FUZZ_CHECK(as_unsigned(frame->if_contains("seq")) == read->seq);
  } else {
    FUZZ_CHECK(std::holds_alternative<sp::close_frame>(result));
    FUZZ_CHECK(type_of(*frame) == 3);
  }
  return 0;
}
