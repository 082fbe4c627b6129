// Delivery and read notifications end to end (PROTOCOL.md section 11): an
// in-process server with the memory: store, Beast clients over real
// sockets. Every case runs with --threads 1 and 2 (ctest). The cluster's
// case (two nodes, one Redis) is in test_cluster.cpp.
#define BOOST_TEST_MODULE status
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include <boost/json.hpp>

#include "support/test_support.hpp"

using namespace switchboard::test;
namespace json = boost::json;

namespace {

// SEND with "notify":true.
json::object notify_frame(std::uint64_t receiver, const std::string& content,
                          const std::string& id) {
  auto f = send_frame(receiver, content, id);
  f["notify"] = true;
  return f;
}

json::object read_frame(std::uint64_t seq) {
  return json::object{{"type", 6}, {"seq", seq}};
}

// Checks a STATUS frame's fields; `seq` is the sender's own seq.
void expect_status(const json::object& f, std::uint64_t receiver, const std::string& state,
                   std::uint64_t upto, std::uint64_t seq) {
  BOOST_TEST_CONTEXT(json::serialize(f)) {
    BOOST_TEST_REQUIRE(type_of(f) == 5);
    BOOST_TEST(u64(f.at("receiver")) == receiver);
    BOOST_TEST(str(f.at("state")) == state);
    BOOST_TEST(u64(f.at("upto")) == upto);
    BOOST_TEST(u64(f.at("seq")) == seq);
    BOOST_TEST(f.at("ts").to_number<std::int64_t>() > 1700000000000);
    BOOST_TEST(f.size() == 6u);
  }
}

// Whether /metrics on `port` shows `count` STATUS entries of `state`.
bool status_metric_is(std::uint16_t port, const std::string& state, int count) {
  const auto body = http_get(port, "/metrics").body;
  return body.find("switchboard_status_appended_total{state=\"" + state + "\"} " +
                   std::to_string(count) + "\n") != std::string::npos;
}

// The sender sends `count` notify-messages to a receiver that is online
// with ack=auto, and reads until a "delivered" STATUS covers them all.
// Every receipt must come before any STATUS that covers its message: the
// receiver's seqs are 1..count here, so a STATUS upto U needs U receipts.
void receipts_come_before_their_status(ws_client& sender, ws_client& receiver, int count) {
  for (int i = 1; i <= count; ++i)
    sender.send(notify_frame(2, "m" + std::to_string(i), "n" + std::to_string(i)));
  std::uint64_t receipts = 0;
  std::uint64_t covered = 0;
  std::uint64_t sender_seq = 0;
  while (covered < static_cast<std::uint64_t>(count)) {
    const auto f = sender.read();
    if (type_of(f) == 2) {
      ++receipts;
      BOOST_TEST(u64(f.at("seq")) == receipts);
      continue;
    }
    BOOST_TEST_REQUIRE(type_of(f) == 5, json::serialize(f));
    const auto upto = u64(f.at("upto"));
    BOOST_TEST(receipts >= upto, "STATUS upto " << upto << " after " << receipts << " receipts");
    BOOST_TEST(upto > covered, "a STATUS that covers nothing new");
    expect_status(f, 2, "delivered", upto, ++sender_seq);
    covered = upto;
  }
  for (int i = 1; i <= count; ++i)
    BOOST_TEST(str(receiver.read().at("content")) == "m" + std::to_string(i));
}

}  // namespace

BOOST_AUTO_TEST_CASE(receipt_then_delivered_then_read) {
  test_server server;
  ws_client alice(server.port(), "/ws/1");
  ws_client bob(server.port(), "/ws/2");

  alice.send(notify_frame(2, "hello", "n1"));
  const auto receipt = alice.read();
  BOOST_TEST_REQUIRE(type_of(receipt) == 2);
  BOOST_TEST(u64(receipt.at("seq")) == 1u);
  expect_status(alice.read(), 2, "delivered", 1, 1);
  const auto m = bob.read();
  BOOST_TEST(str(m.at("content")) == "hello");
  BOOST_TEST(!m.contains("notify"));

  bob.send(read_frame(1));
  expect_status(alice.read(), 2, "read", 1, 2);
  // The same READ again covers nothing new: nothing.
  bob.send(read_frame(1));
  // A READ above the highest seq counts as the highest: "read" upto 2, and
  // no "delivered" (the cursor already passed 2).
  alice.send(notify_frame(2, "second", "n2"));
  BOOST_TEST(type_of(alice.read()) == 2);
  expect_status(alice.read(), 2, "delivered", 2, 3);
  BOOST_TEST(str(bob.read().at("content")) == "second");
  bob.send(read_frame(1000));
  expect_status(alice.read(), 2, "read", 2, 4);
  BOOST_TEST(status_metric_is(server.port(), "delivered", 2));
  BOOST_TEST(status_metric_is(server.port(), "read", 2));
  // STATUS frames are not message frames (type 1) in the metrics: bob's two
  // messages alone; alice's four STATUS frames are not counted.
  BOOST_TEST(
      http_get(server.port(), "/metrics").body.find("\nswitchboard_messages_delivered_total 2\n") !=
      std::string::npos);
  BOOST_TEST(!alice.read_maybe(300ms).has_value());
}

