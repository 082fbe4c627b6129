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

// One route: a path, the method it answers, and how it reads its ids.
struct route_entry {
  std::string_view path;
  std::string_view method;
  std::variant<refusal, request> (*parse)(std::string_view query);
};

std::variant<refusal, request> parse_sessions(std::string_view query) {
  const auto user = parse_user_id(query_value(query, "user").value_or(""));
  if (!user)
    return refusal{400, "bad_id", "user must be a decimal integer from 1 to 18446744073709551615"};
  return sessions_query{*user};
}

constexpr route_entry routes[] = {
    {"/api/sessions", "GET", parse_sessions},
};

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
  for (const auto& r : routes) {
    if (r.path != path) continue;
    if (r.method != method) return refusal{405, "method_not_allowed", "method not allowed here"};
    return r.parse(query);
  }
  return refusal{404, "not_found", "no such resource"};
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
