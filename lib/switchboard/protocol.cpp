#include "switchboard/protocol.hpp"

#include <array>
#include <charconv>

#include <boost/json.hpp>

#include "switchboard/net.hpp"
#include "switchboard/user_id.hpp"

namespace switchboard::protocol {
namespace {

// Most frames are a few hundred bytes: parsing into a stack buffer keeps the
// hot path free of heap allocations, and the monotonic resource falls back to
// the heap for larger ones. Everything kept is copied out before it goes.
constexpr std::size_t parse_buffer_bytes = 4096;

// Boost.JSON stores a number as int64 when it fits, as uint64 above that, and
// as a double when it has a fraction or exponent or exceeds 2^64-1, so the
// kind alone tells an unsigned integer from anything else.
std::optional<std::uint64_t> as_unsigned(const json::value& v) {
  if (const auto* u = v.if_uint64()) return *u;
  if (const auto* i = v.if_int64(); i && *i >= 0) return static_cast<std::uint64_t>(*i);
  return std::nullopt;
}

// `id` is read before anything else so that every later error can echo it.
struct id_field {
  bool valid = true;  // absent counts as valid
  std::optional<message_id> id;
};

id_field read_id(const json::object& frame) {
  const auto* v = frame.if_contains("id");
  if (!v) return {};
  if (const auto* s = v->if_string()) {
    if (s->empty() || s->size() > max_id_bytes) return {false, std::nullopt};
    return {true, message_id{std::string(s->data(), s->size()), false}};
  }
  if (const auto n = as_unsigned(*v)) return {true, message_id{std::to_string(*n), true}};
  return {false, std::nullopt};
}

frame_error refuse(error_code code, std::string message, const std::optional<message_id>& id) {
  return frame_error{code, std::move(message), id};
}

client_frame parse_send(const json::object& frame, const id_field& id, user_id self) {
  if (!id.valid) {
    return refuse(error_code::bad_field,
                  "id must be a string of 1 to 64 bytes or an unsigned integer", std::nullopt);
  }

  const auto* receiver_value = frame.if_contains("receiver");
  if (!receiver_value) return refuse(error_code::bad_field, "receiver is missing", id.id);
  const auto receiver = as_unsigned(*receiver_value);
  if (!receiver || *receiver == 0) {
    return refuse(error_code::bad_field,
                  "receiver must be a user id, an integer in 1..18446744073709551615", id.id);
  }

  const auto* content_value = frame.if_contains("content");
  if (!content_value) return refuse(error_code::bad_field, "content is missing", id.id);
  const auto* content = content_value->if_string();
  if (!content) return refuse(error_code::bad_field, "content must be a string", id.id);

  // The server stamps the sender itself; a client-supplied one is only
  // checked, so that a client confused about who it is hears about it.
  if (const auto* sender_value = frame.if_contains("sender")) {
    const auto sender = as_unsigned(*sender_value);
    if (!sender) {
      return refuse(error_code::bad_field, "sender must be an unsigned integer", id.id);
    }
    if (*sender != self) {
      return refuse(error_code::sender_mismatch, "sender is not the user of this session", id.id);
    }
  }

  return send_frame{*receiver, std::string(content->data(), content->size()), id.id};
}

client_frame parse_receive(const json::object& frame, const id_field& id) {
  const auto* seq_value = frame.if_contains("seq");
  if (!seq_value) return refuse(error_code::bad_field, "seq is missing", id.id);
  const auto seq = as_unsigned(*seq_value);
  if (!seq) return refuse(error_code::bad_field, "seq must be an unsigned integer", id.id);
  return receive_frame{*seq};
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

// The frames written once per message are built by hand: building a
// json::object and serialising it cost about 4,000 instructions per frame,
// a fifth of the whole relay (docs/performance.md). The output is the same
// JSON, in the same key order.
class frame_text {
 public:
  explicit frame_text(std::size_t reserve) { out_.reserve(reserve); }

  frame_text& raw(std::string_view text) {
    out_.append(text);
    return *this;
  }
  // A JSON integer: seqs and user ids (unsigned), timestamps (signed).
  template <class Integer>
  frame_text& number(Integer n) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    out_.append(digits, end);
    return *this;
  }
  // A JSON string. The text is valid UTF-8 (it was parsed from JSON or is
  // the server's own), so only quotes, backslashes and control characters
  // need escaping (RFC 8259 section 7).
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
    std::size_t plain = 0;  // start of the run not yet copied
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
  // The id in the form the sender wrote it (see id_to_json).
  frame_text& id(const message_id& id) {
    if (id.is_number && parse_seq(id.value)) return raw(id.value);
    return string(id.value);
  }

  std::string take() { return std::move(out_); }

 private:
  std::string out_;
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
  }
  return "unknown";
}

client_frame parse_client_frame(std::string_view text, user_id self) {
  unsigned char buffer[parse_buffer_bytes];
  json::monotonic_resource resource(buffer, sizeof buffer);
  json::parse_options options;
  options.max_depth = max_json_depth;

  boost::system::error_code ec;
  const json::value parsed = json::parse(json::string_view(text.data(), text.size()), ec,
                                         json::storage_ptr(&resource), options);
  if (ec == json::error::too_deep) {
    return refuse(error_code::bad_json, "frame is nested too deeply", std::nullopt);
  }
  if (ec) return refuse(error_code::bad_json, "frame is not valid JSON", std::nullopt);
  const auto* frame = parsed.if_object();
  if (!frame) return refuse(error_code::bad_json, "frame must be a JSON object", std::nullopt);

  const id_field id = read_id(*frame);

  const auto* type_value = frame->if_contains("type");
  if (!type_value) return refuse(error_code::bad_field, "type is missing", id.id);
  if (type_value->is_uint64()) {
    return refuse(
        error_code::unknown_type,
        "type " + std::to_string(type_value->get_uint64()) + " cannot be sent by a client", id.id);
  }
  const auto* type = type_value->if_int64();
  if (!type) return refuse(error_code::bad_field, "type must be an integer", id.id);

  switch (*type) {
    case 1: {
      auto result = parse_send(*frame, id, self);
      if (auto* error = std::get_if<frame_error>(&result)) error->is_send = true;
      return result;
    }
    case 2:
      return parse_receive(*frame, id);
    case 3:
      return close_frame{};
    default:
      return refuse(error_code::unknown_type,
                    "type " + std::to_string(*type) + " cannot be sent by a client", id.id);
  }
}

std::string welcome_frame(user_id self, seq_t highest, std::string_view session_id) {
  return json::serialize(json::object{
      {"type", 0},
      {"receiver", self},
      {"seq", highest},
      {"session", json::string_view(session_id.data(), session_id.size())},
  });
}

std::string deliver_frame(const store::stored_message& m) {
  frame_text f(m.content.size() + 128);
  f.raw(R"({"type":1,"sender":)").number(m.sender);
  f.raw(R"(,"receiver":)").number(m.receiver);
  f.raw(R"(,"content":)").string(m.content);
  f.raw(R"(,"seq":)").number(m.seq);
  f.raw(R"(,"ts":)").number(m.ts_ms);
  if (m.id) f.raw(R"(,"id":)").id(*m.id);
  f.raw("}");
  return f.take();
}

std::string receipt_frame(const message_id& id, user_id receiver, seq_t seq, std::int64_t ts_ms) {
  frame_text f(160);
  f.raw(R"({"type":2,"id":)").id(id);
  f.raw(R"(,"receiver":)").number(receiver);
  f.raw(R"(,"seq":)").number(seq);
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
