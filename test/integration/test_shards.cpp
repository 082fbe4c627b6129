// The hub's shards (docs/architecture.md, "Shards"): each user is owned by
// the shard shard_of(user, --threads), on one I/O thread, while its sessions
// are on whatever threads accepted them. What must stay exact across shards:
// delivery and receipts between users of different shards, the session
// limit and `replaced` when a user's sessions are on different threads,
// replay handover, group fan-out (gseq order at every member), STATUS, the
// session listing and drain. ctest runs this suite with 2, 3 and 4 threads;
// with one there is one shard, which the other suites cover.
#define BOOST_TEST_MODULE shards
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "support/test_support.hpp"
#include "switchboard/hub.hpp"

using namespace switchboard;
using namespace switchboard::test;
namespace json = boost::json;

namespace {

constexpr const char* key = "shard-k3y";

std::size_t shards() {
  return test_threads();
}

// The `n`th user (from 0) owned by `shard`, from id `from` up.
std::uint64_t user_on(std::size_t shard, std::size_t n = 0, std::uint64_t from = 100) {
  for (std::uint64_t u = from;; ++u) {
    if (shard_of(u, shards()) != shard) continue;
    if (n-- == 0) return u;
  }
}

std::string ws_path(std::uint64_t user) {
  return "/ws/" + std::to_string(user);
}

json::object group_send(std::uint64_t group, const std::string& content, const std::string& id) {
  return json::object{{"type", 1}, {"group", group}, {"content", content}, {"id", id}};
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_users_spread_over_every_shard) {
  BOOST_TEST_REQUIRE(shards() >= 2u);
  std::vector<std::size_t> count(shards());
  for (std::uint64_t u = 1; u <= 10000; ++u)
    ++count[shard_of(u, shards())];
  for (const auto c : count) {
    BOOST_TEST(c > 10000 / shards() * 9 / 10);
    BOOST_TEST(c < 10000 / shards() * 11 / 10);
  }
}

// From every shard to every shard (and within one): receipts with the
// receiver's seqs, delivery in order, nothing lost or doubled.
BOOST_AUTO_TEST_CASE(messages_cross_shards_in_order) {
  test_server server;
  for (std::size_t from = 0; from < shards(); ++from) {
    for (std::size_t to = 0; to < shards(); ++to) {
      const auto sender_id = user_on(from, 0, 1000 * (from + 1) + 10 * to);
      const auto receiver_id = user_on(to, 1, 50000 + 1000 * (from + 1) + 10 * to);
      BOOST_TEST_CONTEXT("from shard " << from << " to shard " << to) {
        ws_client receiver(server.port(), ws_path(receiver_id));
        ws_client sender(server.port(), ws_path(sender_id));
        constexpr int count = 60;
        // A sender may serve two pairs: ids unique per pair.
        const auto id = [&](int i) {
          return std::to_string(from) + "-" + std::to_string(to) + "-" + std::to_string(i);
        };
        for (int i = 1; i <= count; ++i)
          sender.send(send_frame(receiver_id, "m" + std::to_string(i), id(i)));
        for (int i = 1; i <= count; ++i) {
          const auto receipt = sender.read();
          BOOST_TEST_REQUIRE(type_of(receipt) == 2);
          BOOST_TEST(str(receipt.at("id")) == id(i));
          BOOST_TEST(u64(receipt.at("seq")) == static_cast<std::uint64_t>(i));
          const auto m = receiver.read();
          BOOST_TEST_REQUIRE(type_of(m) == 1);
          BOOST_TEST(str(m.at("content")) == "m" + std::to_string(i));
          BOOST_TEST(u64(m.at("seq")) == static_cast<std::uint64_t>(i));
          BOOST_TEST(u64(m.at("sender")) == sender_id);
        }
      }
    }
  }
}

// The sessions of one user are accepted on different threads (in turn),
// and all register with the user's shard: the limit counts them all, and
// the one replaced is the oldest.
BOOST_AUTO_TEST_CASE(session_limit_and_replaced_across_threads) {
  auto cfg = test_config();
  cfg.max_sessions_per_user = 2;
  test_server server(cfg);
  for (std::size_t shard = 0; shard < shards(); ++shard) {
    BOOST_TEST_CONTEXT("user on shard " << shard) {
      const auto user = user_on(shard, 2);
      ws_client first(server.port(), ws_path(user));
      ws_client second(server.port(), ws_path(user));
      ws_client third(server.port(), ws_path(user));
      std::vector<json::object> frames;
      BOOST_TEST(first.read_until_closed(&frames) == 4001u);
      BOOST_REQUIRE(!frames.empty());
      BOOST_TEST(str(frames.back().at("code")) == "replaced");
      // The two newer ones live on and both receive, from any shard.
      ws_client other(server.port(), ws_path(user_on((shard + 1) % shards(), 3)));
      other.send(send_frame(user, "to both"));
      BOOST_TEST(str(second.read().at("content")) == "to both");
      BOOST_TEST(str(third.read().at("content")) == "to both");
    }
  }
}

// A session that opens while its sender keeps sending gets the backlog,
// then live messages, with no gap and no duplicate.
BOOST_AUTO_TEST_CASE(replay_hands_over_to_live_across_shards) {
  test_server server;
  const auto receiver_id = user_on(shards() - 1, 4);
  const auto sender_id = user_on(0, 4);
  ws_client sender(server.port(), ws_path(sender_id));
  constexpr int before = 300;
  constexpr int during = 700;
  for (int i = 1; i <= before; ++i)
    sender.send(send_frame(receiver_id, std::to_string(i)));
  std::thread more([&] {
    for (int i = before + 1; i <= before + during; ++i)
      sender.send(send_frame(receiver_id, std::to_string(i)));
  });
  ws_client receiver(server.port(), ws_path(receiver_id));
  for (int i = 1; i <= before + during; ++i) {
    const auto m = receiver.read();
    BOOST_TEST_REQUIRE(type_of(m) == 1);
    BOOST_TEST_REQUIRE(u64(m.at("seq")) == static_cast<std::uint64_t>(i));
    BOOST_TEST_REQUIRE(str(m.at("content")) == std::to_string(i));
  }
  more.join();
}

// A sender on one shard, notify: the receipt, then the STATUS, which is an
// entry of the sender's inbox (its shard), after a cursor move on the
// receiver's.
BOOST_AUTO_TEST_CASE(status_crosses_back_to_the_senders_shard) {
  test_server server;
  const auto sender_id = user_on(0, 5);
  const auto receiver_id = user_on(1, 5);
  ws_client receiver(server.port(), ws_path(receiver_id));
  ws_client sender(server.port(), ws_path(sender_id));
  auto frame = send_frame(receiver_id, "hello", "n1");
  frame["notify"] = true;
  sender.send(frame);
  const auto receipt = sender.read();
  BOOST_TEST_REQUIRE(type_of(receipt) == 2);
  BOOST_TEST(str(receiver.read().at("content")) == "hello");
  const auto status = sender.read();
  BOOST_TEST_REQUIRE(type_of(status) == 5);
  BOOST_TEST(str(status.at("state")) == "delivered");
  BOOST_TEST(u64(status.at("receiver")) == receiver_id);
  BOOST_TEST(u64(status.at("upto")) == 1u);
  receiver.send(json::object{{"type", 6}, {"seq", 1}});
  const auto read = sender.read();
  BOOST_TEST_REQUIRE(type_of(read) == 5);
  BOOST_TEST(str(read.at("state")) == "read");
}

// Members on every shard, two senders on different shards sending at once:
// every member gets every other member's messages, each copy once, in
// increasing gseq order with its own seqs going up by one, and each sender
// its receipts.
BOOST_AUTO_TEST_CASE(group_fan_out_across_shards) {
  api_test_server api(key);
  const auto port = api.port();
  constexpr std::uint64_t group = 77;
  std::vector<std::uint64_t> members;
  for (std::size_t shard = 0; shard < shards(); ++shard)
    for (std::size_t n = 0; n < 2; ++n)
      members.push_back(user_on(shard, 6 + n));
  for (const auto m : members)
    BOOST_TEST_REQUIRE(
        http_request(port, "PUT",
                     "/api/groups/" + std::to_string(group) + "/members/" + std::to_string(m),
                     bearer(key))
            .status == 204u);
  std::vector<std::unique_ptr<ws_client>> clients;
  for (const auto m : members)
    clients.push_back(std::make_unique<ws_client>(port, ws_path(m)));

  // Senders: the first member (shard 0) and the last (the last shard).
  constexpr int count = 40;
  const std::vector<std::size_t> senders{0, members.size() - 1};
  std::vector<std::thread> sending;
  for (const auto s : senders)
    sending.emplace_back([&, s] {
      for (int i = 1; i <= count; ++i)
        clients[s]->send(
            group_send(group, std::to_string(s) + ":" + std::to_string(i), std::to_string(i)));
    });
  for (auto& t : sending)
    t.join();

  for (std::size_t c = 0; c < clients.size(); ++c) {
    BOOST_TEST_CONTEXT("member " << members[c]) {
      const bool sends = c == senders[0] || c == senders[1];
      const int copies = sends ? count : 2 * count;
      int receipts = 0;
      int got = 0;
      std::uint64_t last_gseq = 0;
      std::uint64_t last_seq = 0;
      std::map<std::string, int> last_of_sender;
      while (got < copies || (sends && receipts < count)) {
        const auto f = clients[c]->read();
        if (type_of(f) == 2) {
          ++receipts;
          BOOST_TEST(u64(f.at("group")) == group);
          continue;
        }
        BOOST_TEST_REQUIRE(type_of(f) == 1, json::serialize(f));
        ++got;
        BOOST_TEST(u64(f.at("group")) == group);
        BOOST_TEST(u64(f.at("gseq")) > last_gseq);
        last_gseq = u64(f.at("gseq"));
        BOOST_TEST(u64(f.at("seq")) == last_seq + 1);
        last_seq = u64(f.at("seq"));
        const auto content = str(f.at("content"));
        const auto colon = content.find(':');
        const auto from = content.substr(0, colon);
        const int k = std::stoi(content.substr(colon + 1));
        BOOST_TEST(k == last_of_sender[from] + 1, "copies from " << from << " in order");
        last_of_sender[from] = k;
        BOOST_TEST(from != std::to_string(c), "a sender gets no copy of its own");
      }
      BOOST_TEST(got == copies);
    }
  }
}

// GET /api/sessions lists a user's sessions from its shard, wherever they
// were accepted.
BOOST_AUTO_TEST_CASE(the_session_listing_asks_the_users_shard) {
  api_test_server api(key);
  for (std::size_t shard = 0; shard < shards(); ++shard) {
    const auto user = user_on(shard, 8);
    ws_client a(api.port(), ws_path(user));
    ws_client b(api.port(), ws_path(user) + "?device=laptop");
    const auto r = http_get(api.port(), "/api/sessions?user=" + std::to_string(user), bearer(key));
    BOOST_TEST_REQUIRE(r.status == 200u);
    const auto body = json::parse(r.body).as_object();
    BOOST_TEST(u64(body.at("user")) == user);
    const auto& sessions = body.at("sessions").as_array();
    BOOST_TEST_REQUIRE(sessions.size() == 2u);
    BOOST_TEST(str(sessions[0].as_object().at("session")) == str(a.welcome().at("session")));
    BOOST_TEST(str(sessions[1].as_object().at("device")) == "laptop");
  }
}

// Drain: every shard closes its sessions with `shutdown`, and the server
// ends once the last shard has none left.
BOOST_AUTO_TEST_CASE(drain_reaches_every_shard) {
  test_server server;
  std::vector<std::unique_ptr<ws_client>> clients;
  for (std::size_t shard = 0; shard < shards(); ++shard)
    for (std::size_t n = 0; n < 2; ++n)
      clients.push_back(std::make_unique<ws_client>(server.port(), ws_path(user_on(shard, 9 + n))));
  std::thread stopper([&] { server.stop(); });
  for (auto& c : clients) {
    std::vector<json::object> frames;
    BOOST_TEST(c->read_until_closed(&frames) == 1001u);
    BOOST_REQUIRE(!frames.empty());
    BOOST_TEST(str(frames.back().at("code")) == "shutdown");
  }
  stopper.join();
  BOOST_TEST(server.exit_code() == 0);
}
