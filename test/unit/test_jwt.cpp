#define BOOST_TEST_MODULE jwt
#include <boost/test/unit_test.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "switchboard/jwt.hpp"

namespace jwt = switchboard::jwt;
using jwt::failure;

namespace {

constexpr std::int64_t now = 1'700'000'000;
constexpr std::uint64_t user = 42;
constexpr std::string_view secret = "correct horse battery staple";
constexpr std::string_view hs256_header = R"({"alg":"HS256","typ":"JWT"})";

// Printable in failure messages, unlike std::optional.
std::string show(std::optional<failure> f) {
  return f ? std::string(jwt::to_string(*f)) : std::string("valid");
}

std::string b64url(std::string_view bytes) {
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (const char c : bytes) {
    bits = (bits << 8) | static_cast<unsigned char>(c);
    bit_count += 8;
    while (bit_count >= 6) {
      bit_count -= 6;
      out.push_back(alphabet[(bits >> bit_count) & 0x3F]);
    }
  }
  if (bit_count > 0) out.push_back(alphabet[(bits << (6 - bit_count)) & 0x3F]);
  return out;
}

// The signature is computed here with OpenSSL directly, independently of the
// code under test.
std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int size = 0;
  static const unsigned char empty_key = 0;
  HMAC(EVP_sha256(), key.empty() ? static_cast<const void*>(&empty_key) : key.data(),
       static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), md.data(), &size);
  return std::string(reinterpret_cast<const char*>(md.data()), size);
}

std::string make_token(std::string_view header, std::string_view payload,
                       std::string_view key = secret) {
  const auto input = b64url(header) + "." + b64url(payload);
  return input + "." + b64url(hmac_sha256(key, input));
}

std::string claims(std::string_view extra = {}) {
  return R"({"sub":"42")" + std::string(extra) + "}";
}

std::optional<failure> check(const std::string& token) {
  return jwt::verify(token, secret, user, now);
}

#define CHECK_VERIFY(token, expected) BOOST_TEST(show(check(token)) == show(expected))

}  // namespace

BOOST_AUTO_TEST_CASE(failure_names) {
  BOOST_TEST(jwt::to_string(failure::malformed) == "malformed");
  BOOST_TEST(jwt::to_string(failure::bad_signature) == "bad_signature");
  BOOST_TEST(jwt::to_string(failure::wrong_algorithm) == "wrong_algorithm");
  BOOST_TEST(jwt::to_string(failure::wrong_subject) == "wrong_subject");
  BOOST_TEST(jwt::to_string(failure::expired) == "expired");
  BOOST_TEST(jwt::to_string(failure::not_yet_valid) == "not_yet_valid");
}

BOOST_AUTO_TEST_CASE(valid_tokens) {
  CHECK_VERIFY(make_token(hs256_header, claims()), std::nullopt);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":1700000060,"nbf":1699999990)")),
               std::nullopt);
  // typ is ignored, whatever it says; unknown claims are ignored too.
  CHECK_VERIFY(make_token(R"({"alg":"HS256"})", claims()), std::nullopt);
  CHECK_VERIFY(make_token(R"({"typ":"whatever","alg":"HS256"})", claims(R"(,"iat":1,"x":[1])")),
               std::nullopt);
  // The largest user id is compared in full.
  BOOST_TEST(show(jwt::verify(make_token(hs256_header, R"({"sub":"18446744073709551615"})"), secret,
                              UINT64_MAX, now)) == "valid");
}

BOOST_AUTO_TEST_CASE(expiry_has_leeway) {
  BOOST_TEST(jwt::leeway_seconds == 30);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":1699999969)")), failure::expired);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":1699999970)")), std::nullopt);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":1699999971)")), std::nullopt);
  // Fractional NumericDates are allowed by RFC 7519.
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":1699999969.5)")), failure::expired);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":1.7e9)")), std::nullopt);
  // Far-future values, beyond int64 and beyond uint64, neither overflow nor wrap.
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":9223372036854775807)")), std::nullopt);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":18446744073709551615)")), std::nullopt);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":1e300)")), std::nullopt);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":-9223372036854775808)")),
               failure::expired);
  // The arithmetic stays defined at the ends of now_s's range.
  const auto far = make_token(hs256_header, claims(R"(,"exp":0)"));
  BOOST_TEST(show(jwt::verify(far, secret, user, INT64_MIN)) == "valid");
  BOOST_TEST(show(jwt::verify(far, secret, user, INT64_MAX)) == "expired");
}

BOOST_AUTO_TEST_CASE(exp_and_nbf_must_be_numbers) {
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":"1700000060")")), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":null)")), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"exp":true)")), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"nbf":"0")")), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"nbf":{})")), failure::malformed);
}

