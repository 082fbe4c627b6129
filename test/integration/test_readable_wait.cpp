// wait_until_readable (readable_wait.hpp), the readiness wait of a clear-text
// session's reader, on a real loopback socket: it completes when data
// arrives, once per edge (not again while the socket stays drained), at once
// for data that came while nothing waited, on the peer's close, and with
// operation_aborted on close() and on cancellation, as socket.async_wait
// does; a new socket's first wait may complete at once (prime()). Every
// wait runs under a deadline. And the reads the session makes before it
// waits again (read_reporting_rest) say when a FIN or a reset is left.
#define BOOST_TEST_MODULE readable_wait
// The wait without epoll_ctl, whatever the build's SWITCHBOARD_READABLE_WAIT
// (on by default): this file's instantiations are its own.
#ifndef SWITCHBOARD_READABLE_WAIT
#define SWITCHBOARD_READABLE_WAIT 1
#endif
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "switchboard/readable_wait.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

namespace {

// A connected pair on loopback: `server` is waited on, `client` writes.
struct pair {
  asio::io_context context;
  tcp::socket server{context};
  tcp::socket client{context};
  std::optional<error_code> done;  // the wait's outcome, once it completed

  pair() {
    tcp::acceptor acceptor(context, {asio::ip::address_v4::loopback(), 0});
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
    server.non_blocking(true);
  }
  void wait() {
    done.reset();
    switchboard::wait_until_readable(server, [this](error_code ec) { done = ec; });
  }
  // Runs the context until the wait completed or `limit` passed.
  bool completes_within(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    context.restart();
    while (!done && std::chrono::steady_clock::now() < until)
      context.run_one_for(until - std::chrono::steady_clock::now());
    return done.has_value();
  }
  void send(const char* text) { asio::write(client, asio::buffer(text, std::strlen(text))); }
  // A new socket may be readable as far as the reactor knows: its first
  // wait may complete at once (spuriously; the caller's read then finds
  // nothing). Leaves no wait pending, and the reactor knowing that the
  // socket was drained.
  void prime() {
    wait();
    if (!completes_within(20ms)) {
      send("x");
      BOOST_REQUIRE(completes_within(2000ms));
    }
    drain();
  }
  // Reads everything there is; the count of bytes.
  std::size_t drain() {
    char buffer[256];
    std::size_t total = 0;
    for (;;) {
      error_code ec;
      const auto n = server.read_some(asio::buffer(buffer), ec);
      if (ec == asio::error::would_block) return total;
      BOOST_REQUIRE(!ec);
      total += n;
    }
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(completes_on_data_then_waits_for_the_next) {
  pair p;
  p.prime();
  p.wait();
  BOOST_TEST(!p.completes_within(50ms));
  p.send("a");
  BOOST_REQUIRE(p.completes_within(2000ms));
  BOOST_TEST(!*p.done);
  BOOST_TEST(p.drain() == 1u);
  // Drained: the next wait is queued, not completed at once.
  p.wait();
  BOOST_TEST(!p.completes_within(50ms));
  p.send("bc");
  BOOST_REQUIRE(p.completes_within(2000ms));
  BOOST_TEST(!*p.done);
  BOOST_TEST(p.drain() == 2u);
}

BOOST_AUTO_TEST_CASE(data_that_came_meanwhile_completes_the_next_wait) {
  pair p;
  p.prime();
  p.wait();
  p.send("a");
  BOOST_REQUIRE(p.completes_within(2000ms));
  BOOST_TEST(p.drain() == 1u);
  // Data arrives while nothing waits, and the reactor sees it meanwhile
  // (a timer keeps the context polling epoll).
  asio::steady_timer keep(p.context, std::chrono::hours(1));
  keep.async_wait([](error_code) {});
  p.send("b");
  p.context.restart();
  for (int i = 0; i < 5; ++i) {
    p.context.poll();
    std::this_thread::sleep_for(2ms);
  }
  p.wait();
  BOOST_REQUIRE(p.completes_within(2000ms));
  BOOST_TEST(!*p.done);
  BOOST_TEST(p.drain() == 1u);
  keep.cancel();
}

BOOST_AUTO_TEST_CASE(the_peers_close_completes_it) {
  pair p;
  p.prime();
  p.wait();
  BOOST_TEST(!p.completes_within(20ms));
  p.client.close();
  BOOST_REQUIRE(p.completes_within(2000ms));
  BOOST_TEST(!*p.done);
  char byte;
  error_code ec;
  p.server.read_some(asio::buffer(&byte, 1), ec);
  BOOST_TEST(ec == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(close_aborts_it) {
  pair p;
  p.prime();
  p.wait();
  BOOST_TEST(!p.completes_within(20ms));
  p.server.close();
  BOOST_REQUIRE(p.completes_within(2000ms));
  BOOST_TEST(*p.done == asio::error::operation_aborted);
  // On a closed socket it completes at once, with an error.
  p.wait();
  BOOST_REQUIRE(p.completes_within(2000ms));
  BOOST_TEST(!!*p.done);
}

BOOST_AUTO_TEST_CASE(cancellation_aborts_it) {
  pair p;
  p.prime();
  asio::cancellation_signal signal;
  p.done.reset();
  switchboard::wait_until_readable(
      p.server, asio::bind_cancellation_slot(signal.slot(), [&p](error_code ec) { p.done = ec; }));
  BOOST_TEST(!p.completes_within(20ms));
  signal.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(p.completes_within(2000ms));
  BOOST_TEST(*p.done == asio::error::operation_aborted);
  // The socket still works: the next wait completes on data.
  p.wait();
  p.send("a");
  BOOST_REQUIRE(p.completes_within(2000ms));
  BOOST_TEST(!*p.done);
}

// What the session's reader relies on to wait with it (readable_wait.hpp):
// each read says whether anything is left, the peer's FIN included, so that
// a FIN that came in the same edge as data is found without another edge.
BOOST_AUTO_TEST_CASE(a_read_says_what_is_left_the_peers_close_included) {
  pair p;
  BOOST_REQUIRE(switchboard::report_what_is_left(p.server));
  p.prime();
  p.wait();
  p.send("abcdef");
  p.client.close();  // the FIN right behind the data
  BOOST_REQUIRE(p.completes_within(2000ms));
  std::this_thread::sleep_for(20ms);  // both there before the first read
  char buffer[4];
  error_code ec;
  bool left = false;
  BOOST_TEST(switchboard::read_reporting_rest(p.server, asio::buffer(buffer), ec, left) == 4u);
  BOOST_TEST(!ec);
  BOOST_TEST(left);  // two bytes and the FIN
  BOOST_TEST(switchboard::read_reporting_rest(p.server, asio::buffer(buffer), ec, left) == 2u);
  BOOST_TEST(!ec);
  BOOST_TEST(left);  // a short read, and still the FIN to read
  BOOST_TEST(switchboard::read_reporting_rest(p.server, asio::buffer(buffer), ec, left) == 0u);
  BOOST_TEST(ec == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(a_read_that_fills_its_buffer_may_say_nothing_is_left) {
  pair p;
  BOOST_REQUIRE(switchboard::report_what_is_left(p.server));
  p.send("abcd");
  std::this_thread::sleep_for(20ms);
  char buffer[4];
  error_code ec;
  bool left = true;
  BOOST_TEST(switchboard::read_reporting_rest(p.server, asio::buffer(buffer), ec, left) == 4u);
  BOOST_TEST(!ec);
  BOOST_TEST(!left);
  BOOST_TEST(switchboard::read_reporting_rest(p.server, asio::buffer(buffer), ec, left) == 0u);
  BOOST_TEST(ec == asio::error::would_block);
}

// A reset is not counted as something left (TCP_INQ counts only bytes and
// the FIN): a read that came with one says so from the events epoll
// reported with the edge.
BOOST_AUTO_TEST_CASE(a_reset_that_came_with_the_data_is_something_left) {
  pair p;
  BOOST_REQUIRE(switchboard::report_what_is_left(p.server));
  p.prime();
  p.wait();
  p.send("abcdef");
  p.client.set_option(asio::socket_base::linger(true, 0));
  p.client.close();                   // a reset right behind the data
  std::this_thread::sleep_for(20ms);  // both there before epoll reports the edge
  BOOST_REQUIRE(p.completes_within(2000ms));
  char buffer[16];
  error_code ec;
  bool left = false;
  BOOST_TEST(switchboard::read_reporting_rest(p.server, asio::buffer(buffer), ec, left) == 6u);
  BOOST_TEST(!ec);
  BOOST_TEST(left);
  switchboard::read_reporting_rest(p.server, asio::buffer(buffer), ec, left);
  BOOST_TEST(ec == asio::error::connection_reset);
}
