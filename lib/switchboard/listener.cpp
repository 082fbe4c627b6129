#include "switchboard/listener.hpp"

#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "switchboard/config.hpp"
#include "switchboard/log.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/router.hpp"
#include "switchboard/session.hpp"
#include "switchboard/spawn.hpp"

namespace switchboard {

namespace {

namespace http = beast::http;
namespace websocket = beast::websocket;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// PROTOCOL.md section 1: a request header block over 8 KiB gets 431.
constexpr std::uint32_t header_limit = 8 * 1024;
// Requests before the upgrade carry no body worth reading.
constexpr std::uint64_t body_limit = 8 * 1024;

asio::awaitable<void> write_answer(beast::tcp_stream& stream, unsigned version,
                                   const http_answer& answer) {
  http::response<http::string_body> response{static_cast<http::status>(answer.status), version};
  response.set(http::field::server, "switchboard");
  if (!answer.content_type.empty()) response.set(http::field::content_type, answer.content_type);
  for (const auto& [name, value] : answer.headers)
    response.set(name, value);
  // One request per connection before the upgrade: nothing can be smuggled
  // behind a first request, and no idle keep-alive connection is held.
  response.keep_alive(false);
  response.body() = answer.body;
  response.prepare_payload();
  co_await http::async_write(stream, response, use_tuple);
  boost::system::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> http_session(asio::ip::tcp::socket socket, services& s) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  http::request_parser<http::string_body> parser;
  parser.header_limit(header_limit);
  parser.body_limit(body_limit);
  stream.expires_after(s.cfg.handshake_timeout);

  auto [ec, bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
  if (ec == http::error::header_limit) {
    s.stats.count_rejection(431);
    co_await write_answer(stream, 11,
                          error_answer(431, "header_too_large", "request headers over 8 KiB"));
    co_return;
  }
  if (ec) co_return;  // timed out, closed, or not HTTP: nobody to answer
  auto request = parser.release();

  route_request route;
  route.method = request.method_string();
  route.target = request.target();
  route.websocket_upgrade = websocket::is_upgrade(request);
  if (auto origin = request.find(http::field::origin); origin != request.end())
    route.origin = origin->value();
  if (auto auth = request.find(http::field::authorization); auth != request.end())
    route.authorization = auth->value();
  if (auto host = request.find(http::field::host); host != request.end())
    route.host = host->value();
  if (auto tag = request.find(http::field::if_none_match); tag != request.end())
    route.if_none_match = tag->value();

  auto result = s.routes.route(route);
  if (auto* answer = std::get_if<http_answer>(&result)) {
    co_await write_answer(stream, request.version(), *answer);
    co_return;
  }
  auto session = std::get<session_request>(result);
  if (!s.routes.acquire_slot()) {
    co_await write_answer(stream, request.version(),
                          error_answer(503, "too_many_connections", "--max-connections reached"));
    co_return;
  }

  websocket_stream ws(stream.release_socket());
  ws.set_option(websocket::stream_base::timeout{s.cfg.handshake_timeout,
                                                websocket::stream_base::none(), false});
  ws.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
    response.set(http::field::server, "switchboard");
  }));
  auto [accept_ec] = co_await ws.async_accept(request, use_tuple);
  if (!accept_ec) co_await run_session(std::move(ws), session, s);
  s.routes.release_slot();
}

}  // namespace

listener::listener(asio::io_context& context, const asio::ip::tcp::endpoint& endpoint)
    : context_(context), acceptor_(context) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

asio::awaitable<void> listener::run(services& s) {
  for (;;) {
    // Each connection gets its own strand: its coroutines never run twice at
    // once, whatever --threads is.
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(context_), use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      // Out of file descriptors, most likely: wait instead of spinning.
      SB_LOG(warn) << "accept failed: " << ec.message();
      asio::steady_timer pause(context_, std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    boost::system::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, http_session(std::move(socket), s), log_exception("connection"));
  }
}

void listener::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

}  // namespace switchboard