BOOST_AUTO_TEST_CASE(not_before_has_leeway) {
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"nbf":1700000031)")), failure::not_yet_valid);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"nbf":1700000030)")), std::nullopt);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"nbf":1700000000)")), std::nullopt);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"nbf":18446744073709551615)")),
               failure::not_yet_valid);
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"nbf":1e300)")), failure::not_yet_valid);
}

BOOST_AUTO_TEST_CASE(subject_must_be_the_canonical_user_id_string) {
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":"43"})"), failure::wrong_subject);
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":42})"), failure::wrong_subject);
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":42.0})"), failure::wrong_subject);
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":"042"})"), failure::wrong_subject);
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":"+42"})"), failure::wrong_subject);
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":"42 "})"), failure::wrong_subject);
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":""})"), failure::wrong_subject);
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":null})"), failure::wrong_subject);
  CHECK_VERIFY(make_token(hs256_header, R"({"exp":1700000060})"), failure::wrong_subject);
}

BOOST_AUTO_TEST_CASE(signature_must_match) {
  CHECK_VERIFY(make_token(hs256_header, claims(), "wrong secret"), failure::bad_signature);
  CHECK_VERIFY(make_token(hs256_header, claims(), ""), failure::bad_signature);
  BOOST_TEST(show(jwt::verify(make_token(hs256_header, claims()), "", user, now)) ==
             "bad_signature");
  BOOST_TEST(show(jwt::verify(make_token(hs256_header, claims(), ""), "", user, now)) == "valid");

  // A payload swapped under a valid signature.
  const auto good = make_token(hs256_header, claims());
  const auto other = make_token(hs256_header, R"({"sub":"43"})");
  const auto dot = good.rfind('.');
  const auto swapped = other.substr(0, other.rfind('.')) + good.substr(dot);
  CHECK_VERIFY(swapped, failure::bad_signature);

  // Right bytes, wrong length: a 31-byte prefix and the 32 bytes plus one.
  const auto input = good.substr(0, dot);
  const auto mac = hmac_sha256(secret, input);
  CHECK_VERIFY(input + "." + b64url(mac.substr(0, 31)), failure::bad_signature);
  CHECK_VERIFY(input + "." + b64url(mac + "x"), failure::bad_signature);
  CHECK_VERIFY(input + ".", failure::bad_signature);
}

BOOST_AUTO_TEST_CASE(signature_is_checked_before_claims) {
  // Claims that would fail are never reached without a valid signature.
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":"43","exp":0})", "wrong"),
               failure::bad_signature);
  CHECK_VERIFY(make_token(hs256_header, "not json", "wrong"), failure::bad_signature);
}

BOOST_AUTO_TEST_CASE(algorithm_must_be_hs256) {
  const auto payload = b64url(claims());
  CHECK_VERIFY(b64url(R"({"alg":"none"})") + "." + payload + ".", failure::wrong_algorithm);
  CHECK_VERIFY(b64url(R"({"alg":"none","typ":"JWT"})") + "." + payload + ".",
               failure::wrong_algorithm);
  // The algorithm is checked before the signature, even a valid HS256 one.
  CHECK_VERIFY(make_token(R"({"alg":"none"})", claims()), failure::wrong_algorithm);
  CHECK_VERIFY(make_token(R"({"alg":"HS512"})", claims()), failure::wrong_algorithm);
  CHECK_VERIFY(make_token(R"({"alg":"RS256"})", claims()), failure::wrong_algorithm);
  CHECK_VERIFY(make_token(R"({"alg":"hs256"})", claims()), failure::wrong_algorithm);
  CHECK_VERIFY(make_token(R"({"alg":"HS256 "})", claims()), failure::wrong_algorithm);
  CHECK_VERIFY(make_token(R"({"typ":"JWT"})", claims()), failure::wrong_algorithm);
  CHECK_VERIFY(make_token(R"({})", claims()), failure::wrong_algorithm);
  CHECK_VERIFY(make_token(R"({"alg":256})", claims()), failure::wrong_algorithm);
  CHECK_VERIFY(make_token(R"({"alg":null})", claims()), failure::wrong_algorithm);
  CHECK_VERIFY(make_token(R"({"alg":["HS256"]})", claims()), failure::wrong_algorithm);
  // Extensions this verifier cannot honour are refused (RFC 7515 4.1.11).
  CHECK_VERIFY(make_token(R"({"alg":"HS256","crit":["b64"],"b64":false})", claims()),
               failure::malformed);
}

