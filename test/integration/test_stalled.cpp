// Clients that stall before their session starts (issue 4): hundreds of them
// cannot starve normal users, and each is dropped after --handshake-timeout,
// whatever it sent. (The same over TLS is in test_tls.cpp.)
#define BOOST_TEST_MODULE stalled
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "support/test_support.hpp"

using namespace switchboard;
using namespace switchboard::test;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

BOOST_AUTO_TEST_CASE(three_hundred_stalled_sockets_do_not_starve_two_users) {
  auto cfg = test_config();
  cfg.handshake_timeout = std::chrono::seconds(2);
  test_server server(cfg);

  // 100 send nothing, 100 half a request line, 100 a whole upgrade request
  // but for its last empty line.
  const std::vector<std::string> openings = {
      "", "GET /ws/9 HT",
      "GET /ws/9 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"};
  asio::io_context context;
  std::vector<tcp::socket> stalled;
  for (int i = 0; i < 300; ++i) {
    auto& socket = stalled.emplace_back(context);
    socket.connect({asio::ip::address_v4::loopback(), server.port()});
    const auto& opening = openings[static_cast<std::size_t>(i) % openings.size()];
    if (!opening.empty()) asio::write(socket, asio::buffer(opening));
  }

  // Meanwhile two users exchange messages at full speed: every one arrives,
  // in order, with its receipt.
  constexpr int count = 2000;
  ws_client one(server.port(), "/ws/1");
  ws_client two(server.port(), "/ws/2");
  for (int i = 0; i < count; ++i) {
    one.send(send_frame(2, "to two " + std::to_string(i), "a" + std::to_string(i)));
    two.send(send_frame(1, "to one " + std::to_string(i), "b" + std::to_string(i)));
  }
  for (auto* client : {&one, &two}) {
    const std::string prefix = client == &one ? "to one " : "to two ";
    std::uint64_t last_seq = 0;
    int delivered = 0;
    int receipts = 0;
    while (delivered < count || receipts < count) {
      const auto frame = client->read();
      if (type_of(frame) == 2) {
        ++receipts;
        continue;
      }
      BOOST_REQUIRE_EQUAL(type_of(frame), 1);
      BOOST_REQUIRE_GT(u64(frame.at("seq")), last_seq);
      last_seq = u64(frame.at("seq"));
      BOOST_REQUIRE_EQUAL(str(frame.at("content")), prefix + std::to_string(delivered));
      ++delivered;
    }
  }

  // Every stalled socket is closed by the server once the timeout passed.
  int closed = 0;
  for (auto& socket : stalled)
    closed += closed_by_server(context, socket, std::chrono::milliseconds(6000)) ? 1 : 0;
  BOOST_TEST(closed == 300);

  // And the users are still connected.
  one.send(send_frame(2, "after"));
  BOOST_TEST(str(two.read_until([](const auto& f) { return type_of(f) == 1; }).at("content")) ==
             "after");
}
