// The protocol's per-message code as it was before it was made fast, kept as
// the reference the fast code must agree with byte for byte and field by
// field: parse_client_frame on Boost.JSON's DOM (json::parse, then
// if_contains) and deliver_frame/receipt_frame appending to a std::string.
// test_protocol.cpp compares both on hand-picked frames, fuzz_frame on
// everything libFuzzer finds. Header-only, so that the fuzz build (which
// has no test support library) can use it too.
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>

#include <boost/json.hpp>

#include "switchboard/protocol.hpp"
#include "switchboard/user_id.hpp"

namespace switchboard::test::reference {

namespace json = boost::json;
using protocol::client_frame;
using protocol::close_frame;
using protocol::error_code;
using protocol::frame_error;
using protocol::max_id_bytes;
using protocol::max_json_depth;
using protocol::message_id;
using protocol::read_frame;
using protocol::receive_frame;
using protocol::send_frame;
using protocol::seq_t;
using protocol::user_id;

namespace detail {

inline std::optional<std::uint64_t> as_unsigned(const json::value& v) {
  if (const auto* u = v.if_uint64()) return *u;
  if (const auto* i = v.if_int64(); i && *i >= 0) return static_cast<std::uint64_t>(*i);
  return std::nullopt;
}

struct id_field {
  bool valid = true;
  std::optional<message_id> id;
};

inline id_field read_id(const json::object& frame) {
  const auto* v = frame.if_contains("id");
  if (!v) return {};
  if (const auto* s = v->if_string()) {
    if (s->empty() || s->size() > max_id_bytes) return {false, std::nullopt};
    return {true, message_id{std::string(s->data(), s->size()), false}};
  }
  if (const auto n = as_unsigned(*v)) return {true, message_id{std::to_string(*n), true}};
  return {false, std::nullopt};
}

inline frame_error refuse(error_code code, std::string message,
                          const std::optional<message_id>& id) {
  return frame_error{code, std::move(message), id};
}

inline client_frame parse_send(const json::object& frame, const id_field& id, user_id self) {
  if (!id.valid) {
    return refuse(error_code::bad_field,
                  "id must be a string of 1 to 64 bytes or an unsigned integer", std::nullopt);
  }
  // Exactly one of receiver and group (PROTOCOL.md section 10).
  const auto* receiver_value = frame.if_contains("receiver");
  const auto* group_value = frame.if_contains("group");
  if (receiver_value && group_value)
    return refuse(error_code::bad_field, "receiver and group cannot both be given", id.id);
  if (!receiver_value && !group_value)
    return refuse(error_code::bad_field, "receiver (or group) is missing", id.id);
  const auto target = as_unsigned(receiver_value ? *receiver_value : *group_value);
  if (!target || *target == 0) {
    return refuse(error_code::bad_field,
                  receiver_value
                      ? "receiver must be a user id, an integer in 1..18446744073709551615"
                      : "group must be a group id, an integer in 1..18446744073709551615",
                  id.id);
  }
  const auto* content_value = frame.if_contains("content");
  if (!content_value) return refuse(error_code::bad_field, "content is missing", id.id);
  const auto* content = content_value->if_string();
  if (!content) return refuse(error_code::bad_field, "content must be a string", id.id);
  const auto* notify_value = frame.if_contains("notify");
  if (notify_value && !notify_value->is_bool()) {
    return refuse(error_code::bad_field, "notify must be true or false", id.id);
  }
  if (const auto* sender_value = frame.if_contains("sender")) {
    const auto sender = as_unsigned(*sender_value);
    if (!sender) {
      return refuse(error_code::bad_field, "sender must be an unsigned integer", id.id);
    }
    if (*sender != self) {
      return refuse(error_code::sender_mismatch, "sender is not the user of this session", id.id);
    }
  }
  // notify counts on a direct SEND with an id only (section 11).
  const bool notify =
      receiver_value && notify_value && notify_value->get_bool() && id.id.has_value();
  return send_frame{receiver_value ? *target : 0, group_value ? *target : 0,
                    std::string(content->data(), content->size()), id.id, notify};
}

template <class Frame>
inline client_frame parse_seq_frame(const json::object& frame, const id_field& id) {
  const auto* seq_value = frame.if_contains("seq");
  if (!seq_value) return refuse(error_code::bad_field, "seq is missing", id.id);
  const auto seq = as_unsigned(*seq_value);
  if (!seq) return refuse(error_code::bad_field, "seq must be an unsigned integer", id.id);
  return Frame{*seq};
}

class frame_text {
 public:
  explicit frame_text(std::size_t reserve) { out_.reserve(reserve); }

