#include "switchboard/router.hpp"

#include <algorithm>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "switchboard/clock.hpp"
#include "switchboard/config.hpp"
#include "switchboard/jwt.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/user_id.hpp"
#include "switchboard/ws_query.hpp"

namespace switchboard {

namespace web {
extern const std::string_view index_html;
}

namespace {

constexpr std::string_view json_type = "application/json";

// The page talks only to its own origin: scripts, styles and the WebSocket.
constexpr std::string_view page_csp =
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

}  // namespace

http_answer error_answer(unsigned status, std::string_view code, std::string_view message) {
  json::object body;
  body["error"] = code;
  body["message"] = message;
  return http_answer{status, std::string(json_type), json::serialize(body), {}};
}

router::router(const config& cfg, metrics& m, std::string jwt_secret)
    : config_(cfg), metrics_(m), jwt_secret_(std::move(jwt_secret)) {}

route_result router::route(const route_request& request) {
  const auto question = request.target.find('?');
  const auto path = request.target.substr(0, question);
  const auto query =
      question == std::string_view::npos ? std::string_view{} : request.target.substr(question + 1);

  if (request.method == "GET") {
    if (path.starts_with("/ws/")) return route_websocket(request, path.substr(4), query);
    if (path == "/healthz") {
      if (draining())
        return http_answer{503, std::string(json_type), R"({"status":"draining"})", {}};
      return http_answer{200, std::string(json_type), R"({"status":"ok"})", {}};
    }
    if (path == "/metrics")
      return http_answer{200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render(), {}};
    if (path == "/") {
      return http_answer{200,
                         "text/html; charset=utf-8",
                         std::string(web::index_html),
                         {{"Content-Security-Policy", std::string(page_csp)},
                          {"Cache-Control", "no-cache"},
                          {"X-Content-Type-Options", "nosniff"},
                          {"Referrer-Policy", "no-referrer"}}};
    }
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
    }
  }
  const auto& params = std::get<ws_query>(parsed);
  session.ack = params.ack;
  session.since = params.since;
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
