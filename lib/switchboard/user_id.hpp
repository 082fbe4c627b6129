// Numbers that arrive as text outside JSON: the {userId} path segment and the
// `since` query parameter of GET /ws/{userId} (PROTOCOL.md section 1).
//
// Only the canonical decimal form is accepted, so that each number has
// exactly one spelling: a JWT `sub` is compared as text against the path's
// user id (section 5), and "007" or "+7" must not name the same user as "7".
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace switchboard {

// An integer in 1..18446744073709551615, written without sign, spaces, leading
// zeros or any other decoration.
std::optional<std::uint64_t> parse_user_id(std::string_view text);

// A seq in 0..18446744073709551615, same spelling rules ("0" is allowed: it
// asks for a replay of everything held).
std::optional<std::uint64_t> parse_seq(std::string_view text);

}  // namespace switchboard
