// The hub's and the memory store's shards (docs/architecture.md, "Shards"):
// each user is owned by the shard shard_of(user, --threads), on one I/O
// thread, while its sessions are on whatever threads accepted them; the
// memory store keeps its inbox in that thread's partition. What must stay
// exact across shards: delivery and receipts between users of different
// shards, the session limit and `replaced` when a user's sessions are on
// different threads, replay handover, group fan-out (gseq order at every
// member), STATUS, the session listing and drain; and what the store's
// split makes new: a resend (same sender and id) to a receiver of another
// shard, group copies stored by their members' partitions, STATUS entries
// stored by the senders', one --memory-store-bytes for all partitions.
// ctest runs this suite with 2, 3 and 4 threads; with one there is one
// shard, which the other suites cover.
#define BOOST_TEST_MODULE shards
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <map>
#include <set>
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

// Two users of every shard: the `n`th and the next of each.
std::vector<std::uint64_t> two_on_every_shard(std::size_t n) {
  std::vector<std::uint64_t> users;
  for (std::size_t shard = 0; shard < shards(); ++shard)
    for (std::size_t k = 0; k < 2; ++k)
      users.push_back(user_on(shard, n + k));
  return users;
}

std::string ws_path(std::uint64_t user) {
  return "/ws/" + std::to_string(user);
}

json::object group_send(std::uint64_t group, const std::string& content, const std::string& id) {
  return json::object{{"type", 1}, {"group", group}, {"content", content}, {"id", id}};
}

void add_member(std::uint16_t port, std::uint64_t group, std::uint64_t user) {
  BOOST_TEST_REQUIRE(
      http_request(port, "PUT",
                   "/api/groups/" + std::to_string(group) + "/members/" + std::to_string(user),
                   bearer(key))
          .status == 204u);
}

// A group whose members are two users of every shard (two_on_every_shard).
std::vector<std::uint64_t> group_on_every_shard(std::uint16_t port, std::uint64_t group,
                                                std::size_t n) {
  const auto members = two_on_every_shard(n);
  for (const auto m : members)
    add_member(port, group, m);
  return members;
}

// The receipt (type 2) or ERROR (type 4) that answers the SEND with `id`.
json::object answer_to(ws_client& client, const std::string& id) {
  return client.read_until([&](const json::object& f) {
    return (type_of(f) == 2 || type_of(f) == 4) && f.contains("id") && str(f.at("id")) == id;
  });
}

