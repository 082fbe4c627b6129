#include "switchboard/jwt.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <boost/json.hpp>

#include "switchboard/net.hpp"

namespace switchboard::jwt {
namespace {

constexpr std::string_view expected_algorithm = "HS256";
constexpr std::size_t hs256_signature_bytes = 32;

// Headers and payloads are small objects; nothing legitimate nests deeply, and
// a low bound keeps a hostile token from spending stack or time in the parser.
constexpr std::size_t max_json_depth = 8;

// The decoded parts of a token within max_token_bytes fit in this, so parsing
// normally stays on the stack; the monotonic resource falls back to the heap
// for the rare value whose representation is larger than its text.
constexpr std::size_t parse_buffer_bytes = 8 * 1024;

constexpr std::int8_t not_base64url = -1;

constexpr std::array<std::int8_t, 256> make_base64url_table() {
  std::array<std::int8_t, 256> table{};
  table.fill(not_base64url);
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}

constexpr auto base64url_table = make_base64url_table();

// Unpadded base64url (RFC 7515 section 2). Padding, the '+' and '/' of plain
// base64, whitespace and non-zero bits left over in the last character are all
// refused, so each byte string has exactly one accepted spelling and a token
// cannot be altered without breaking its signature input.
bool decode_base64url(std::string_view in, std::string& out) {
  if (in.size() % 4 == 1) return false;  // 6 bits cannot make a byte
  out.clear();
  out.reserve(in.size() / 4 * 3 + 2);
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (const char c : in) {
    const auto sextet = base64url_table[static_cast<unsigned char>(c)];
    if (sextet == not_base64url) return false;
    bits = (bits << 6) | static_cast<std::uint32_t>(sextet);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out.push_back(static_cast<char>((bits >> bit_count) & 0xFF));
    }
  }
  const std::uint32_t leftover_mask = (1u << bit_count) - 1;
  return (bits & leftover_mask) == 0;
}

// Boost.JSON reports errors through `ec`; the only exception left is
// bad_alloc, which a bounded token cannot provoke short of memory exhaustion.
std::optional<json::value> parse_object(std::string_view text, json::storage_ptr storage) {
  json::parse_options options;
  options.max_depth = max_json_depth;
  json::error_code ec;
  auto value = json::parse(text, ec, std::move(storage), options);
  if (ec || !value.is_object()) return std::nullopt;
  return value;
}

std::optional<failure> check_header(const json::object& header) {
  // RFC 7515 section 4.1.11: a recipient that does not understand the listed
  // extensions must refuse the token, and this one understands none.
  if (header.contains("crit")) return failure::malformed;
  const auto* alg = header.if_contains("alg");
  if (!alg) return failure::wrong_algorithm;
  const auto* name = alg->if_string();
  if (!name || std::string_view(*name) != expected_algorithm) return failure::wrong_algorithm;
  return std::nullopt;
}

bool signature_matches(std::string_view signing_input, std::string_view signature,
                       std::string_view secret) {
  if (signature.size() != hs256_signature_bytes) return false;
  if (secret.size() > static_cast<std::size_t>(INT_MAX)) return false;
  // OpenSSL 3 refuses a null key even with length 0, and an empty
  // string_view may carry one.
  static const unsigned char empty_key = 0;
  const void* key = secret.empty() ? static_cast<const void*>(&empty_key) : secret.data();
  std::array<unsigned char, EVP_MAX_MD_SIZE> expected{};
  unsigned int expected_size = 0;
  const auto* ok = HMAC(EVP_sha256(), key, static_cast<int>(secret.size()),
                        reinterpret_cast<const unsigned char*>(signing_input.data()),
                        signing_input.size(), expected.data(), &expected_size);
  // A library failure must not let a token through.
  if (!ok || expected_size != hs256_signature_bytes) return false;
  // Constant time, so the response time does not reveal how many leading
  // bytes of a forged signature were right.
  return CRYPTO_memcmp(expected.data(), signature.data(), hs256_signature_bytes) == 0;
}

bool subject_matches(const json::object& payload, std::uint64_t user) {
  const auto* sub = payload.if_contains("sub");
  if (!sub) return false;
  const auto* text = sub->if_string();
  if (!text) return false;  // a number is refused: the protocol fixes the claim's type
  std::array<char, 24> digits{};
  const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), user);
  if (ec != std::errc{}) return false;
  return std::string_view(*text) == std::string_view(digits.data(), end - digits.data());
}

// The outcome of comparing a NumericDate claim with a bound.
enum class time_check { holds, fails, not_a_number };

// Whether the claim `v` is >= `bound`. Boost.JSON gives a number as int64,
// uint64 or double; each is compared in its own kind so that no value, however
// large, overflows or wraps.
time_check claim_at_least(const json::value& v, std::int64_t bound) {
  if (const auto* i = v.if_int64()) return *i >= bound ? time_check::holds : time_check::fails;
  if (const auto* u = v.if_uint64()) {
    return std::cmp_greater_equal(*u, bound) ? time_check::holds : time_check::fails;
  }
  if (const auto* d = v.if_double()) {
    if (!std::isfinite(*d)) return time_check::not_a_number;
    return *d >= static_cast<double>(bound) ? time_check::holds : time_check::fails;
  }
  return time_check::not_a_number;
}

