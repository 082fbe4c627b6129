// HS256 JSON Web Tokens for --jwt-secret-file (PROTOCOL.md section 5).
//
// Pure code: no I/O except read_secret_file, which runs once at startup.
// verify() is called with attacker-controlled text before the upgrade is
// accepted, so it never throws on any input and answers with a reason the
// caller can log without echoing the token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchboard::jwt {

enum class failure {
  malformed,
  bad_signature,
  wrong_algorithm,
  wrong_subject,
  expired,
  not_yet_valid
};

// A stable snake_case name for logs and metrics labels.
std::string_view to_string(failure f);

// Clock skew tolerated between the token issuer and this server, both for
// `exp` and `nbf`.
inline constexpr std::int64_t leeway_seconds = 30;

// Longer tokens are refused as malformed before any decoding, which also
// bounds the work and memory an unauthenticated peer can cause.
inline constexpr std::size_t max_token_bytes = 8 * 1024;

// Verifies an HS256 JWT in compact serialisation for `user` (the path's user
// id) at `now_s` (Unix seconds). Returns nullopt when the token is valid, else
// the first reason it is not, checked in this order: syntax (malformed), the
// header's `alg` (wrong_algorithm), the signature (bad_signature), then the
// signed claims: `sub`, `exp`, `nbf`.
std::optional<failure> verify(std::string_view token, std::string_view secret, std::uint64_t user,
                              std::int64_t now_s);

// The secret held in the file at `path`: its bytes without one trailing
// newline ("\n", or "\r\n" from an editor on Windows); any further newline is
// part of the secret. Throws std::runtime_error with a one-line reason when the
// file cannot be read, is larger than max_secret_bytes, or the secret is empty.
std::string read_secret_file(const std::string& path);

// A secret file beyond this size is surely the wrong file (a key bundle, a log).
inline constexpr std::size_t max_secret_bytes = 64 * 1024;

}  // namespace switchboard::jwt
