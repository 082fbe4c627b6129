#include "switchboard/ws_query.hpp"

#include "switchboard/user_id.hpp"

namespace switchboard {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::variant<ws_query, ws_query_error> parse_ws_query(std::string_view query) {
  ws_query result;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    const auto key = pair.substr(0, eq);
    const auto raw = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (key == "ack") {
      const auto value = percent_decode(raw);
      if (value == "auto")
        result.ack = ack_mode::automatic;
      else if (value == "manual")
        result.ack = ack_mode::manual;
      else
        return ws_query_error::bad_ack;
    } else if (key == "since") {
      const auto value = percent_decode(raw);
      const auto since = value ? parse_seq(*value) : std::nullopt;
      if (!since) return ws_query_error::bad_since;
      result.since = since;
    } else if (key == "device") {
      // Empty (`device=` or a bare `device`) is refused: the default device
      // is asked for by leaving the parameter out.
      const auto value = percent_decode(raw);
      const auto device =
          value && !value->empty() ? store::device_name::parse(*value) : std::nullopt;
      if (!device) return ws_query_error::bad_device;
      result.device = *device;
    } else if (key == "token") {
      result.token = percent_decode(raw);
      result.token_malformed = !result.token;
    }
  }
  return result;
}

}  // namespace switchboard
