// The store's bounds end to end (issue 12): an in-process server on a
// loopback port, Beast clients over real sockets. What a client can make the
// store hold is bounded (--inbox-bytes, --memory-store-bytes,
// --store-queue-bytes, the replay page cap), and at each bound the server
// says so and runs on. Every case runs with --threads 1 and 2 (ctest).
#define BOOST_TEST_MODULE store_bounds
#include <boost/test/unit_test.hpp>

#include <string>
#include <thread>

#include <boost/json.hpp>

#include "support/test_support.hpp"

using namespace switchboard;
using namespace switchboard::test;
namespace json = boost::json;

namespace {

// A SEND with an id and its answer: the receipt (type 2) or an ERROR (type 4).
json::object send_and_answer(ws_client& client, std::uint64_t receiver, const std::string& content,
                             const std::string& id) {
  client.send(send_frame(receiver, content, id));
  return client.read_until([&](const json::object& f) {
    return (type_of(f) == 2 || type_of(f) == 4) && f.contains("id") && str(f.at("id")) == id;
  });
}

bool is_unavailable(const json::object& f) {
  return type_of(f) == 4 && str(f.at("code")) == "unavailable";
}

}  // namespace

// --memory-store-bytes: once the memory store is full, a SEND is refused
// with ERROR unavailable (nothing stored: no seq used), the messages it
// already holds are still delivered, and the server runs on; once they are
// delivered (and so dropped), SENDs are taken again.
BOOST_AUTO_TEST_CASE(full_memory_store_refuses_sends_and_keeps_what_it_holds) {
  auto cfg = test_config();
  cfg.memory_store_bytes = 512 * 1024;
  test_server server(cfg);
  ws_client alice(server.port(), "/ws/1");

  const std::string content(16 * 1024, 'm');
  int stored = 0;
  json::object refusal;
  for (int i = 0; i < 100; ++i) {
    auto answer = send_and_answer(alice, 2, content, "m" + std::to_string(i));
    if (type_of(answer) == 2) {
      BOOST_TEST_REQUIRE(u64(answer.at("seq")) == std::uint64_t(stored + 1));
      ++stored;
      continue;
    }
    refusal = answer;
    break;
  }
  BOOST_TEST_REQUIRE(!refusal.empty());
  BOOST_TEST(is_unavailable(refusal));
  // 512 KiB of 16 KiB messages, less the store's own bookkeeping.
  BOOST_TEST(stored >= 28);
  BOOST_TEST(stored <= 32);
  // Still full: another SEND, and one to a user never seen, are refused too.
  BOOST_TEST(is_unavailable(send_and_answer(alice, 2, content, "again")));
  BOOST_TEST(is_unavailable(send_and_answer(alice, 99, content, "new-user")));
  // The session stays usable, and so does the server.
  BOOST_TEST(http_get(server.port(), "/healthz").status == 200u);

  // What was stored arrives, in order, without a gap; nothing refused does.
  ws_client bob(server.port(), "/ws/2");
  BOOST_TEST(u64(bob.welcome().at("seq")) == std::uint64_t(stored));
  for (int i = 1; i <= stored; ++i) {
    const auto m = bob.read();
    BOOST_TEST_REQUIRE(type_of(m) == 1);
    BOOST_TEST_REQUIRE(u64(m.at("seq")) == std::uint64_t(i));
    BOOST_TEST(str(m.at("id")) == "m" + std::to_string(i - 1));
  }
  ws_client carol(server.port(), "/ws/99");
  BOOST_TEST(u64(carol.welcome().at("seq")) == 0u);

  // Delivered under ack=auto, they go from the store: room again.
  json::object taken;
  for (int attempt = 0; attempt < 100; ++attempt) {
    taken = send_and_answer(alice, 2, "room again", "after-" + std::to_string(attempt));
    if (type_of(taken) == 2) break;
    std::this_thread::sleep_for(20ms);
  }
  BOOST_TEST_REQUIRE(type_of(taken) == 2);
  BOOST_TEST(u64(taken.at("seq")) == std::uint64_t(stored + 1));
  BOOST_TEST(str(bob.read().at("content")) == "room again");

  const auto metrics = http_get(server.port(), "/metrics").body;
  BOOST_TEST(metrics.find("switchboard_errors_total{code=\"unavailable\"}") != std::string::npos);
}

