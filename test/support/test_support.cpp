#include "support/test_support.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/results_collector.hpp>
#include <boost/test/unit_test.hpp>

#include "switchboard/server.hpp"

namespace switchboard::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;

unsigned soak_seconds(unsigned default_seconds) {
  if (const char* env = std::getenv("SWITCHBOARD_SOAK_SECONDS")) {
    const int s = std::atoi(env);
    if (s > 0) return static_cast<unsigned>(s);
  }
  return default_seconds;
}

boost::test_tools::assertion_result only_with_two_threads(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result result(test_threads() != 1);
  if (!result) result.message() << "runs once, with SWITCHBOARD_TEST_THREADS=2";
  return result;
}

unsigned test_threads() {
  if (const char* env = std::getenv("SWITCHBOARD_TEST_THREADS")) return std::atoi(env);
  return 2;
}

temp_dir::temp_dir() {
  char name[] = "/tmp/switchboard-test-XXXXXX";
  if (::mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = name;
}

temp_dir::~temp_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

config test_config() {
  config cfg;
  cfg.listen_host = "127.0.0.1";
  cfg.listen_port = 0;
  cfg.threads = test_threads();
  cfg.store = "memory:";
  cfg.node_id = "test";
  cfg.level = log_level::warn;
  cfg.drain_timeout = std::chrono::seconds(5);
  return cfg;
}

struct test_server::impl {
  explicit impl(config cfg) : srv(std::move(cfg)) {}
  server srv;
  std::thread thread;
};

test_server::test_server(config cfg)
    : cfg_is_cluster_(cfg.store.starts_with("redis://")),
      impl_(std::make_unique<impl>(std::move(cfg))) {
  const bool cluster = cfg_is_cluster_;
  port_ = impl_->srv.endpoint().port();
  impl_->thread = std::thread([this] { exit_code_ = impl_->srv.run(); });
  // As a client of the binary waits for its `listening on` line, which a
  // cluster node prints once Redis answered (or after 3 s).
  if (cluster) {
    for (int i = 0; i < 300 && http_get(port_, "/healthz").status != 200; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void test_server::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->srv.stop();
  impl_->thread.join();
}

test_server::~test_server() {
  stop();
}

http_result http_get(std::uint16_t port, const std::string& target,
                     const std::map<std::string, std::string>& headers) {
  return http_request(port, "GET", target, headers);
}

http_result http_request(std::uint16_t port, const std::string& method, const std::string& target,
                         const std::map<std::string, std::string>& headers) {
  asio::io_context context;
  tcp::socket socket(context);
  socket.connect({asio::ip::address_v4::loopback(), port});
  http::request<http::empty_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, "127.0.0.1");
  for (const auto& [name, value] : headers)
    request.set(name, value);
  http::write(socket, request);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  http_result result;
  result.status = response.result_int();
  result.body = response.body();
  for (const auto& field : response) {
    std::string name(field.name_string());
    for (auto& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    result.headers[name] = std::string(field.value());
  }
  return result;
}

json::object pile_up(std::uint16_t port, ws_client& sender, std::uint64_t receiver,
                     const std::string& api_key, std::size_t frames, std::size_t bytes) {
  const std::string target = "/api/sessions?user=" + std::to_string(receiver);
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer " + api_key}};
  const std::string content(bytes, 'x');
  // The kernel takes a few MB (the sender side's buffer grows to
  // net.ipv4.tcp_wmem's maximum) before anything waits in the session.
  for (int sent = 0; sent < 1000;) {
    for (int i = 0; i < 4; ++i, ++sent)
      sender.send(send_frame(receiver, content, "pile-" + std::to_string(sent)));
    std::this_thread::sleep_for(20ms);
    const auto answer = http_get(port, target, auth);
    if (answer.status != 200) throw std::runtime_error("GET " + target + ": " + answer.body);
    const auto sessions = parse_object(answer.body).at("sessions").as_array();
    if (sessions.empty()) throw std::runtime_error("the receiver's session is gone");
    const auto& session = sessions.front().as_object();
    if (u64(session.at("queue").at("frames")) >= frames) return session;
  }
  throw std::runtime_error("nothing piled up in the receiver's queue");
}

bool closed_by_server(asio::io_context& context, tcp::socket& socket, milliseconds timeout) {
  bool ended = false;
  std::array<char, 512> scratch;
  std::function<void(boost::system::error_code, std::size_t)> on_read =
      [&](boost::system::error_code ec, std::size_t) {
        if (ec) {
          ended = true;
          return;
        }
        socket.async_read_some(asio::buffer(scratch), on_read);
      };
  socket.async_read_some(asio::buffer(scratch), on_read);
  context.restart();
  context.run_for(timeout);
  if (!ended) {
    boost::system::error_code ignored;
    socket.close(ignored);
    context.restart();
    context.run();
  }
  return ended;
}

json::object parse_object(const std::string& text) {
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  if (ec || !value.is_object()) throw std::runtime_error("not a JSON object: " + text);
  return value.as_object();
}

template <class Op>
void ws_client::run(Op&& op, milliseconds timeout, const char* what) {
  bool done = false;
  boost::system::error_code result;
  op([&](boost::system::error_code ec, auto&&...) {
    done = true;
    result = ec;
  });
  context_.restart();
  context_.run_for(timeout);
  if (!done) {
    boost::system::error_code ignored;
    beast::get_lowest_layer(ws_).close(ignored);
    context_.restart();
    context_.run();
    throw std::runtime_error(std::string(what) + ": timed out");
  }
  if (result) throw boost::system::system_error(result, what);
}

ws_client::ws_client(std::uint16_t port, const std::string& target,
                     std::optional<int> receive_buffer)
    : ws_(context_) {
  auto& socket = beast::get_lowest_layer(ws_);
  if (receive_buffer) {
    socket.open(tcp::v4());
    socket.set_option(asio::socket_base::receive_buffer_size(*receive_buffer));
  }
  socket.connect({asio::ip::address_v4::loopback(), port});
  websocket::response_type response;
  try {
    run([&](auto handler) { ws_.async_handshake(response, "127.0.0.1", target, handler); }, 5000ms,
        "handshake");
  } catch (const boost::system::system_error&) {
    throw std::runtime_error("upgrade refused: " + std::to_string(response.result_int()));
  }
  welcome_ = read();
  if (welcome_.at("type").as_int64() != 0)
    throw std::runtime_error("first frame is not a welcome: " + json::serialize(welcome_));
}

ws_client::~ws_client() {
  boost::system::error_code ignored;
  beast::get_lowest_layer(ws_).close(ignored);
}

void ws_client::send_text(const std::string& text) {
  ws_.text(true);
  run([&](auto handler) { ws_.async_write(asio::buffer(text), handler); }, 5000ms, "write");
}

void ws_client::send(const json::object& frame) {
  send_text(json::serialize(frame));
}

void ws_client::send_binary(const std::string& bytes) {
  ws_.binary(true);
  run([&](auto handler) { ws_.async_write(asio::buffer(bytes), handler); }, 5000ms, "write");
  ws_.text(true);
}

json::object ws_client::read(milliseconds timeout) {
  buffer_.clear();
  run([&](auto handler) { ws_.async_read(buffer_, handler); }, timeout, "read");
  return parse_object(beast::buffers_to_string(buffer_.data()));
}

json::object ws_client::read_until(const std::function<bool(const json::object&)>& pred,
                                   milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("read_until: timed out");
    auto frame = read(left);
    if (pred(frame)) return frame;
  }
}

std::optional<json::object> ws_client::read_maybe(milliseconds timeout) {
  try {
    return read(timeout);
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}

unsigned ws_client::read_until_closed(std::vector<json::object>* frames, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("read_until_closed: timed out");
    buffer_.clear();
    try {
      run([&](auto handler) { ws_.async_read(buffer_, handler); }, left, "read");
    } catch (const boost::system::system_error& e) {
      if (e.code() == websocket::error::closed) return ws_.reason().code;
      BOOST_TEST_MESSAGE("connection ended without a close frame: " << e.code().message());
      return 0;
    }
    if (frames) frames->push_back(parse_object(beast::buffers_to_string(buffer_.data())));
  }
}

void ws_client::close() {
  run([&](auto handler) { ws_.async_close(websocket::close_code::normal, handler); }, 5000ms,
      "close");
}

unsigned upgrade_status(std::uint16_t port, const std::string& target,
                        const std::map<std::string, std::string>& headers) {
  asio::io_context context;
  websocket::stream<tcp::socket> ws(context);
  beast::get_lowest_layer(ws).connect({asio::ip::address_v4::loopback(), port});
  ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& request) {
    for (const auto& [name, value] : headers)
      request.set(name, value);
  }));
  websocket::response_type response;
  boost::system::error_code ec;
  ws.handshake(response, "127.0.0.1", target, ec);
  return response.result_int();
}

bool current_test_failed() {
  namespace utf = boost::unit_test;
  const auto id = utf::framework::current_test_case().p_id;
  return utf::results_collector.results(id).p_assertions_failed > 0;
}

std::map<std::string, std::string> bearer(const std::string& key) {
  return {{"Authorization", "Bearer " + key}};
}

api_test_server::api_test_server(const std::string& key, config cfg) {
  static std::atomic<unsigned> made{0};
  path_ = "/tmp/switchboard-test-api-key-" + std::to_string(::getpid()) + "-" +
          std::to_string(made.fetch_add(1));
  std::ofstream(path_) << key << "\n";
  cfg.api_key_file = path_;
  server_ = std::make_unique<test_server>(cfg);
}

api_test_server::~api_test_server() {
  server_.reset();
  std::remove(path_.c_str());
}

std::string error_of(const http_result& r) {
  return std::string(parse_object(r.body).at("error").as_string());
}

json::object send_frame(std::uint64_t receiver, const std::string& content,
                        std::optional<std::string> id) {
  json::object frame{{"type", 1}, {"receiver", receiver}, {"content", content}};
  if (id) frame["id"] = *id;
  return frame;
}

}  // namespace switchboard::test
