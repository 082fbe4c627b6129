// The HTTP API under /api/ (PROTOCOL.md section 10), for the application's
// backend and for operators. Pure, like the router that calls it: the key
// check that every endpoint shares, the route table, and the JSON of the
// answers. The listener does the I/O and gathers what an answer needs
// (listener.cpp: GET /api/sessions asks the hub, then each session's thread).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "switchboard/session_info.hpp"
#include "switchboard/store/types.hpp"

namespace switchboard::api {

// GET /api/sessions?user=U: where the user's messages wait on this node.
struct sessions_query {
  store::user_id user = 0;
};

// PUT (add) or DELETE (remove) /api/groups/G/members/U: 204 once stored.
struct member_change {
  store::group_id group = 0;
  store::user_id user = 0;
  bool add = true;
};
// GET /api/groups/G/members.
struct members_query {
  store::group_id group = 0;
};
// GET /api/users/U/groups.
struct groups_query {
  store::user_id user = 0;
};

// What an accepted API request asks for.
using request = std::variant<sessions_query, member_change, members_query, groups_query>;

// An API request refused: its status, error code and message.
struct refusal {
  unsigned status;
  std::string_view code;
  std::string_view message;
};

// `Authorization: Bearer <key>`, compared in constant time. False when the
// header is missing or uses another scheme.
bool key_matches(std::optional<std::string_view> authorization, std::string_view key);

// Routes a request whose path starts with /api/, in the order of PROTOCOL.md
// section 10: the key (401), the path (404, or 405 for a known path with
// another method), the ids (400 bad_id). `key` is --api-key-file's content,
// never empty (without the option the router answers 404 itself).
std::variant<refusal, request> route(std::string_view method, std::string_view path,
                                     std::string_view query,
                                     std::optional<std::string_view> authorization,
                                     std::string_view key);

// 200's bodies of the group endpoints: {"group":G,"members":[...]} and
// {"user":U,"groups":[...]}, ids as JSON numbers, in the order given.
std::string members_body(store::group_id group, const std::vector<std::uint64_t>& members);
std::string groups_body(store::user_id user, const std::vector<std::uint64_t>& groups);

// 200's body: {"user":U,"sessions":[...]}, oldest session first.
std::string sessions_body(store::user_id user, const std::vector<session_info>& sessions);

}  // namespace switchboard::api