BOOST_AUTO_TEST_CASE(structure_must_be_three_base64url_parts) {
  const auto good = make_token(hs256_header, claims());
  CHECK_VERIFY(good, std::nullopt);
  CHECK_VERIFY("", failure::malformed);
  CHECK_VERIFY(".", failure::malformed);
  CHECK_VERIFY("..", failure::malformed);  // empty header is not JSON
  CHECK_VERIFY(good.substr(0, good.rfind('.')), failure::malformed);
  CHECK_VERIFY(good + ".", failure::malformed);
  CHECK_VERIFY(good + "." + b64url("x"), failure::malformed);
  CHECK_VERIFY(good.substr(0, good.find('.')), failure::malformed);
  CHECK_VERIFY("Bearer " + good, failure::malformed);
  CHECK_VERIFY(good + " ", failure::malformed);
  CHECK_VERIFY(good + "\n", failure::malformed);
}

BOOST_AUTO_TEST_CASE(only_canonical_unpadded_base64url) {
  const auto good = make_token(hs256_header, claims());
  const auto first_dot = good.find('.');
  const auto header = good.substr(0, first_dot);
  const auto rest = good.substr(first_dot);

  // Plain base64's '+' and '/' in place of '-' and '_': this header is chosen
  // so that its encoding contains a '-' or '_'.
  const auto tilde = make_token(R"({"alg":"HS256","k":"~~~?"})", claims());
  BOOST_TEST((tilde.find_first_of("-_") < tilde.rfind('.')));
  CHECK_VERIFY(tilde, std::nullopt);
  auto plus = tilde;
  for (std::size_t i = 0; i < plus.rfind('.'); ++i) {
    if (plus[i] == '-') plus[i] = '+';
    if (plus[i] == '_') plus[i] = '/';
  }
  CHECK_VERIFY(plus, failure::malformed);

  // Padding, even where it would be correct: this header needs two '='.
  const auto unpadded = make_token(R"({"alg":"HS256","typ":"JWT1"})", claims());
  const auto unpadded_dot = unpadded.find('.');
  BOOST_TEST(unpadded_dot % 4 == 2u);
  CHECK_VERIFY(unpadded, std::nullopt);
  CHECK_VERIFY(unpadded.substr(0, unpadded_dot) + "==" + unpadded.substr(unpadded_dot),
               failure::malformed);
  CHECK_VERIFY(good + "=", failure::malformed);

  CHECK_VERIFY("*" + good, failure::malformed);
  CHECK_VERIFY(header + "!" + rest, failure::malformed);
  CHECK_VERIFY(std::string("e\0", 2) + good.substr(1), failure::malformed);
  CHECK_VERIFY("\xC3\xA9" + good.substr(2), failure::malformed);

  // A part of 4n+1 characters cannot be base64.
  CHECK_VERIFY(good.substr(0, good.rfind('.')) + ".A", failure::malformed);

  // The 43-character signature leaves two bits unused in its last character;
  // setting them spells the same bytes differently, which is refused.
  const auto signature = good.substr(good.rfind('.') + 1);
  BOOST_TEST(signature.size() == 43u);
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const auto last = alphabet.find(signature.back());
  BOOST_TEST((last & 3u) == 0u);
  auto noncanonical = good;
  noncanonical.back() = alphabet[last | 1u];
  CHECK_VERIFY(noncanonical, failure::malformed);
}

BOOST_AUTO_TEST_CASE(header_and_payload_must_be_json_objects) {
  CHECK_VERIFY(make_token(R"(["alg","HS256"])", claims()), failure::malformed);
  CHECK_VERIFY(make_token(R"("HS256")", claims()), failure::malformed);
  CHECK_VERIFY(make_token("HS256", claims()), failure::malformed);
  CHECK_VERIFY(make_token(R"({"alg":"HS256")", claims()), failure::malformed);
  CHECK_VERIFY(make_token(R"({"alg":"HS256"} x)", claims()), failure::malformed);
  // A correctly signed payload that is not a JSON object.
  CHECK_VERIFY(make_token(hs256_header, "not json"), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, ""), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, R"(["42"])"), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, R"("42")"), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, R"({"sub":"42",})"), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, "{\"sub\":\"42\"} // comment"), failure::malformed);
  CHECK_VERIFY(make_token(hs256_header, "{\"sub\":\"4\xFF\"}"), failure::malformed);
}