BOOST_AUTO_TEST_CASE(receipts_come_before_status_with_ack_auto) {
  test_server server;
  ws_client alice(server.port(), "/ws/1");
  ws_client bob(server.port(), "/ws/2");
  receipts_come_before_their_status(alice, bob, 200);
}

BOOST_AUTO_TEST_CASE(a_read_beyond_the_delivered_point_sends_both) {
  test_server server;
  ws_client alice(server.port(), "/ws/1");
  {
    // With ack=manual nothing is delivered until a RECEIVE.
    ws_client bob(server.port(), "/ws/2?ack=manual");
    alice.send(notify_frame(2, "a", "n1"));
    BOOST_TEST(type_of(alice.read()) == 2);
    BOOST_TEST(u64(bob.read().at("seq")) == 1u);
    bob.send(read_frame(1));
    expect_status(alice.read(), 2, "delivered", 1, 1);
    expect_status(alice.read(), 2, "read", 1, 2);
    // The RECEIVE after it covers nothing new.
    bob.send(json::object{{"type", 2}, {"seq", 1}});
  }
  BOOST_TEST(!alice.read_maybe(300ms).has_value());
}

BOOST_AUTO_TEST_CASE(an_offline_sender_gets_its_status_replayed) {
  test_server server;
  {
    ws_client alice(server.port(), "/ws/1");
    alice.send(notify_frame(2, "while you were out", "n1"));
    BOOST_TEST(u64(alice.read().at("seq")) == 1u);  // the receipt
  }
  {
    ws_client bob(server.port(), "/ws/2");
    BOOST_TEST(str(bob.read().at("content")) == "while you were out");
    bob.send(read_frame(1));
    // The READ reached the store once a later frame was answered.
    bob.send(send_frame(3, "sync", "s1"));
    BOOST_TEST(type_of(bob.read()) == 2);
  }
  ws_client alice(server.port(), "/ws/1");
  BOOST_TEST(u64(alice.welcome().at("seq")) == 2u);
  expect_status(alice.read(), 2, "delivered", 1, 1);
  expect_status(alice.read(), 2, "read", 1, 2);
  alice.close();
  // ack=auto moved alice's cursor over them: not replayed again.
  ws_client again(server.port(), "/ws/1");
  BOOST_TEST(!again.read_maybe(300ms).has_value());
}

BOOST_AUTO_TEST_CASE(no_status_without_notify_and_bad_fields_are_refused) {
  test_server server;
  ws_client alice(server.port(), "/ws/1");
  ws_client bob(server.port(), "/ws/2");

  const std::vector<std::string> bad = {
      R"({"type":6})",
      R"({"type":6,"seq":-1})",
      R"({"type":6,"seq":"1"})",
      R"({"type":6,"seq":1.5})",
      R"({"type":6,"seq":null})",
      R"({"type":1,"receiver":2,"content":"x","id":"b1","notify":1})",
      R"({"type":1,"receiver":2,"content":"x","id":"b2","notify":"true"})",
      R"({"type":1,"receiver":2,"content":"x","id":"b3","notify":null})",
  };
  for (const auto& text : bad) {
    bob.send_text(text);
    const auto e = bob.read();
    BOOST_TEST_CONTEXT(text) {
      BOOST_TEST(type_of(e) == 4);
      BOOST_TEST(str(e.at("code")) == "bad_field");
    }
  }
  // A client may not send a STATUS.
  bob.send_text(R"({"type":5,"receiver":1,"state":"read","upto":1})");
  BOOST_TEST(str(bob.read().at("code")) == "unknown_type");

  // Without notify, without an id, or notify false: receipts only.
  alice.send(send_frame(2, "plain", "p1"));
  alice.send_text(R"({"type":1,"receiver":2,"content":"no id","notify":true})");
  alice.send_text(R"({"type":1,"receiver":2,"content":"off","id":"p2","notify":false})");
  BOOST_TEST(type_of(alice.read()) == 2);
  BOOST_TEST(type_of(alice.read()) == 2);
  for (const char* content : {"plain", "no id", "off"})
    BOOST_TEST(str(bob.read().at("content")) == content);
  bob.send(read_frame(3));
  BOOST_TEST(!alice.read_maybe(500ms).has_value());
}
