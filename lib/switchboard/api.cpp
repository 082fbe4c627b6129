#include "switchboard/api.hpp"

#include <openssl/crypto.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "switchboard/net.hpp"
#include "switchboard/user_id.hpp"

namespace switchboard::api {

namespace {

// The value of `name` in a query string (the last one if repeated, as in
// ws_query.hpp); nullopt when absent. Values are not percent-decoded: ids
// have one spelling, and an escaped one is a bad id.
std::optional<std::string_view> query_value(std::string_view query, std::string_view name) {
  std::optional<std::string_view> found;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = item.find('=');
    if (item.substr(0, eq) == name)
      found = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
  }
  return found;
}

// One route: a path pattern, the method it answers, and how it reads its
// ids. In a pattern, `*` stands for one path segment, whatever it holds
// (an empty or malformed id is the route's own 400 bad_id, not a 404).
struct route_entry {
  std::string_view pattern;
  std::string_view method;
  std::variant<refusal, request> (*parse)(std::string_view query,
                                          const std::vector<std::string_view>& ids);
};

// The segments `*` stood for, if `path` matches `pattern`.
std::optional<std::vector<std::string_view>> match(std::string_view pattern,
                                                   std::string_view path) {
  std::vector<std::string_view> ids;
  for (;;) {
    const auto star = pattern.find('*');
    if (star == std::string_view::npos) {
      if (pattern != path) return std::nullopt;
      return ids;
    }
    if (path.substr(0, star) != pattern.substr(0, star)) return std::nullopt;
    path.remove_prefix(star);
    pattern.remove_prefix(star + 1);
    const auto slash = path.find('/');
    ids.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
}

constexpr refusal bad_user{400, "bad_id",
                           "user must be a decimal integer from 1 to 18446744073709551615"};
constexpr refusal bad_group{400, "bad_id",
                            "group must be a decimal integer from 1 to 18446744073709551615"};

std::variant<refusal, request> parse_sessions(std::string_view query,
                                              const std::vector<std::string_view>&) {
  const auto user = parse_user_id(query_value(query, "user").value_or(""));
  if (!user) return bad_user;
  return sessions_query{*user};
}

// Group ids have the same canonical form as user ids (PROTOCOL.md section 10).
template <bool Add>
std::variant<refusal, request> parse_member(std::string_view,
                                            const std::vector<std::string_view>& ids) {
  const auto group = parse_user_id(ids[0]);
  if (!group) return bad_group;
  const auto user = parse_user_id(ids[1]);
  if (!user) return bad_user;
  return member_change{*group, *user, Add};
}

std::variant<refusal, request> parse_members(std::string_view,
                                             const std::vector<std::string_view>& ids) {
  const auto group = parse_user_id(ids[0]);
  if (!group) return bad_group;
  return members_query{*group};
}

std::variant<refusal, request> parse_groups(std::string_view,
                                            const std::vector<std::string_view>& ids) {
  const auto user = parse_user_id(ids[0]);
  if (!user) return bad_user;
  return groups_query{*user};
}

constexpr route_entry routes[] = {
    {"/api/sessions", "GET", parse_sessions},
    {"/api/groups/*/members/*", "PUT", parse_member<true>},
    {"/api/groups/*/members/*", "DELETE", parse_member<false>},
    {"/api/groups/*/members", "GET", parse_members},
    {"/api/users/*/groups", "GET", parse_groups},
};

std::string ids_body(std::string_view owner_key, std::uint64_t owner, std::string_view list_key,
                     const std::vector<std::uint64_t>& ids) {
  json::array list;
  list.reserve(ids.size());
  for (const auto id : ids)
    list.push_back(id);
  json::object body;
  body[owner_key] = owner;
  body[list_key] = std::move(list);
  return json::serialize(body);
}

}  // namespace

bool key_matches(std::optional<std::string_view> authorization, std::string_view key) {
  constexpr std::string_view scheme = "Bearer ";
  if (!authorization || !authorization->starts_with(scheme)) return false;
  const auto given = authorization->substr(scheme.size());
  // Only the length leaks, as in any comparison of secrets of known size.
  return given.size() == key.size() && CRYPTO_memcmp(given.data(), key.data(), key.size()) == 0;
}

std::variant<refusal, request> route(std::string_view method, std::string_view path,
                                     std::string_view query,
                                     std::optional<std::string_view> authorization,
                                     std::string_view key) {
  if (!key_matches(authorization, key))
    return refusal{401, "unauthorized", "Authorization: Bearer with the API key is required"};
  // A path known with another method is a 405, whichever entry comes first.
  bool known = false;
  for (const auto& r : routes) {
    const auto ids = match(r.pattern, path);
    if (!ids) continue;
    known = true;
    if (r.method == method) return r.parse(query, *ids);
  }
  if (known) return refusal{405, "method_not_allowed", "method not allowed here"};
  return refusal{404, "not_found", "no such resource"};
}

std::string members_body(store::group_id group, const std::vector<std::uint64_t>& members) {
  return ids_body("group", group, "members", members);
}

std::string groups_body(store::user_id user, const std::vector<std::uint64_t>& groups) {
  return ids_body("user", user, "groups", groups);
}

std::string sessions_body(store::user_id user, const std::vector<session_info>& sessions) {
  json::array list;
  for (const auto& s : sessions) {
    json::object queue;
    queue["frames"] = s.queued_frames;
    queue["bytes"] = s.queue_bytes;
    queue["first_seq"] = s.first_seq ? json::value(*s.first_seq) : json::value(nullptr);
    queue["last_seq"] = s.last_seq ? json::value(*s.last_seq) : json::value(nullptr);
    json::object transport;
    transport["pending_bytes"] = s.pending_bytes;
    transport["writing_bytes"] = s.writing_bytes;
    transport["write_in_flight"] = s.write_in_flight;
    transport["flush_waiters"] = s.flush_waiters;
    json::object replay;
    replay["live"] = s.live;
    replay["from"] = s.from;
    json::object o;
    o["session"] = s.session;
    o["device"] = s.device;
    o["opened_ms"] = s.opened_ms;
    o["queued_bytes"] = s.queued_bytes;
    o["thread"] = s.thread;
    o["ack"] = s.manual_ack ? "manual" : "auto";
    o["queue"] = std::move(queue);
    o["transport"] = std::move(transport);
    o["replay"] = std::move(replay);
    o["reader"] = to_string(s.reader);
    o["writer"] = to_string(s.writer);
    o["closing"] = s.closing ? json::value(*s.closing) : json::value(nullptr);
    list.push_back(std::move(o));
  }
  json::object body;
  body["user"] = user;
  body["sessions"] = std::move(list);
  return json::serialize(body);
}

}  // namespace switchboard::api
