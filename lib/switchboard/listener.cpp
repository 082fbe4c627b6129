#include "switchboard/listener.hpp"

#include <chrono>
#include <optional>
#include <sstream>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "switchboard/api.hpp"
#include "switchboard/config.hpp"
#include "switchboard/hub.hpp"
#include "switchboard/log.hpp"
#include "switchboard/log_throttle.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/router.hpp"
#include "switchboard/session.hpp"
#include "switchboard/spawn.hpp"
#include "switchboard/store/store.hpp"
#include "switchboard/transport.hpp"

namespace switchboard {

namespace {

namespace http = beast::http;
namespace websocket = beast::websocket;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// PROTOCOL.md section 1: a request header block over 8 KiB gets 431.
constexpr std::uint32_t header_limit = 8 * 1024;
// Requests before the upgrade carry no body worth reading.
constexpr std::uint64_t body_limit = 8 * 1024;

asio::awaitable<void> write_answer(transport& stream, unsigned version, const http_answer& answer) {
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
  co_await stream.async_flush(use_tuple);
  stream.shutdown_send();
}

// One session's description, taken on its own I/O thread.
asio::awaitable<std::optional<session_info>> describe_there(session_ptr session) {
  co_return describe(*session);
}

// GET /api/sessions: the hub lists the user's sessions, then each is
// described on its own I/O thread, where its state lives (session.hpp).
// Every argument of a co_await is a named variable: GCC 12 (debugging.md).
asio::awaitable<http_answer> answer(const api::sessions_query& query, services& s) {
  const auto listing = co_await s.registry.sessions_of(query.user);
  std::vector<session_info> sessions;
  for (const auto& listed : listing) {
    auto there = describe_there(listed.session);
    auto info =
        co_await asio::co_spawn(listed.session->executor(), std::move(there), asio::use_awaitable);
    if (!info) continue;  // ended meanwhile
    info->live = listed.live;
    info->from = listed.from;
    sessions.push_back(std::move(*info));
  }
  co_return http_answer{200, "application/json", api::sessions_body(query.user, sessions), {}};
}

// The group endpoints (PROTOCOL.md section 10): the store worker does the
// change or the read, in order with the SENDs, and answers on its own
// thread through a channel.
asio::awaitable<store::request::membership::answer> ask_store(services& s,
                                                              store::request::membership r) {
  using answer_type = store::request::membership::answer;
  using reply_channel =
      asio::experimental::concurrent_channel<void(boost::system::error_code, answer_type)>;
  const auto executor = co_await asio::this_coro::executor;
  auto reply = std::make_shared<reply_channel>(executor, 1);
  r.done = [reply](answer_type a) { reply->try_send(boost::system::error_code{}, std::move(a)); };
  store::store_request request = std::move(r);
  co_await s.store.submit(std::move(request));
  auto [ec, answer] = co_await reply->async_receive(use_tuple);
  co_return std::move(answer);
}

http_answer store_unavailable() {
  return error_answer(503, "unavailable", "the store cannot take this now; try again");
}

asio::awaitable<http_answer> answer(const api::member_change& change, services& s) {
  using op = store::request::membership::op;
  store::request::membership r;
  r.what = change.add ? op::add : op::remove;
  r.group = change.group;
  r.user = change.user;
  const auto answered = co_await ask_store(s, std::move(r));
  if (!answered.stored) co_return store_unavailable();
  if (answered.change == store::membership_change::full)
    co_return error_answer(409, "group_full", "the group has --max-group-members members");
  co_return http_answer{204, "", "", {}};
}

// A GET of a membership list: the ids the store read, in the body that
// `body` writes for `owner` (the group or the user asked about).
using list_body = std::string (*)(std::uint64_t, const std::vector<std::uint64_t>&);
asio::awaitable<http_answer> list_answer(services& s, store::request::membership r, list_body body,
                                         std::uint64_t owner) {
  const auto answered = co_await ask_store(s, std::move(r));
  if (!answered.stored) co_return store_unavailable();
  co_return http_answer{200, "application/json", body(owner, answered.ids), {}};
}

asio::awaitable<http_answer> answer(const api::members_query& query, services& s) {
  store::request::membership r;
  r.what = store::request::membership::op::members;
  r.group = query.group;
  auto listing = list_answer(s, std::move(r), api::members_body, query.group);
  co_return co_await std::move(listing);
}

asio::awaitable<http_answer> answer(const api::groups_query& query, services& s) {
  store::request::membership r;
  r.what = store::request::membership::op::groups_of;
  r.user = query.user;
  auto listing = list_answer(s, std::move(r), api::groups_body, query.user);
  co_return co_await std::move(listing);
}

using websocket_stream = websocket::stream<transport>;

// A connection whose upgrade was accepted; it holds one --max-connections slot.
struct upgraded {
  transport io;
  session_request session;
};

// "ADDR:PORT" of the peer, for log lines; only asked for when the line is
// logged.
std::string remote_of(transport& stream) {
  boost::system::error_code ec;
  const auto peer = stream.socket().remote_endpoint(ec);
  if (ec) return "?";
  std::ostringstream text;
  text << peer;
  return std::move(text).str();
}

// The HTTP part of a connection, up to the upgrade. It is a coroutine of its
// own so that all it holds (the request, its buffer, the parser, the deadline)
// is freed before the session starts: an idle session keeps only what it
// needs (docs/performance.md, memory per idle session).
asio::awaitable<std::optional<upgraded>> upgrade(transport stream, services& s) {
  std::optional<upgraded> result;
  // --handshake-timeout bounds the TLS handshake and the request; Beast's
  // own timeout then bounds the upgrade. A client that stalls anywhere in
  // between loses its socket, whatever it sent.
  asio::steady_timer deadline(stream.get_executor(), s.cfg.handshake_timeout);
  deadline.async_wait([&stream](boost::system::error_code ec) {
    if (!ec) stream.close();
  });
  if (stream.is_tls()) {
    auto [ec] = co_await stream.async_handshake(use_tuple);
    if (ec) {
      // A plain-text client on the TLS port, a bad hello, or a timeout.
      SB_LOG(debug).field("remote", remote_of(stream)) << "TLS handshake failed: " << ec.message();
      co_return result;
    }
  }
  beast::flat_buffer buffer;
  http::request_parser<http::string_body> parser;
  parser.header_limit(header_limit);
  parser.body_limit(body_limit);

  auto [ec, bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
  if (ec == http::error::header_limit) {
    s.stats.count_rejection(431);
    co_await write_answer(stream, 11,
                          error_answer(431, "header_too_large", "request headers over 8 KiB"));
    co_return result;
  }
  if (ec) co_return result;  // timed out, closed, or not HTTP: nobody to answer
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

  auto routed = s.routes.route(route);
  if (auto* answer = std::get_if<http_answer>(&routed)) {
    if (answer->status >= 400)
      SB_LOG(debug).field("remote", remote_of(stream)).field("status", answer->status)
          << request.method_string() << " " << request.target() << " refused";
    co_await write_answer(stream, request.version(), *answer);
    co_return result;
  }
  if (auto* api_request = std::get_if<api::request>(&routed)) {
    auto answering = std::visit([&](const auto& r) { return answer(r, s); }, *api_request);
    const auto answered = co_await std::move(answering);
    co_await write_answer(stream, request.version(), answered);
    co_return result;
  }
  auto session = std::get<session_request>(routed);
  if (!s.routes.acquire_slot()) {
    co_await write_answer(stream, request.version(),
                          error_answer(503, "too_many_connections", "--max-connections reached"));
    co_return result;
  }

  deadline.cancel();  // its handler holds a reference to `stream`, moved next
  websocket_stream ws(std::move(stream));
  ws.set_option(websocket::stream_base::timeout{s.cfg.handshake_timeout,
                                                websocket::stream_base::none(), false});
  ws.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
    response.set(http::field::server, "switchboard");
  }));
  auto [accept_ec] = co_await ws.async_accept(request, use_tuple);
  if (accept_ec) {
    s.routes.release_slot();
    co_return result;
  }
  SB_LOG(debug).field("user", session.user).field("remote", remote_of(ws.next_layer()))
      << "upgrade accepted";
  // The session keeps the transport alone: Beast's stream (about 2.5 KB) is
  // not needed after the upgrade (session.hpp).
  result.emplace(upgraded{std::move(ws.next_layer()), std::move(session)});
  co_return result;
}

}  // namespace

