// The load client's own protocol code: the frame scanner against Boost.JSON's
// reading, and wire_client against a Beast server on a loopback socket (the
// upgrade, the welcome, the three lengths of a frame, a ping, masking, the
// close exchange, a refused upgrade), the address syntax of --url and
// --receiver-url, the /proc reading behind --pid, --pid2 and --redis-pid, and
// the system call counts behind --syscalls.
// Every socket test runs under a deadline.
#define BOOST_TEST_MODULE bench_client
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include "frames.hpp"
#include "process_stats.hpp"
#include "syscall_count.hpp"
#include "wire_client.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using bench::frame_view;

namespace {

// Runs an io_context until the coroutines spawned with done() have all
// ended, and fails the test if that takes longer than 10 s (a hang must not
// block the suite). Each done() keeps the coroutine's exception, rethrown by run().
class deadline_run {
 public:
  explicit deadline_run(asio::io_context& ioc) : ioc_(ioc), deadline_(ioc) {}

  auto done() {
    ++left_;
    return [this](std::exception_ptr e) {
      if (e && !failure_) failure_ = e;
      if (--left_ == 0) deadline_.cancel();
    };
  }

  void run() {
    deadline_.expires_after(std::chrono::seconds(10));
    deadline_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      expired_ = true;
      ioc_.stop();
    });
    ioc_.run();
    BOOST_REQUIRE_MESSAGE(!expired_, "the test did not finish in 10 s");
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  asio::io_context& ioc_;
  asio::steady_timer deadline_;
  int left_ = 0;
  bool expired_ = false;
  std::exception_ptr failure_;
};

bench::server_target target_of(const tcp::acceptor& acceptor, bench::protocol p) {
  bench::server_target t;
  t.host = "127.0.0.1";
  t.port = std::to_string(acceptor.local_endpoint().port());
  t.endpoints.push_back(acceptor.local_endpoint());
  t.speaks = p;
  return t;
}

}  // namespace

BOOST_AUTO_TEST_CASE(scanner_reads_compact_frames) {
  frame_view f;
  BOOST_REQUIRE(f.parse(
      R"({"type":1,"sender":3,"receiver":4,"content":"abc.1.2","seq":9,"ts":1700000000000,"id":"17"})"));
  BOOST_TEST(f.u64(frame_view::type).value() == 1u);
  BOOST_TEST(f.u64(frame_view::sender).value() == 3u);
  BOOST_TEST(f.u64(frame_view::receiver).value() == 4u);
  BOOST_TEST(std::string(f.str(frame_view::content).value()) == "abc.1.2");
  BOOST_TEST(f.u64(frame_view::seq).value() == 9u);
  BOOST_TEST(f.u64(frame_view::id).value() == 17u);  // "17" and 17 are the same id
  BOOST_TEST(!f.has(frame_view::code));
  BOOST_TEST(!f.str(frame_view::type).has_value());  // a number is not a string
}

// Group copies and receipts (section 10) and STATUS frames (section 11).
BOOST_AUTO_TEST_CASE(scanner_reads_group_and_status_fields) {
  frame_view f;
  BOOST_REQUIRE(f.parse(
      R"({"type":1,"sender":3,"group":7,"receiver":4,"content":"c","seq":9,"gseq":12,"ts":1,"id":5})"));
  BOOST_TEST(f.u64(frame_view::group).value() == 7u);
  BOOST_TEST(f.u64(frame_view::gseq).value() == 12u);
  BOOST_TEST(f.u64(frame_view::seq).value() == 9u);
  BOOST_REQUIRE(f.parse(R"({"type":5,"receiver":4,"state":"read","upto":33,"seq":2,"ts":1})"));
  BOOST_TEST(std::string(f.str(frame_view::state).value()) == "read");
  BOOST_TEST(f.u64(frame_view::upto).value() == 33u);
  BOOST_TEST(!f.has(frame_view::gseq));
  // The same through Boost.JSON (a nested value elsewhere).
  BOOST_REQUIRE(f.parse(R"({"x":[1],"type":5,"state":"delivered","upto":4})"));
  BOOST_TEST(std::string(f.str(frame_view::state).value()) == "delivered");
  BOOST_TEST(f.u64(frame_view::upto).value() == 4u);
}

