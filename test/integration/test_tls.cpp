// TLS (PROTOCOL.md section 5, issue 4): wss and https on one port with a
// self-signed certificate made at test time with the openssl command, TLS 1.2
// as the floor, a plain-text client dropped without disturbing anyone, and
// clients that stall in the TLS handshake dropped after --handshake-timeout.
#define BOOST_TEST_MODULE tls
#include <boost/test/unit_test.hpp>

#include <openssl/ssl.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>

#include "support/test_support.hpp"

using namespace switchboard;
using namespace switchboard::test;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

// A key and a self-signed certificate for 127.0.0.1, made once per run.
struct certificate {
  certificate() {
    dir =
        std::filesystem::temp_directory_path() / ("switchboard-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string command =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
        (dir / "key.pem").string() + " -out " + (dir / "cert.pem").string() + " 2>/dev/null";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("openssl req failed");
  }
  ~certificate() { std::filesystem::remove_all(dir); }
  std::string cert() const { return (dir / "cert.pem").string(); }
  std::string key() const { return (dir / "key.pem").string(); }
  std::filesystem::path dir;
};

const certificate& test_certificate() {
  static const certificate c;
  return c;
}

config tls_config() {
  auto cfg = test_config();
  cfg.tls_cert = test_certificate().cert();
  cfg.tls_key = test_certificate().key();
  return cfg;
}

// A client context that trusts only the test certificate.
std::unique_ptr<ssl::context> client_context(int min_version = TLS1_2_VERSION,
                                             int max_version = 0) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->load_verify_file(test_certificate().cert());
  ctx->set_verify_mode(ssl::verify_peer);
  // Old protocol versions are off by default on the client too; open them so
  // that a refusal is the server's.
  SSL_CTX_set_security_level(ctx->native_handle(), 0);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), min_version);
  SSL_CTX_set_max_proto_version(ctx->native_handle(), max_version);
  return ctx;
}

// Runs `op` on `context` for at most `timeout`; throws on an error or a hang.
template <class Op>
void run_for(asio::io_context& context, tcp::socket& socket, std::chrono::milliseconds timeout,
             const char* what, Op&& op) {
  bool done = false;
  boost::system::error_code result;
  op([&](boost::system::error_code ec, auto&&...) {
    done = true;
    result = ec;
  });
  context.restart();
  context.run_for(timeout);
  if (!done) {
    boost::system::error_code ignored;
    socket.close(ignored);
    context.restart();
    context.run();
    throw std::runtime_error(std::string(what) + ": timed out");
  }
  if (result) throw boost::system::system_error(result, what);
}

// A wss client with a deadline on every wait.
class wss_client {
 public:
  wss_client(std::uint16_t port, const std::string& target, ssl::context& tls)
      : ws_(context_, tls) {
    socket().connect({asio::ip::address_v4::loopback(), port});
    run("TLS handshake",
        [&](auto h) { ws_.next_layer().async_handshake(ssl::stream_base::client, h); });
    run("upgrade", [&](auto h) { ws_.async_handshake("127.0.0.1", target, h); });
    welcome_ = read();
    BOOST_REQUIRE_EQUAL(type_of(welcome_), 0);
  }

  const json::object& welcome() const { return welcome_; }
  void send(const json::object& frame) {
    const auto text = json::serialize(frame);
    run("write", [&](auto h) { ws_.async_write(asio::buffer(text), h); });
  }
  json::object read() {
    buffer_.clear();
    run("read", [&](auto h) { ws_.async_read(buffer_, h); });
    return parse_object(beast::buffers_to_string(buffer_.data()));
  }
  void close() {
    run("close", [&](auto h) { ws_.async_close(websocket::close_code::normal, h); });
  }
  // A ping, then the TCP connection dropped without a close handshake: the
  // server's pong may still be on its way when its session ends.
  void ping_and_drop() {
    run("ping", [&](auto h) { ws_.async_ping({}, h); });
    boost::system::error_code ignored;
    socket().close(ignored);
  }

 private:
  tcp::socket& socket() { return beast::get_lowest_layer(ws_); }
  template <class Op>
  void run(const char* what, Op&& op) {
    run_for(context_, socket(), std::chrono::milliseconds(5000), what, std::forward<Op>(op));
  }

