// Fuzzes whole connections: byte streams from up to three clients into the
// real listener, sessions, hub and memory store, over in-memory connections
// (memory_link.hpp: no sockets, one thread, so a crash replays exactly).
// Each input gets a fresh server: config, metrics, router, hub, store.
//
// The input is a small script (see `run` below): each client's user, ack
// mode, `since` and how much the "kernel" buffers for it (a 256-byte window
// makes a client that stops reading a slow consumer fast), then steps: a
// WebSocket frame built from the input (masked, any opcode, FIN and RSV
// bits), raw bytes, a SEND built from a receiver and content, a frame that
// announces more than it carries, read now, stop reading, shut down the
// sending side, let the server run.
//
// Checked after every step, and at the end once every client reads and has
// shut down:
// - no crash, sanitizer report or exception;
// - the bytes each session's transport holds that the client has not taken
//   stay under --send-queue-bytes plus one replay page and one largest frame
//   (PROTOCOL.md section 4: every frame counts);
// - every connection ends: the server closes each one within the time
//   bound, and the open-sessions gauge is back to 0;
// - what the server writes is a 101 and then well-formed server frames
//   (unmasked, FIN, text frames are JSON objects with a `type`), nothing
//   after the close frame, a close code allowed on the wire; only
//   the last frame may be cut short (a client that shut down its side
//   while the server still wrote: the server closes, as over TCP);
// - no message delivered to a user it was not addressed to: a delivery
//   (type 1) names the session's user as receiver and the user of one of
//   the clients as sender, carries a content that client sent to this user
//   (when all that client sent was built as whole frames), and seqs only
//   grow within a session.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <boost/json.hpp>

#include "fuzz_support.hpp"
#include "support/memory_server.hpp"
#include "support/protocol_reference.hpp"
#include "switchboard/config.hpp"
#include "switchboard/log.hpp"
#include "switchboard/memory_link.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/protocol.hpp"

