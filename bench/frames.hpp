// The fields of a server frame that the bench reads. Servers write compact
// JSON objects of numbers and plain strings: a scanner reads those in one
// pass without building anything; any other frame (an escape in a string the
// bench reads, a nested value) goes through Boost.JSON. A full parse per
// frame was a sixth of the client's CPU time.
#pragma once

#include <array>
#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bench {

class frame_view {
 public:
  // group, gseq: a group message or its receipt (PROTOCOL.md section 10);
  // state, upto: a STATUS (section 11).
  enum field {
    type,
    sender,
    receiver,
    content,
    seq,
    id,
    code,
    group,
    gseq,
    state,
    upto,
    field_count
  };

  frame_view() : resource_(storage_, sizeof storage_), parser_({}, {}, temp_) {}
  frame_view(const frame_view&) = delete;
  frame_view& operator=(const frame_view&) = delete;

  // Reads `text`; false if it is not a JSON object. The views it gives are
  // valid until the next parse and while `text` is.
  bool parse(std::string_view text);

  bool has(field f) const { return present_[f]; }
  // An unsigned integer, given as a JSON number or a decimal string.
  std::optional<std::uint64_t> u64(field f) const;
  // A string field's text; nullopt if absent or not a string.
  std::optional<std::string_view> str(field f) const;
  // A string field as is, any other field serialised; empty if absent.
  std::string text(field f) const;

 private:
  bool scan(std::string_view text);
  bool parse_json(std::string_view text);

  std::array<std::string_view, field_count> raw_;  // a string's text, or a value's JSON
  std::array<bool, field_count> quoted_{};         // raw_ is a string's text
  std::array<bool, field_count> present_{};
  // The fallback: Boost.JSON into a stack buffer, and numbers turned to text.
  alignas(16) unsigned char storage_[8192];
  unsigned char temp_[1024];
  boost::json::monotonic_resource resource_;
  boost::json::parser parser_;
  boost::json::value value_;
  std::array<std::string, field_count> owned_;
};

}  // namespace bench
