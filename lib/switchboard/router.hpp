// Which answer a request gets (PROTOCOL.md section 1). Pure: it reads the
// method, target and the few headers that matter and returns either an HTTP
// answer or the parameters of a WebSocket session; the listener does the I/O.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "switchboard/api.hpp"
#include "switchboard/session_handle.hpp"
#include "switchboard/store/types.hpp"

namespace switchboard {

struct config;
class metrics;

struct route_request {
  std::string_view method;
  std::string_view target;
  bool websocket_upgrade = false;
  std::optional<std::string_view> origin;
  std::optional<std::string_view> authorization;  // the Authorization header, as sent
  std::optional<std::string_view> host;           // the Host header: the page's own WebSocket
  std::optional<std::string_view> if_none_match;  // revalidation of the page's files
};

struct http_answer {
  unsigned status = 200;
  std::string content_type;  // empty: no Content-Type (a 304 has no body)
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type
};

struct session_request {
  store::user_id user = 0;
  ack_mode ack = ack_mode::automatic;
  std::optional<store::seq_t> since;
  store::device_name device;  // ?device=, "" when absent (PROTOCOL.md section 9)
};

// An answer now, a WebSocket session, or an API request whose answer the
// listener gathers (api.hpp).
using route_result = std::variant<http_answer, session_request, api::request>;

// {"error":"<code>","message":"<text>"} with its status.
http_answer error_answer(unsigned status, std::string_view code, std::string_view message);

class router {
 public:
  // `jwt_secret`: the secret of --jwt-secret-file; empty when auth is off.
  // `api_key`: the key of --api-key-file; empty when the API is off.
  router(const config& cfg, metrics& m, std::string jwt_secret = {}, std::string api_key = {});

  route_result route(const route_request& request);

  // A session slot under --max-connections; false when full. Every slot
  // taken is given back with release() when its session ends.
  bool acquire_slot();
  void release_slot();

  void start_draining() { draining_.store(true, std::memory_order_relaxed); }
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

 private:
  route_result route_websocket(const route_request& request, std::string_view id,
                               std::string_view query);

  const config& config_;
  metrics& metrics_;
  const std::string jwt_secret_;          // empty: the server is open
  const std::string api_key_;             // empty: no /api/
  std::atomic<std::size_t> sessions_{0};  // slots taken under --max-connections
  std::atomic<bool> draining_{false};     // set once by the signal handler
};

}  // namespace switchboard