BOOST_AUTO_TEST_CASE(json_depth_is_bounded) {
  CHECK_VERIFY(make_token(hs256_header, claims(R"(,"x":[[[1]]])")), std::nullopt);
  // Deep enough to exhaust a recursive parser, yet inside the length limit.
  const std::string deep = std::string(2500, '[') + std::string(2500, ']');
  const auto deep_token = make_token(hs256_header, claims(",\"x\":" + deep));
  BOOST_TEST(deep_token.size() <= jwt::max_token_bytes);
  CHECK_VERIFY(deep_token, failure::malformed);
  const std::string nested = std::string(50, '[') + std::string(50, ']');
  CHECK_VERIFY(make_token(hs256_header, claims(",\"x\":" + nested)), failure::malformed);
  CHECK_VERIFY(make_token(R"({"alg":"HS256","x":)" + nested + "}", claims()), failure::malformed);
}

BOOST_AUTO_TEST_CASE(token_length_is_bounded) {
  BOOST_TEST(jwt::max_token_bytes == 8192u);
  // The longest valid token under the limit passes; the next size is refused
  // even though it is correctly signed.
  std::string fits, too_long;
  for (std::size_t pad = 6000; too_long.empty(); ++pad) {
    auto token = make_token(hs256_header, claims(R"(,"pad":")" + std::string(pad, 'p') + "\""));
    if (token.size() <= jwt::max_token_bytes) {
      fits = std::move(token);
    } else {
      too_long = std::move(token);
    }
  }
  BOOST_TEST(fits.size() > jwt::max_token_bytes - 4);
  CHECK_VERIFY(fits, std::nullopt);
  CHECK_VERIFY(too_long, failure::malformed);
  CHECK_VERIFY(std::string(1'000'000, 'A'), failure::malformed);
  CHECK_VERIFY(std::string(1'000'000, '.'), failure::malformed);
}

namespace {

// A file in the temporary directory, removed when the test ends.
class temp_file {
 public:
  explicit temp_file(std::string_view content) {
    std::random_device random;
    path_ = std::filesystem::temp_directory_path() /
            ("switchboard_test_jwt_" + std::to_string(random()) + std::to_string(random()));
    std::ofstream out(path_, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;  // unique per instance, so parallel test runs do not collide
};

// The message of the runtime_error thrown by read_secret_file, or "" if none.
std::string read_error(const std::string& path) {
  try {
    jwt::read_secret_file(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

BOOST_AUTO_TEST_CASE(secret_file_loses_exactly_one_trailing_newline) {
  BOOST_TEST(jwt::read_secret_file(temp_file("s3cret").path()) == "s3cret");
  BOOST_TEST(jwt::read_secret_file(temp_file("s3cret\n").path()) == "s3cret");
  BOOST_TEST(jwt::read_secret_file(temp_file("s3cret\n\n").path()) == "s3cret\n");
  BOOST_TEST(jwt::read_secret_file(temp_file("s3cret\r\n").path()) == "s3cret");
  BOOST_TEST(jwt::read_secret_file(temp_file("s3cret\r\n\r\n").path()) == "s3cret\r\n");
  BOOST_TEST(jwt::read_secret_file(temp_file("s3cret\r").path()) == "s3cret\r");
  BOOST_TEST(jwt::read_secret_file(temp_file(" a\nb ").path()) == " a\nb ");
  BOOST_TEST(jwt::read_secret_file(temp_file("\n\n").path()) == "\n");
  const std::string binary("\0\x01\xFF", 3);
  BOOST_TEST(jwt::read_secret_file(temp_file(binary).path()) == binary);
  const std::string large(jwt::max_secret_bytes, 'k');
  BOOST_TEST(jwt::read_secret_file(temp_file(large).path()) == large);
}

BOOST_AUTO_TEST_CASE(secret_file_errors) {
  const auto missing =
      (std::filesystem::temp_directory_path() / "switchboard_no_such_secret").string();
  BOOST_TEST(read_error(missing) == missing + ": No such file or directory");
  BOOST_TEST(read_error(temp_file("").path()).ends_with(": empty secret"));
  BOOST_TEST(read_error(temp_file("\n").path()).ends_with(": empty secret"));
  BOOST_TEST(read_error(temp_file("\r\n").path()).ends_with(": empty secret"));
  BOOST_TEST(read_error(temp_file(std::string(jwt::max_secret_bytes + 1, 'k')).path())
                 .ends_with(": larger than 65536 bytes"));
  const auto directory = std::filesystem::temp_directory_path().string();
  BOOST_TEST(read_error(directory) == directory + ": Is a directory");
}

BOOST_AUTO_TEST_CASE(secret_file_round_trip) {
  // A secret read from a file verifies a token signed with the same bytes.
  const auto key = jwt::read_secret_file(temp_file("from-file\n").path());
  BOOST_TEST(show(jwt::verify(make_token(hs256_header, claims(), "from-file"), key, user, now)) ==
             "valid");
}