  asio::io_context context_;
  websocket::stream<ssl::stream<tcp::socket>> ws_;
  beast::flat_buffer buffer_;
  json::object welcome_;
};

struct https_result {
  unsigned status = 0;
  std::string body;
};

https_result https_get(std::uint16_t port, const std::string& target, ssl::context& tls) {
  asio::io_context context;
  ssl::stream<tcp::socket> stream(context, tls);
  auto& socket = stream.next_layer();
  socket.connect({asio::ip::address_v4::loopback(), port});
  const auto deadline = std::chrono::milliseconds(5000);
  run_for(context, socket, deadline, "TLS handshake",
          [&](auto h) { stream.async_handshake(ssl::stream_base::client, h); });
  http::request<http::empty_body> request{http::verb::get, target, 11};
  request.set(http::field::host, "127.0.0.1");
  run_for(context, socket, deadline, "write",
          [&](auto h) { http::async_write(stream, request, h); });
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  run_for(context, socket, deadline, "read",
          [&](auto h) { http::async_read(stream, buffer, response, h); });
  return {response.result_int(), response.body()};
}

// Two wss users exchange `count` messages each way; every one arrives, in order.
void exchange(std::uint16_t port, ssl::context& tls, int count) {
  wss_client one(port, "/ws/1", tls);
  wss_client two(port, "/ws/2", tls);
  for (int i = 0; i < count; ++i) {
    one.send(send_frame(2, "to two " + std::to_string(i)));
    two.send(send_frame(1, "to one " + std::to_string(i)));
  }
  for (auto* client : {&one, &two}) {
    std::uint64_t last_seq = 0;
    int delivered = 0;
    while (delivered < count) {
      const auto frame = client->read();
      if (type_of(frame) != 1) continue;  // receipts
      BOOST_REQUIRE_GT(u64(frame.at("seq")), last_seq);
      last_seq = u64(frame.at("seq"));
      const std::string expected =
          (client == &one ? "to one " : "to two ") + std::to_string(delivered);
      BOOST_REQUIRE_EQUAL(str(frame.at("content")), expected);
      ++delivered;
    }
  }
  one.close();
  two.close();
}

}  // namespace

BOOST_AUTO_TEST_CASE(wss_relays_messages_between_users) {
  test_server server(tls_config());
  auto tls = client_context();
  wss_client one(server.port(), "/ws/1", *tls);
  wss_client two(server.port(), "/ws/2", *tls);
  BOOST_TEST(u64(one.welcome().at("receiver")) == 1u);
  one.send(send_frame(2, "over TLS", "m1"));
  const auto delivered = two.read();
  BOOST_TEST(type_of(delivered) == 1);
  BOOST_TEST(str(delivered.at("content")) == "over TLS");
  BOOST_TEST(u64(delivered.at("sender")) == 1u);
  const auto receipt = one.read();
  BOOST_TEST(type_of(receipt) == 2);
  BOOST_TEST(str(receipt.at("id")) == "m1");
  BOOST_TEST(u64(receipt.at("seq")) == u64(delivered.at("seq")));
  one.close();
  two.close();
}