  frame_text& raw(std::string_view text) {
    out_.append(text);
    return *this;
  }
  template <class Integer>
  frame_text& number(Integer n) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    out_.append(digits, end);
    return *this;
  }
  frame_text& string(std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    static constexpr auto needs_escape = [] {
      std::array<bool, 256> table{};
      for (int c = 0; c < 0x20; ++c)
        table[static_cast<std::size_t>(c)] = true;
      table['"'] = true;
      table['\\'] = true;
      return table;
    }();
    out_.push_back('"');
    std::size_t plain = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (!needs_escape[c]) continue;
      out_.append(text.data() + plain, i - plain);
      plain = i + 1;
      switch (c) {
        case '"':
          out_.append("\\\"");
          break;
        case '\\':
          out_.append("\\\\");
          break;
        case '\n':
          out_.append("\\n");
          break;
        case '\r':
          out_.append("\\r");
          break;
        case '\t':
          out_.append("\\t");
          break;
        case '\b':
          out_.append("\\b");
          break;
        case '\f':
          out_.append("\\f");
          break;
        default: {
          const char escaped[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
          out_.append(escaped, sizeof escaped);
        }
      }
    }
    out_.append(text.data() + plain, text.size() - plain);
    out_.push_back('"');
    return *this;
  }
  frame_text& id(const message_id& id) {
    if (id.is_number && parse_seq(id.value)) return raw(id.value);
    return string(id.value);
  }

  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace detail

// protocol::parse_client_frame as a Boost.JSON DOM parse.
inline client_frame parse_client_frame(std::string_view text, user_id self) {
  unsigned char buffer[4096];
  json::monotonic_resource resource(buffer, sizeof buffer);
  json::parse_options options;
  options.max_depth = max_json_depth;

  boost::system::error_code ec;
  const json::value parsed = json::parse(json::string_view(text.data(), text.size()), ec,
                                         json::storage_ptr(&resource), options);
  if (ec == json::error::too_deep) {
    return detail::refuse(error_code::bad_json, "frame is nested too deeply", std::nullopt);
  }
  if (ec) return detail::refuse(error_code::bad_json, "frame is not valid JSON", std::nullopt);
  const auto* frame = parsed.if_object();
  if (!frame) {
    return detail::refuse(error_code::bad_json, "frame must be a JSON object", std::nullopt);
  }

  const detail::id_field id = detail::read_id(*frame);

  const auto* type_value = frame->if_contains("type");
  if (!type_value) return detail::refuse(error_code::bad_field, "type is missing", id.id);
  if (type_value->is_uint64()) {
    return detail::refuse(
        error_code::unknown_type,
        "type " + std::to_string(type_value->get_uint64()) + " cannot be sent by a client", id.id);
  }
  const auto* type = type_value->if_int64();
  if (!type) return detail::refuse(error_code::bad_field, "type must be an integer", id.id);

  switch (*type) {
    case 1: {
      auto result = detail::parse_send(*frame, id, self);
      if (auto* error = std::get_if<frame_error>(&result)) error->is_send = true;
      return result;
    }
    case 2:
      return detail::parse_seq_frame<receive_frame>(*frame, id);
    case 3:
      return close_frame{};
    case 6:
      return detail::parse_seq_frame<read_frame>(*frame, id);
    default:
      return detail::refuse(error_code::unknown_type,
                            "type " + std::to_string(*type) + " cannot be sent by a client", id.id);
  }
}

inline std::string deliver_frame(const store::stored_message& m) {
  detail::frame_text f(m.content.size() + 128);
  f.raw(R"({"type":1,"sender":)").number(m.sender);
  f.raw(R"(,"receiver":)").number(m.receiver);
  f.raw(R"(,"content":)").string(m.content);
  f.raw(R"(,"seq":)").number(m.seq);
  f.raw(R"(,"ts":)").number(m.ts_ms);
  if (m.id) f.raw(R"(,"id":)").id(*m.id);
  f.raw("}");
  return f.take();
}

inline std::string receipt_frame(const message_id& id, user_id receiver, seq_t seq,
                                 std::int64_t ts_ms) {
  detail::frame_text f(160);
  f.raw(R"({"type":2,"id":)").id(id);
  f.raw(R"(,"receiver":)").number(receiver);
  f.raw(R"(,"seq":)").number(seq);
  f.raw(R"(,"ts":)").number(ts_ms);
  f.raw("}");
  return f.take();
}

// Field by field: the same alternative, and in it the same values.
inline bool same(const client_frame& a, const client_frame& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<send_frame>(&a)) {
    const auto& y = std::get<send_frame>(b);
    return x->receiver == y.receiver && x->content == y.content && x->id == y.id &&
           x->notify == y.notify;
  }
  if (const auto* x = std::get_if<receive_frame>(&a)) {
    return x->seq == std::get<receive_frame>(b).seq;
  }
  if (const auto* x = std::get_if<read_frame>(&a)) {
    return x->seq == std::get<read_frame>(b).seq;
  }
  if (const auto* x = std::get_if<frame_error>(&a)) {
    const auto& y = std::get<frame_error>(b);
    return x->code == y.code && x->message == y.message && x->id == y.id && x->is_send == y.is_send;
  }
  return true;  // close_frame has no fields
}

// A result in one line, for a failed comparison's message.
inline std::string describe(const client_frame& frame) {
  const auto id_text = [](const std::optional<message_id>& id) -> std::string {
    if (!id) return "none";
    return (id->is_number ? "number " : "string ") + id->value;
  };
  if (const auto* s = std::get_if<send_frame>(&frame)) {
    return "send receiver=" + std::to_string(s->receiver) + " content(" +
           std::to_string(s->content.size()) + " bytes) id=" + id_text(s->id) +
           (s->notify ? " notify" : "");
  }
  if (const auto* r = std::get_if<receive_frame>(&frame)) {
    return "receive seq=" + std::to_string(r->seq);
  }
  if (const auto* r = std::get_if<read_frame>(&frame)) {
    return "read seq=" + std::to_string(r->seq);
  }
  if (const auto* e = std::get_if<frame_error>(&frame)) {
    return "error " + std::string(protocol::to_string(e->code)) + " \"" + e->message +
           "\" id=" + id_text(e->id) + (e->is_send ? " is_send" : "");
  }
  return "close";
}

}  // namespace switchboard::test::reference