asio::awaitable<void> serve_connection(transport stream, services& s) {
  auto accepted = co_await upgrade(std::move(stream), s);
  if (!accepted) co_return;
  // The session is a coroutine of its own, so that this frame is freed now
  // rather than held for the session's whole life. The session releases its
  // --max-connections slot when it ends (session.cpp), unless its opening
  // failed with an exception.
  auto executor = accepted->io.get_executor();
  asio::co_spawn(executor, run_session(std::move(accepted->io), std::move(accepted->session), s),
                 [&s](std::exception_ptr e) {
                   if (!e) return;
                   s.routes.release_slot();
                   log_exception("session")(e);
                 });
}

listener::listener(io_threads& io, const asio::ip::tcp::endpoint& endpoint)
    : io_(io), acceptor_(io.main()) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

asio::awaitable<void> listener::run(services& s) {
  for (;;) {
    // A connection stays on one I/O thread: its coroutines never run twice
    // at once, without a strand (io_threads.hpp).
    auto [ec, socket] = co_await acceptor_.async_accept(io_.next(), use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      // Out of file descriptors, most likely: wait instead of spinning.
      static log_throttle throttle(1, std::chrono::seconds(10));
      if (std::uint64_t held = 0; throttle.allow(held))
        SB_LOG(warn) << "accept failed: " << ec.message() << held_back(held);
      asio::steady_timer pause(io_.main(), std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    boost::system::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    auto executor = socket.get_executor();
    transport stream = s.tls ? transport(std::move(socket), *s.tls) : transport(std::move(socket));
    asio::co_spawn(executor, serve_connection(std::move(stream), s), log_exception("connection"));
  }
}

void listener::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

}  // namespace switchboard
