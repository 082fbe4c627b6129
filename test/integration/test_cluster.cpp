#define BOOST_TEST_MODULE cluster
#include <boost/test/unit_test.hpp>

// Several nodes on one real redis-server (PROTOCOL.md section 7): sections 2
// to 4 hold across nodes, and Redis refused, killed, restarted or paused,
// subscriber connections killed, and replies or requests lost on the wire
// (a proxy between a node and Redis) lose, duplicate or reorder no
// receipted message, and deliver none that was refused. Nodes run in this process (test_server)
// except where a node must die with SIGKILL (the binary then). Every case runs with --threads 1
// and 2.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/redis_server.hpp"
#include "support/tcp_proxy.hpp"
#include "support/test_support.hpp"

using namespace switchboard::test;
using switchboard::config;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

config node_config(const redis_server& redis, unsigned db = 0) {
  auto cfg = test_config();
  cfg.store = "redis://127.0.0.1:" + std::to_string(redis.port()) + "/" + std::to_string(db);
  cfg.session_lease = std::chrono::seconds(3);
  return cfg;
}

// Waits until `pred` holds, polling; false after `timeout`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  const auto end = clock_type::now() + timeout;
  while (clock_type::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

bool healthy(std::uint16_t port) {
  return http_get(port, "/healthz").status == 200;
}

// The group API's key (PROTOCOL.md section 10) in a file of its own while
// the nodes start (they read it then), and the header that presents it.
struct api_key {
  const std::string file = "/tmp/switchboard-cluster-key-" + std::to_string(::getpid());
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer cluster-key"}};
  api_key() { std::ofstream(file) << "cluster-key\n"; }
  ~api_key() { std::remove(file.c_str()); }
  api_key(const api_key&) = delete;
  api_key& operator=(const api_key&) = delete;

  // PUTs each of `users` into `group` through the node on `port`.
  void add_members(std::uint16_t port, std::uint64_t group,
                   std::initializer_list<std::uint64_t> users) const {
    for (const auto user : users)
      BOOST_REQUIRE_EQUAL(
          http_request(port, "PUT",
                       "/api/groups/" + std::to_string(group) + "/members/" + std::to_string(user),
                       auth)
              .status,
          204u);
  }
};

// Sends `count` messages with ids prefix-0.. and returns the receipts' seqs
// by id; ERROR unavailable counts as not receipted.
struct send_result {
  std::map<std::string, std::uint64_t> receipted;  // id -> seq
  std::set<std::string> refused;
};

send_result send_and_collect(ws_client& sender, std::uint64_t receiver, const std::string& prefix,
                             int count, milliseconds timeout = 15000ms) {
  for (int i = 0; i < count; ++i)
    sender.send(send_frame(receiver, prefix + std::to_string(i), prefix + std::to_string(i)));
  send_result r;
  while (static_cast<int>(r.receipted.size() + r.refused.size()) < count) {
    auto f = sender.read(timeout);
    if (type_of(f) == 2) {
      r.receipted[str(f.at("id"))] = u64(f.at("seq"));
    } else if (type_of(f) == 4) {
      BOOST_TEST(str(f.at("code")) == "unavailable");
      r.refused.insert(str(f.at("id")));
    }
  }
  return r;
}

// Reads message frames until every seq of `want` arrived; fails on a
// duplicate or a seq out of order.
void expect_in_order(ws_client& receiver, const std::set<std::uint64_t>& want, std::uint64_t after,
                     milliseconds timeout = 20000ms) {
  std::set<std::uint64_t> got;
  std::uint64_t last = after;
  while (!std::includes(got.begin(), got.end(), want.begin(), want.end())) {
    auto f = receiver.read(timeout);
    if (type_of(f) != 1) continue;
    const auto seq = u64(f.at("seq"));
    BOOST_TEST_REQUIRE(seq > last, "seq " << seq << " after " << last);
    BOOST_TEST(got.insert(seq).second);
    last = seq;
  }
}

// The value of an unlabelled series in a /metrics text.
double metric_value(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, series << " missing");
  return std::stod(text.substr(at + series.size() + 2));
}

std::set<std::uint64_t> seqs_of(const send_result& r) {
  std::set<std::uint64_t> out;
  for (const auto& [id, seq] : r.receipted)
    out.insert(seq);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_send_on_one_node_reaches_every_session_on_the_others_in_order) {
  redis_server redis;
  test_server a(node_config(redis)), b(node_config(redis)), c(node_config(redis));
  ws_client alice(a.port(), "/ws/1");
  ws_client bob_b(b.port(), "/ws/2");
  ws_client bob_c(c.port(), "/ws/2");
  ws_client bob_a(a.port(), "/ws/2");

  const auto sent = send_and_collect(alice, 2, "m", 300);
  BOOST_TEST(sent.refused.empty());
  BOOST_TEST(sent.receipted.size() == 300u);
  for (auto* bob : {&bob_b, &bob_c, &bob_a})
    expect_in_order(*bob, seqs_of(sent), 0);

  // And back the other way, from a node with no session of the receiver
  // before: the subscription comes with the session.
  bob_c.send(send_frame(1, "back", "r1"));
  BOOST_TEST(type_of(bob_c.read()) == 2);
  const auto back = alice.read_until([](const json::object& f) { return type_of(f) == 1; });
  BOOST_TEST(str(back.at("content")) == "back");
  BOOST_TEST(u64(back.at("sender")) == 2u);
}

