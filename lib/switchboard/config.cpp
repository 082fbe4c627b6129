#include "switchboard/config.hpp"

#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>
#include <thread>
#include <type_traits>
#include <vector>

#include "switchboard/log.hpp"

#ifndef SWITCHBOARD_VERSION
#define SWITCHBOARD_VERSION "0.0.0"
#endif

namespace switchboard {

namespace {

namespace po = boost::program_options;

// Asio timers count in nanoseconds in an int64: a longer duration would
// overflow when a timer is armed with it.
constexpr std::uint64_t max_seconds = std::numeric_limits<std::int64_t>::max() / 1'000'000'000;
// More I/O threads than this is a typo, not a machine.
constexpr std::uint64_t max_threads = 1024;

// Each function below returns why `text` is refused, or an empty string.

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

bool all_digits(std::string_view text) {
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return !text.empty();
}

// Decimal digits only: program_options' own lexical_cast would take "-1" for
// an unsigned option and wrap it to a huge value.
std::string parse_unsigned(std::string_view text, std::uint64_t min, std::uint64_t max,
                           std::uint64_t& out) {
  if (text.empty()) return "a number is required";
  if (text.front() == '-' && all_digits(text.substr(1))) {
    return "must not be negative: " + quoted(text);
  }
  if (!all_digits(text)) return "not a number: " + quoted(text);
  std::uint64_t value = 0;
  const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  if (result.ec == std::errc::result_out_of_range || value > max) {
    return "too large: " + quoted(text) + " (at most " + std::to_string(max) + ")";
  }
  if (value < min) return "must be at least " + std::to_string(min) + ", not " + quoted(text);
  out = value;
  return {};
}

std::string parse_port(std::string_view text, std::uint64_t min, std::uint16_t& out) {
  std::uint64_t value = 0;
  if (!all_digits(text) || !parse_unsigned(text, min, 65535, value).empty()) {
    return "the port must be a number in " + std::to_string(min) + "..65535";
  }
  out = static_cast<std::uint16_t>(value);
  return {};
}

bool is_ipv4(const std::string& text) {
  boost::system::error_code ec;
  boost::asio::ip::make_address_v4(text.c_str(), ec);
  return !ec;
}

bool is_ipv6(const std::string& text) {
  boost::system::error_code ec;
  boost::asio::ip::make_address_v6(text.c_str(), ec);
  return !ec;
}

// "[v6]:port" or "host:port", split at the last colon outside brackets.
// Returns why not; `host` comes back without brackets.
std::string split_host_port(std::string_view text, std::string& host, std::string_view& port,
                            bool& bracketed) {
  bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return "missing ']' after the IPv6 address";
    if (close + 1 >= text.size() || text[close + 1] != ':') return "expected [IPv6]:PORT";
    host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
    return {};
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return "expected HOST:PORT";
  host = std::string(text.substr(0, colon));
  port = text.substr(colon + 1);
  if (host.find(':') != std::string::npos) return "an IPv6 address needs brackets: [ADDR]:PORT";
  return {};
}

std::string parse_listen(std::string_view text, config& c) {
  std::string host;
  std::string_view port_text;
  bool bracketed = false;
  if (auto why = split_host_port(text, host, port_text, bracketed); !why.empty()) {
    return why + ", not " + quoted(text);
  }
  if (bracketed ? !is_ipv6(host) : host != "localhost" && !is_ipv4(host)) {
    return "not an IPv4 address, localhost or [IPv6]: " + quoted(host);
  }
  std::uint16_t port = 0;
  if (auto why = parse_port(port_text, 0, port); !why.empty()) {
    return why + ", not " + quoted(port_text);
  }
  c.listen_host = std::move(host);
  c.listen_port = port;
  return {};
}

std::string store_uri_error(std::string_view uri, store_location& out) {
  constexpr std::string_view forms =
      "expected memory:, sqlite:PATH or redis://[USER@]HOST:PORT[/DB]";
  if (uri == "memory:") {
    out = {};
    return {};
  }
  if (uri.starts_with("sqlite:")) {
    if (uri.size() == 7) return "sqlite: needs a file path, as in sqlite:switchboard.db";
    out = {store_location::kind::sqlite, std::string(uri.substr(7)), {}, 0, {}, 0};
    return {};
  }
  if (uri.starts_with("redis://")) {
    std::string_view rest = uri.substr(8);
    std::string user;
    if (const auto at = rest.find('@'); at != std::string_view::npos) {
      user = std::string(rest.substr(0, at));
      if (user.empty() || user.find_first_of(":/ ") != std::string::npos)
        return "not an ACL user name before @: " + quoted(user);
      rest = rest.substr(at + 1);
    }
    unsigned db = 0;
    if (const auto slash = rest.rfind('/');
        slash != std::string_view::npos && rest.find(']', slash) == std::string_view::npos) {
      const auto db_text = rest.substr(slash + 1);
      std::uint64_t value = 0;
      if (auto why = parse_unsigned(db_text, 0, 1u << 20, value); !why.empty())
        return "the database after / must be a number: " + why + ", not " + quoted(db_text);
      db = static_cast<unsigned>(value);
      rest = rest.substr(0, slash);
    }
    std::string host;
    std::string_view port_text;
    bool bracketed = false;
    if (auto why = split_host_port(rest, host, port_text, bracketed); !why.empty()) {
      return why + " after redis://, not " + quoted(uri);
    }
    const bool host_ok = bracketed ? is_ipv6(host)
                                   : !host.empty() && host.find_first_not_of(
                                                          "abcdefghijklmnopqrstuvwxyz"
                                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                          "0123456789.-_") == std::string::npos;
    if (!host_ok) return "not a host name or address: " + quoted(host);
    std::uint16_t port = 0;
    if (auto why = parse_port(port_text, 1, port); !why.empty()) {
      return why + ", not " + quoted(port_text);
    }
    out = {store_location::kind::redis, {}, std::move(host), port, std::move(user), db};
    return {};
  }
  return std::string(forms) + ", not " + quoted(uri);
}

template <auto member, std::uint64_t min, std::uint64_t max = 0>
std::string set_number(config& c, const std::string& text) {
  using type = std::remove_cvref_t<decltype(c.*member)>;
  std::uint64_t value = 0;
  const std::uint64_t limit = max != 0 ? max : std::numeric_limits<type>::max();
  if (auto why = parse_unsigned(text, min, limit, value); !why.empty()) return why;
  c.*member = static_cast<type>(value);
  return {};
}

template <auto member, std::uint64_t min>
std::string set_seconds(config& c, const std::string& text) {
  std::uint64_t value = 0;
  if (auto why = parse_unsigned(text, min, max_seconds, value); !why.empty()) return why;
  c.*member = std::chrono::seconds(static_cast<std::int64_t>(value));
  return {};
}

template <auto member>
std::string set_path(config& c, const std::string& text) {
  if (text.empty()) return "a path is required";
  c.*member = text;
  return {};
}

template <auto member>
std::string show_number(const config& c) {
  return std::to_string(c.*member);
}

template <auto member>
std::string show_seconds(const config& c) {
  return std::to_string((c.*member).count());
}

std::string show_listen(const config& c) {
  const bool v6 = c.listen_host.find(':') != std::string::npos;
  return (v6 ? "[" + c.listen_host + "]" : c.listen_host) + ":" + std::to_string(c.listen_port);
}

enum class option_kind {
  value,     // one value, from the command line or the file
  repeated,  // any number of values, from the command line or the file
  flag,      // command line only, no value
  file,      // --config itself: command line only
};

// The one table of options: parsing, validation and --help all read it, so
// they cannot drift apart. Defaults shown by --help come from a
// default-constructed config for the same reason.
struct option_spec {
  const char* name;
  const char* arg;  // placeholder shown by --help; nullptr for a flag
  const char* meaning;
  std::string (*show_default)(const config&);         // nullptr: no default to show
  std::string (*apply)(config&, const std::string&);  // returns why the value is refused
  option_kind kind;
};

const option_spec option_table[] = {
    {"listen", "ADDR:PORT",
     "address to listen on: an IPv4 address, localhost or [IPv6]; port 0 picks a free port",
     show_listen, [](config& c, const std::string& v) { return parse_listen(v, c); },
     option_kind::value},
    {"threads", "N", "I/O threads",
     [](const config&) -> std::string { return "the number of cores"; },
     set_number<&config::threads, 1, max_threads>, option_kind::value},
    {"store", "URI",
     "where messages are kept: memory:, sqlite:PATH or redis://[USER@]HOST:PORT[/DB] (a "
     "cluster: every node on the same Redis is one Switchboard)",
     [](const config& c) { return c.store; },
     [](config& c, const std::string& v) {
       store_location location;
       auto why = store_uri_error(v, location);
       if (why.empty()) c.store = v;
       return why;
     },
     option_kind::value},
    {"sync", "normal|full",
     "SQLite durability: normal survives kill -9 of the server, full a power cut",
     [](const config& c) -> std::string { return c.sync == sync_mode::full ? "full" : "normal"; },
     [](config& c, const std::string& v) -> std::string {
       if (v == "normal") {
         c.sync = sync_mode::normal;
       } else if (v == "full") {
         c.sync = sync_mode::full;
       } else {
         return "expected normal or full, not " + quoted(v);
       }
       return {};
     },
     option_kind::value},
    {"node-id", "NAME", "this node's name in a cluster",
     [](const config&) -> std::string { return "HOSTNAME:PORT"; },
     [](config& c, const std::string& v) -> std::string {
       if (v.empty()) return "a name is required";
       c.node_id = v;
       return {};
     },
     option_kind::value},
    {"redis-password-file", "PATH", "the Redis password (AUTH), read from PATH",
     [](const config&) -> std::string { return "off"; }, set_path<&config::redis_password_file>,
     option_kind::value},
    {"session-lease", "S",
     "cluster: seconds a node's sessions keep counting after the node stops refreshing them "
     "(it died)",
     show_seconds<&config::session_lease>, set_seconds<&config::session_lease, 1>,
     option_kind::value},
    {"dedup-window", "S", "seconds a (sender, id) is remembered to drop resends",
     show_seconds<&config::dedup_window>, set_seconds<&config::dedup_window, 0>,
     option_kind::value},
    {"handshake-timeout", "S", "seconds for the TLS handshake, HTTP request and upgrade",
     show_seconds<&config::handshake_timeout>, set_seconds<&config::handshake_timeout, 0>,
     option_kind::value},
    {"max-message-bytes", "N", "largest message; a larger one closes the session (1009)",
     show_number<&config::max_message_bytes>, set_number<&config::max_message_bytes, 1>,
     option_kind::value},
    {"max-connections", "N", "open sessions; upgrades beyond get 503",
     show_number<&config::max_connections>, set_number<&config::max_connections, 1>,
     option_kind::value},
    {"max-sessions-per-user", "N", "sessions per user; one more replaces the oldest",
     show_number<&config::max_sessions_per_user>, set_number<&config::max_sessions_per_user, 1>,
     option_kind::value},
    {"send-queue-bytes", "N",
     "bytes waiting to be written per session; beyond, it is closed as slow_consumer",
     show_number<&config::send_queue_bytes>, set_number<&config::send_queue_bytes, 1>,
     option_kind::value},
    {"rate-limit", "N", "SENDs per second per session, 0 = off", show_number<&config::rate_limit>,
     set_number<&config::rate_limit, 0>, option_kind::value},
    {"ping-interval", "S", "seconds between pings", show_seconds<&config::ping_interval>,
     set_seconds<&config::ping_interval, 1>, option_kind::value},
    {"idle-timeout", "S", "seconds without input, pongs included, before a session is closed",
     show_seconds<&config::idle_timeout>, set_seconds<&config::idle_timeout, 1>,
     option_kind::value},
    {"retention", "S", "seconds an unacknowledged message is held",
     show_seconds<&config::retention>, set_seconds<&config::retention, 0>, option_kind::value},
    {"device-ttl", "S",
     "seconds after its last session before a device is forgotten and holds no message back",
     show_seconds<&config::device_ttl>, set_seconds<&config::device_ttl, 1>, option_kind::value},
    {"max-devices-per-user", "N",
     "devices remembered per user; a new one forgets the least recently seen without a session",
     show_number<&config::max_devices_per_user>, set_number<&config::max_devices_per_user, 1>,
     option_kind::value},
    {"inbox-limit", "N", "messages held per user; beyond, the oldest are evicted",
     show_number<&config::inbox_limit>, set_number<&config::inbox_limit, 1>, option_kind::value},
    {"inbox-bytes", "N",
     "content bytes held per user; beyond, the oldest messages are evicted (the newest stays)",
     show_number<&config::inbox_bytes>, set_number<&config::inbox_bytes, 1>, option_kind::value},
    {"memory-store-bytes", "N",
     "memory: store only: bytes it may hold in all (messages, inboxes, dedup entries); beyond, "
     "SENDs get ERROR unavailable",
     show_number<&config::memory_store_bytes>, set_number<&config::memory_store_bytes, 1>,
     option_kind::value},
    {"store-queue-bytes", "N",
     "content bytes of SENDs waiting for the store; beyond, SENDs get ERROR unavailable",
     show_number<&config::store_queue_bytes>, set_number<&config::store_queue_bytes, 1>,
     option_kind::value},
    {"drain-timeout", "S", "seconds to flush queued frames at shutdown",
     show_seconds<&config::drain_timeout>, set_seconds<&config::drain_timeout, 0>,
     option_kind::value},
    {"jwt-secret-file", "PATH", "require HS256 JWTs signed with the secret in PATH",
     [](const config&) -> std::string { return "off"; }, set_path<&config::jwt_secret_file>,
     option_kind::value},
    {"api-key-file", "PATH",
     "serve the HTTP API (/api/...) to requests bearing the key in PATH; off: 404",
     [](const config&) -> std::string { return "off"; }, set_path<&config::api_key_file>,
     option_kind::value},
    {"max-group-members", "N",
     "members per group (PROTOCOL.md section 10); adding one more answers 409 group_full",
     show_number<&config::max_group_members>, set_number<&config::max_group_members, 1>,
     option_kind::value},
    {"tls-cert", "PATH", "TLS certificate chain (PEM); needs --tls-key",
     [](const config&) -> std::string { return "off"; }, set_path<&config::tls_cert>,
     option_kind::value},
    {"tls-key", "PATH", "TLS private key (PEM); needs --tls-cert",
     [](const config&) -> std::string { return "off"; }, set_path<&config::tls_key>,
     option_kind::value},
    {"allow-origin", "ORIGIN", "a browser Origin allowed to upgrade (repeatable); others get 403",
     [](const config&) -> std::string { return "any"; },
     [](config& c, const std::string& v) -> std::string {
       if (v.empty()) return "an origin is required";
       c.allow_origins.push_back(v);
       return {};
     },
     option_kind::repeated},
    {"log-level", "trace|debug|info|warn|error", "least severe level logged to stderr",
     [](const config& c) { return std::string(to_string(c.level)); },
     [](config& c, const std::string& v) -> std::string {
       for (const auto level : {log_level::trace, log_level::debug, log_level::info,
                                log_level::warn, log_level::error}) {
         if (v == to_string(level)) {
           c.level = level;
           return {};
         }
       }
       return "expected trace, debug, info, warn or error, not " + quoted(v);
     },
     option_kind::value},
    {"log-format", "text|json", "log lines as text, or as one JSON object per line",
     [](const config& c) -> std::string { return c.format == log_format::json ? "json" : "text"; },
     [](config& c, const std::string& v) -> std::string {
       if (v == "text") {
         c.format = log_format::text;
       } else if (v == "json") {
         c.format = log_format::json;
       } else {
         return "expected text or json, not " + quoted(v);
       }
       return {};
     },
     option_kind::value},
    {"config", "FILE",
     "read options from FILE: `name = value` lines, # comments; the command line wins", nullptr,
     nullptr, option_kind::file},
    {"version", nullptr, "print the version and exit", nullptr, nullptr, option_kind::flag},
    {"help", nullptr, "print this help and exit", nullptr, nullptr, option_kind::flag},
};

// Appends the words, then `tail` as one unbreakable unit, from column `at`,
// breaking lines before column 80 and indenting continuation lines to `indent`.
void append_wrapped(std::string& out, std::string_view text, const std::string& tail,
                    std::size_t at, std::size_t indent) {
  constexpr std::size_t width = 79;
  std::vector<std::string_view> units;
  while (!text.empty()) {
    const auto space = text.find(' ');
    units.push_back(text.substr(0, space));
    text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
  }
  if (!tail.empty()) units.push_back(tail);
  bool first = true;
  for (const auto word : units) {
    if (!first && at + 1 + word.size() > width) {
      out += '\n';
      out.append(indent, ' ');
      at = indent;
    } else if (!first) {
      out += ' ';
      ++at;
    }
    out += word;
    at += word.size();
    first = false;
  }
}

std::string help_text() {
  const config defaults;
  std::string text =
      "usage: switchboard [options]\n"
      "\n"
      "A WebSocket chat relay. Every option may also be set in the environment as\n"
      "SWITCHBOARD_<NAME> (SWITCHBOARD_MAX_CONNECTIONS for --max-connections; a\n"
      "repeatable option takes a list separated by spaces or commas) or in --config\n"
      "FILE. The command line wins over the environment, the environment over the\n"
      "file. Secrets are only read from files (--jwt-secret-file...).\n"
      "\n";
  for (const auto& spec : option_table) {
    std::string left = std::string("  --") + spec.name;
    if (spec.arg != nullptr) left += std::string(" ") + spec.arg;
    text += left;
    // Long placeholders push the meaning to its own line rather than a ragged column.
    constexpr std::size_t column = 32;
    text += left.size() + 2 <= column ? std::string(column - left.size(), ' ')
                                      : "\n" + std::string(column, ' ');
    const std::string default_text =
        spec.show_default != nullptr ? "(default: " + spec.show_default(defaults) + ")" : "";
    append_wrapped(text, spec.meaning, default_text, column, column);
    text += '\n';
  }
  return text;
}

config_exit usage_error(std::string_view option, std::string_view why) {
  std::string text = "switchboard: ";
  if (!option.empty()) {
    text += "--";
    text += option;
    text += ": ";
  }
  text += why;
  text += "\nswitchboard: try --help for the list of options\n";
  return {exit_usage, std::move(text)};
}

// "max-connections" -> "SWITCHBOARD_MAX_CONNECTIONS".
std::string environment_name(std::string_view option) {
  std::string name = "SWITCHBOARD_";
  for (const char c : option)
    name += c == '-' ? '_' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return name;
}

// The value of `name` in `environment` (NAME=value entries, null-terminated), or null.
const char* find_variable(const char* const* environment, const std::string& name) {
  if (environment == nullptr) return nullptr;
  for (; *environment != nullptr; ++environment) {
    const std::string_view entry(*environment);
    if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=')
      return *environment + name.size() + 1;
  }
  return nullptr;
}

// The options set by SWITCHBOARD_<NAME> variables, as program_options
// would have parsed them from a file. A repeatable option takes a list
// separated by spaces or commas. `from_environment` maps each option given
// this way to its variable, for error messages.
po::parsed_options environment_options(const po::options_description& description,
                                       const char* const* environment,
                                       std::map<std::string, std::string>& from_environment) {
  po::parsed_options parsed(&description);
  for (const auto& spec : option_table) {
    if (spec.kind == option_kind::flag) continue;
    const std::string variable = environment_name(spec.name);
    const char* value = find_variable(environment, variable);
    if (value == nullptr) continue;
    po::option option;
    option.string_key = spec.name;
    if (spec.kind == option_kind::repeated) {
      std::string_view rest(value);
      while (!rest.empty()) {
        const auto start = rest.find_first_not_of(" ,");
        if (start == std::string_view::npos) break;
        rest.remove_prefix(start);
        const auto end = rest.find_first_of(" ,");
        option.value.emplace_back(rest.substr(0, end));
        rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
      }
    } else {
      option.value.emplace_back(value);
    }
    parsed.options.push_back(std::move(option));
    from_environment[spec.name] = variable;
  }
  return parsed;
}

// program_options names an option "--name" on the command line and "name"
// in a file; the messages always say "--name".
std::string bare_name(std::string name) {
  while (!name.empty() && name.front() == '-')
    name.erase(0, 1);
  return name;
}

config_exit option_error(const po::error& e, std::string_view where) {
  std::string option;
  std::string why = e.what();
  if (const auto* named = dynamic_cast<const po::error_with_option_name*>(&e)) {
    option = bare_name(named->get_option_name());
    if (dynamic_cast<const po::unknown_option*>(&e)) {
      why = "unknown option";
    } else if (dynamic_cast<const po::multiple_occurrences*>(&e)) {
      why = "given more than once";
    } else if (const auto* syntax = dynamic_cast<const po::invalid_syntax*>(&e)) {
      if (syntax->kind() == po::invalid_syntax::missing_parameter) {
        why = "a value is required";
      } else if (syntax->kind() == po::invalid_syntax::extra_parameter) {
        why = "takes no value";
      }
    }
  }
  return usage_error(option, why + std::string(where));
}

// The whole file, or nullopt with `error` set to an errno value.
std::optional<std::string> read_file(const std::string& path, int& error) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    error = errno;
    return std::nullopt;
  }
  std::string content;
  char buffer[4096];
  std::size_t size = 0;
  while ((size = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    content.append(buffer, size);
  const bool failed = std::ferror(file) != 0;
  error = errno;
  std::fclose(file);
  if (failed) return std::nullopt;
  return content;
}

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

std::optional<store_location> parse_store_uri(std::string_view uri) {
  store_location location;
  if (!store_uri_error(uri, location).empty()) return std::nullopt;
  return location;
}

config_result parse_config(int argc, const char* const argv[]) {
  return parse_config(argc, argv, environ);
}

config_result parse_config(int argc, const char* const argv[], const char* const* environment) {
  po::options_description command_line_options;
  po::options_description file_options;
  for (const auto& spec : option_table) {
    switch (spec.kind) {
      case option_kind::value:
        command_line_options.add_options()(spec.name, po::value<std::string>());
        file_options.add_options()(spec.name, po::value<std::string>());
        break;
      case option_kind::repeated:
        command_line_options.add_options()(spec.name, po::value<std::vector<std::string>>());
        file_options.add_options()(spec.name, po::value<std::vector<std::string>>());
        break;
      case option_kind::flag:
        command_line_options.add_options()(spec.name, po::bool_switch());
        break;
      case option_kind::file:
        command_line_options.add_options()(spec.name, po::value<std::string>());
        break;
    }
  }

  po::variables_map values;
  try {
    // No guessing: `--thread 4` must be an error, not a silent `--threads 4`
    // that breaks when another option starting with "thread" is added.
    const auto style = po::command_line_style::unix_style & ~po::command_line_style::allow_guessing;
    const auto parsed =
        po::command_line_parser(argc, argv).options(command_line_options).style(style).run();
    for (const auto& option : parsed.options) {
      // program_options keeps stray words without a name and store() drops
      // them silently; a stray word is usually a typo worth reporting.
      if (option.position_key != -1 || option.string_key.empty()) {
        const std::string word = option.original_tokens.empty() ? "" : option.original_tokens[0];
        return usage_error("", "unexpected argument " + quoted(word));
      }
    }
    po::store(parsed, values);
  } catch (const po::error& e) {
    return option_error(e, "");
  }

  // Before the environment, the file and the values are checked: --help
  // must work even when the rest is wrong.
  if (values["help"].as<bool>()) return config_exit{exit_ok, help_text()};
  if (values["version"].as<bool>()) {
    return config_exit{exit_ok, "switchboard " SWITCHBOARD_VERSION "\n"};
  }

  // Stored after the command line and before the file: store() keeps the
  // first value of an option, so the command line wins over the
  // environment, and the environment over the file. Only the options that
  // the command line did not set count as coming from the environment.
  std::map<std::string, std::string> from_environment;
  {
    auto parsed = environment_options(command_line_options, environment, from_environment);
    std::erase_if(from_environment,
                  [&](const auto& entry) { return values.count(entry.first) != 0; });
    try {
      po::store(parsed, values);
    } catch (const po::error& e) {
      return option_error(e, " (in the environment)");
    }
  }
  // A value the environment gave is reported under its variable's name.
  const auto refuse = [&](const std::string& option, const std::string& why) {
    if (const auto it = from_environment.find(option); it != from_environment.end()) {
      return config_exit{exit_usage, "switchboard: " + it->second + " (--" + option + "): " + why +
                                         "\nswitchboard: try --help for the list of options\n"};
    }
    return usage_error(option, why);
  };

  if (values.count("config") != 0) {
    const auto& path = values["config"].as<std::string>();
    int error = 0;
    const auto content = read_file(path, error);
    if (!content) {
      return config_exit{exit_runtime_error, "switchboard: --config " + path +
                                                 ": cannot read: " + std::strerror(error) + "\n"};
    }
    try {
      std::istringstream stream(*content);
      // Stored after the command line: store() keeps the first value of an
      // option, so the command line wins (for --allow-origin too, whose
      // list from the file is then ignored as a whole).
      po::store(po::parse_config_file(stream, file_options, false), values);
    } catch (const po::error& e) {
      return option_error(e, " (in " + path + ")");
    }
  }

  config result;
  for (const auto& spec : option_table) {
    if (spec.apply == nullptr || values.count(spec.name) == 0) continue;
    if (spec.kind == option_kind::repeated) {
      const auto& list = values[spec.name].as<std::vector<std::string>>();
      if (list.empty()) return refuse(spec.name, "an origin is required");
      for (const auto& value : list) {
        if (auto why = spec.apply(result, value); !why.empty()) return refuse(spec.name, why);
      }
    } else if (auto why = spec.apply(result, values[spec.name].as<std::string>()); !why.empty()) {
      return refuse(spec.name, why);
    }
  }

  // TLS with only half of its files is a mistake to report now, not a
  // plain-text port the operator believes is encrypted.
  if (result.tls_cert && !result.tls_key) return refuse("tls-key", "required with --tls-cert");
  if (result.tls_key && !result.tls_cert) return refuse("tls-cert", "required with --tls-key");

  if (result.threads == 0) result.threads = std::max(1u, std::thread::hardware_concurrency());
  if (result.node_id.empty())
    result.node_id = host_name() + ":" + std::to_string(result.listen_port);
  return result;
}

}  // namespace switchboard
