#include "switchboard/redis/resp.hpp"

#include <hiredis/hiredis.h>

#include <climits>
#include <cstdlib>
#include <ostream>

namespace switchboard::redis {

namespace {

// hiredis 0.14 allocates a slot for every element an array header claims,
// before any element arrives, and walks them all when the reader is freed:
// `*2147483647\r\n` from whatever answers on the Redis port cost a node a
// minute of CPU (found by fuzz_redis). No reply of ours is anywhere near
// this; a larger claim fails the connection instead (protocol_error).
constexpr int max_array_elements = 1 << 20;

void* (*default_create_array)(const redisReadTask*, int) = nullptr;

void* create_bounded_array(const redisReadTask* task, int elements) {
  if (elements > max_array_elements) return nullptr;  // the reader reports an error
  return default_create_array(task, elements);
}

// hiredis's own reply functions, with createArray bounded. Its defaults are
// not exported: they are read off a reader made for that purpose.
redisReplyObjectFunctions* bounded_functions() {
  static redisReplyObjectFunctions functions = [] {
    redisReader* probe = redisReaderCreate();
    if (probe == nullptr) throw std::bad_alloc();
    redisReplyObjectFunctions f = *probe->fn;
    redisReaderFree(probe);
    default_create_array = f.createArray;
    f.createArray = create_bounded_array;
    return f;
  }();
  return &functions;
}

void append_argv(std::string& out, int argc, const char** argv, const std::size_t* lengths) {
  char* encoded = nullptr;
  const int n = redisFormatCommandArgv(&encoded, argc, argv, lengths);
  if (n < 0) throw std::bad_alloc();  // hiredis fails only when malloc does
  out.append(encoded, static_cast<std::size_t>(n));
  redisFreeCommand(encoded);
}

template <class Range>
void append_range(std::string& out, const Range& args) {
  if (args.size() == 0 || args.size() > INT_MAX)
    throw std::invalid_argument("redis: a command needs 1 to INT_MAX arguments");
  // Small commands (the common case) encode without a heap allocation here.
  constexpr std::size_t inline_args = 16;
  const char* argv_inline[inline_args];
  std::size_t lengths_inline[inline_args];
  std::vector<const char*> argv_heap;
  std::vector<std::size_t> lengths_heap;
  const char** argv = argv_inline;
  std::size_t* lengths = lengths_inline;
  if (args.size() > inline_args) {
    argv_heap.resize(args.size());
    lengths_heap.resize(args.size());
    argv = argv_heap.data();
    lengths = lengths_heap.data();
  }
  std::size_t i = 0;
  for (const auto& a : args) {
    argv[i] = a.data();
    lengths[i] = a.size();
    ++i;
  }
  append_argv(out, static_cast<int>(args.size()), argv, lengths);
}

reply copy_of(const redisReply& r) {
  reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = reply::kind::string;
      break;
    case REDIS_REPLY_STATUS:
      out.type = reply::kind::status;
      break;
    case REDIS_REPLY_ERROR:
      out.type = reply::kind::error;
      break;
    case REDIS_REPLY_INTEGER:
      out.type = reply::kind::integer;
      out.integer = r.integer;
      return out;
    case REDIS_REPLY_NIL:
      out.type = reply::kind::nil;
      return out;
    case REDIS_REPLY_ARRAY:
      out.type = reply::kind::array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i)
        out.elements.push_back(copy_of(*r.element[i]));
      return out;
    default:
      throw protocol_error("redis: unknown reply type " + std::to_string(r.type));
  }
  out.str.assign(r.str, r.len);
  return out;
}

redisReader* as_reader(void* p) {
  return static_cast<redisReader*>(p);
}

}  // namespace

std::string_view to_string(reply::kind k) noexcept {
  switch (k) {
    case reply::kind::string:
      return "string";
    case reply::kind::status:
      return "status";
    case reply::kind::error:
      return "error";
    case reply::kind::integer:
      return "integer";
    case reply::kind::nil:
      return "nil";
    case reply::kind::array:
      return "array";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& out, reply::kind k) {
  return out << to_string(k);
}

void append_command(std::string& out, std::initializer_list<std::string_view> args) {
  append_range(out, args);
}

void append_command(std::string& out, std::span<const std::string_view> args) {
  append_range(out, args);
}

void append_command(std::string& out, std::span<const std::string> args) {
  append_range(out, args);
}

void decoder::reader_deleter::operator()(void* reader) const {
  redisReaderFree(as_reader(reader));
}

decoder::decoder() : reader_(redisReaderCreateWithFunctions(bounded_functions())) {
  if (!reader_) throw std::bad_alloc();
}

decoder::~decoder() = default;

void decoder::feed(const char* data, std::size_t n) {
  auto* r = as_reader(reader_.get());
  if (redisReaderFeed(r, data, n) != REDIS_OK)
    throw protocol_error(std::string("redis: ") + r->errstr);
}

std::optional<reply> decoder::next() {
  auto* r = as_reader(reader_.get());
  void* raw = nullptr;
  if (redisReaderGetReply(r, &raw) != REDIS_OK)
    throw protocol_error(std::string("redis: ") + r->errstr);
  if (raw == nullptr) return std::nullopt;
  std::unique_ptr<redisReply, decltype(&freeReplyObject)> owned(static_cast<redisReply*>(raw),
                                                                &freeReplyObject);
  return copy_of(*owned);
}

}  // namespace switchboard::redis
