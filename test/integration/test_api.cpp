// The HTTP API under /api/ (PROTOCOL.md section 10): --api-key-file, the
// order of its refusals, and GET /api/sessions?user=U showing where a
// user's messages wait, against an in-process server over real sockets.
#define BOOST_TEST_MODULE api
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <fstream>

#include <boost/json.hpp>

#include "support/test_support.hpp"
#include "switchboard/clock.hpp"

using namespace switchboard;
using namespace switchboard::test;

namespace {

constexpr const char* key = "k3y-for-tests";

struct api_server : api_test_server {
  explicit api_server(config cfg = test_config()) : api_test_server(key, std::move(cfg)) {}
};

}  // namespace

BOOST_AUTO_TEST_CASE(without_the_option_every_api_path_is_404) {
  test_server server;
  for (const auto* target : {"/api/sessions?user=1", "/api/", "/api/groups/1/members"}) {
    const auto r = http_get(server.port(), target, bearer(key));
    BOOST_TEST(r.status == 404u, target);
    BOOST_TEST(error_of(r) == "not_found");
  }
}

BOOST_AUTO_TEST_CASE(the_key_is_checked_first) {
  api_server api;
  const auto port = api.port();
  // Missing, wrong, the right key under another scheme, a prefix of the key, longer.
  for (const auto& headers : std::vector<std::map<std::string, std::string>>{
           {},
           bearer("wrong"),
           {{"Authorization", std::string("Basic ") + key}},
           bearer(std::string(key).substr(1)),
           bearer(std::string(key) + "x")}) {
    for (const auto* target : {"/api/sessions?user=1", "/api/nope", "/api/sessions?user=0"}) {
      const auto r = http_get(port, target, headers);
      BOOST_TEST(r.status == 401u, target);
      BOOST_TEST(error_of(r) == "unauthorized");
    }
  }
  BOOST_TEST(http_request(port, "POST", "/api/sessions?user=1").status == 401u);
}

BOOST_AUTO_TEST_CASE(then_the_path_then_the_ids) {
  api_server api;
  const auto port = api.port();
  auto r = http_get(port, "/api/nope", bearer(key));
  BOOST_TEST(r.status == 404u);
  BOOST_TEST(error_of(r) == "not_found");
  r = http_request(port, "DELETE", "/api/sessions?user=x", bearer(key));
  BOOST_TEST(r.status == 405u);
  BOOST_TEST(error_of(r) == "method_not_allowed");
  for (const auto* target :
       {"/api/sessions", "/api/sessions?user=", "/api/sessions?user=0", "/api/sessions?user=007",
        "/api/sessions?user=18446744073709551616", "/api/sessions?users=1"}) {
    r = http_get(port, target, bearer(key));
    BOOST_TEST(r.status == 400u, target);
    BOOST_TEST(error_of(r) == "bad_id", target);
  }
  // Other endpoints are unchanged by the option.
  BOOST_TEST(http_get(port, "/healthz").status == 200u);
}