// --inbox-bytes: an offline user's inbox keeps the newest messages within
// the bound; the client sees the eviction as a jump in the replayed seqs.
BOOST_AUTO_TEST_CASE(inbox_bytes_keeps_the_newest_within_the_bound) {
  auto cfg = test_config();
  cfg.inbox_bytes = 10000;
  test_server server(cfg);
  ws_client alice(server.port(), "/ws/1");
  for (int i = 1; i <= 5; ++i) {
    const auto receipt =
        send_and_answer(alice, 2, std::string(3000, char('a' + i)), "b" + std::to_string(i));
    BOOST_TEST_REQUIRE(type_of(receipt) == 2);
  }
  ws_client bob(server.port(), "/ws/2");
  BOOST_TEST(u64(bob.welcome().at("seq")) == 5u);
  for (const std::uint64_t seq : {3u, 4u, 5u}) {
    const auto m = bob.read();
    BOOST_TEST_REQUIRE(type_of(m) == 1);
    BOOST_TEST(u64(m.at("seq")) == seq);
    BOOST_TEST(str(m.at("content")) == std::string(3000, char('a' + seq)));
  }
  const auto metrics = http_get(server.port(), "/metrics").body;
  BOOST_TEST(metrics.find("switchboard_messages_evicted_total 2") != std::string::npos);
}

// --store-queue-bytes: a SEND whose content does not fit in what may wait
// for the store is refused at once (ERROR unavailable, nothing stored);
// smaller ones go through.
BOOST_AUTO_TEST_CASE(send_over_the_store_queue_bound_is_refused) {
  auto cfg = test_config();
  cfg.store_queue_bytes = 4096;
  test_server server(cfg);
  ws_client alice(server.port(), "/ws/1");
  BOOST_TEST(is_unavailable(send_and_answer(alice, 2, std::string(8000, 'q'), "big")));
  const auto small = send_and_answer(alice, 2, "small", "small");
  BOOST_TEST_REQUIRE(type_of(small) == 2);
  BOOST_TEST(u64(small.at("seq")) == 1u);
  ws_client bob(server.port(), "/ws/2");
  BOOST_TEST(str(bob.read().at("content")) == "small");
}

// The replay page cap: a replay of messages much larger in all than
// --send-queue-bytes goes in pages of at most a quarter of it, and arrives
// whole without closing the session as a slow consumer.
BOOST_AUTO_TEST_CASE(replay_larger_than_the_send_queue_arrives_whole) {
  auto cfg = test_config();
  cfg.send_queue_bytes = 64 * 1024;
  test_server server(cfg);
  ws_client alice(server.port(), "/ws/1");
  constexpr int count = 60;  // 60 x 8 KiB: more than seven send queues
  for (int i = 1; i <= count; ++i)
    BOOST_TEST_REQUIRE(
        type_of(send_and_answer(alice, 2, std::string(8192, 'r'), "r" + std::to_string(i))) == 2);
  ws_client bob(server.port(), "/ws/2");
  for (int i = 1; i <= count; ++i) {
    const auto m = bob.read();
    BOOST_TEST_REQUIRE(type_of(m) == 1);
    BOOST_TEST_REQUIRE(u64(m.at("seq")) == std::uint64_t(i));
  }
  bob.send(send_frame(1, "done"));
  BOOST_TEST(
      str(alice.read_until([](const json::object& f) { return type_of(f) == 1; }).at("content")) ==
      "done");
}