// Groups (PROTOCOL.md section 10) across nodes: membership set through
// node A's API is node B's too (it lives in Redis), and a group SEND on
// node A reaches a member whose session is on node B, through the same
// pub/sub path as a direct message, with its own seq and the group's gseq.
BOOST_AUTO_TEST_CASE(a_group_send_on_one_node_reaches_members_on_another) {
  redis_server redis;
  const api_key key;
  const auto& auth = key.auth;
  auto cfg = node_config(redis);
  cfg.api_key_file = key.file;
  test_server a(cfg), b(cfg);
  key.add_members(a.port(), 5, {1, 2, 3});
  BOOST_TEST(http_get(b.port(), "/api/groups/5/members", auth).body ==
             R"({"group":5,"members":[1,2,3]})");
  BOOST_TEST(http_get(b.port(), "/api/users/2/groups", auth).body == R"({"user":2,"groups":[5]})");

  ws_client alice(a.port(), "/ws/1");
  ws_client bob(b.port(), "/ws/2");
  ws_client carol(a.port(), "/ws/3");
  alice.send(send_frame(2, "direct"));  // bob is one seq ahead
  BOOST_TEST(u64(bob.read().at("seq")) == 1u);
  for (int i = 1; i <= 20; ++i)
    alice.send(json::object{{"type", 1},
                            {"group", 5},
                            {"content", "g" + std::to_string(i)},
                            {"id", "g" + std::to_string(i)}});
  for (int i = 1; i <= 20; ++i) {
    const auto r = alice.read();
    BOOST_REQUIRE_EQUAL(type_of(r), 2);
    BOOST_REQUIRE_EQUAL(u64(r.at("gseq")), std::uint64_t(i));
    BOOST_TEST(!r.contains("seq"));
  }
  for (int i = 1; i <= 20; ++i) {
    const auto m = bob.read();
    BOOST_REQUIRE_EQUAL(u64(m.at("group")), 5u);
    BOOST_REQUIRE_EQUAL(u64(m.at("gseq")), std::uint64_t(i));
    BOOST_REQUIRE_EQUAL(u64(m.at("seq")), std::uint64_t(i + 1));
    BOOST_REQUIRE_EQUAL(u64(m.at("receiver")), 2u);
    BOOST_REQUIRE_EQUAL(str(m.at("content")), "g" + std::to_string(i));
    const auto c = carol.read();
    BOOST_REQUIRE_EQUAL(u64(c.at("gseq")), std::uint64_t(i));
    BOOST_REQUIRE_EQUAL(u64(c.at("seq")), std::uint64_t(i));
  }
  // Back from node B: a copy for alice on node A, none for bob himself.
  bob.send(json::object{{"type", 1}, {"group", 5}, {"content", "from b"}, {"id", "b1"}});
  BOOST_TEST(u64(bob.read().at("gseq")) == 21u);
  const auto back = alice.read();
  BOOST_TEST(str(back.at("content")) == "from b");
  BOOST_TEST(u64(back.at("seq")) == 1u);
  BOOST_TEST(u64(back.at("gseq")) == 21u);
  // A resend through the other node: the original group receipt.
  ws_client alice_b(b.port(), "/ws/1?device=b");
  alice_b.send(json::object{{"type", 1}, {"group", 5}, {"content", "again"}, {"id", "g1"}});
  const auto again = alice_b.read_until([](const json::object& f) { return type_of(f) == 2; });
  BOOST_TEST(u64(again.at("gseq")) == 1u);
  BOOST_TEST(u64(again.at("group")) == 5u);
  // Not a member, on node B.
  ws_client dave(b.port(), "/ws/4");
  dave.send(json::object{{"type", 1}, {"group", 5}, {"content", "x"}});
  BOOST_TEST(str(dave.read().at("code")) == "not_member");
}

BOOST_AUTO_TEST_CASE(an_offline_receiver_gets_it_on_any_node_and_seqs_are_shared) {
  redis_server redis;
  test_server a(node_config(redis)), b(node_config(redis));
  {
    ws_client alice(a.port(), "/ws/1");
    ws_client carol(b.port(), "/ws/3");
    BOOST_TEST(send_and_collect(alice, 2, "a", 3).receipted.size() == 3u);
    BOOST_TEST(send_and_collect(carol, 2, "c", 2).receipted.size() == 2u);
  }
  ws_client bob(b.port(), "/ws/2");
  BOOST_TEST(u64(bob.welcome().at("seq")) == 5u);
  expect_in_order(bob, {1, 2, 3, 4, 5}, 0);
  bob.close();

  // ack=auto moved the cursor in Redis: another node replays nothing.
  ws_client again(a.port(), "/ws/2");
  BOOST_TEST(!again.read_maybe(500ms).has_value());
}

