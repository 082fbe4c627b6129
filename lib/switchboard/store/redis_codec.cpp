#include "switchboard/store/redis_codec.hpp"

#include <charconv>

namespace switchboard::store::redis_codec {

namespace {

std::string user_key(user_id user, std::string_view suffix) {
  std::string key = "{u:";
  key += std::to_string(user);
  key += "}:";
  key += suffix;
  return key;
}

template <class T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  if (text.empty()) return std::nullopt;
  // from_chars accepts a leading '-' for signed types only; no '+', no spaces.
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Takes the text up to the next space off the front of `text`.
std::optional<std::string_view> take_word(std::string_view& text) {
  const auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto word = text.substr(0, space);
  text.remove_prefix(space + 1);
  return word;
}

}  // namespace

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  return parse_number<std::uint64_t>(text);
}

std::string seq_key(user_id user) {
  return user_key(user, "seq");
}
std::string cursor_key(user_id user) {
  return user_key(user, "cursors");
}
std::string seen_key(user_id user) {
  return user_key(user, "seen");
}
std::string device_member(const device_name& device) {
  if (device.empty()) return "-";
  std::string member = "d:";
  member += device.view();
  return member;
}
std::string inbox_key(user_id user) {
  return user_key(user, "inbox");
}
std::string inbox_bytes_key(user_id user) {
  return user_key(user, "inbox_bytes");
}
std::string sessions_key(user_id user) {
  return user_key(user, "sessions");
}
std::string dedup_key(user_id sender, const message_id& id) {
  // 17 and "17" are one id: the key holds the canonical value alone.
  return user_key(sender, "dedup:") + id.value;
}
std::string applied_key(user_id user) {
  return user_key(user, "applied");
}
std::string group_members_key(group_id group) {
  return "{g:" + std::to_string(group) + "}:members";
}
std::string group_seq_key(group_id group) {
  return "{g:" + std::to_string(group) + "}:gseq";
}
std::string group_applied_key(group_id group) {
  return "{g:" + std::to_string(group) + "}:applied";
}
std::string user_groups_key(user_id user) {
  return user_key(user, "groups");
}
std::string notify_key(user_id user) {
  return user_key(user, "notify");
}
std::string unread_key(user_id user) {
  return user_key(user, "unread");
}
std::string channel(user_id user, unsigned db) {
  return user_key(user, "ch:") + std::to_string(db);
}

std::optional<user_id> channel_user(std::string_view name, unsigned db) {
  if (!name.starts_with("{u:")) return std::nullopt;
  name.remove_prefix(3);
  const auto close = name.find('}');
  if (close == std::string_view::npos) return std::nullopt;
  auto user = parse_u64(name.substr(0, close));
  if (!user || *user == 0) return std::nullopt;
  if (name.substr(close) != "}:ch:" + std::to_string(db)) return std::nullopt;
  return user;
}

std::string encode_message(std::int64_t ts_ms, user_id sender, const std::optional<message_id>& id,
                           std::string_view content) {
  std::string out;
  out.reserve(48 + content.size() + (id ? id->value.size() : 0));
  out += std::to_string(ts_ms);
  out += ' ';
  out += std::to_string(sender);
  out += ' ';
  if (!id) {
    out += "-:";
  } else {
    out += id->is_number ? 'n' : 's';
    out += std::to_string(id->value.size());
    out += ':';
    out += id->value;
  }
  out += content;
  return out;
}

std::string encode_status(std::int64_t ts_ms, user_id about, status_state state, seq_t upto) {
  const std::string point = std::to_string(upto);
  std::string out = std::to_string(ts_ms);
  out += ' ';
  out += std::to_string(about);
  out += ' ';
  out += state == status_state::read ? 'r' : 'd';
  out += std::to_string(point.size());
  out += ':';
  out += point;
  return out;
}

std::optional<stored_message> decode_message(std::string_view text, seq_t seq, user_id receiver) {
  stored_message m;
  m.seq = seq;
  m.receiver = receiver;
  auto ts = take_word(text);
  auto sender = ts ? take_word(text) : std::nullopt;
  if (!sender) return std::nullopt;
  // One spelling per value: no leading zero, no "-0".
  if (ts->size() > 1 && ((*ts)[0] == '0' || ts->starts_with("-0"))) return std::nullopt;
  auto ts_value = parse_number<std::int64_t>(*ts);
  auto sender_value = parse_u64(*sender);
  if (!ts_value || !sender_value) return std::nullopt;
  m.ts_ms = *ts_value;
  m.sender = *sender_value;
  if (text.starts_with('g')) {
    // A copy of a group message: g<group>.<gseq>. before the id.
    text.remove_prefix(1);
    const auto dot = text.find('.');
    const auto group =
        dot == std::string_view::npos ? std::nullopt : parse_u64(text.substr(0, dot));
    if (!group || *group == 0) return std::nullopt;
    text.remove_prefix(dot + 1);
    const auto dot2 = text.find('.');
    const auto gseq =
        dot2 == std::string_view::npos ? std::nullopt : parse_u64(text.substr(0, dot2));
    if (!gseq || *gseq == 0) return std::nullopt;
    text.remove_prefix(dot2 + 1);
    m.group = *group;
    m.gseq = *gseq;
  }
  if (text.empty()) return std::nullopt;
  const char kind = text[0];
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  if (kind == '-') {
    if (colon != 1) return std::nullopt;
    text.remove_prefix(2);
  } else if (kind == 'd' || kind == 'r') {
    // A STATUS: its point where an id would be, and nothing after it. It
    // is never a group copy (the scripts write none such).
    if (m.group != 0) return std::nullopt;
    auto length = parse_u64(text.substr(1, colon - 1));
    if (!length || *length != text.size() - colon - 1) return std::nullopt;
    auto upto = parse_u64(text.substr(colon + 1));
    if (!upto) return std::nullopt;
    m.kind = entry_kind::status;
    m.state = kind == 'r' ? status_state::read : status_state::delivered;
    m.upto = *upto;
    return m;
  } else if (kind == 'n' || kind == 's') {
    auto length = parse_u64(text.substr(1, colon - 1));
    if (!length || *length == 0 || *length > text.size() - colon - 1) return std::nullopt;
    m.id = message_id{std::string(text.substr(colon + 1, *length)), kind == 'n'};
    text.remove_prefix(colon + 1 + *length);
  } else {
    return std::nullopt;
  }
  m.content = std::string(text);
  return m;
}

std::optional<stored_message> decode_entry(std::string_view entry, user_id receiver) {
  auto seq_text = take_word(entry);
  auto seq = seq_text ? parse_u64(*seq_text) : std::nullopt;
  if (!seq || *seq == 0) return std::nullopt;
  return decode_message(entry, *seq, receiver);
}

published decode_published(std::string_view payload, user_id receiver) {
  if (payload.starts_with("m ")) {
    auto m = decode_entry(payload.substr(2), receiver);
    if (!m) return {};
    return published_message{std::move(*m)};
  }
  if (payload.starts_with("k ") && payload.size() > 2)
    return published_kick{std::string(payload.substr(2))};
  return {};
}

}  // namespace switchboard::store::redis_codec
