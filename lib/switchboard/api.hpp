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

// What an accepted API request asks for (the group endpoints join here).
using request = std::variant<sessions_query>;

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

// 200's body: {"user":U,"sessions":[...]}, oldest session first.
std::string sessions_body(store::user_id user, const std::vector<session_info>& sessions);

}  // namespace switchboard::api