BOOST_AUTO_TEST_CASE(sessions_lists_the_users_open_sessions) {
  api_server api;
  const auto port = api.port();
  auto r = http_get(port, "/api/sessions?user=7", bearer(key));
  BOOST_TEST(r.status == 200u);
  BOOST_TEST(r.headers["content-type"] == "application/json");
  BOOST_TEST(r.body == R"({"user":7,"sessions":[]})");

  const auto before = unix_ms();
  ws_client first(port, "/ws/7");
  ws_client second(port, "/ws/7?ack=manual");
  ws_client other(port, "/ws/8");
  const auto body = parse_object(http_get(port, "/api/sessions?user=7", bearer(key)).body);
  BOOST_TEST(u64(body.at("user")) == 7u);
  const auto& sessions = body.at("sessions").as_array();
  BOOST_REQUIRE(sessions.size() == 2u);
  // Oldest first, each with the fields of PROTOCOL.md section 10 and more.
  const auto& a = sessions[0].as_object();
  const auto& b = sessions[1].as_object();
  BOOST_TEST(str(a.at("session")) == str(first.welcome().at("session")));
  BOOST_TEST(str(b.at("session")) == str(second.welcome().at("session")));
  BOOST_TEST(str(a.at("device")) == "");
  BOOST_TEST(a.at("opened_ms").to_number<std::int64_t>() >= before);
  BOOST_TEST(str(a.at("ack")) == "auto");
  BOOST_TEST(str(b.at("ack")) == "manual");
  for (const auto* s : {&a, &b}) {
    BOOST_TEST(u64(s->at("queued_bytes")) == 0u);
    BOOST_TEST(u64(s->at("queue").at("frames")) == 0u);
    BOOST_TEST(s->at("queue").at("first_seq").is_null());
    BOOST_TEST(s->at("transport").at("write_in_flight").as_bool() == false);
    BOOST_TEST(s->at("replay").at("live").as_bool() == true);
    BOOST_TEST(str(s->at("reader")) == "socket_readable");
    BOOST_TEST(str(s->at("writer")) == "session_queue");
    BOOST_TEST(s->at("closing").is_null());
    BOOST_TEST(s->at("thread").to_number<std::int64_t>() > 0);
  }

  // An ended session is no longer listed.
  second.close();
  for (int i = 0; i < 200; ++i) {
    const auto now = parse_object(http_get(port, "/api/sessions?user=7", bearer(key)).body);
    if (now.at("sessions").as_array().size() == 1u) return;
    std::this_thread::sleep_for(10ms);
  }
  BOOST_FAIL("the closed session is still listed");
}

BOOST_AUTO_TEST_CASE(sessions_shows_where_the_messages_of_a_stuck_receiver_wait) {
  auto cfg = test_config();
  cfg.send_queue_bytes = 8 << 20;  // room for what waits beyond the socket buffers
  api_server api(cfg);
  const auto port = api.port();
  ws_client receiver(port, "/ws/2", 4096);  // never reads
  ws_client sender(port, "/ws/1");
  const auto stuck = pile_up(port, sender, 2, key, 3);

  // The hub pushed every message in seq order; those the writer has not
  // taken wait in the queue, the last of them the last one sent.
  const auto& queue = stuck.at("queue").as_object();
  const auto frames = u64(queue.at("frames"));
  const auto first = u64(queue.at("first_seq"));
  const auto last = u64(queue.at("last_seq"));
  BOOST_TEST(frames >= 3u);
  BOOST_TEST(last - first + 1 == frames);
  BOOST_TEST(u64(queue.at("bytes")) >= frames * 30000);
  // The writer is blocked on the socket with its batch in flight.
  const auto& transport = stuck.at("transport").as_object();
  BOOST_TEST(transport.at("write_in_flight").as_bool());
  BOOST_TEST(u64(transport.at("flush_waiters")) == 1u);
  BOOST_TEST(u64(transport.at("writing_bytes")) > 0u);
  BOOST_TEST(u64(stuck.at("queued_bytes")) == u64(queue.at("bytes")) +
                                                  u64(transport.at("writing_bytes")) +
                                                  u64(transport.at("pending_bytes")));
  BOOST_TEST(str(stuck.at("writer")) == "socket_write");
  BOOST_TEST(str(stuck.at("reader")) == "socket_readable");
  BOOST_TEST(stuck.at("replay").at("live").as_bool());
  BOOST_TEST(stuck.at("closing").is_null());

  // The sender's receipts name the messages: the queue's last seq is one
  // the sender was given, and nothing above it was stored before it.
  const auto receipt = sender.read_until(
      [&](const boost::json::object& f) { return type_of(f) == 2 && u64(f.at("seq")) == last; });
  BOOST_TEST(str(receipt.at("id")) == "pile-" + std::to_string(last - 1));
}