BOOST_AUTO_TEST_CASE(scanner_falls_back_to_json) {
  frame_view f;
  // An escape in a field the bench reads, spaces, a nested value elsewhere.
  BOOST_REQUIRE(f.parse(R"( { "type" : 4 , "x" : {"y":[1,2]}, "code":"bad\"json" } )"));
  BOOST_TEST(f.u64(frame_view::type).value() == 4u);
  BOOST_TEST(f.text(frame_view::code) == "bad\"json");
  // An escape in a field it skips stays on the fast path, and is skipped whole.
  BOOST_REQUIRE(f.parse(R"({"other":"a\"b,\"c\":1","type":2})"));
  BOOST_TEST(f.u64(frame_view::type).value() == 2u);
  BOOST_TEST(!f.has(frame_view::content));
  // Not numbers the bench can use.
  BOOST_REQUIRE(f.parse(R"({"type":-1,"seq":1.5,"id":"x"})"));
  BOOST_TEST(!f.u64(frame_view::type).has_value());
  BOOST_TEST(!f.u64(frame_view::seq).has_value());
  BOOST_TEST(!f.u64(frame_view::id).has_value());
  BOOST_TEST(f.text(frame_view::seq) == "1.5");
  // Not objects, or not JSON.
  BOOST_TEST(!f.parse("[1]"));
  BOOST_TEST(!f.parse(R"({"type":1,})"));
  BOOST_TEST(!f.parse(R"({"type":1} x)"));
  BOOST_TEST(!f.parse(""));
  BOOST_TEST(f.parse("{}"));
  BOOST_TEST(!f.has(frame_view::type));
}

// A Beast server sends the welcome, frames of the three length forms and a
// ping; the client answers one message and closes.
BOOST_AUTO_TEST_CASE(wire_client_talks_websocket) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const std::string big(70000, 'b');  // a 64-bit length
  const std::string mid(300, 'm');    // a 16-bit length
  std::vector<std::string> received;  // by the client
  std::string from_client;
  bool pong_seen = false;
  bool server_saw_close = false;
  deadline_run test(ioc);

  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        websocket::stream<tcp::socket> ws(co_await acceptor.async_accept(asio::use_awaitable));
        ws.control_callback([&](websocket::frame_type kind, beast::string_view) {
          if (kind == websocket::frame_type::pong) pong_seen = true;
        });
        co_await ws.async_accept(asio::use_awaitable);
        ws.text(true);
        co_await ws.async_write(asio::buffer(std::string(R"({"type":0,"seq":5})")),
                                asio::use_awaitable);
        co_await ws.async_write(asio::buffer(std::string("one")), asio::use_awaitable);
        co_await ws.async_write(asio::buffer(mid), asio::use_awaitable);
        co_await ws.async_ping("p", asio::use_awaitable);
        co_await ws.async_write(asio::buffer(big), asio::use_awaitable);
        beast::flat_buffer buffer;
        co_await ws.async_read(buffer, asio::use_awaitable);
        from_client = beast::buffers_to_string(buffer.data());
        buffer.clear();
        auto [ec, n] = co_await ws.async_read(buffer, asio::as_tuple(asio::use_awaitable));
        server_saw_close = ec == websocket::error::closed;
      },
      test.done());

  bench::wire_client client(ioc, 4096);  // smaller than `big`: the buffer must grow
  bench::end_reason end;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        auto r = co_await client.open(target_of(acceptor, bench::protocol::switchboard), 42);
        if (!r.ok) throw std::runtime_error(r.error);
        BOOST_TEST(r.welcome_seq == 5u);
        end = co_await client.read_loop([&](std::string_view m) {
          received.emplace_back(m);
          if (m.size() == big.size()) {
            client.append_text("hello from the client");
            client.flush();
            client.close();
          }
        });
      },
      test.done());

  test.run();
  BOOST_REQUIRE_EQUAL(received.size(), 3u);
  BOOST_TEST(received[0] == "one");
  BOOST_TEST(received[1] == mid);
  BOOST_TEST(received[2] == big);
  BOOST_TEST(from_client == "hello from the client");  // masked, and Beast unmasked it
  BOOST_TEST(pong_seen);
  BOOST_TEST(server_saw_close);
  BOOST_TEST(end.code.value_or(0) == 1000u);  // the server answered our close
  BOOST_TEST(end.ec == asio::error::eof);     // then ended the connection
  BOOST_TEST(!end.protocol_error);
}

