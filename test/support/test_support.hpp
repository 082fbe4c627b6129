// What the integration and smoke tests share: an in-process server on a
// free loopback port, a WebSocket client whose every wait has a deadline
// (a hang fails the test instead of blocking CI), and a one-shot HTTP GET.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/test/tools/assertion_result.hpp>
#include <boost/test/tree/test_unit.hpp>

#include "switchboard/config.hpp"

namespace switchboard::test {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// --threads for in-process servers: SWITCHBOARD_TEST_THREADS (ctest runs
// every integration suite with 1 and with 2), else 2.
unsigned test_threads();

// Seconds a soak runs: SWITCHBOARD_SOAK_SECONDS, else `default_seconds`.
unsigned soak_seconds(unsigned default_seconds);

// A precondition for what runs once, in the SWITCHBOARD_TEST_THREADS=2 run
// of a suite (soaks): with 1 thread the test is skipped, and says so.
boost::test_tools::assertion_result only_with_two_threads(boost::unit_test::test_unit_id);

// A fresh directory under /tmp, removed with everything in it at the end.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A config for tests: 127.0.0.1:0, memory store, quiet logs.
config test_config();

// A server running in this process on its own threads.
class test_server {
 public:
  explicit test_server(config cfg = test_config());
  ~test_server();  // drains and joins; the exit code must be 0
  std::uint16_t port() const { return port_; }
  void stop();  // drain now and wait for the end
  int exit_code() const { return exit_code_; }

 private:
  struct impl;
  bool cfg_is_cluster_ = false;
  std::unique_ptr<impl> impl_;
  std::uint16_t port_ = 0;
  int exit_code_ = -1;
};

struct http_result {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
};

// One GET over a fresh connection. `headers` are added as given.
http_result http_get(std::uint16_t port, const std::string& target,
                     const std::map<std::string, std::string>& headers = {});
// The same with another method ("POST", "DELETE"...), without a body.
http_result http_request(std::uint16_t port, const std::string& method, const std::string& target,
                         const std::map<std::string, std::string>& headers = {});

// `Authorization: Bearer <key>`, as headers for http_get and http_request.
std::map<std::string, std::string> bearer(const std::string& key);

// A server in this process with --api-key-file holding `key` (PROTOCOL.md
// section 10), the file written with one trailing newline (not part of the
// key) and removed at the end.
class api_test_server {
 public:
  explicit api_test_server(const std::string& key, config cfg = test_config());
  ~api_test_server();
  std::uint16_t port() const { return server_->port(); }

 private:
  std::string path_;
  std::unique_ptr<test_server> server_;
};

// The `error` code of a JSON error body.
std::string error_of(const http_result& r);

// The JSON object of a frame; fails the test if it is not one.
boost::json::object parse_object(const std::string& text);

class ws_client {
 public:
  // Connects and upgrades; throws with the HTTP status on a refusal.
  // `receive_buffer`: the socket's SO_RCVBUF, set before connecting so
  // that the window stays that small (a client that stops reading then
  // holds little of what is sent to it).
  ws_client(std::uint16_t port, const std::string& target,
            std::optional<int> receive_buffer = std::nullopt);
  ~ws_client();

  // The welcome (type 0) that every session starts with.
  boost::json::object welcome() const { return welcome_; }

  void send_text(const std::string& text);
  void send(const boost::json::object& frame);
  void send_binary(const std::string& bytes);

  // The next frame; throws if none arrives within `timeout` or the session ended.
  boost::json::object read(milliseconds timeout = 5000ms);
  // Reads frames until `pred` holds and returns that one; the frames before it are dropped.
  boost::json::object read_until(const std::function<bool(const boost::json::object&)>& pred,
                                 milliseconds timeout = 5000ms);
  // The next frame, or nullopt when none comes within `timeout`. After a
  // timeout the client is unusable: call it last.
  std::optional<boost::json::object> read_maybe(milliseconds timeout);

  // Reads and collects frames until the server closes; returns the
  // WebSocket close code (0 when the connection just ended).
  unsigned read_until_closed(std::vector<boost::json::object>* frames = nullptr,
                             milliseconds timeout = 10000ms);

  void close();

  // Do not read: used to make a slow consumer.
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket>& stream() { return ws_; }

 private:
  template <class Op>
  void run(Op&& op, milliseconds timeout, const char* what);

  boost::asio::io_context context_;
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws_;
  boost::beast::flat_buffer buffer_;
  boost::json::object welcome_;
};

// Status of a refused upgrade (or 101).
unsigned upgrade_status(std::uint16_t port, const std::string& target,
                        const std::map<std::string, std::string>& headers = {});

// Whether the server ends the connection (EOF or reset) within `timeout`,
// reading and dropping whatever it sends first. Runs `context`.
bool closed_by_server(boost::asio::io_context& context, boost::asio::ip::tcp::socket& socket,
                      milliseconds timeout);

// Field accessors that fail the test (by throwing) on a wrong JSON kind.
inline std::uint64_t u64(const boost::json::value& v) {
  return v.to_number<std::uint64_t>();
}
inline std::string str(const boost::json::value& v) {
  return std::string(v.as_string());
}
inline int type_of(const boost::json::object& f) {
  return static_cast<int>(f.at("type").to_number<int>());
}

// Whether the running test case has failed so far (to print server logs).
bool current_test_failed();

// Sends messages of `bytes` characters from `sender` to `receiver`, a
// session that does not read (a ws_client with a small receive_buffer),
// until GET /api/sessions?user=receiver (with `api_key`) shows at least
// `frames` of them waiting in the session's queue, past what the socket
// buffers took. Returns that session's object; throws if they never pile up.
boost::json::object pile_up(std::uint16_t port, ws_client& sender, std::uint64_t receiver,
                            const std::string& api_key, std::size_t frames,
                            std::size_t bytes = 30000);

// SEND frame helper.
boost::json::object send_frame(std::uint64_t receiver, const std::string& content,
                               std::optional<std::string> id = std::nullopt);

}  // namespace switchboard::test
