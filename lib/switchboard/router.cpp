#include "switchboard/router.hpp"

#include <algorithm>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "switchboard/clock.hpp"
#include "switchboard/config.hpp"
#include "switchboard/jwt.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/user_id.hpp"
#include "switchboard/web_assets.hpp"
#include "switchboard/ws_query.hpp"

namespace switchboard {

namespace {

constexpr std::string_view json_type = "application/json";

// The page loads only its own files and opens only its own WebSocket: no
// inline script or style, nothing from elsewhere. connect-src names ws: and
// wss: on the request's own host because 'self' does not cover WebSocket
// schemes in every browser.
std::string page_csp(std::optional<std::string_view> host) {
  std::string csp =
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
      "connect-src 'self'";
  // Only a plain host[:port] (a name, IPv4, or [IPv6]) goes into the header:
  // anything else could add directives of its own.
  const bool plain = host && !host->empty() && host->size() <= 255 &&
                     std::all_of(host->begin(), host->end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' ||
                              c == '[' || c == ']';
                     });
  if (plain) {
    csp += " ws://";
    csp += *host;
    csp += " wss://";
    csp += *host;
  }
  csp += "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
  return csp;
}

// RFC 9110 If-None-Match: "*", or a list of entity tags compared weakly.
bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    const auto comma = if_none_match.find(',');
    auto tag = if_none_match.substr(0, comma);
    if_none_match =
        comma == std::string_view::npos ? std::string_view{} : if_none_match.substr(comma + 1);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t'))
      tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t'))
      tag.remove_suffix(1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

// A file of the browser client. no-cache: the browser may keep it but asks
// again each time, and an unchanged file costs a 304 without a body.
http_answer page_file(const web::asset& file, const route_request& request) {
  std::vector<std::pair<std::string, std::string>> headers{{"ETag", std::string(file.etag)},
                                                           {"Cache-Control", "no-cache"}};
  if (request.if_none_match && etag_matches(*request.if_none_match, file.etag))
    return http_answer{304, {}, {}, std::move(headers)};
  headers.emplace_back("Content-Security-Policy", page_csp(request.host));
  headers.emplace_back("X-Content-Type-Options", "nosniff");
  headers.emplace_back("Referrer-Policy", "no-referrer");
  return http_answer{200, std::string(file.content_type), std::string(file.body),
                     std::move(headers)};
}

}  // namespace

http_answer error_answer(unsigned status, std::string_view code, std::string_view message) {
  json::object body;
  body["error"] = code;
  body["message"] = message;
  return http_answer{status, std::string(json_type), json::serialize(body), {}};
}

router::router(const config& cfg, metrics& m, std::string jwt_secret, std::string api_key)
    : config_(cfg), metrics_(m), jwt_secret_(std::move(jwt_secret)), api_key_(std::move(api_key)) {}

route_result router::route(const route_request& request) {
  const auto question = request.target.find('?');
  const auto path = request.target.substr(0, question);
  const auto query =
      question == std::string_view::npos ? std::string_view{} : request.target.substr(question + 1);

  if (path.starts_with("/api/")) {
    if (api_key_.empty()) return error_answer(404, "not_found", "no such resource");
    auto routed = api::route(request.method, path, query, request.authorization, api_key_);
    if (const auto* no = std::get_if<api::refusal>(&routed))
      return error_answer(no->status, no->code, no->message);
    return std::get<api::request>(std::move(routed));
  }
  if (request.method == "GET") {
    if (path.starts_with("/ws/")) return route_websocket(request, path.substr(4), query);
    if (path == "/healthz") {
      if (draining())
        return http_answer{503, std::string(json_type), R"({"status":"draining"})", {}};
      if (!metrics_.store_available.load(std::memory_order_relaxed))
        return http_answer{503, std::string(json_type), R"({"status":"store_unavailable"})", {}};
      return http_answer{200, std::string(json_type), R"({"status":"ok"})", {}};
    }
    if (path == "/metrics")
      return http_answer{200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render(), {}};
    for (const auto& file : web::assets)
      if (path == file.path) return page_file(file, request);
  }
  return error_answer(404, "not_found", "no such resource");
}

route_result router::route_websocket(const route_request& request, std::string_view id,
                                     std::string_view query) {
  auto reject = [&](unsigned status, std::string_view code, std::string_view message) {
    metrics_.count_rejection(status);
    return error_answer(status, code, message);
  };

  session_request session;
  const auto user = parse_user_id(id);
  if (!user)
    return reject(400, "bad_user_id",
                  "the user id must be a decimal integer from 1 to 18446744073709551615");
  session.user = *user;

  const auto parsed = parse_ws_query(query);
  if (const auto* error = std::get_if<ws_query_error>(&parsed)) {
    switch (*error) {
      case ws_query_error::bad_ack:
        return reject(400, "bad_ack", "ack must be auto or manual");
      case ws_query_error::bad_since:
        return reject(400, "bad_since", "since must be a seq: a decimal integer");
      case ws_query_error::bad_device:
        return reject(400, "bad_device", "device must be 1 to 64 bytes of A-Z a-z 0-9 . _ -");
    }
  }
  const auto& params = std::get<ws_query>(parsed);
  session.ack = params.ack;
  session.since = params.since;
  session.device = params.device;
  const auto& token = params.token;

  if (!request.websocket_upgrade)
    return reject(426, "upgrade_required", "this endpoint speaks WebSocket only");
  if (!jwt_secret_.empty()) {
    // From ?token= or Authorization: Bearer; both present and different is
    // refused rather than guessed. Tokens are never logged.
    if (params.token_malformed)
      return reject(401, "unauthorized", "the token is not a valid query value");
    std::optional<std::string_view> bearer;
    if (request.authorization) {
      constexpr std::string_view scheme = "Bearer ";
      if (!request.authorization->starts_with(scheme))
        return reject(401, "unauthorized", "the Authorization header must be Bearer");
      bearer = request.authorization->substr(scheme.size());
    }
    if (token && bearer && *token != *bearer)
      return reject(401, "unauthorized", "two different tokens were given");
    const std::string_view credential = token ? std::string_view(*token) : bearer.value_or("");
    if (credential.empty()) return reject(401, "unauthorized", "a token is required");
    if (const auto why = jwt::verify(credential, jwt_secret_, session.user, unix_seconds()))
      return reject(401, "unauthorized", "token refused: " + std::string(jwt::to_string(*why)));
  }
  if (request.origin && !config_.allow_origins.empty() &&
      std::find(config_.allow_origins.begin(), config_.allow_origins.end(), *request.origin) ==
          config_.allow_origins.end())
    return reject(403, "origin_not_allowed", "this origin may not open sessions");
  if (draining()) return reject(503, "draining", "the server is shutting down");
  // A cluster node whose Redis is unreachable could not open the inbox:
  // the client retries, maybe on another node (docs/cluster.md).
  if (!metrics_.store_available.load(std::memory_order_relaxed))
    return reject(503, "store_unavailable", "the store cannot be reached; try again later");
  return session;
}

bool router::acquire_slot() {
  auto taken = sessions_.load(std::memory_order_relaxed);
  do {
    if (taken >= config_.max_connections) {
      metrics_.count_rejection(503);
      return false;
    }
  } while (!sessions_.compare_exchange_weak(taken, taken + 1, std::memory_order_relaxed));
  return true;
}

void router::release_slot() {
  sessions_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace switchboard