BOOST_AUTO_TEST_CASE(manual_acks_and_since_hold_across_nodes) {
  redis_server redis;
  test_server a(node_config(redis)), b(node_config(redis));
  ws_client alice(a.port(), "/ws/1");
  BOOST_TEST(send_and_collect(alice, 2, "m", 4).receipted.size() == 4u);
  {
    ws_client bob(b.port(), "/ws/2?ack=manual");
    expect_in_order(bob, {1, 2, 3, 4}, 0);
    bob.send(json::object{{"type", 2}, {"seq", 2}});
    bob.send(json::object{{"type", 3}});
    bob.read_until_closed();
  }
  {
    // Not acknowledged: 3 and 4 again, on the other node.
    ws_client bob(a.port(), "/ws/2?ack=manual");
    expect_in_order(bob, {3, 4}, 2);
  }
  ws_client bob(b.port(), "/ws/2?since=0&ack=manual");
  expect_in_order(bob, {3, 4}, 0);
}

BOOST_AUTO_TEST_CASE(a_resend_through_another_node_gets_the_original_receipt) {
  redis_server redis;
  test_server a(node_config(redis)), b(node_config(redis));
  ws_client bob(b.port(), "/ws/2");
  json::object first;
  {
    ws_client alice(a.port(), "/ws/1");
    alice.send(send_frame(2, "once", "dup-1"));
    first = alice.read();
    BOOST_TEST(type_of(first) == 2);
  }
  ws_client alice(b.port(), "/ws/1");
  alice.send(send_frame(9, "twice?", "dup-1"));  // another receiver: still the original
  const auto again = alice.read();
  BOOST_TEST(type_of(again) == 2);
  BOOST_TEST(u64(again.at("receiver")) == 2u);
  BOOST_TEST(u64(again.at("seq")) == u64(first.at("seq")));
  BOOST_TEST(again.at("ts") == first.at("ts"));
  const auto m = bob.read();
  BOOST_TEST(str(m.at("content")) == "once");
  BOOST_TEST(!bob.read_maybe(500ms).has_value());
}

BOOST_AUTO_TEST_CASE(the_session_limit_counts_the_cluster_and_replaces_the_oldest_anywhere) {
  redis_server redis;
  auto cfg = [&] {
    auto c = node_config(redis);
    c.max_sessions_per_user = 2;
    return c;
  };
  test_server a(cfg()), b(cfg());
  ws_client first(b.port(), "/ws/5");
  ws_client second(a.port(), "/ws/5");
  ws_client third(a.port(), "/ws/5");
  std::vector<json::object> frames;
  BOOST_TEST(first.read_until_closed(&frames) == 4001u);
  BOOST_TEST_REQUIRE(!frames.empty());
  BOOST_TEST(str(frames.back().at("code")) == "replaced");

  ws_client fourth(b.port(), "/ws/5");
  BOOST_TEST(second.read_until_closed() == 4001u);
  // The two newest stay and both get messages.
  ws_client alice(a.port(), "/ws/1");
  alice.send(send_frame(5, "hi"));
  BOOST_TEST(str(third.read().at("content")) == "hi");
  BOOST_TEST(str(fourth.read().at("content")) == "hi");
}

// Section 9 across nodes: each device keeps its own cursor in Redis, and
// the session replaced is the oldest of the same device, on whichever node.
BOOST_AUTO_TEST_CASE(devices_keep_their_place_and_are_replaced_across_nodes) {
  redis_server redis;
  auto cfg = [&] {
    auto c = node_config(redis);
    c.max_sessions_per_user = 2;
    return c;
  };
  test_server a(cfg()), b(cfg());
  { ws_client laptop(b.port(), "/ws/2?device=laptop"); }  // seen once
  ws_client alice(a.port(), "/ws/1");
  {
    ws_client phone(a.port(), "/ws/2?device=phone");
    BOOST_TEST(send_and_collect(alice, 2, "m", 3).receipted.size() == 3u);
    expect_in_order(phone, {1, 2, 3}, 0);
    phone.send(json::object{{"type", 3}});
    phone.read_until_closed();
  }
  // Node A's cursor move reaches Redis on its own time: wait for it, or the
  // next sessions, on the other node, could open before it.
  const auto cursor_at = [&](const std::string& member, const std::string& seq) {
    return eventually(
        [&] {
          return redis.cli({"ZSCORE", "{u:2}:cursors", member}) == seq + "\n";
        },
        5000ms);
  };
  BOOST_TEST_REQUIRE(cursor_at("d:phone", "3"));
  {
    // Delivered to the phone on node A, still replayed to the laptop on B.
    ws_client laptop(b.port(), "/ws/2?device=laptop");
    BOOST_TEST(str(laptop.welcome().at("device")) == "laptop");
    expect_in_order(laptop, {1, 2, 3}, 0);
    laptop.send(json::object{{"type", 3}});
    laptop.read_until_closed();
  }
  BOOST_TEST_REQUIRE(cursor_at("d:laptop", "3"));
  ws_client phone(b.port(), "/ws/2?device=phone");
  ws_client laptop(a.port(), "/ws/2?device=laptop");
  // A second laptop session: the laptop (newer than the phone) is replaced.
  ws_client laptop2(b.port(), "/ws/2?device=laptop");
  BOOST_TEST(laptop.read_until_closed() == 4001u);
  ws_client carol(b.port(), "/ws/3");
  carol.send(send_frame(2, "after"));
  // Their places were kept in Redis: nothing replayed before it.
  const auto to_phone = phone.read();
  BOOST_TEST(str(to_phone.at("content")) == "after");
  BOOST_TEST(u64(to_phone.at("seq")) == 4u);
  BOOST_TEST(u64(laptop2.read().at("seq")) == 4u);
}

