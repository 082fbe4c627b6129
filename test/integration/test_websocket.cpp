// The WebSocket layer of a session (RFC 6455), which the server reads itself
// (lib/switchboard/ws_frames.hpp): fragments, pings in the middle of a
// flood, several frames in one TCP segment, the close handshake from either
// side, and protocol violations. Beast clients where a conforming client is
// wanted; a raw socket that writes frames byte by byte where it is not.
// Every case runs with --threads 1 and 2 (ctest).
#define BOOST_TEST_MODULE websocket
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <optional>
#include <string>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include "support/client_frames.hpp"
#include "support/test_support.hpp"

using namespace switchboard;
using namespace switchboard::test;
namespace json = boost::json;
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr unsigned char fin_text = 0x81;
constexpr unsigned char fin_binary = 0x82;
constexpr unsigned char fin_close = 0x88;
constexpr unsigned char fin_ping = 0x89;

// A WebSocket client on a plain socket: it sends whatever bytes it is given
// and reads the server's (unmasked) frames one by one.
class raw_client {
 public:
  raw_client(std::uint16_t port, const std::string& target) : socket_(context_) {
    socket_.connect({asio::ip::address_v4::loopback(), port});
    // Blocking reads give up after 5 s instead of hanging the test.
    timeval tv{5, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    write(upgrade_request(target));
    while (in_.find("\r\n\r\n") == std::string::npos)
      BOOST_REQUIRE(fill());
    const auto end = in_.find("\r\n\r\n") + 4;
    BOOST_REQUIRE(in_.starts_with("HTTP/1.1 101"));
    in_.erase(0, end);
    auto welcome = next_frame();
    BOOST_REQUIRE(welcome.has_value());
    BOOST_REQUIRE(type_of(parse_object(welcome->second)) == 0);
  }

  void write(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

  // The next server frame (opcode, payload), or nullopt once the
  // connection ended.
  std::optional<std::pair<int, std::string>> next_frame() {
    for (;;) {
      if (in_.size() >= 2) {
        const auto b1 = static_cast<unsigned char>(in_[1]);
        BOOST_REQUIRE((b1 & 0x80) == 0);  // a server never masks
        std::size_t length = b1 & 0x7f;
        std::size_t header = 2;
        if (length == 126 && in_.size() >= 4) {
          length = (static_cast<unsigned char>(in_[2]) << 8) | static_cast<unsigned char>(in_[3]);
          header = 4;
        }
        BOOST_REQUIRE(length != 127);  // no test frame is that long
        if (length != 126 && in_.size() >= header + length) {
          std::pair<int, std::string> frame{static_cast<unsigned char>(in_[0]) & 0x0f,
                                            in_.substr(header, length)};
          in_.erase(0, header + length);
          return frame;
        }
      }
      if (!fill()) return std::nullopt;
    }
  }

  // Reads frames until a close frame; returns its code (0: none, -1: the
  // connection ended without one).
  int close_code() {
    while (auto frame = next_frame()) {
      if (frame->first != 8) continue;
      if (frame->second.size() < 2) return 0;
      return (static_cast<unsigned char>(frame->second[0]) << 8) |
             static_cast<unsigned char>(frame->second[1]);
    }
    return -1;
  }

  // Whether the server then ends the connection.
  bool ended() {
    char byte;
    boost::system::error_code ec;
    for (;;) {
      socket_.read_some(asio::buffer(&byte, 1), ec);
      if (ec) return ec == asio::error::eof || ec == asio::error::connection_reset;
    }
  }

 private:
  bool fill() {
    char chunk[4096];
    boost::system::error_code ec;
    const auto n = socket_.read_some(asio::buffer(chunk), ec);
    if (ec) return false;
    in_.append(chunk, n);
    return true;
  }

  asio::io_context context_;
  tcp::socket socket_;
  std::string in_;
};

std::string send_text(std::uint64_t receiver, const std::string& content,
                      std::optional<std::string> id = std::nullopt) {
  return json::serialize(send_frame(receiver, content, std::move(id)));
}

// The server still relays after whatever a test did to it.
void server_still_relays(std::uint16_t port) {
  ws_client carol(port, "/ws/77");
  carol.send(send_frame(77, "still here", "check"));
  BOOST_TEST(type_of(carol.read()) == 2);  // the receipt
  BOOST_TEST(str(carol.read().at("content")) == "still here");
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_fragmented_send_is_reassembled) {
  test_server server;
  ws_client alice(server.port(), "/ws/1");
  ws_client bob(server.port(), "/ws/2");
  const std::string content(3000, 'f');
  const std::string text = send_text(2, content, "frag");
  // Three fragments of a Beast client: text, continuation, continuation.
  auto& ws = alice.stream();
  ws.text(true);
  ws.write_some(false, asio::buffer(text.substr(0, 10)));
  ws.write_some(false, asio::buffer(text.substr(10, 2000)));
  ws.write_some(true, asio::buffer(text.substr(2010)));
  const auto receipt = alice.read();
  BOOST_TEST(type_of(receipt) == 2);
  BOOST_TEST(str(receipt.at("id")) == "frag");
  BOOST_TEST(str(bob.read().at("content")) == content);
}

BOOST_AUTO_TEST_CASE(pings_during_a_flood_are_answered_in_order_and_nothing_is_lost) {
  test_server server;
  ws_client alice(server.port(), "/ws/1");
  ws_client bob(server.port(), "/ws/2");
  std::vector<std::string> pongs;
  alice.stream().control_callback([&](websocket::frame_type kind, std::string_view payload) {
    if (kind == websocket::frame_type::pong) pongs.emplace_back(payload);
  });
  constexpr int messages = 3000;
  constexpr int ping_every = 100;
  auto& ws = alice.stream();
  for (int i = 1; i <= messages; ++i) {
    ws.text(true);
    ws.write(asio::buffer(send_text(2, "m" + std::to_string(i), std::to_string(i))));
    if (i % ping_every == 0) ws.ping(websocket::ping_data("p" + std::to_string(i / ping_every)));
  }
  // Receipts come back in order, with the pongs among them.
  for (int i = 1; i <= messages; ++i) {
    const auto receipt = alice.read();
    BOOST_REQUIRE(type_of(receipt) == 2);
    BOOST_REQUIRE(str(receipt.at("id")) == std::to_string(i));
  }
  for (int i = 1; i <= messages; ++i)
    BOOST_REQUIRE(str(bob.read().at("content")) == "m" + std::to_string(i));
  // The last pong may trail the last receipt: one more round trip settles it.
  alice.send(send_frame(1, "self", "last"));
  alice.read_until([](const json::object& f) { return type_of(f) == 1; });
  BOOST_REQUIRE(pongs.size() == static_cast<std::size_t>(messages / ping_every));
  for (std::size_t i = 0; i < pongs.size(); ++i)
    BOOST_TEST(pongs[i] == "p" + std::to_string(i + 1));
}

BOOST_AUTO_TEST_CASE(many_frames_in_one_segment_are_all_handled_in_order) {
  test_server server;
  raw_client alice(server.port(), "/ws/1");
  ws_client bob(server.port(), "/ws/2");
  // 200 SENDs, a ping and a binary frame in one write: the server meets
  // them all in one read.
  std::string burst;
  for (int i = 1; i <= 200; ++i) {
    burst += client_frame(fin_text, send_text(2, "b" + std::to_string(i)));
    if (i == 100) {
      burst += client_frame(fin_ping, "mid");
      burst += client_frame(fin_binary, "\x01\x02");
    }
  }
  alice.write(burst);
  for (int i = 1; i <= 200; ++i)
    BOOST_REQUIRE(str(bob.read().at("content")) == "b" + std::to_string(i));
  auto pong = alice.next_frame();
  BOOST_REQUIRE(pong.has_value());
  BOOST_TEST(pong->first == 0xA);
  BOOST_TEST(pong->second == "mid");
  auto error = alice.next_frame();
  BOOST_REQUIRE(error.has_value());
  BOOST_TEST(str(parse_object(error->second).at("code")) == "binary");
}

BOOST_AUTO_TEST_CASE(a_frame_trickling_in_byte_by_byte_is_read_whole) {
  test_server server;
  raw_client alice(server.port(), "/ws/1");
  const auto frame = client_frame(fin_text, send_text(1, std::string(300, 't'), "slow"));
  for (char byte : frame)
    alice.write(std::string(1, byte));
  auto receipt = alice.next_frame();
  BOOST_REQUIRE(receipt.has_value());
  BOOST_TEST(str(parse_object(receipt->second).at("id")) == "slow");
  auto delivered = alice.next_frame();
  BOOST_REQUIRE(delivered.has_value());
  BOOST_TEST(str(parse_object(delivered->second).at("content")) == std::string(300, 't'));
}

BOOST_AUTO_TEST_CASE(a_client_close_is_answered_with_its_code) {
  test_server server;
  ws_client alice(server.port(), "/ws/1");
  auto& ws = alice.stream();
  ws.close(websocket::close_reason(websocket::close_code::going_away));
  BOOST_TEST(ws.reason().code == 1001);  // Beast read the server's answer
  server_still_relays(server.port());
}

BOOST_AUTO_TEST_CASE(a_close_frame_without_a_code_is_answered_without_one) {
  test_server server;
  raw_client alice(server.port(), "/ws/1");
  alice.write(client_frame(fin_close, ""));
  BOOST_TEST(alice.close_code() == 0);
  BOOST_TEST(alice.ended());
}

BOOST_AUTO_TEST_CASE(protocol_violations_close_with_1002_or_1007) {
  test_server server;
  const std::pair<const char*, std::string> violations[] = {
      {"unmasked", client_frame(fin_text, send_text(2, "x"), std::nullopt)},
      {"rsv1 without an extension", client_frame(0xC1, send_text(2, "x"))},
      {"reserved opcode", client_frame(0x83, "x")},
      {"continuation without a start", client_frame(0x80, "x")},
      {"fragmented ping", client_frame(0x09, "x")},
      {"close code 1005", client_frame(fin_close, std::string("\x03\xed", 2))},
      {"one-byte close", client_frame(fin_close, "\x03")},
  };
  for (const auto& [what, bytes] : violations) {
    BOOST_TEST_CONTEXT(what) {
      raw_client alice(server.port(), "/ws/1");
      alice.write(bytes);
      BOOST_TEST(alice.close_code() == 1002);
      BOOST_TEST(alice.ended());
    }
  }
  const std::pair<const char*, std::string> bad_text[] = {
      {"invalid UTF-8", client_frame(fin_text, "{\"type\":1,\"content\":\"\xc3\x28\"}")},
      {"truncated code point", client_frame(fin_text, "\xe2\x82")},
      {"invalid UTF-8 close reason", client_frame(fin_close, std::string("\x03\xe8", 2) + "\xff")},
  };
  for (const auto& [what, bytes] : bad_text) {
    BOOST_TEST_CONTEXT(what) {
      raw_client alice(server.port(), "/ws/1");
      alice.write(bytes);
      BOOST_TEST(alice.close_code() == 1007);
      BOOST_TEST(alice.ended());
    }
  }
  server_still_relays(server.port());
}

BOOST_AUTO_TEST_CASE(an_oversized_message_in_fragments_closes_with_1009) {
  auto cfg = test_config();
  cfg.max_message_bytes = 1000;
  test_server server(cfg);
  raw_client alice(server.port(), "/ws/1");
  // 600 + 600 bytes: each fragment fits, the message does not. What follows
  // is skipped; the close handshake still completes.
  alice.write(client_frame(0x01, std::string(600, 'a')) +
              client_frame(0x80, std::string(600, 'b')) +
              client_frame(fin_text, send_text(1, "after")));
  BOOST_TEST(alice.close_code() == 1009);
  alice.write(client_frame(fin_close, std::string("\x03\xe8", 2)));
  BOOST_TEST(alice.ended());
  server_still_relays(server.port());
}
