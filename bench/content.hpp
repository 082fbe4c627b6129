// The content of every message the bench sends: "<nonce>.<a>.<k>.<t>."
// padded with 'x' to --size, where the nonce (8 hex digits) names the run,
// a and k say who sent it and its number, and t is its send time in ns.
// The receiver reads them back to find losses, duplicates, misrouting and
// the delivery time; a content of another run (another nonce) is stale.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>

namespace bench {

// A run's nonce: 8 random hex digits.
inline std::string new_nonce() {
  std::random_device rd;
  char b[16];
  std::snprintf(b, sizeof b, "%08x", static_cast<unsigned>(rd()));
  return b;
}

// Appends the content of message k of sender a to `frame`.
inline void append_content(std::string& frame, std::string_view nonce, std::uint64_t a,
                           std::uint64_t k, std::uint64_t send_ns, std::size_t size) {
  const std::size_t start = frame.size();
  frame += nonce;
  frame += '.';
  char num[24];
  for (const std::uint64_t v : {a, k, send_ns}) {
    const auto r = std::to_chars(num, num + sizeof num, v);
    frame.append(num, r.ptr);
    frame += '.';
  }
  const std::size_t used = frame.size() - start;
  if (used < size) frame.append(size - used, 'x');
}

struct content_marks {
  std::uint64_t a = 0, k = 0, send_ns = 0;
  std::string_view padding;  // what follows the marks
};

enum class content_read { ok, stale, corrupted };

// Reads back what append_content wrote; `marks` is set when ok.
inline content_read read_content(std::string_view content, std::string_view nonce,
                                 content_marks& marks) {
  std::string_view rest = content;
  if (!rest.starts_with(nonce) || rest.size() <= nonce.size() || rest[nonce.size()] != '.')
    return content_read::stale;  // another run's, or not ours at all
  rest.remove_prefix(nonce.size() + 1);
  for (std::uint64_t* field : {&marks.a, &marks.k, &marks.send_ns}) {
    const auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), *field);
    if (ec != std::errc() || p == rest.data() + rest.size() || *p != '.')
      return content_read::corrupted;
    rest.remove_prefix(static_cast<std::size_t>(p - rest.data()) + 1);
  }
  marks.padding = rest;
  return content_read::ok;
}

}  // namespace bench