BOOST_AUTO_TEST_CASE(the_inbox_limit_is_cluster_wide) {
  redis_server redis;
  auto cfg = node_config(redis);
  cfg.inbox_limit = 3;
  test_server a(cfg), b(cfg);
  {
    ws_client alice(a.port(), "/ws/1");
    BOOST_TEST(send_and_collect(alice, 2, "m", 5).receipted.size() == 5u);
  }
  ws_client bob(b.port(), "/ws/2");
  BOOST_TEST(u64(bob.welcome().at("seq")) == 5u);
  expect_in_order(bob, {3, 4, 5}, 2);
  BOOST_TEST(!bob.read_maybe(300ms).has_value());
}

BOOST_AUTO_TEST_CASE(two_clusters_on_one_redis_with_different_databases_stay_apart) {
  redis_server redis;
  test_server a(node_config(redis, 1)), b(node_config(redis, 2));
  ws_client bob_b(b.port(), "/ws/2");
  ws_client bob_a(a.port(), "/ws/2");
  ws_client alice(a.port(), "/ws/1");
  alice.send(send_frame(2, "db1 only"));
  BOOST_TEST(str(bob_a.read().at("content")) == "db1 only");
  BOOST_TEST(!bob_b.read_maybe(500ms).has_value());
}

// A node that dies with SIGKILL: its sessions stop counting toward the
// limit once their lease lapses (--session-lease; the contract allows 60 s),
// and a clean stop removes them at once. A stale entry shows when it is
// newer than a live session: it would make the live one the oldest of too
// many.
BOOST_AUTO_TEST_CASE(a_killed_nodes_sessions_are_forgotten_after_their_lease) {
  redis_server redis;
  const auto store = "redis://127.0.0.1:" + std::to_string(redis.port());
  auto cfg = node_config(redis);
  cfg.max_sessions_per_user = 2;
  test_server survivor(cfg);
  ws_client first(survivor.port(), "/ws/7");

  child_process doomed({"--listen", "127.0.0.1:0", "--store", store, "--max-sessions-per-user", "2",
                        "--session-lease", "2", "--threads", std::to_string(test_threads())});
  const auto doomed_port = doomed.wait_listening();
  auto on_doomed = std::make_unique<ws_client>(doomed_port, "/ws/7");
  doomed.signal(SIGKILL);
  BOOST_TEST(doomed.wait() == 128 + SIGKILL);
  const auto killed_at = clock_type::now();

  std::this_thread::sleep_for(2500ms);
  ws_client second(survivor.port(), "/ws/7");
  BOOST_TEST((clock_type::now() - killed_at < 60s));
  BOOST_TEST(!first.read_maybe(700ms).has_value());  // not replaced: the dead one is forgotten
  ws_client third(survivor.port(), "/ws/7");
  ws_client alice(survivor.port(), "/ws/1");
  alice.send(send_frame(7, "after"));
  BOOST_TEST(str(third.read().at("content")) == "after");
  BOOST_TEST(str(second.read().at("content")) == "after");
}

BOOST_AUTO_TEST_CASE(a_node_that_stops_cleanly_removes_its_sessions_at_once) {
  redis_server redis;
  auto cfg = node_config(redis);
  cfg.max_sessions_per_user = 2;
  cfg.session_lease = std::chrono::seconds(600);
  test_server survivor(cfg);
  ws_client first(survivor.port(), "/ws/8");
  auto leaving = std::make_unique<test_server>(cfg);
  {
    // A client that answers the close handshake, as a real one does.
    ws_client gone(leaving->port(), "/ws/8");
    std::thread reader([&] { BOOST_CHECK_NO_THROW(gone.read_until_closed()); });
    leaving->stop();
    reader.join();
  }
  ws_client second(survivor.port(), "/ws/8");
  ws_client alice(survivor.port(), "/ws/1");
  alice.send(send_frame(8, "still here"));
  BOOST_TEST(str(first.read().at("content")) == "still here");
  BOOST_TEST(str(second.read().at("content")) == "still here");
}

// Redis unreachable at start, then killed and restarted at run time.
BOOST_AUTO_TEST_CASE(redis_down_gives_unavailable_and_the_node_recovers_by_itself) {
  redis_server_options persistent;
  persistent.append_only = true;
  redis_server redis(persistent);
  test_server a(node_config(redis)), b(node_config(redis));
  ws_client alice(a.port(), "/ws/1");
  ws_client bob(b.port(), "/ws/2");
  BOOST_TEST(send_and_collect(alice, 2, "before", 5).receipted.size() == 5u);
  expect_in_order(bob, {1, 2, 3, 4, 5}, 0);

  redis.kill();
  // Every SEND gets ERROR unavailable within 10 s; sessions stay open.
  const auto started = clock_type::now();
  alice.send(send_frame(2, "during", "during-1"));
  const auto refused = alice.read(10000ms);
  BOOST_TEST(type_of(refused) == 4);
  BOOST_TEST(str(refused.at("code")) == "unavailable");
  BOOST_TEST((clock_type::now() - started < 10s));
  BOOST_TEST(eventually([&] { return !healthy(a.port()); }, 10000ms));
  const auto health = http_get(a.port(), "/healthz");
  BOOST_TEST(health.status == 503u);
  BOOST_TEST(health.body == R"({"status":"store_unavailable"})");
  BOOST_TEST(upgrade_status(a.port(), "/ws/3") == 503u);

  redis.restart();
  const auto back = clock_type::now();
  BOOST_TEST(eventually([&] { return healthy(a.port()) && healthy(b.port()); }, 15000ms));
  BOOST_TEST((clock_type::now() - back < 15s));
  // The same sessions: receipts and cross-node delivery resume, nothing of
  // the refused SEND was stored.
  const auto after = send_and_collect(alice, 2, "after", 5);
  BOOST_TEST(after.receipted.size() == 5u);
  BOOST_TEST(seqs_of(after) == (std::set<std::uint64_t>{6, 7, 8, 9, 10}));
  expect_in_order(bob, {6, 7, 8, 9, 10}, 5);
  BOOST_TEST(!bob.read_maybe(300ms).has_value());
}

