// The query string of GET /ws/{userId} (PROTOCOL.md section 1): `ack`,
// `since`, `device` (section 9) and `token`. Pure: the router hands it the text after '?' and
// turns a refusal into its HTTP answer; the fuzz target test/fuzz/fuzz_query
// feeds it arbitrary bytes.
//
// Readings (for the docs):
// - Parameters are split on '&', then on the first '='. Keys are compared as
//   sent (not percent-decoded); values are percent-decoded, '+' reading as a
//   space. A parameter without '=' has the empty value.
// - A parameter given twice counts with its last value.
// - Unknown parameters (cache busters...) are ignored; so are empty ones.
// - A `token` whose escapes are malformed is not a refusal here: it is
//   refused (401) only where a token is verified, after the 400s and the 426
//   of PROTOCOL.md section 1, and ignored like any token on an open server.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "switchboard/store/types.hpp"

namespace switchboard {

// The `ack` parameter: who moves the delivered cursor (PROTOCOL.md section 3).
// A session keeps the mode it was opened with (session_handle.hpp).
enum class ack_mode { automatic, manual };

struct ws_query {
  ack_mode ack = ack_mode::automatic;
  std::optional<store::seq_t> since;
  // The session's device: "" (the default device) when absent; a `device`
  // given, empty or not a name, is refused (bad_device).
  store::device_name device;
  // The last `token`, decoded; verified later, and never logged. nullopt when
  // absent or when its escapes are malformed (then token_malformed is set).
  std::optional<std::string> token;
  bool token_malformed = false;
  friend bool operator==(const ws_query&, const ws_query&) = default;
};

// Why a query was refused: the router answers 400.
enum class ws_query_error { bad_ack, bad_since, bad_device };

// Parses the text after '?' (without the '?'). Never throws on any input,
// short of running out of memory.
std::variant<ws_query, ws_query_error> parse_ws_query(std::string_view query);

// Percent-decodes a query value ('+' is a space); nullopt when a '%' is not
// followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view in);

}  // namespace switchboard