bool is_unavailable(const json::object& f) {
  return type_of(f) == 4 && str(f.at("code")) == "unavailable";
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
  const auto members = group_on_every_shard(port, group, 6);
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

// Dedup is per (sender, id), whatever the receiver (PROTOCOL.md section
// 5): a SEND with an id already used, to a receiver of another shard, gets
// the original's receipt and stores nothing, even when it is sent right
// behind the original and the two receivers' partitions run at once. The
// first one sent is the original.
BOOST_AUTO_TEST_CASE(a_resend_to_a_receiver_of_another_shard_gets_the_original_receipt) {
  test_server server;
  const auto sender_id = user_on(shards() - 1, 11);
  const auto first_id = user_on(1, 10);
  const auto second_id = user_on(0, 10);
  ws_client sender(server.port(), ws_path(sender_id));
  constexpr int count = 300;
  for (int i = 1; i <= count; ++i) {
    sender.send(send_frame(first_id, "a" + std::to_string(i), "r" + std::to_string(i)));
    sender.send(send_frame(second_id, "b" + std::to_string(i), "r" + std::to_string(i)));
  }
  std::map<std::string, int> receipts;
  for (int n = 0; n < 2 * count; ++n) {
    const auto f = sender.read();
    BOOST_TEST_REQUIRE(type_of(f) == 2, json::serialize(f));
    const auto id = str(f.at("id"));
    const int i = std::stoi(id.substr(1));
    BOOST_TEST_REQUIRE(u64(f.at("receiver")) == first_id, id);
    BOOST_TEST_REQUIRE(u64(f.at("seq")) == static_cast<std::uint64_t>(i), id);
    ++receipts[id];
  }
  for (int i = 1; i <= count; ++i)
    BOOST_TEST(receipts["r" + std::to_string(i)] == 2);
  // Later, one more resend to the second receiver: the same answer.
  sender.send(send_frame(second_id, "again", "r7"));
  const auto again = answer_to(sender, "r7");
  BOOST_TEST(u64(again.at("receiver")) == first_id);
  BOOST_TEST(u64(again.at("seq")) == 7u);
  // The second receiver holds only what was sent to it with a new id.
  sender.send(send_frame(second_id, "marker", "marker"));
  BOOST_TEST(u64(answer_to(sender, "marker").at("seq")) == 1u);

  ws_client first(server.port(), ws_path(first_id));
  BOOST_TEST(u64(first.welcome().at("seq")) == static_cast<std::uint64_t>(count));
  for (int i = 1; i <= count; ++i)
    BOOST_TEST_REQUIRE(str(first.read().at("content")) == "a" + std::to_string(i));
  ws_client second(server.port(), ws_path(second_id));
  BOOST_TEST(u64(second.welcome().at("seq")) == 1u);
  BOOST_TEST(str(second.read().at("content")) == "marker");
}

// Members on every shard, none connected: the group's partition numbers the
// messages and hands each copy to its member's partition. Once the sender
// has a receipt, every member gets the copy, in gseq order, with seqs of
// its own; a resend of a group message's id as a direct SEND to a user of
// another shard gets the group receipt. The membership lists agree,
// whichever shard the user is on.
BOOST_AUTO_TEST_CASE(group_copies_are_stored_by_every_members_partition) {
  api_test_server api(key);
  const auto port = api.port();
  constexpr std::uint64_t group = 91;
  const auto members = group_on_every_shard(port, group, 11);
  const auto sender_id = members.back();
  constexpr int count = 50;
  {
    ws_client sender(port, ws_path(sender_id));
    for (int i = 1; i <= count; ++i)
      sender.send(group_send(group, "g" + std::to_string(i), "g" + std::to_string(i)));
    for (int i = 1; i <= count; ++i) {
      const auto receipt = sender.read();
      BOOST_TEST_REQUIRE(type_of(receipt) == 2, json::serialize(receipt));
      BOOST_TEST(str(receipt.at("id")) == "g" + std::to_string(i));
      BOOST_TEST(u64(receipt.at("gseq")) == static_cast<std::uint64_t>(i));
    }
    sender.send(send_frame(user_on(1, 20), "not again", "g5"));
    const auto again = answer_to(sender, "g5");
    BOOST_TEST(u64(again.at("group")) == group);
    BOOST_TEST(u64(again.at("gseq")) == 5u);
  }
  for (const auto m : members) {
    if (m == sender_id) continue;
    BOOST_TEST_CONTEXT("member " << m << " on shard " << shard_of(m, shards())) {
      ws_client member(port, ws_path(m));
      BOOST_TEST(u64(member.welcome().at("seq")) == static_cast<std::uint64_t>(count));
      for (int i = 1; i <= count; ++i) {
        const auto f = member.read();
        BOOST_TEST_REQUIRE(type_of(f) == 1);
        BOOST_TEST(u64(f.at("gseq")) == static_cast<std::uint64_t>(i));
        BOOST_TEST(u64(f.at("seq")) == static_cast<std::uint64_t>(i));
        BOOST_TEST(str(f.at("content")) == "g" + std::to_string(i));
      }
      const auto listed =
          http_get(port, "/api/users/" + std::to_string(m) + "/groups", bearer(key));
      BOOST_TEST(listed.body == R"({"user":)" + std::to_string(m) + R"(,"groups":[)" +
                                    std::to_string(group) + "]}");
    }
  }
  const auto listed =
      http_get(port, "/api/groups/" + std::to_string(group) + "/members", bearer(key));
  BOOST_TEST(json::parse(listed.body).as_object().at("members").as_array().size() ==
             members.size());
}

// Senders on every shard, notify, one receiver: each sender's receipt comes
// before any STATUS about its message, and the STATUS entries, which the
// receiver's partition produces and each sender's partition stores, reach
// every sender: "delivered" as the receiver's cursor moves, "read" after
// its READ.
BOOST_AUTO_TEST_CASE(status_reaches_senders_on_every_shard_after_their_receipts) {
  test_server server;
  const auto receiver_id = user_on(0, 13);
  std::vector<std::unique_ptr<ws_client>> senders;
  for (std::size_t shard = 0; shard < shards(); ++shard)
    for (std::size_t n = 0; n < 2; ++n)
      senders.push_back(
          std::make_unique<ws_client>(server.port(), ws_path(user_on(shard, 14 + n))));
  ws_client receiver(server.port(), ws_path(receiver_id));
  constexpr int count = 20;
  for (int i = 1; i <= count; ++i)
    for (auto& s : senders) {
      auto frame = send_frame(receiver_id, "s" + std::to_string(i), "n" + std::to_string(i));
      frame["notify"] = true;
      s->send(frame);
    }
  std::uint64_t highest = 0;
  for (std::size_t n = 0; n < count * senders.size(); ++n) {
    const auto m = receiver.read();
    BOOST_TEST_REQUIRE(type_of(m) == 1);
    highest = u64(m.at("seq"));
  }
  BOOST_TEST(highest == count * senders.size());
  receiver.send(json::object{{"type", 6}, {"seq", highest}});
  for (auto& s : senders) {
    // In arrival order: the seq of each receipt, the upto of each STATUS.
    std::vector<std::uint64_t> receipt_seqs;
    std::vector<std::pair<std::size_t, std::uint64_t>> statuses;  // (frames before it, upto)
    bool read = false;
    while (!read || receipt_seqs.size() < count) {
      const auto f = s->read();
      if (type_of(f) == 2) {
        receipt_seqs.push_back(u64(f.at("seq")));
        continue;
      }
      BOOST_TEST_REQUIRE(type_of(f) == 5, json::serialize(f));
      BOOST_TEST(u64(f.at("receiver")) == receiver_id);
      statuses.emplace_back(receipt_seqs.size(), u64(f.at("upto")));
      if (str(f.at("state")) == "read") {
        BOOST_TEST(u64(f.at("upto")) == highest);
        read = true;
      }
    }
    // A STATUS covering a message came after the message's receipt.
    for (const auto& [receipts_before, upto] : statuses)
      for (std::size_t r = receipts_before; r < receipt_seqs.size(); ++r)
        BOOST_TEST(receipt_seqs[r] > upto,
                   "receipt of seq " << receipt_seqs[r] << " after a STATUS upto " << upto);
    BOOST_TEST(statuses.size() >= 2u);  // at least one "delivered", then "read"
  }
}

// --memory-store-bytes is one bound for the process: filled through one
// partition, every partition refuses (a direct SEND, and a group SEND whose
// copies would go to every shard: all or none, no gseq used); freed through
// one, every partition takes SENDs again.
BOOST_AUTO_TEST_CASE(memory_store_bytes_bound_every_partition_at_once) {
  auto cfg = test_config();
  cfg.memory_store_bytes = 512 * 1024;
  api_test_server api(key, cfg);
  const auto port = api.port();
  constexpr std::uint64_t group = 92;
  std::vector<std::uint64_t> members;
  for (std::size_t shard = 0; shard < shards(); ++shard)
    members.push_back(user_on(shard, 16));
  for (const auto m : members)
    add_member(port, group, m);
  const auto sender_id = members.front();
  const auto full_id = user_on(1, 17);   // fills the store through shard 1
  const auto other_id = user_on(0, 17);  // another partition
  ws_client sender(port, ws_path(sender_id));

  const std::string content(16 * 1024, 'm');
  int stored = 0;
  for (int i = 0; i < 100; ++i) {
    const auto id = "m" + std::to_string(i);
    sender.send(send_frame(full_id, content, id));
    const auto answer = answer_to(sender, id);
    if (type_of(answer) == 4) {
      BOOST_TEST_REQUIRE(is_unavailable(answer));
      break;
    }
    ++stored;
  }
  // As with one thread (test_store_bounds): the bound is not per partition.
  BOOST_TEST(stored >= 28);
  BOOST_TEST(stored <= 32);
  sender.send(send_frame(other_id, content, "other"));
  BOOST_TEST(is_unavailable(answer_to(sender, "other")));
  sender.send(group_send(group, content, "group-full"));
  BOOST_TEST(is_unavailable(answer_to(sender, "group-full")));

  // Read (ack=auto) through shard 1: every partition takes SENDs again.
  {
    ws_client full(port, ws_path(full_id));
    for (int i = 1; i <= stored; ++i)
      BOOST_TEST_REQUIRE(u64(full.read().at("seq")) == static_cast<std::uint64_t>(i));
  }
  bool taken = false;
  for (int attempt = 0; attempt < 200 && !taken; ++attempt) {
    const auto id = "other" + std::to_string(attempt);
    sender.send(send_frame(other_id, "small", id));
    taken = type_of(answer_to(sender, id)) == 2;
    if (!taken) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  BOOST_TEST_REQUIRE(taken);
  sender.send(group_send(group, "after", "group-after"));
  const auto receipt = answer_to(sender, "group-after");
  BOOST_TEST_REQUIRE(type_of(receipt) == 2);
  BOOST_TEST(u64(receipt.at("gseq")) == 1u);  // the refused one used none
  for (const auto m : members) {
    if (m == sender_id) continue;
    ws_client member(port, ws_path(m));
    const auto f = member.read();
    BOOST_TEST(str(f.at("content")) == "after");
    BOOST_TEST(u64(f.at("gseq")) == 1u);
  }
}

// Replay handover with senders on every thread at once: the receiver's
// partition appends from all of them while the receiver opens; it gets
// every message once, seqs without a gap, each sender's in its order.
BOOST_AUTO_TEST_CASE(replay_hands_over_with_senders_on_every_shard) {
  test_server server;
  const auto receiver_id = user_on(shards() - 1, 18);
  std::vector<std::unique_ptr<ws_client>> senders;
  for (std::size_t shard = 0; shard < shards(); ++shard)
    senders.push_back(std::make_unique<ws_client>(server.port(), ws_path(user_on(shard, 19))));
  constexpr int per_sender = 400;
  std::vector<std::thread> sending;
  for (std::size_t s = 0; s < senders.size(); ++s)
    sending.emplace_back([&, s] {
      for (int i = 1; i <= per_sender; ++i)
        senders[s]->send(send_frame(receiver_id, std::to_string(s) + ":" + std::to_string(i)));
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ws_client receiver(server.port(), ws_path(receiver_id));
  std::map<std::string, int> last;
  const auto total = per_sender * senders.size();
  for (std::size_t n = 1; n <= total; ++n) {
    const auto m = receiver.read();
    BOOST_TEST_REQUIRE(type_of(m) == 1);
    BOOST_TEST_REQUIRE(u64(m.at("seq")) == n);
    const auto content = str(m.at("content"));
    const auto colon = content.find(':');
    const auto from = content.substr(0, colon);
    const int k = std::stoi(content.substr(colon + 1));
    BOOST_TEST_REQUIRE(k == last[from] + 1, "from " << from);
    last[from] = k;
  }
  for (auto& t : sending)
    t.join();
}