BOOST_AUTO_TEST_CASE(a_node_starts_without_redis_and_joins_when_it_answers) {
  redis_server redis;
  const auto port = redis.port();
  redis.kill();
  auto cfg = test_config();
  cfg.store = "redis://127.0.0.1:" + std::to_string(port);
  test_server a(cfg);
  BOOST_TEST(http_get(a.port(), "/healthz").status == 503u);
  redis.restart();
  BOOST_TEST(eventually([&] { return healthy(a.port()); }, 15000ms));
  ws_client alice(a.port(), "/ws/1");
  ws_client bob(a.port(), "/ws/2");
  BOOST_TEST(send_and_collect(alice, 2, "m", 2).receipted.size() == 2u);
  expect_in_order(bob, {1, 2}, 0);
}

// A hung Redis (SIGSTOP) accepts connections and never answers: only
// deadlines notice it. What its sender was told failed is never delivered.
BOOST_AUTO_TEST_CASE(a_paused_redis_gives_unavailable_and_nothing_refused_is_delivered_later) {
  redis_server redis;
  // Redis is paused for longer than node_config's short lease: sessions
  // whose lease lapsed meanwhile would be closed when it answers again.
  auto cfg = node_config(redis);
  cfg.session_lease = std::chrono::seconds(30);
  test_server a(cfg), b(cfg);
  ws_client alice(a.port(), "/ws/1");
  ws_client bob(b.port(), "/ws/2");
  BOOST_TEST(send_and_collect(alice, 2, "before", 2).receipted.size() == 2u);
  expect_in_order(bob, {1, 2}, 0);

  redis.pause();
  const auto started = clock_type::now();
  const auto during = send_and_collect(alice, 2, "during", 3, 12000ms);
  BOOST_TEST((clock_type::now() - started < 10s));
  BOOST_TEST(during.receipted.empty());
  BOOST_TEST(during.refused.size() == 3u);
  std::this_thread::sleep_for(2s);  // past the scripts' own deadline
  redis.resume();
  BOOST_TEST(eventually([&] { return healthy(a.port()) && healthy(b.port()); }, 15000ms));

  const auto after = send_and_collect(alice, 2, "after", 2);
  BOOST_TEST(after.receipted.size() == 2u);
  BOOST_TEST(seqs_of(after) == (std::set<std::uint64_t>{3, 4}));
  std::vector<std::string> contents;
  while (contents.size() < 2) {
    auto f = bob.read(10000ms);
    if (type_of(f) == 1) contents.push_back(str(f.at("content")));
  }
  BOOST_TEST(contents == (std::vector<std::string>{"after0", "after1"}),
             boost::test_tools::per_element());
  const auto extra = bob.read_maybe(500ms);
  BOOST_TEST(!extra.has_value(), (extra ? json::serialize(*extra) : ""));
}