BOOST_AUTO_TEST_CASE(https_serves_the_http_endpoints) {
  test_server server(tls_config());
  auto tls = client_context();
  const auto health = https_get(server.port(), "/healthz", *tls);
  BOOST_TEST(health.status == 200u);
  BOOST_TEST(health.body.find("ok") != std::string::npos);
  const auto metrics = https_get(server.port(), "/metrics", *tls);
  BOOST_TEST(metrics.status == 200u);
  BOOST_TEST(metrics.body.find("switchboard_sessions") != std::string::npos);
  const auto page = https_get(server.port(), "/", *tls);
  BOOST_TEST(page.status == 200u);
  BOOST_TEST(page.body.find("<html") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(tls_1_2_and_1_3_are_accepted) {
  test_server server(tls_config());
  auto only_1_2 = client_context(TLS1_2_VERSION, TLS1_2_VERSION);
  BOOST_TEST(https_get(server.port(), "/healthz", *only_1_2).status == 200u);
  auto only_1_3 = client_context(TLS1_3_VERSION, TLS1_3_VERSION);
  BOOST_TEST(https_get(server.port(), "/healthz", *only_1_3).status == 200u);
}

BOOST_AUTO_TEST_CASE(tls_below_1_2_is_refused) {
  test_server server(tls_config());
  for (const int version : {TLS1_VERSION, TLS1_1_VERSION}) {
    auto old = client_context(version, version);
    BOOST_CHECK_THROW(https_get(server.port(), "/healthz", *old), boost::system::system_error);
  }
  // The server is still there for a current client.
  auto tls = client_context();
  BOOST_TEST(https_get(server.port(), "/healthz", *tls).status == 200u);
}

BOOST_AUTO_TEST_CASE(a_client_that_does_not_trust_the_certificate_fails) {
  test_server server(tls_config());
  ssl::context untrusting(ssl::context::tls_client);
  untrusting.set_verify_mode(ssl::verify_peer);  // and no CA loaded
  BOOST_CHECK_THROW(https_get(server.port(), "/healthz", untrusting), boost::system::system_error);
}

BOOST_AUTO_TEST_CASE(plain_text_on_the_tls_port_is_dropped_without_disturbing_others) {
  test_server server(tls_config());
  auto tls = client_context();
  wss_client one(server.port(), "/ws/1", *tls);
  wss_client two(server.port(), "/ws/2", *tls);

  // A plain HTTP request and a plain WebSocket upgrade: no HTTP answer, the
  // connection ends.
  for (const std::string request :
       {"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "GET /ws/3 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"}) {
    asio::io_context context;
    tcp::socket plain(context);
    plain.connect({asio::ip::address_v4::loopback(), server.port()});
    asio::write(plain, asio::buffer(request));
    std::string answer(64, '\0');
    boost::system::error_code ec;
    const auto n = plain.read_some(asio::buffer(answer), ec);
    answer.resize(n);
    BOOST_TEST(answer.find("HTTP/1.1") == std::string::npos);
    BOOST_TEST(closed_by_server(context, plain, std::chrono::milliseconds(5000)));
  }

  // The sessions that were open meanwhile still work.
  one.send(send_frame(2, "still here"));
  const auto delivered = two.read();
  BOOST_TEST(str(delivered.at("content")) == "still here");
  one.close();
  two.close();
}

BOOST_AUTO_TEST_CASE(sessions_dropped_right_after_a_ping_leave_the_server_sound) {
  test_server server(tls_config());
  auto tls = client_context();
  for (int i = 0; i < 50; ++i) {
    wss_client c(server.port(), "/ws/" + std::to_string(30 + i % 5), *tls);
    c.ping_and_drop();
  }
  exchange(server.port(), *tls, 50);
}

BOOST_AUTO_TEST_CASE(stalled_tls_handshakes_are_dropped_after_the_timeout) {
  auto cfg = tls_config();
  cfg.handshake_timeout = std::chrono::seconds(2);
  test_server server(cfg);
  auto tls = client_context();

  // 150 sockets: a third send nothing, a third the first half of a
  // ClientHello, a third a whole TLS handshake and then half an HTTP request.
  asio::io_context context;
  std::vector<tcp::socket> silent;
  std::vector<std::unique_ptr<ssl::stream<tcp::socket>>> stalled_after_tls;
  const std::string half_hello("\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03", 11);
  for (int i = 0; i < 50; ++i) {
    silent.emplace_back(context).connect({asio::ip::address_v4::loopback(), server.port()});
    silent.emplace_back(context).connect({asio::ip::address_v4::loopback(), server.port()});
    asio::write(silent.back(), asio::buffer(half_hello));
    auto stream = std::make_unique<ssl::stream<tcp::socket>>(context, *tls);
    stream->next_layer().connect({asio::ip::address_v4::loopback(), server.port()});
    stream->handshake(ssl::stream_base::client);
    asio::write(*stream, asio::buffer(std::string("GET /ws/9 HTTP/1.1\r\nHost: 1")));
    stalled_after_tls.push_back(std::move(stream));
  }

  // Meanwhile two users exchange messages as fast as they can.
  exchange(server.port(), *tls, 500);

  // All of them are gone after the timeout.
  for (auto& socket : silent)
    BOOST_TEST(closed_by_server(context, socket, std::chrono::milliseconds(6000)));
  for (auto& stream : stalled_after_tls)
    BOOST_TEST(closed_by_server(context, stream->next_layer(), std::chrono::milliseconds(6000)));
}
