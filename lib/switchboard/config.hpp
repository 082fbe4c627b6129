// The server's options: PROTOCOL.md section 8, one field per option, with the
// documented defaults. Parsed by parse_config() from the command line, the
// environment (SWITCHBOARD_<NAME>) and an optional `--config FILE`, in that
// order of precedence.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace switchboard {

enum class log_level { trace, debug, info, warn, error };
enum class log_format { text, json };
enum class sync_mode { normal, full };

struct config {
  std::string listen_host = "127.0.0.1";  // IPv4, "localhost", or IPv6 without brackets
  std::uint16_t listen_port = 8080;
  unsigned threads = 0;  // 0 until parsed: then the number of cores
  std::string store = "sqlite:switchboard.db";
  sync_mode sync = sync_mode::normal;
  std::string node_id;  // empty until parsed: then "<hostname>:<port>"
  std::optional<std::string> redis_password_file;
  std::chrono::seconds session_lease{30};
  std::chrono::seconds dedup_window{600};
  std::chrono::seconds handshake_timeout{10};
  std::size_t max_message_bytes = 65536;
  std::size_t max_connections = 100000;
  std::size_t max_sessions_per_user = 4;
  std::size_t send_queue_bytes = 1048576;
  std::uint64_t rate_limit = 0;  // SENDs per second per session, 0 = off
  std::chrono::seconds ping_interval{30};
  std::chrono::seconds idle_timeout{75};
  std::chrono::seconds retention{604800};
  std::size_t inbox_limit = 10000;
  // A device with no session for this long is forgotten (PROTOCOL.md section 9).
  std::chrono::seconds device_ttl{2592000};
  // Devices remembered per user; a new one beyond forgets the least recently
  // seen device that has no session open.
  std::size_t max_devices_per_user = 32;
  // Content bytes held per user (store::held_bytes); beyond, the oldest go.
  std::size_t inbox_bytes = std::size_t{16} << 20;
  // memory: store only: everything it holds; beyond, SENDs are refused.
  std::size_t memory_store_bytes = std::size_t{256} << 20;
  // Content bytes of SENDs waiting for the store; beyond, SENDs are refused.
  std::size_t store_queue_bytes = std::size_t{64} << 20;
  std::chrono::seconds drain_timeout{10};
  std::optional<std::string> jwt_secret_file;
  std::optional<std::string> api_key_file;  // off: every /api/ path is a 404
  std::size_t max_group_members = 1000;     // members per group (PROTOCOL.md section 10)
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::vector<std::string> allow_origins;
  log_level level = log_level::info;
  log_format format = log_format::text;
};

// What parse_config() decided: run with a config, or exit now with a code
// after printing `output` (to stdout for --help/--version with code 0, to
// stderr otherwise).
struct config_exit {
  int code;
  std::string output;
};

using config_result = std::variant<config, config_exit>;

// Exit codes of PROTOCOL.md section 8.
inline constexpr int exit_ok = 0;
inline constexpr int exit_runtime_error = 1;  // a file or port that cannot be used
inline constexpr int exit_usage = 2;          // an unknown option or a malformed value

// Reads the process's environment.
config_result parse_config(int argc, const char* const argv[]);
// Reads `environment` instead: NAME=value entries, null-terminated, as environ.
config_result parse_config(int argc, const char* const argv[], const char* const* environment);

// A `--store` URI taken apart, so that the store factory and parse_config()
// agree on what is valid: `memory:`, `sqlite:PATH` (PATH non-empty) or
// `redis://[USER@]HOST:PORT[/DB]` (HOST a name, an IPv4 address or a
// bracketed IPv6 address, stored without the brackets; PORT 1..65535; USER
// the ACL user for AUTH; DB the database number, 0 by default).
struct store_location {
  enum class kind { memory, sqlite, redis };
  kind type = kind::memory;
  std::string path;        // sqlite only
  std::string host;        // redis only
  std::uint16_t port = 0;  // redis only
  std::string user;        // redis only: ACL user, empty for the default user
  unsigned db = 0;         // redis only
};

// nullopt if `uri` is none of the forms above.
std::optional<store_location> parse_store_uri(std::string_view uri);

}  // namespace switchboard
