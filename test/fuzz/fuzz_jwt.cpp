// Fuzzes jwt::verify with arbitrary tokens and a fixed secret: what any
// unauthenticated peer can send in ?token= or Authorization: Bearer
// (PROTOCOL.md section 5). fuzz_jwt_claims gets past the signature; this one
// attacks the syntax, the base64url decoder, the header and the signature
// check.
//
// Beyond "no crash, no sanitizer report, no exception", it checks:
// - a token is accepted only if its signature part is exactly the unpadded
//   base64url HMAC-SHA256 of its first two parts, computed here with OpenSSL
//   directly: the verifier never accepts a signature it did not compute;
// - an accepted token is refused with another secret (bad_signature), for
//   another user (wrong_subject), and with any other spelling of the last
//   character of its signature (base64url has one spelling per byte string);
// - refusals that come before the claims (wrong_algorithm, bad_signature)
//   depend on neither the user nor the time;
// - a token over max_token_bytes, or without exactly two dots, is malformed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "switchboard/jwt.hpp"

namespace {

namespace jwt = switchboard::jwt;
namespace fz = switchboard::fuzz;
using jwt::failure;

constexpr std::string_view secret = "fuzzing secret: not used anywhere else";
constexpr std::uint64_t user = 42;
constexpr std::int64_t now = 1'700'000'000;

void check_accepted(std::string_view token) {
  const auto second_dot = token.rfind('.');
  FUZZ_CHECK(second_dot != std::string_view::npos);
  const auto signing_input = token.substr(0, second_dot);
  const auto signature = token.substr(second_dot + 1);
  FUZZ_CHECK(signature == fz::base64url(fz::hmac_sha256(secret, signing_input)));

  FUZZ_CHECK(jwt::verify(token, "another secret", user, now) == failure::bad_signature);
  FUZZ_CHECK(jwt::verify(token, secret, user + 1, now) == failure::wrong_subject);

  // 32 bytes are 43 characters; the last carries 4 bits and 2 that must be 0.
  std::string changed(token);
  const auto last = fz::base64url_alphabet.find(changed.back());
  FUZZ_CHECK(last != std::string_view::npos);
  for (std::size_t flip = 1; flip < 64; flip <<= 1) {
    changed.back() = fz::base64url_alphabet[last ^ flip];
    FUZZ_CHECK(jwt::verify(changed, secret, user, now).has_value());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view token = fz::as_text(data, size);
  const auto result = jwt::verify(token, secret, user, now);
  if (!result) {
    check_accepted(token);
    return 0;
  }
  FUZZ_CHECK(jwt::to_string(*result) != "unknown");
  if (token.size() > jwt::max_token_bytes || std::count(token.begin(), token.end(), '.') != 2) {
    FUZZ_CHECK(*result == failure::malformed);
  }
  if (*result == failure::wrong_algorithm || *result == failure::bad_signature) {
    FUZZ_CHECK(jwt::verify(token, secret, user + 1, now) == result);
    FUZZ_CHECK(jwt::verify(token, secret, user, 0) == result);
    FUZZ_CHECK(jwt::verify(token, secret, user, INT64_MAX) == result);
  }
  return 0;
}
