#include "frames.hpp"

#include <charconv>

namespace bench {

namespace {

constexpr std::array<std::string_view, frame_view::field_count> field_names = {
    "type", "sender", "receiver", "content", "seq", "id", "code", "group", "gseq", "state", "upto"};

int field_index(std::string_view k) {
  switch (k.size()) {
    case 2:
      return k == "id" ? frame_view::id : -1;
    case 3:
      return k == "seq" ? frame_view::seq : -1;
    case 4:
      return k == "type"   ? frame_view::type
             : k == "code" ? frame_view::code
             : k == "gseq" ? frame_view::gseq
             : k == "upto" ? frame_view::upto
                           : -1;
    case 5:
      return k == "group" ? frame_view::group : k == "state" ? frame_view::state : -1;
    case 6:
      return k == "sender" ? frame_view::sender : -1;
    case 7:
      return k == "content" ? frame_view::content : -1;
    case 8:
      return k == "receiver" ? frame_view::receiver : -1;
    default:
      return -1;
  }
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

bool frame_view::parse(std::string_view text) {
  present_.fill(false);
  if (scan(text)) return true;
  present_.fill(false);
  return parse_json(text);
}

// The fast path: false for anything it does not read (then Boost.JSON decides).
bool frame_view::scan(std::string_view t) {
  std::size_t i = 0;
  const std::size_t n = t.size();
  auto skip_ws = [&] {
    while (i < n && is_space(t[i]))
      ++i;
  };
  // A string at t[i] == '"': its text (between the quotes); false on an
  // escape when `plain` is asked for, or if it does not end.
  auto read_string = [&](std::string_view& out, bool plain) {
    std::size_t start = ++i;
    // Most strings have no escape: two memchr, no loop here.
    if (auto end = t.find('"', start); end != std::string_view::npos) {
      std::string_view body = t.substr(start, end - start);
      if (body.find('\\') == std::string_view::npos) {
        out = body;
        i = end + 1;
        return true;
      }
    }
    for (; i < n; ++i) {
      char c = t[i];
      if (c == '"') {
        out = t.substr(start, i - start);
        ++i;
        return true;
      }
      if (c == '\\') {
        if (plain) return false;
        ++i;  // skip what is escaped
      } else if (static_cast<unsigned char>(c) < 0x20) {
        return false;
      }
    }
    return false;
  };
  skip_ws();
  if (i >= n || t[i] != '{') return false;
  ++i;
  skip_ws();
  if (i < n && t[i] == '}') {
    ++i;
  } else {
    for (;;) {
      skip_ws();
      if (i >= n || t[i] != '"') return false;
      std::string_view key;
      if (!read_string(key, true)) return false;
      skip_ws();
      if (i >= n || t[i] != ':') return false;
      ++i;
      skip_ws();
      if (i >= n) return false;
      const int f = field_index(key);
      std::string_view value;
      bool quoted = false;
      const char c = t[i];
      if (c == '"') {
        if (!read_string(value, f >= 0)) return false;
        quoted = true;
      } else if (c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n') {
        std::size_t start = i;
        while (i < n && t[i] != ',' && t[i] != '}' && !is_space(t[i]))
          ++i;
        value = t.substr(start, i - start);
        if (value != "true" && value != "false" && value != "null") {
          // A number: checked only as far as the bench reads it (u64 below).
          for (char d : value)
            if (!((d >= '0' && d <= '9') || d == '-' || d == '+' || d == '.' || d == 'e' ||
                  d == 'E'))
              return false;
        }
      } else {
        return false;  // nested: Boost.JSON
      }
      if (f >= 0) {
        raw_[f] = value;
        quoted_[f] = quoted;
        present_[f] = true;
      }
      skip_ws();
      if (i < n && t[i] == ',') {
        ++i;
        continue;
      }
      if (i < n && t[i] == '}') {
        ++i;
        break;
      }
      return false;
    }
  }
  skip_ws();
  return i == n;
}

bool frame_view::parse_json(std::string_view text) {
  namespace json = boost::json;
  value_ = json::value();
  resource_.release();
  parser_.reset(&resource_);
  boost::system::error_code ec;
  parser_.write(text, ec);
  if (ec) return false;
  value_ = parser_.release();
  const auto* object = value_.if_object();
  if (!object) return false;
  for (std::size_t f = 0; f < field_count; ++f) {
    const auto* v = object->if_contains(field_names[f]);
    if (!v) continue;
    present_[f] = true;
    if (const auto* s = v->if_string()) {
      raw_[f] = std::string_view(s->data(), s->size());
      quoted_[f] = true;
    } else {
      owned_[f] = json::serialize(*v);
      raw_[f] = owned_[f];
      quoted_[f] = false;
    }
  }
  return true;
}

std::optional<std::uint64_t> frame_view::u64(field f) const {
  if (!present_[f]) return std::nullopt;
  std::string_view v = raw_[f];
  std::uint64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size() || v.empty()) return std::nullopt;
  return x;
}

std::optional<std::string_view> frame_view::str(field f) const {
  if (!present_[f] || !quoted_[f]) return std::nullopt;
  return raw_[f];
}

std::string frame_view::text(field f) const {
  if (!present_[f]) return {};
  return std::string(raw_[f]);
}

}  // namespace bench