// Pub/sub is at-most-once: subscriber connections killed again and again
// during a flood lose publishes, which the receivers fill from the inbox,
// also the last ones, after which nothing more is sent.
BOOST_AUTO_TEST_CASE(subscriber_connections_killed_during_a_flood_lose_nothing) {
  redis_server redis;
  test_server a(node_config(redis)), b(node_config(redis));
  ws_client alice(a.port(), "/ws/1");
  ws_client bob(b.port(), "/ws/2");
  ws_client bob_a(a.port(), "/ws/2?ack=manual");

  std::atomic<bool> flooding{true};
  std::thread killer([&] {
    while (flooding) {
      try {
        redis.cli({"CLIENT", "KILL", "TYPE", "pubsub"});
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(10ms);
    }
  });
  send_result all;
  for (int round = 0; round < 40; ++round) {
    const auto r = send_and_collect(alice, 2, "r" + std::to_string(round) + "-", 100);
    all.receipted.insert(r.receipted.begin(), r.receipted.end());
    BOOST_TEST(r.refused.empty());
    std::this_thread::sleep_for(5ms);
  }
  flooding = false;
  killer.join();
  BOOST_TEST(all.receipted.size() == 4000u);
  expect_in_order(bob, seqs_of(all), 0, 30000ms);
  expect_in_order(bob_a, seqs_of(all), 0, 30000ms);
  BOOST_TEST(!bob.read_maybe(300ms).has_value());
}

// --redis-password-file (AUTH), with the ACL user of the URI when it has one;
// a wrong password keeps the node unavailable rather than stopping it.
BOOST_AUTO_TEST_CASE(nodes_authenticate_with_a_password_file_and_an_acl_user) {
  redis_server_options options;
  options.password = "default-secret";
  options.acl_user = "switchboard";
  options.acl_password = "user-secret";
  redis_server redis(options);
  const auto dir = std::filesystem::temp_directory_path() /
                   ("switchboard-cluster-auth-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  auto a_cfg = node_config(redis);
  a_cfg.redis_password_file = write("default", "default-secret\n");
  auto b_cfg = node_config(redis);
  b_cfg.store = "redis://switchboard@127.0.0.1:" + std::to_string(redis.port());
  b_cfg.redis_password_file = write("user", "user-secret");
  auto bad_cfg = node_config(redis);
  bad_cfg.redis_password_file = write("bad", "wrong");
  {
    test_server a(a_cfg), b(b_cfg), bad(bad_cfg);
    ws_client alice(a.port(), "/ws/1");
    ws_client bob(b.port(), "/ws/2");
    BOOST_TEST(send_and_collect(alice, 2, "m", 2).receipted.size() == 2u);
    expect_in_order(bob, {1, 2}, 0);
    BOOST_TEST(http_get(bad.port(), "/healthz").status == 503u);
  }
  std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(metrics_show_the_redis_figures) {
  redis_server redis;
  test_server a(node_config(redis)), b(node_config(redis));
  ws_client alice(a.port(), "/ws/1");
  ws_client bob(b.port(), "/ws/2");
  BOOST_TEST(send_and_collect(alice, 2, "m", 10).receipted.size() == 10u);
  expect_in_order(bob, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0);
  const auto ma = http_get(a.port(), "/metrics").body;
  const auto mb = http_get(b.port(), "/metrics").body;
  BOOST_TEST(metric_value(ma, "switchboard_store_available") == 1.0);
  BOOST_TEST(metric_value(ma, "switchboard_redis_round_trips_total") >= 1.0);
  BOOST_TEST(metric_value(ma, "switchboard_redis_round_trip_seconds_count") >= 1.0);
  BOOST_TEST(metric_value(ma, "switchboard_redis_reconnects_total") == 0.0);
  BOOST_TEST(metric_value(ma, "switchboard_redis_append_reruns_total") == 0.0);
  BOOST_TEST(metric_value(mb, "switchboard_redis_publishes_received_total") >= 10.0);
  BOOST_TEST(metric_value(mb, "switchboard_messages_delivered_total") == 10.0);
}

// A new session's replay racing live sends from another node: everything
// from seq 1 arrives once, in order, whichever way each message came (from
// the inbox or from pub/sub).
BOOST_AUTO_TEST_CASE(a_replay_racing_sends_from_another_node_has_no_gap_and_no_duplicate) {
  redis_server redis;
  test_server a(node_config(redis)), b(node_config(redis));
  ws_client alice(a.port(), "/ws/1");
  send_result all;
  std::thread flood([&] { all = send_and_collect(alice, 2, "m", 3000, 30000ms); });
  std::this_thread::sleep_for(30ms);
  ws_client early(b.port(), "/ws/2?ack=manual&since=0");
  std::this_thread::sleep_for(60ms);
  ws_client late(a.port(), "/ws/2?ack=manual&since=0");
  flood.join();
  BOOST_TEST(all.receipted.size() == 3000u);
  expect_in_order(early, seqs_of(all), 0, 30000ms);
  expect_in_order(late, seqs_of(all), 0, 30000ms);
  BOOST_TEST(!early.read_maybe(300ms).has_value());
}

// Messages to user 2 (content -> seq) read from `bob` until `count` came;
// fails on a duplicate content.
std::map<std::string, std::uint64_t> read_messages(ws_client& bob, std::size_t count) {
  std::map<std::string, std::uint64_t> got;
  while (got.size() < count) {
    auto f = bob.read(15000ms);
    if (type_of(f) != 1) continue;
    BOOST_TEST_REQUIRE(got.emplace(str(f.at("content")), u64(f.at("seq"))).second,
                       "delivered twice: " << json::serialize(f));
  }
  return got;
}

// The reply to a pipelined batch is lost after Redis ran it (PROTOCOL.md
// section 7: a SEND is refused only if it is never delivered later): the
// node runs the batch again once Redis answers, and what the lost call
// stored is found, not stored twice: a message with an id gets its original
// receipt, one without gets no ERROR. A request lost before Redis saw it is
// stored by the rerun.
BOOST_AUTO_TEST_CASE(a_lost_reply_is_neither_refused_nor_stored_twice) {
  redis_server redis;
  tcp_proxy wire(redis.port());
  auto cfg = node_config(redis);
  cfg.store = "redis://127.0.0.1:" + std::to_string(wire.port()) + "/0";
  test_server a(cfg), b(node_config(redis));
  ws_client alice(a.port(), "/ws/1");
  ws_client bob(b.port(), "/ws/2");
  BOOST_TEST(send_and_collect(alice, 2, "warm", 1).receipted.size() == 1u);
  BOOST_TEST(read_messages(bob, 1).at("warm0") == 1u);

  // Redis runs the script (bob, on node B, gets the message live) but its
  // reply never reaches node A; then the connection breaks. Once with an id
  // (the original receipt comes), once without (no ERROR comes).
  wire.set_mode(tcp_proxy::mode::swallow_replies);
  alice.send(send_frame(2, "lost-y1", "lost-y1"));
  BOOST_TEST(read_messages(bob, 1).at("lost-y1") == 2u);
  wire.reset_all();
  wire.set_mode(tcp_proxy::mode::pass);
  auto receipt = alice.read(12000ms);
  BOOST_TEST_REQUIRE(type_of(receipt) == 2, json::serialize(receipt));
  BOOST_TEST(str(receipt.at("id")) == "lost-y1");
  BOOST_TEST(u64(receipt.at("seq")) == 2u);

  wire.set_mode(tcp_proxy::mode::swallow_replies);
  alice.send(send_frame(2, "lost-x1"));
  BOOST_TEST(read_messages(bob, 1).at("lost-x1") == 3u);
  wire.reset_all();
  wire.set_mode(tcp_proxy::mode::pass);
  alice.send(send_frame(2, "behind-x1", "behind-x1"));
  receipt = alice.read(12000ms);
  BOOST_TEST_REQUIRE(type_of(receipt) == 2, json::serialize(receipt));
  BOOST_TEST(u64(receipt.at("seq")) == 4u);
  BOOST_TEST(read_messages(bob, 1).at("behind-x1") == 4u);

  // Node A's requests never reach Redis; then the connection breaks: the
  // rerun stores them, once.
  BOOST_TEST_REQUIRE(eventually([&] { return healthy(a.port()); }, 15000ms));
  wire.set_mode(tcp_proxy::mode::swallow_requests);
  alice.send(send_frame(2, "unsent-x3"));
  alice.send(send_frame(2, "unsent-y2", "unsent-y2"));
  std::this_thread::sleep_for(300ms);
  BOOST_TEST(redis.cli({"LLEN", "{u:2}:inbox"}) == "4\n");
  wire.reset_all();
  wire.set_mode(tcp_proxy::mode::pass);
  receipt = alice.read(12000ms);
  BOOST_TEST_REQUIRE(type_of(receipt) == 2, json::serialize(receipt));
  BOOST_TEST(u64(receipt.at("seq")) == 6u);
  const auto stored = read_messages(bob, 2);
  BOOST_TEST(stored.at("unsent-x3") == 5u);
  BOOST_TEST(stored.at("unsent-y2") == 6u);

  // Nothing more: no ERROR for anything above, no copy of any of it.
  const auto last = send_and_collect(alice, 2, "after", 1);
  BOOST_TEST(seqs_of(last) == (std::set<std::uint64_t>{7}));
  BOOST_TEST(read_messages(bob, 1).at("after0") == 7u);
  BOOST_TEST(!bob.read_maybe(300ms).has_value());
  BOOST_TEST(!alice.read_maybe(300ms).has_value());
  BOOST_TEST(metric_value(http_get(a.port(), "/metrics").body,
                          "switchboard_redis_append_reruns_total") >= 3.0);
}

// The same for group SENDs (section 10): the group script ran, its reply
// was lost. The rerun finds it, by the dedup entry for a SEND with an id
// (the original group receipt) and by the group's applied hash for one
// without: every member has each copy once, gseqs with no gap.
BOOST_AUTO_TEST_CASE(a_lost_reply_to_a_group_send_stores_no_copy_twice) {
  redis_server redis;
  tcp_proxy wire(redis.port());
  const api_key key;
  auto cfg_a = node_config(redis);
  cfg_a.store = "redis://127.0.0.1:" + std::to_string(wire.port()) + "/0";
  cfg_a.api_key_file = key.file;
  auto cfg_b = node_config(redis);
  cfg_b.api_key_file = key.file;
  test_server a(cfg_a), b(cfg_b);
  key.add_members(b.port(), 8, {1, 2, 3});
  ws_client alice(a.port(), "/ws/1");
  ws_client bob(b.port(), "/ws/2");
  ws_client carol(b.port(), "/ws/3");
  const auto group_send = [&](const std::string& content, bool with_id) {
    json::object f{{"type", 1}, {"group", 8}, {"content", content}};
    if (with_id) f["id"] = content;
    alice.send(f);
  };
  const auto gseq_of = [](ws_client& member, std::size_t count) {
    std::map<std::string, std::uint64_t> got;
    while (got.size() < count) {
      auto f = member.read(15000ms);
      if (type_of(f) != 1) continue;
      BOOST_TEST_REQUIRE(got.emplace(str(f.at("content")), u64(f.at("gseq"))).second,
                         "delivered twice: " << json::serialize(f));
    }
    return got;
  };

  wire.set_mode(tcp_proxy::mode::swallow_replies);
  group_send("lost-y1", true);
  BOOST_TEST(gseq_of(bob, 1).at("lost-y1") == 1u);
  BOOST_TEST(gseq_of(carol, 1).at("lost-y1") == 1u);
  wire.reset_all();
  wire.set_mode(tcp_proxy::mode::pass);
  auto receipt = alice.read(12000ms);
  BOOST_TEST_REQUIRE(type_of(receipt) == 2, json::serialize(receipt));
  BOOST_TEST(str(receipt.at("id")) == "lost-y1");
  BOOST_TEST(u64(receipt.at("group")) == 8u);
  BOOST_TEST(u64(receipt.at("gseq")) == 1u);

  wire.set_mode(tcp_proxy::mode::swallow_replies);
  group_send("lost-x1", false);
  BOOST_TEST(gseq_of(bob, 1).at("lost-x1") == 2u);
  wire.reset_all();
  wire.set_mode(tcp_proxy::mode::pass);
  group_send("behind-y2", true);
  receipt = alice.read(12000ms);
  BOOST_TEST_REQUIRE(type_of(receipt) == 2, json::serialize(receipt));
  BOOST_TEST(u64(receipt.at("gseq")) == 3u);
  BOOST_TEST(gseq_of(bob, 1).at("behind-y2") == 3u);
  const auto to_carol = gseq_of(carol, 2);
  BOOST_TEST(to_carol.at("lost-x1") == 2u);
  BOOST_TEST(to_carol.at("behind-y2") == 3u);
  BOOST_TEST(!bob.read_maybe(300ms).has_value());
  BOOST_TEST(!carol.read_maybe(300ms).has_value());
  BOOST_TEST(!alice.read_maybe(300ms).has_value());
  BOOST_TEST(redis.cli({"GET", "{g:8}:gseq"}) == "3\n");
}

// PROTOCOL.md section 11 across nodes: the sender on node A, the receiver
// on node B with ack=auto. B's cursor move appends the STATUS to the
// sender's inbox in Redis and publishes it; it reaches A over pub/sub, after
// the receipt of every message it covers. Then an offline sender gets it
// replayed on either node.
BOOST_AUTO_TEST_CASE(status_crosses_nodes_after_the_receipts) {
  redis_server redis;
  test_server a(node_config(redis)), b(node_config(redis));
  const auto notify_frame = [](std::uint64_t receiver, const std::string& id) {
    auto f = send_frame(receiver, "m-" + id, id);
    f["notify"] = true;
    return f;
  };
  const auto read_frame = [](std::uint64_t seq) { return json::object{{"type", 6}, {"seq", seq}}; };
  constexpr std::uint64_t count = 50;
  {
    ws_client alice(a.port(), "/ws/1");
    ws_client bob(b.port(), "/ws/2");
    for (std::uint64_t i = 1; i <= count; ++i)
      alice.send(notify_frame(2, "n" + std::to_string(i)));
    std::uint64_t receipts = 0, covered = 0, own_seq = 0;
    while (covered < count) {
      const auto f = alice.read();
      if (type_of(f) == 2) {
        BOOST_TEST(u64(f.at("seq")) == ++receipts);
        continue;
      }
      BOOST_TEST_REQUIRE(type_of(f) == 5, json::serialize(f));
      BOOST_TEST(str(f.at("state")) == "delivered");
      BOOST_TEST(u64(f.at("receiver")) == 2u);
      BOOST_TEST(u64(f.at("seq")) == ++own_seq);
      const auto upto = u64(f.at("upto"));
      BOOST_TEST(receipts >= upto, "STATUS upto " << upto << " after " << receipts << " receipts");
      BOOST_TEST(upto > covered);
      covered = upto;
    }
    for (std::uint64_t i = 1; i <= count; ++i)
      BOOST_TEST(u64(bob.read().at("seq")) == i);
    bob.send(read_frame(20));
    const auto read = alice.read();
    BOOST_TEST(str(read.at("state")) == "read");
    BOOST_TEST(u64(read.at("upto")) == 20u);
    BOOST_TEST(u64(read.at("seq")) == own_seq + 1);
    // Counted by the node that appended it, B's, once the script's reply
    // came back (the publish may reach A before).
    BOOST_TEST(eventually(
        [&] {
          return metric_value(http_get(b.port(), "/metrics").body,
                              "switchboard_status_appended_total{state=\"read\"}") == 1.0;
        },
        5000ms));
  }
  // A STATUS of the first part may be replayed first, if its cursor move
  // had not reached Redis when alice closed.
  const auto is_receipt = [](const json::object& f) { return type_of(f) == 2; };
  const auto covers_51 = [](const json::object& f) {
    return type_of(f) == 5 && u64(f.at("upto")) == 51;
  };
  {
    ws_client alice(a.port(), "/ws/1");
    alice.send(notify_frame(2, "later"));
    BOOST_TEST(u64(alice.read_until(is_receipt).at("seq")) == 51u);
  }
  {
    ws_client bob(b.port(), "/ws/2");
    BOOST_TEST(u64(bob.read().at("seq")) == 51u);
    bob.send(read_frame(51));
    bob.send(send_frame(3, "sync", "s1"));
    BOOST_TEST(type_of(bob.read()) == 2);
  }
  ws_client alice(b.port(), "/ws/1");
  const auto delivered = alice.read_until(covers_51);
  const auto read = alice.read();
  BOOST_TEST(str(delivered.at("state")) == "delivered");
  BOOST_TEST(str(read.at("state")) == "read");
  BOOST_TEST(u64(read.at("upto")) == 51u);
  BOOST_TEST(u64(read.at("seq")) == u64(delivered.at("seq")) + 1);
}