// Without a welcome (the seed design), the first frame is a message.
BOOST_AUTO_TEST_CASE(wire_client_seed_has_no_welcome) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  std::vector<std::string> received;
  deadline_run test(ioc);
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        websocket::stream<tcp::socket> ws(co_await acceptor.async_accept(asio::use_awaitable));
        co_await ws.async_accept(asio::use_awaitable);
        co_await ws.async_write(asio::buffer(std::string(R"({"type":1})")), asio::use_awaitable);
        co_await ws.async_close(websocket::close_code::going_away, asio::use_awaitable);
      },
      test.done());
  bench::wire_client client(ioc);
  bench::end_reason end;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        auto r = co_await client.open(target_of(acceptor, bench::protocol::seed), 7);
        if (!r.ok) throw std::runtime_error(r.error);
        end = co_await client.read_loop([&](std::string_view m) { received.emplace_back(m); });
      },
      test.done());
  test.run();
  BOOST_REQUIRE_EQUAL(received.size(), 1u);
  BOOST_TEST(received[0] == R"({"type":1})");
  BOOST_TEST(end.code.value_or(0) == 1001u);  // the server's close, answered
}

BOOST_AUTO_TEST_CASE(wire_client_reports_a_refused_upgrade) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  deadline_run test(ioc);
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        auto sock = co_await acceptor.async_accept(asio::use_awaitable);
        char request[4096];
        co_await sock.async_read_some(asio::buffer(request), asio::use_awaitable);
        co_await asio::async_write(
            sock, asio::buffer(std::string("HTTP/1.1 503 Service Unavailable\r\n\r\n")),
            asio::use_awaitable);
      },
      test.done());
  bench::wire_client client(ioc);
  bench::open_result r;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        r = co_await client.open(target_of(acceptor, bench::protocol::switchboard), 7);
      },
      test.done());
  test.run();
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.error.find("503") != std::string::npos, r.error);
}

// --url and --receiver-url: HOST:PORT, ws:// and a path allowed, IPv6 bracketed.
BOOST_AUTO_TEST_CASE(addresses_of_url_and_receiver_url) {
  std::string host = "unchanged", port = "unchanged";
  BOOST_TEST(bench::parse_address("127.0.0.1:8080", host, port));
  BOOST_TEST(host == "127.0.0.1");
  BOOST_TEST(port == "8080");
  BOOST_TEST(bench::parse_address("ws://node-b:9002/ws/7", host, port));
  BOOST_TEST(host == "node-b");
  BOOST_TEST(port == "9002");
  BOOST_TEST(bench::parse_address("[::1]:81", host, port));
  BOOST_TEST(host == "::1");
  BOOST_TEST(port == "81");
  for (const char* bad : {"", "8080", ":8080", "host:", "ws://host", "host/x:1"}) {
    host = port = "unchanged";
    BOOST_TEST(!bench::parse_address(bad, host, port), bad);
    BOOST_TEST(host == "unchanged");
    BOOST_TEST(port == "unchanged");
  }
}

