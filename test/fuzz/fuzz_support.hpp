// What the fuzz targets share: a check that turns a broken invariant into a
// crash libFuzzer records (with the input that caused it), and an HS256
// signer written independently of lib/switchboard/jwt.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <openssl/evp.h>
#include <openssl/hmac.h>

// Unlike assert(), active in every build: a fuzz target exists to check these.
#define FUZZ_CHECK(condition) \
  ((condition) ? (void)0 : ::switchboard::fuzz::fail(#condition, __FILE__, __LINE__))

namespace switchboard::fuzz {

[[noreturn]] inline void fail(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, condition);
  std::abort();  // libFuzzer saves the input as crash-<sha1> under -artifact_prefix
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

constexpr std::string_view base64url_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Unpadded base64url, the only spelling jwt::verify accepts.
inline std::string base64url(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (const char c : bytes) {
    bits = (bits << 8) | static_cast<unsigned char>(c);
    bit_count += 8;
    while (bit_count >= 6) {
      bit_count -= 6;
      out.push_back(base64url_alphabet[(bits >> bit_count) & 0x3F]);
    }
  }
  if (bit_count > 0) out.push_back(base64url_alphabet[(bits << (6 - bit_count)) & 0x3F]);
  return out;
}

inline std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int size = 0;
  static const unsigned char empty_key = 0;
  const auto* ok =
      HMAC(EVP_sha256(), key.empty() ? static_cast<const void*>(&empty_key) : key.data(),
           static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), md.data(), &size);
  FUZZ_CHECK(ok != nullptr && size == 32);
  return std::string(reinterpret_cast<const char*>(md.data()), size);
}

// header.payload.signature, signed with `secret`: a token whose signature is
// right whatever the header and payload say.
inline std::string sign_hs256(std::string_view header_json, std::string_view payload_json,
                              std::string_view secret) {
  std::string token = base64url(header_json) + "." + base64url(payload_json);
  token += "." + base64url(hmac_sha256(secret, token));
  return token;
}

}  // namespace switchboard::fuzz
