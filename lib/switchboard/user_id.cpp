#include "switchboard/user_id.hpp"

#include <charconv>
#include <system_error>

namespace switchboard {

std::optional<std::uint64_t> parse_seq(std::string_view text) {
  // from_chars already refuses a sign, spaces and overflow for an unsigned
  // type, but it accepts leading zeros, which would give a number two spellings.
  if (text.empty() || (text.size() > 1 && text.front() == '0')) return std::nullopt;
  std::uint64_t value = 0;
  const char* const end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value, 10);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

std::optional<std::uint64_t> parse_user_id(std::string_view text) {
  const auto value = parse_seq(text);
  if (!value || *value == 0) return std::nullopt;
  return value;
}

}  // namespace switchboard
