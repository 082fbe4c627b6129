// RESP2, the Redis wire format, as pure code with no I/O (STYLE.md rule 2):
// an encoder for commands and a decoder fed with bytes read elsewhere.
// hiredis 0.14 does the byte work (redisFormatCommandArgv, redisReader); this
// header keeps its types out of the rest of the library.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::redis {

// An owned copy of one decoded reply.
struct reply {
  enum class kind { string, status, error, integer, nil, array };
  kind type = kind::nil;
  std::string str;              // string, status, error
  long long integer = 0;        // integer
  std::vector<reply> elements;  // array
  bool is_error() const { return type == kind::error; }
};

// "string", "status"...: for error messages and log lines.
std::string_view to_string(reply::kind k) noexcept;
std::ostream& operator<<(std::ostream& out, reply::kind k);

// The reply stream is not RESP (or nests deeper than hiredis 0.14's limit of
// 7 levels): the connection that read it can no longer be trusted.
class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Appends one encoded command to `out`. Arguments are binary-safe (they may
// hold NUL bytes and CR LF).
void append_command(std::string& out, std::initializer_list<std::string_view> args);
void append_command(std::string& out, std::span<const std::string_view> args);
// The same for owned arguments (setup commands, channel lists).
void append_command(std::string& out, std::span<const std::string> args);

// Wraps a redisReader: feed it bytes as they arrive, take complete replies.
class decoder {
 public:
  decoder();
  ~decoder();
  decoder(const decoder&) = delete;
  decoder& operator=(const decoder&) = delete;

  // Copies the bytes in. Throws protocol_error if the stream was already bad.
  void feed(const char* data, std::size_t n);
  // The next complete reply, or nullopt until more bytes are fed. Throws
  // protocol_error on bad input; the decoder stays unusable after that.
  std::optional<reply> next();

 private:
  struct reader_deleter {
    void operator()(void* reader) const;
  };
  std::unique_ptr<void, reader_deleter> reader_;  // a redisReader
};

}  // namespace switchboard::redis