// Whether the claim `v` is <= `bound`; see claim_at_least.
time_check claim_at_most(const json::value& v, std::int64_t bound) {
  if (const auto* i = v.if_int64()) return *i <= bound ? time_check::holds : time_check::fails;
  if (const auto* u = v.if_uint64()) {
    return std::cmp_less_equal(*u, bound) ? time_check::holds : time_check::fails;
  }
  if (const auto* d = v.if_double()) {
    if (!std::isfinite(*d)) return time_check::not_a_number;
    return *d <= static_cast<double>(bound) ? time_check::holds : time_check::fails;
  }
  return time_check::not_a_number;
}

// now_s comes from the caller's clock, but saturating keeps the arithmetic
// defined for any value it could pass.
std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t sum = 0;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? INT64_MAX : INT64_MIN;
}

std::optional<failure> check_claims(const json::object& payload, std::uint64_t user,
                                    std::int64_t now_s) {
  if (!subject_matches(payload, user)) return failure::wrong_subject;
  if (const auto* exp = payload.if_contains("exp")) {
    // valid while now_s <= exp + leeway, i.e. exp >= now_s - leeway
    switch (claim_at_least(*exp, saturating_add(now_s, -leeway_seconds))) {
      case time_check::holds:
        break;
      case time_check::fails:
        return failure::expired;
      case time_check::not_a_number:
        return failure::malformed;
    }
  }
  if (const auto* nbf = payload.if_contains("nbf")) {
    // valid once now_s + leeway >= nbf
    switch (claim_at_most(*nbf, saturating_add(now_s, leeway_seconds))) {
      case time_check::holds:
        break;
      case time_check::fails:
        return failure::not_yet_valid;
      case time_check::not_a_number:
        return failure::malformed;
    }
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(failure f) {
  switch (f) {
    case failure::malformed:
      return "malformed";
    case failure::bad_signature:
      return "bad_signature";
    case failure::wrong_algorithm:
      return "wrong_algorithm";
    case failure::wrong_subject:
      return "wrong_subject";
    case failure::expired:
      return "expired";
    case failure::not_yet_valid:
      return "not_yet_valid";
  }
  return "unknown";  // only reachable through a cast from an out-of-range integer
}

std::optional<failure> verify(std::string_view token, std::string_view secret, std::uint64_t user,
                              std::int64_t now_s) {
  if (token.size() > max_token_bytes) return failure::malformed;
  const auto first_dot = token.find('.');
  if (first_dot == std::string_view::npos) return failure::malformed;
  const auto second_dot = token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos) return failure::malformed;
  if (token.find('.', second_dot + 1) != std::string_view::npos) return failure::malformed;

  const auto header_b64 = token.substr(0, first_dot);
  const auto payload_b64 = token.substr(first_dot + 1, second_dot - first_dot - 1);
  const auto signature_b64 = token.substr(second_dot + 1);
  std::string header_text, payload_text, signature;
  if (!decode_base64url(header_b64, header_text) || !decode_base64url(payload_b64, payload_text) ||
      !decode_base64url(signature_b64, signature)) {
    return failure::malformed;
  }

  unsigned char parse_buffer[parse_buffer_bytes];
  json::monotonic_resource parse_memory(parse_buffer, sizeof parse_buffer);

  // The algorithm comes first: a token that names another one (above all
  // `none`) is refused for that reason, whatever its signature part holds.
  const auto header = parse_object(header_text, &parse_memory);
  if (!header) return failure::malformed;
  if (const auto f = check_header(header->get_object())) return f;

  // Nothing in the payload is looked at until the signature proves who wrote it.
  if (!signature_matches(token.substr(0, second_dot), signature, secret)) {
    return failure::bad_signature;
  }

  const auto payload = parse_object(payload_text, &parse_memory);
  if (!payload) return failure::malformed;
  return check_claims(payload->get_object(), user, now_s);
}

std::string read_secret_file(const std::string& path) {
  const auto reason = [&path](std::string_view what) {
    return std::runtime_error(path + ": " + std::string(what));
  };
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
  if (!file) throw reason(std::generic_category().message(errno));

  std::string secret;
  std::array<char, 4096> chunk;
  std::size_t n = 0;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), file.get())) > 0) {
    secret.append(chunk.data(), n);
    if (secret.size() > max_secret_bytes) {
      throw reason("larger than " + std::to_string(max_secret_bytes) + " bytes");
    }
  }
  // fopen succeeds on a directory on Linux; the read is what fails.
  if (std::ferror(file.get())) throw reason(std::generic_category().message(errno));

  // `echo secret > file` and most editors end the file with a newline that is
  // not meant as part of the secret; only one is removed, so a secret that
  // really ends in a newline can still be written with two.
  if (secret.ends_with("\r\n")) {
    secret.resize(secret.size() - 2);
  } else if (secret.ends_with('\n')) {
    secret.pop_back();
  }
  // An empty key would make every HS256 signature computable by anyone.
  if (secret.empty()) throw reason("empty secret");
  return secret;
}

}  // namespace switchboard::jwt