namespace {

namespace json = boost::json;
namespace sb = switchboard;
namespace sbt = switchboard::test;
using namespace std::chrono_literals;

// Small bounds, so that short inputs reach them.
constexpr std::size_t queue_bound = 4096;
constexpr std::size_t max_message = 2048;
// What may sit above the bound for a moment: one replay page (a quarter of
// the bound, or its first message whatever its size), one frame larger than
// the whole bound (it goes out alone), a ping, the CLOSE notice and the
// close frame.
constexpr std::size_t held_slack = queue_bound / 4 + 2 * (max_message + 512) + 1024;
// How long the server may take to end every connection once the clients
// read and have shut down (each step of a close is bounded by
// --handshake-timeout, 1 s here).
constexpr auto end_bound = 5s;

sb::config fuzz_config() {
  sb::config cfg;
  cfg.store = "memory:";
  cfg.threads = 1;
  cfg.send_queue_bytes = queue_bound;
  cfg.max_message_bytes = max_message;
  cfg.max_sessions_per_user = 2;
  cfg.handshake_timeout = 1s;
  cfg.inbox_limit = 64;
  cfg.inbox_bytes = 16 * 1024;
  cfg.memory_store_bytes = 1 << 20;
  cfg.store_queue_bytes = 64 * 1024;
  cfg.rate_limit = 0;
  return cfg;
}

// The input, read front to back; zeros once it is used up.
class script {
 public:
  script(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool done() const { return at_ >= size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::string_view bytes(std::size_t n) {
    n = std::min(n, size_ - at_);
    std::string_view out(reinterpret_cast<const char*>(data_ + at_), n);
    at_ += n;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

std::string json_string(std::string_view text) {
  return json::serialize(json::string(json::string_view(text.data(), text.size())));
}

struct client {
  std::uint64_t user = 0;
  std::shared_ptr<sb::memory_link> link;
  std::shared_ptr<const std::atomic<std::size_t>> held;  // the transport's unwritten bytes
  bool upgraded = false;  // sent a valid upgrade request (not the raw HTTP of the input)
  bool reading = true;
  bool shut = false;
  bool opaque = false;  // sent bytes whose frames the harness did not build
  std::string received;
  // What it sent as whole text frames: (receiver, content) of each SEND.
  std::set<std::pair<std::uint64_t, std::string>> sent;
};

std::string upgrade_target(const client& c, bool manual, std::optional<std::uint64_t> since) {
  std::string target = "/ws/" + std::to_string(c.user) + (manual ? "?ack=manual" : "?ack=auto");
  if (since) target += "&since=" + std::to_string(*since);
  return target;
}

// Records a text frame the harness built: a SEND's receiver and content as
// the server reads them (the reference parser, which fuzz_frame holds the
// server's parser to).
void note_sent(client& c, std::string_view payload) {
  const auto frame = sbt::reference::parse_client_frame(payload, c.user);
  if (const auto* send = std::get_if<sb::protocol::send_frame>(&frame))
    c.sent.emplace(send->receiver, send->content);
}

void check_held(const std::vector<client>& clients) {
  for (const auto& c : clients)
    if (c.held) FUZZ_CHECK(c.held->load() <= queue_bound + held_slack);
}

void read_all(std::vector<client>& clients) {
  for (auto& c : clients)
    if (c.reading) c.received += c.link->client_read();
}

// Runs every handler that is ready, checking the bound after each.
void settle(sbt::memory_server& s, std::vector<client>& clients) {
  s.settle([&] { check_held(clients); });
  read_all(clients);
}

// SWITCHBOARD_FUZZ_VERBOSE=1: one line per client and input, to see what
// an input does (replaying a seed or a crash).
const bool verbose = std::getenv("SWITCHBOARD_FUZZ_VERBOSE") != nullptr;

// What a client received, checked frame by frame.
void check_received(const client& c, const std::vector<client>& clients) {
  std::size_t frames = 0, deliveries = 0;
  unsigned close_code = 0;
  struct report {
    const client& c;
    const std::size_t& frames;
    const std::size_t& deliveries;
    const unsigned& close_code;
    ~report() {
      if (verbose)
        std::fprintf(stderr, "user %llu: %zu bytes, %zu frames, %zu deliveries, close %u\n",
                     static_cast<unsigned long long>(c.user), c.received.size(), frames, deliveries,
                     close_code);
    }
  } print{c, frames, deliveries, close_code};
  std::string_view rest = c.received;
  if (!c.upgraded || !rest.starts_with("HTTP/1.1 101")) {
    // An HTTP answer, or an upgrade refused: one response and the close.
    FUZZ_CHECK(rest.empty() || rest.starts_with("HTTP/1.1 "));
    return;
  }
  const auto head_end = rest.find("\r\n\r\n");
  FUZZ_CHECK(head_end != std::string_view::npos);
  rest.remove_prefix(head_end + 4);
  bool closed = false;
  std::uint64_t last_seq = 0;
  while (!rest.empty()) {
    FUZZ_CHECK(!closed);  // nothing after the close frame
    // The connection may have been cut mid-frame (the client shut down its
    // side while the server still had bytes to write): a last frame cut
    // short is a close without a handshake, allowed.
    if (rest.size() < 2) break;
    const auto first = static_cast<std::uint8_t>(rest[0]);
    const auto second = static_cast<std::uint8_t>(rest[1]);
    FUZZ_CHECK((first & 0xF0) == 0x80);  // FIN, no RSV bits
    FUZZ_CHECK((second & 0x80) == 0);    // a server never masks
    std::size_t n = second & 0x7F;
    std::size_t header = 2;
    if (n == 126) {
      if (rest.size() < 4) break;
      n = (std::size_t{static_cast<std::uint8_t>(rest[2])} << 8) |
          static_cast<std::uint8_t>(rest[3]);
      header = 4;
    } else if (n == 127) {
      if (rest.size() < 10) break;
      n = 0;
      for (int i = 2; i < 10; ++i)
        n = (n << 8) | static_cast<std::uint8_t>(rest[i]);
      header = 10;
    }
    if (rest.size() < header + n) break;
    const std::string_view payload = rest.substr(header, n);
    rest.remove_prefix(header + n);
    const auto opcode = first & 0x0F;
    ++frames;
    if (verbose && (opcode == 0x1 || opcode == 0x8))
      std::fprintf(stderr, "  user %llu frame %x: %.*s\n", static_cast<unsigned long long>(c.user),
                   opcode, static_cast<int>(std::min<std::size_t>(payload.size(), 100)),
                   payload.data());
    if (opcode == 0x8) {
      closed = true;
      if (payload.size() >= 2) {
        const unsigned code = (unsigned{static_cast<std::uint8_t>(payload[0])} << 8) |
                              static_cast<std::uint8_t>(payload[1]);
        // One the server decides, or the client's own echoed back: a code
        // RFC 6455 section 7.4 allows on the wire (1004-1006 and 1015 never
        // are; 1016-2999 are reserved).
        FUZZ_CHECK(code >= 1000 && !(code >= 1004 && code <= 1006) &&
                   !(code >= 1015 && code <= 2999));
        close_code = code;
      }
      continue;
    }
    if (opcode == 0x9 || opcode == 0xA) continue;
    FUZZ_CHECK(opcode == 0x1);
    json::error_code ec;
    auto value = json::parse(json::string_view(payload.data(), payload.size()), ec);
    FUZZ_CHECK(!ec && value.is_object());
    const auto& frame = value.get_object();
    FUZZ_CHECK(frame.contains("type") && frame.at("type").is_int64());
    if (frame.at("type").get_int64() != 1) continue;
    ++deliveries;
    // A delivery: addressed to this client's user, from a client of this
    // run, with what that client sent to this user.
    FUZZ_CHECK(frame.at("receiver").to_number<std::uint64_t>() == c.user);
    const auto sender = frame.at("sender").to_number<std::uint64_t>();
    const auto content = std::string(frame.at("content").as_string());
    const auto from = std::find_if(clients.begin(), clients.end(), [&](const client& other) {
      return other.user == sender &&
             (other.opaque || other.sent.contains(std::pair(c.user, content)));
    });
    FUZZ_CHECK(from != clients.end());
    const auto seq = frame.at("seq").to_number<std::uint64_t>();
    FUZZ_CHECK(seq > last_seq);
    last_seq = seq;
  }
}

void run(const std::uint8_t* data, std::size_t size) {
  script in(data, size);
  sbt::memory_server s(fuzz_config());
  std::vector<client> clients(1 + in.byte() % 3);
  for (auto& c : clients) {
    const auto b = in.byte();
    c.user = 1 + b % 3;
    const bool manual = b & 0x04;
    const std::optional<std::uint64_t> since =
        (b & 0x08) ? std::optional<std::uint64_t>(in.byte() % 8) : std::nullopt;
    c.link = s.connect((b & 0x10) ? 256 : 64 * 1024, &c.held);
    if (b & 0x20) {
      // The input's own HTTP request.
      c.link->client_write(in.bytes(in.byte()));
      c.opaque = true;
    } else {
      c.link->client_write(sbt::upgrade_request(upgrade_target(c, manual, since)));
      c.upgraded = true;
    }
  }
  settle(s, clients);

  while (!in.done()) {
    const auto op = in.byte();
    auto& c = clients[op % clients.size()];
    switch ((op >> 2) % 8) {
      case 0: {  // a frame built from the input
        const auto first = in.byte();
        const auto flags = in.byte();
        std::size_t n = in.byte();
        if (flags & 0x01) n = n * 16 + in.byte() % 16;  // up to 4 KiB
        const auto payload = in.bytes(n);
        const std::array<std::uint8_t, 4> key = {flags, 0x5a, 0x00, 0xa5};
        c.link->client_write(
            sbt::client_frame(first, payload, (flags & 0x02) ? std::nullopt : std::optional(key)));
        if (first == 0x81 && !(flags & 0x02))
          note_sent(c, payload);
        else if ((first & 0x0F) == 0x0 || (first & 0x0F) == 0x1)
          c.opaque = true;  // fragments or odd bits: what the server makes of them is its own
        break;
      }
      case 1:  // raw bytes
        c.link->client_write(in.bytes(in.byte()));
        c.opaque = true;
        break;
      case 2: {  // a SEND built from a receiver, an id and a content
        const auto b = in.byte();
        const std::string receiver = std::to_string((b & 0x07) % 5);  // 0 is not a user
        const auto content = in.bytes(in.byte());
        std::string text =
            R"({"type":1,"receiver":)" + receiver + R"(,"content":)" + json_string(content);
        if (b & 0x80) text += R"(,"id":"i)" + std::to_string((b >> 3) & 0x0F) + "\"";
        text += "}";
        c.link->client_write(sbt::client_frame(0x81, text, sbt::mask_key{1, 2, 3, 4}));
        note_sent(c, text);
        break;
      }
      case 3: {  // a frame that announces more than it carries
        const auto payload = in.bytes(in.byte());
        auto frame =
            sbt::client_frame(0x81, std::string(payload.size() + 64, 'x'), sbt::mask_key{});
        frame.resize(frame.size() - 64);
        c.link->client_write(frame);
        c.opaque = true;
        break;
      }
      case 4:
        c.received += c.link->client_read();
        break;
      case 5:
        c.reading = !c.reading;
        break;
      case 6:
        c.link->client_shutdown();
        c.shut = true;
        break;
      case 7:
        settle(s, clients);
        break;
    }
    check_held(clients);
  }

  // The end: every client reads what is there, sends a close frame and
  // shuts down its side; the server must end every connection within the
  // bound.
  for (auto& c : clients)
    c.reading = true;
  settle(s, clients);
  for (auto& c : clients)
    if (!c.shut)
      c.link->client_write(sbt::client_frame(0x88, "\x03\xe8", sbt::mask_key{9, 8, 7, 6}));
  settle(s, clients);
  for (auto& c : clients)
    c.link->client_shutdown();
  const auto deadline = std::chrono::steady_clock::now() + end_bound;
  for (;;) {
    settle(s, clients);
    const bool all_closed = std::all_of(clients.begin(), clients.end(),
                                        [](const client& c) { return c.link->closed(); });
    if (all_closed && s.stats.sessions.load() == 0) break;
    if (verbose && std::chrono::steady_clock::now() >= deadline) {
      for (const auto& c : clients)
        std::fprintf(stderr, "user %llu: closed %d, FIN %d, held %zu, %zu bytes received\n",
                     static_cast<unsigned long long>(c.user), c.link->closed(),
                     c.link->server_done(), c.held->load(), c.received.size());
      std::fprintf(stderr, "%s", s.stats.render().c_str());
    }
    FUZZ_CHECK(std::chrono::steady_clock::now() < deadline);  // a connection never ended
    s.context.run_one_for(50ms);  // timers: the cut-off of a close that could not go out
    check_held(clients);
  }
  read_all(clients);
  for (const auto& c : clients)
    check_received(c, clients);
  for (auto& c : clients)
    c.link->reset();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Sessions log each close: noise here, unless replaying with VERBOSE.
  sb::set_log_level(std::getenv("SWITCHBOARD_FUZZ_VERBOSE") ? sb::log_level::debug
                                                            : sb::log_level::error);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run(data, size);
  return 0;
}