// The CPU time read from /proc/PID/stat (how --pid, --pid2 and --redis-pid
// measure another process) agrees with this process's own getrusage.
BOOST_AUTO_TEST_CASE(cpu_time_from_proc_matches_rusage) {
  volatile std::uint64_t x = 1;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(60);
  while (std::chrono::steady_clock::now() < until)
    for (int i = 0; i < 1000; ++i)
      x = x * 6364136223846793005ull + 1;
  auto from_proc = bench::process_cpu_seconds(static_cast<long>(getpid()));
  double own = bench::self_cpu_seconds();
  BOOST_REQUIRE(from_proc.has_value());
  // /proc counts in clock ticks (10 ms here): within a tick or two.
  BOOST_TEST(*from_proc <= own + 0.011);
  BOOST_TEST(*from_proc >= own - 0.03);
  BOOST_TEST(!bench::process_cpu_seconds(0).has_value());  // no /proc/0
}

// Issue 14 goal 4's figure: the busiest thread's share of a process's CPU,
// over the threads present before and after.
BOOST_AUTO_TEST_CASE(busiest_share_of_threads) {
  BOOST_TEST(*bench::busiest_share({{1, 10.0}, {2, 5.0}}, {{1, 13.0}, {2, 6.0}}) == 0.75);
  // A thread that started (or ended) within the window is left out.
  BOOST_TEST(*bench::busiest_share({{1, 10.0}}, {{1, 11.0}, {3, 50.0}}) == 1.0);
  BOOST_TEST(!bench::busiest_share({{1, 1.0}}, {{1, 1.0}}).has_value());

  // Read from /proc: a thread that spins while this one sleeps does almost
  // all of this process's work.
  std::atomic<bool> stop_spinning{false}, spun{false};
  std::thread spinner([&] {
    const double start = bench::self_cpu_seconds();
    while (bench::self_cpu_seconds() - start < 0.3) {
    }
    spun = true;
    while (!stop_spinning)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  const auto before = bench::thread_cpu_seconds(0);
  BOOST_TEST(before.size() >= 2u);
  while (!spun)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto after = bench::thread_cpu_seconds(static_cast<long>(getpid()));
  stop_spinning = true;
  spinner.join();
  const auto share = bench::busiest_share(before, after);
  BOOST_REQUIRE(share.has_value());
  BOOST_TEST(*share > 0.8);
}

// --syscalls: the counter sees this process's own calls, one by one where
// the tracepoints can be opened (root), else the read/write family through
// /proc/PID/io; sendto on a socket pair is counted by name.
BOOST_AUTO_TEST_CASE(syscall_counter_counts_this_process) {
  int fds[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  bench::syscall_counter counter(static_cast<long>(getpid()));
  const auto before = counter.read();
  const char byte = 'x';
  char in[2];
  int reads = 0;
  for (int i = 0; i < 200; ++i) {
    BOOST_REQUIRE(::sendto(fds[0], &byte, 1, 0, nullptr, 0) == 1);
    BOOST_REQUIRE(::write(fds[0], &byte, 1) == 1);
    for (std::size_t got = 0; got < sizeof in; ++reads) {
      const auto n = ::read(fds[1], in + got, sizeof in - got);
      BOOST_REQUIRE(n > 0);
      got += static_cast<std::size_t>(n);
    }
  }
  const auto after = counter.read();
  ::close(fds[0]);
  ::close(fds[1]);
  BOOST_TEST_MESSAGE("syscall counter source: " << counter.source());
  if (counter.source() == "none") return;  // neither tracepoints nor /proc/PID/io here
  BOOST_REQUIRE(before.has_value());
  BOOST_REQUIRE(after.has_value());
  if (counter.source() == "tracepoints") {
    BOOST_TEST(after->total - before->total >= 600u);
    BOOST_TEST(after->by_name.at("sendto") - before->by_name.at("sendto") == 200u);
    BOOST_TEST(after->by_name.at("write") - before->by_name.at("write") >= 200u);
    // Its own reads of the counters count too.
    BOOST_TEST(after->by_name.at("read") - before->by_name.at("read") >=
               static_cast<std::uint64_t>(reads));
  } else {
    BOOST_TEST(counter.source() == "proc_io");
    BOOST_TEST(after->total - before->total >= 400u);  // read and write; not sendto
  }
}
