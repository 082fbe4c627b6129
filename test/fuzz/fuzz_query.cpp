// Fuzzes what a client puts in the target of GET /ws/{userId}?{query}
// (PROTOCOL.md section 1): parse_user_id and parse_seq (user_id.hpp) and
// parse_ws_query with its percent-decoding (ws_query.hpp). The input is read
// as the text after "/ws/": the user id up to the first '?', the query after.
//
// Beyond "no crash, no sanitizer report, no exception", it checks:
// - parse_seq accepts exactly the canonical decimal spellings of
//   0..2^64-1, checked against a reference written on the text, and gives
//   back the number the text spells; parse_user_id is parse_seq without 0;
//   every number, taken from the input's bytes, round-trips through its text;
// - percent_decode fails exactly on a '%' without two hex digits after it,
//   and decodes what percent_encode wrote back to the same bytes;
// - a parsed query written back canonically parses to the same result, and
//   the last value of a parameter wins: appended to the original query, the
//   canonical one overrides it; a refused query stays refused for the same
//   reason whatever follows it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_support.hpp"
#include "switchboard/user_id.hpp"
#include "switchboard/ws_query.hpp"

namespace {

using namespace switchboard;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// The reference: only digits, no leading zero except "0" itself, and not
// above 18446744073709551615, compared as text so no arithmetic can overflow.
bool canonical_seq(std::string_view s) {
  constexpr std::string_view max = "18446744073709551615";
  if (s.empty() || s.size() > max.size()) return false;
  for (const char c : s)
    if (!is_digit(c)) return false;
  if (s.size() > 1 && s.front() == '0') return false;
  return s.size() < max.size() || s <= max;
}

void check_numbers(std::string_view text) {
  const auto seq = parse_seq(text);
  FUZZ_CHECK(seq.has_value() == canonical_seq(text));
  if (seq) FUZZ_CHECK(std::to_string(*seq) == text);
  const auto user = parse_user_id(text);
  FUZZ_CHECK(user == (seq && *seq != 0 ? seq : std::nullopt));
}

void check_round_trip(std::uint64_t n) {
  const std::string text = std::to_string(n);
  FUZZ_CHECK(parse_seq(text) == n);
  FUZZ_CHECK(parse_user_id(text) == (n != 0 ? std::optional(n) : std::nullopt));
  FUZZ_CHECK(!parse_seq("0" + text));
  FUZZ_CHECK(!parse_seq("+" + text));
  FUZZ_CHECK(!parse_seq(text + " "));
}

// Every byte but the unreserved ones as %XX, '+' included (it reads as a space).
std::string percent_encode(std::string_view bytes) {
  constexpr std::string_view hex = "0123456789ABCDEF";
  std::string out;
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xF]);
    }
  }
  return out;
}

bool well_formed_escapes(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
    i += 2;
  }
  return true;
}

void check_decoding(std::string_view text) {
  const auto decoded = percent_decode(text);
  FUZZ_CHECK(decoded.has_value() == well_formed_escapes(text));
  if (decoded) FUZZ_CHECK(decoded->size() <= text.size());
  FUZZ_CHECK(percent_decode(percent_encode(text)) == std::string(text));
}

std::string canonical(const ws_query& q) {
  std::string out = q.ack == ack_mode::manual ? "ack=manual" : "ack=auto";
  if (q.since) out += "&since=" + std::to_string(*q.since);
  if (q.token) out += "&token=" + percent_encode(*q.token);
  if (q.token_malformed) out += "&token=%";
  // A device is 1..64 of A-Za-z0-9._-: nothing to escape (PROTOCOL.md section 9).
  if (!q.device.empty()) out += "&device=" + std::string(q.device.view());
  return out;
}

void check_query(std::string_view query) {
  const auto parsed = parse_ws_query(query);
  const std::string tail = "&ack=manual&since=1&token=t";
  if (const auto* error = std::get_if<ws_query_error>(&parsed)) {
    const auto longer = parse_ws_query(std::string(query) + tail);
    FUZZ_CHECK(std::holds_alternative<ws_query_error>(longer) &&
               std::get<ws_query_error>(longer) == *error);
    return;
  }
  const auto& q = std::get<ws_query>(parsed);
  FUZZ_CHECK(!(q.token && q.token_malformed));
  const auto again = parse_ws_query(canonical(q));
  FUZZ_CHECK(std::holds_alternative<ws_query>(again) && std::get<ws_query>(again) == q);

  // Appended to the query, a form that names all three parameters overrides
  // each of them: the last value wins, a malformed token included.
  std::string all = canonical(q);
  if (!q.since) all += "&since=0";
  if (!q.token) all += "&token=";
  ws_query expected = q;
  expected.since = q.since.value_or(0);
  expected.token = q.token.value_or("");
  expected.token_malformed = false;
  const auto overridden = parse_ws_query(std::string(query) + "&" + all);
  FUZZ_CHECK(std::holds_alternative<ws_query>(overridden) &&
             std::get<ws_query>(overridden) == expected);

  // Unknown parameters, malformed or not, change nothing.
  const auto padded = parse_ws_query("x=%zz&=&&" + std::string(query) + "&_=1");
  FUZZ_CHECK(std::holds_alternative<ws_query>(padded) && std::get<ws_query>(padded) == q);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = switchboard::fuzz::as_text(data, size);
  const auto question = text.find('?');
  const auto id = text.substr(0, question);
  const auto query =
      question == std::string_view::npos ? std::string_view{} : text.substr(question + 1);
  check_numbers(id);
  check_numbers(query);
  check_decoding(query);
  check_query(query);

  if (size >= sizeof(std::uint64_t)) {
    std::uint64_t n = 0;
    std::memcpy(&n, data, sizeof n);
    check_round_trip(n);
  }
  return 0;
}
