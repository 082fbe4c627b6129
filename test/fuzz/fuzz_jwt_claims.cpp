// Fuzzes jwt::verify behind a valid signature: the input is a header and a
// payload (JSON or not), which this target signs with the verifier's secret,
// so every input reaches the header and claim checks (`alg`, `crit`, `sub`,
// `exp`, `nbf`) that an attacker holding a token, or an issuer with a bug,
// could feed it.
//
// Input: HEADER '\0' PAYLOAD, or, without a NUL byte, only the PAYLOAD under
// {"alg":"HS256","typ":"JWT"} (a NUL cannot occur in JSON text, so no valid
// header is lost).
//
// Beyond "no crash, no sanitizer report, no exception", it checks:
// - the answer is exactly the one PROTOCOL.md section 5 and jwt.hpp give,
//   worked out here independently: JSON objects within depth 8, no `crit`,
//   `alg` the string "HS256", `sub` the string "42", `exp` and `nbf` numbers
//   compared exactly (in long double, which holds every int64, uint64 and
//   double) against now -/+ 30 s of leeway, in that order;
// - a signed token is never refused as bad_signature; an accepted one is
//   refused with another secret, for another user, and with any other
//   spelling of the last character of its signature.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "fuzz_support.hpp"
#include "switchboard/jwt.hpp"

namespace {

namespace json = boost::json;
namespace jwt = switchboard::jwt;
namespace fz = switchboard::fuzz;
using jwt::failure;

constexpr std::string_view secret = "fuzzing secret: not used anywhere else";
constexpr std::uint64_t user = 42;
constexpr std::int64_t now = 1'700'000'000;
constexpr std::string_view default_header = R"({"alg":"HS256","typ":"JWT"})";

std::optional<json::object> as_object(std::string_view text) {
  json::parse_options options;
  options.max_depth = 8;
  json::error_code ec;
  json::value v = json::parse(text, ec, {}, options);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

// A NumericDate as an exact number, or nullopt when it is not a finite number.
std::optional<long double> numeric_date(const json::value& v) {
  if (v.is_int64()) return static_cast<long double>(v.get_int64());
  if (v.is_uint64()) return static_cast<long double>(v.get_uint64());
  if (v.is_double() && std::isfinite(v.get_double())) return v.get_double();
  return std::nullopt;
}

// What verify must answer for this header and payload, signed correctly.
std::optional<failure> expected(std::string_view header_text, std::string_view payload_text) {
  const auto header = as_object(header_text);
  if (!header || header->contains("crit")) return failure::malformed;
  const auto* alg = header->if_contains("alg");
  if (!alg || !alg->is_string() || alg->get_string() != "HS256") return failure::wrong_algorithm;

  const auto payload = as_object(payload_text);
  if (!payload) return failure::malformed;
  const auto* sub = payload->if_contains("sub");
  if (!sub || !sub->is_string() || sub->get_string() != std::to_string(user)) {
    return failure::wrong_subject;
  }
  constexpr long double leeway = jwt::leeway_seconds;
  if (const auto* exp = payload->if_contains("exp")) {
    const auto t = numeric_date(*exp);
    if (!t) return failure::malformed;
    if (*t < now - leeway) return failure::expired;
  }
  if (const auto* nbf = payload->if_contains("nbf")) {
    const auto t = numeric_date(*nbf);
    if (!t) return failure::malformed;
    if (*t > now + leeway) return failure::not_yet_valid;
  }
  return std::nullopt;
}

std::string show(std::optional<failure> f) {
  return f ? std::string(jwt::to_string(*f)) : std::string("valid");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = fz::as_text(data, size);
  const auto nul = input.find('\0');
  const auto header = nul == std::string_view::npos ? default_header : input.substr(0, nul);
  const auto payload = nul == std::string_view::npos ? input : input.substr(nul + 1);

  const std::string token = fz::sign_hs256(header, payload, secret);
  if (token.size() > jwt::max_token_bytes) {
    FUZZ_CHECK(jwt::verify(token, secret, user, now) == failure::malformed);
    return 0;
  }
  const auto result = jwt::verify(token, secret, user, now);
  const auto wanted = expected(header, payload);
  if (result != wanted) {
    std::fprintf(stderr, "verify said %s, expected %s\n", show(result).c_str(),
                 show(wanted).c_str());
  }
  FUZZ_CHECK(result == wanted);
  FUZZ_CHECK(result != failure::bad_signature);

  if (!result) {
    FUZZ_CHECK(jwt::verify(token, "another secret", user, now) == failure::bad_signature);
    FUZZ_CHECK(jwt::verify(token, secret, user + 1, now) == failure::wrong_subject);
    std::string changed = token;
    const auto last = fz::base64url_alphabet.find(changed.back());
    for (std::size_t flip = 1; flip < 64; flip <<= 1) {
      changed.back() = fz::base64url_alphabet[last ^ flip];
      FUZZ_CHECK(jwt::verify(changed, secret, user, now).has_value());
    }
  }
  return 0;
}
