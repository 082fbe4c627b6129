#define BOOST_TEST_MODULE durability
#include <boost/test/unit_test.hpp>

// The SQLite store through the real binary: receipted messages survive
// kill -9, acknowledgements and resends survive a restart, a database that
// cannot be used stops the start with exit code 1, and SIGTERM closes the
// store cleanly (PROTOCOL.md sections 2, 3 and 8). Every case runs with
// --threads 1 and 2 (ctest sets SWITCHBOARD_TEST_THREADS).

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/json.hpp>
#include <boost/test/results_collector.hpp>

#include "support/process.hpp"
#include "support/test_support.hpp"

using namespace switchboard::test;
namespace json = boost::json;

namespace {

std::string content_of(std::uint64_t i) {
  return "message " + std::to_string(i);
}
std::string id_of(std::uint64_t i) {
  return "m" + std::to_string(i);
}

// Message number `seq` of the numbered stream from user 1 to user 2.
void check_numbered(const json::object& m, std::uint64_t seq) {
  BOOST_TEST_CONTEXT("expected seq " << seq << ", got " << json::serialize(m)) {
    BOOST_REQUIRE_EQUAL(type_of(m), 1);
    BOOST_REQUIRE_EQUAL(u64(m.at("seq")), seq);
    BOOST_REQUIRE_EQUAL(u64(m.at("sender")), 1u);
    BOOST_REQUIRE_EQUAL(u64(m.at("receiver")), 2u);
    BOOST_REQUIRE_EQUAL(str(m.at("content")), content_of(seq));
    BOOST_REQUIRE_EQUAL(str(m.at("id")), id_of(seq));
  }
}

// A file-open failure: exit code 1, exactly one line on stderr naming the
// path, nothing on stdout.
void expect_open_failure(child_process& p, const std::string& path) {
  BOOST_TEST(p.wait(10s) == 1);
  const auto err = p.stderr_text();
  BOOST_TEST_CONTEXT("stderr: " << err) {
    BOOST_TEST(std::count(err.begin(), err.end(), '\n') == 1);
    BOOST_TEST((!err.empty() && err.back() == '\n'));
    BOOST_TEST(err.rfind("switchboard: ", 0) == 0u);
    BOOST_TEST(err.find(path) != std::string::npos);
  }
  BOOST_TEST(p.stdout_text().empty());
}

}  // namespace

BOOST_AUTO_TEST_CASE(receipted_messages_survive_kill_9_while_the_receiver_is_offline) {
  temp_dir dir;
  const auto db = dir.file("inbox.db");
  constexpr std::uint64_t count = 200;
  std::vector<std::uint64_t> receipt_seq(count + 1, 0);
  std::vector<std::int64_t> receipt_ts(count + 1, 0);
  {
    server_process server(db);
    ws_client sender(server.port(), "/ws/1");
    for (std::uint64_t i = 1; i <= count; ++i)
      sender.send(send_frame(2, content_of(i), id_of(i)));
    for (std::uint64_t n = 1; n <= count; ++n) {
      const auto r = sender.read();
      BOOST_REQUIRE_EQUAL(type_of(r), 2);
      BOOST_REQUIRE_EQUAL(u64(r.at("receiver")), 2u);
      const auto id = str(r.at("id"));
      BOOST_REQUIRE(id.starts_with("m"));
      const auto i = std::stoull(id.substr(1));
      BOOST_REQUIRE(i >= 1 && i <= count);
      BOOST_REQUIRE_EQUAL(receipt_seq[i], 0u);  // one receipt per id
      receipt_seq[i] = u64(r.at("seq"));
      receipt_ts[i] = r.at("ts").to_number<std::int64_t>();
    }
    // One sender, in order: the receipts give seqs 1..N in sending order.
    for (std::uint64_t i = 1; i <= count; ++i)
      BOOST_REQUIRE_EQUAL(receipt_seq[i], i);
    server.crash();
  }

  server_process server(db);
  ws_client receiver(server.port(), "/ws/2");
  BOOST_TEST(u64(receiver.welcome().at("receiver")) == 2u);
  BOOST_TEST(u64(receiver.welcome().at("seq")) == count);
  for (std::uint64_t i = 1; i <= count; ++i) {
    const auto m = receiver.read();
    check_numbered(m, i);
    BOOST_REQUIRE_EQUAL(m.at("ts").to_number<std::int64_t>(), receipt_ts[i]);
  }
  // The seq counter survived too: the next message continues it, and it is
  // the next frame the receiver sees (nothing replayed twice).
  ws_client sender(server.port(), "/ws/1");
  sender.send(send_frame(2, content_of(count + 1), id_of(count + 1)));
  const auto r = sender.read();
  BOOST_TEST(type_of(r) == 2);
  BOOST_TEST(str(r.at("id")) == id_of(count + 1));
  BOOST_TEST(u64(r.at("seq")) == count + 1);
  check_numbered(receiver.read(), count + 1);
}

BOOST_AUTO_TEST_CASE(manual_acks_and_receipts_survive_kill_9_mid_stream) {
  temp_dir dir;
  const auto db = dir.file("inbox.db");
  constexpr std::uint64_t read_before_ack = 100;
  constexpr std::uint64_t acked = 60;

  std::vector<std::uint64_t> receipts;  // receipts[k] is the seq of message k + 1
  std::atomic<std::size_t> receipt_count{0};
  std::string sender_stop;
  bool sender_bad_frame = false;
  {
    server_process server(db);
    ws_client receiver(server.port(), "/ws/2?ack=manual");
    BOOST_TEST(u64(receiver.welcome().at("seq")) == 0u);
    ws_client sender(server.port(), "/ws/1");

    // The sender goes on until the server dies under it.
    std::thread sending([&] {
      constexpr std::uint64_t batch = 20;
      try {
        for (std::uint64_t i = 1;; i += batch) {
          for (std::uint64_t k = i; k < i + batch; ++k)
            sender.send(send_frame(2, content_of(k), id_of(k)));
          for (std::uint64_t k = i; k < i + batch; ++k) {
            const auto r = sender.read();
            if (type_of(r) != 2 || str(r.at("id")) != id_of(k)) {
              sender_bad_frame = true;
              sender_stop = json::serialize(r);
              return;
            }
            receipts.push_back(u64(r.at("seq")));
            ++receipt_count;
          }
        }
      } catch (const std::exception& e) {
        sender_stop = e.what();
      }
    });

    // A failed check below must not leave the thread running.
    struct joiner {
      std::thread& thread;
      child_process& process;
      ~joiner() {
        if (!thread.joinable()) return;
        process.signal(SIGKILL);
        thread.join();
      }
    } join_on_failure{sending, server.process()};

    std::uint64_t seen = 0;
    auto take = [&](const json::object& f) {
      check_numbered(f, seen + 1);
      ++seen;
    };
    while (seen < read_before_ack)
      take(receiver.read());
    receiver.send_text(R"({"type":2,"seq":)" + std::to_string(acked) + "}");
    // The store worker handles one session's requests in order and moves
    // cursors at the end of each round: once a SEND made after the RECEIVE
    // was receipted, and then one more made after that receipt, the cursor
    // move is committed.
    for (const char* id : {"sync1", "sync2"}) {
      receiver.send(send_frame(3, "sync", std::string(id)));
      for (;;) {
        const auto f = receiver.read();
        if (type_of(f) == 1) {
          take(f);
          continue;
        }
        BOOST_REQUIRE_EQUAL(type_of(f), 2);
        BOOST_REQUIRE_EQUAL(str(f.at("id")), id);
        BOOST_REQUIRE_EQUAL(u64(f.at("receiver")), 3u);
        break;
      }
    }
    // Mid-stream: the receiver stops reading, the sender goes on; the kill
    // comes with messages read but not acknowledged and messages stored but
    // never read.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (receipt_count < seen + 100 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    const bool went_on = receipt_count >= seen + 100;
    server.crash();
    sending.join();
    BOOST_REQUIRE(went_on);
    BOOST_TEST_MESSAGE("receiver read " << seen << ", sender had " << receipts.size()
                                        << " receipts when it stopped: " << sender_stop);
  }
  BOOST_REQUIRE(!sender_bad_frame);
  for (std::size_t k = 0; k < receipts.size(); ++k)
    BOOST_REQUIRE_EQUAL(receipts[k], k + 1);
  const std::uint64_t last_receipted = receipts.size();

  server_process server(db);
  std::uint64_t highest = 0;
  {
    ws_client receiver(server.port(), "/ws/2?ack=manual");
    highest = u64(receiver.welcome().at("seq"));
    // Stored but not yet receipted messages may be there too; no receipted
    // one may be missing.
    BOOST_REQUIRE_GE(highest, last_receipted);
    // The replay starts just above the acknowledged seq and has no gap.
    for (std::uint64_t seq = acked + 1; seq <= highest; ++seq)
      check_numbered(receiver.read(), seq);
    // Then only live messages: the next one continues the seqs.
    ws_client sender(server.port(), "/ws/1");
    sender.send(send_frame(2, content_of(highest + 1), id_of(highest + 1)));
    const auto r = sender.read();
    BOOST_TEST(type_of(r) == 2);
    BOOST_TEST(u64(r.at("seq")) == highest + 1);
    check_numbered(receiver.read(), highest + 1);
    // Acknowledge everything but the last; the seq moves are kept.
    receiver.send_text(R"({"type":2,"seq":)" + std::to_string(highest) + "}");
    receiver.send_text(R"({"type":3})");
    BOOST_TEST(receiver.read_until_closed() == 1000u);
  }
  // The sender's sync messages were kept for user 3, with nothing acked.
  ws_client third(server.port(), "/ws/3?ack=manual");
  BOOST_TEST(u64(third.welcome().at("seq")) == 2u);
  BOOST_TEST(str(third.read().at("id")) == "sync1");
  BOOST_TEST(str(third.read().at("id")) == "sync2");
}

BOOST_AUTO_TEST_CASE(a_resend_after_kill_9_gets_the_original_receipt) {
  temp_dir dir;
  const auto db = dir.file("inbox.db");
  json::object receipt;
  {
    server_process server(db);
    ws_client sender(server.port(), "/ws/1");
    sender.send(send_frame(2, "original", "x1"));
    receipt = sender.read();
    BOOST_REQUIRE_EQUAL(type_of(receipt), 2);
    BOOST_TEST(str(receipt.at("id")) == "x1");
    BOOST_TEST(u64(receipt.at("receiver")) == 2u);
    BOOST_TEST(u64(receipt.at("seq")) == 1u);
    server.crash();
  }

  server_process server(db);
  ws_client sender(server.port(), "/ws/1");
  // Other content, then even another receiver: the original receipt, and
  // nothing stored.
  for (std::uint64_t receiver : {2u, 3u}) {
    BOOST_TEST_CONTEXT("resend to " << receiver) {
      sender.send(send_frame(receiver, "changed", "x1"));
      const auto again = sender.read();
      BOOST_TEST(type_of(again) == 2);
      BOOST_TEST(str(again.at("id")) == "x1");
      BOOST_TEST(u64(again.at("receiver")) == 2u);
      BOOST_TEST(u64(again.at("seq")) == 1u);
      BOOST_TEST(again.at("ts").to_number<std::int64_t>() ==
                 receipt.at("ts").to_number<std::int64_t>());
    }
  }

  ws_client receiver(server.port(), "/ws/2");
  BOOST_TEST(u64(receiver.welcome().at("seq")) == 1u);
  const auto m = receiver.read();
  BOOST_TEST(type_of(m) == 1);
  BOOST_TEST(u64(m.at("seq")) == 1u);
  BOOST_TEST(str(m.at("content")) == "original");
  BOOST_TEST(str(m.at("id")) == "x1");
  BOOST_TEST(m.at("ts").to_number<std::int64_t>() == receipt.at("ts").to_number<std::int64_t>());
  // The next frame is the next message: "x1" came once.
  sender.send(send_frame(2, "next", "x2"));
  BOOST_TEST(u64(sender.read().at("seq")) == 2u);
  const auto next = receiver.read();
  BOOST_TEST(u64(next.at("seq")) == 2u);
  BOOST_TEST(str(next.at("content")) == "next");

  ws_client other(server.port(), "/ws/3");
  BOOST_TEST(u64(other.welcome().at("seq")) == 0u);
}

// Groups (PROTOCOL.md section 10) on SQLite: a membership answered 204
// survives kill -9, and so does every copy of a receipted group message,
// each in its member's inbox with its own seq; gseq continues after it.
BOOST_AUTO_TEST_CASE(receipted_group_messages_and_memberships_survive_kill_9) {
  temp_dir dir;
  const auto db = dir.file("inbox.db");
  const auto key_file = dir.file("api-key");
  std::ofstream(key_file) << "durable-key\n";
  const std::vector<std::string> api{"--api-key-file", key_file};
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer durable-key"}};
  constexpr std::uint64_t count = 50;
  {
    server_process server(db, api);
    for (const std::uint64_t user : {1, 2, 3, 4}) {
      const auto r =
          http_request(server.port(), "PUT", "/api/groups/9/members/" + std::to_string(user), auth);
      BOOST_REQUIRE_EQUAL(r.status, 204u);
    }
    BOOST_REQUIRE_EQUAL(
        http_request(server.port(), "DELETE", "/api/groups/9/members/4", auth).status, 204u);
    ws_client sender(server.port(), "/ws/1");
    sender.send(send_frame(3, "direct first"));  // user 3's seqs are one ahead
    for (std::uint64_t i = 1; i <= count; ++i) {
      json::object frame{{"type", 1}, {"group", 9}, {"content", content_of(i)}, {"id", id_of(i)}};
      sender.send(frame);
    }
    for (std::uint64_t i = 1; i <= count; ++i) {
      const auto r = sender.read();
      BOOST_REQUIRE_EQUAL(type_of(r), 2);
      BOOST_REQUIRE_EQUAL(str(r.at("id")), id_of(i));
      BOOST_REQUIRE_EQUAL(u64(r.at("gseq")), i);
    }
    server.crash();
  }

  server_process server(db, api);
  BOOST_TEST(http_get(server.port(), "/api/groups/9/members", auth).body ==
             R"({"group":9,"members":[1,2,3]})");
  BOOST_TEST(http_get(server.port(), "/api/users/4/groups", auth).body ==
             R"({"user":4,"groups":[]})");
  for (const std::uint64_t member : {2, 3}) {
    BOOST_TEST_CONTEXT("member " << member) {
      const std::uint64_t offset = member == 3 ? 1 : 0;
      ws_client receiver(server.port(), "/ws/" + std::to_string(member));
      BOOST_TEST(u64(receiver.welcome().at("seq")) == count + offset);
      if (offset) BOOST_TEST(str(receiver.read().at("content")) == "direct first");
      for (std::uint64_t i = 1; i <= count; ++i) {
        const auto m = receiver.read();
        BOOST_REQUIRE_EQUAL(u64(m.at("seq")), i + offset);
        BOOST_REQUIRE_EQUAL(u64(m.at("gseq")), i);
        BOOST_REQUIRE_EQUAL(u64(m.at("group")), 9u);
        BOOST_REQUIRE_EQUAL(u64(m.at("receiver")), member);
        BOOST_REQUIRE_EQUAL(str(m.at("content")), content_of(i));
      }
    }
  }
  // The removed member has nothing; the sender none of its own.
  ws_client removed(server.port(), "/ws/4");
  BOOST_TEST(u64(removed.welcome().at("seq")) == 0u);
  ws_client sender(server.port(), "/ws/1");
  BOOST_TEST(u64(sender.welcome().at("seq")) == 0u);
  // gseq continues, and a resend gets its original receipt.
  sender.send(json::object{{"type", 1}, {"group", 9}, {"content", "again"}, {"id", id_of(1)}});
  BOOST_TEST(u64(sender.read().at("gseq")) == 1u);
  sender.send(json::object{{"type", 1}, {"group", 9}, {"content", "next"}, {"id", "next"}});
  BOOST_TEST(u64(sender.read().at("gseq")) == count + 1);
}

// Notifications (PROTOCOL.md section 11) on SQLite: a STATUS the sender
// was sent survives kill -9 in its inbox, and so does what it covered: after
// the restart a READ brings "read" alone, not "delivered" again, and only
// for what was not read before.
BOOST_AUTO_TEST_CASE(status_entries_and_what_they_covered_survive_kill_9) {
  temp_dir dir;
  const auto db = dir.file("inbox.db");
  constexpr std::uint64_t count = 5;
  std::vector<json::object> before;
  {
    server_process server(db);
    ws_client sender(server.port(), "/ws/1?ack=manual");
    ws_client receiver(server.port(), "/ws/2");  // ack=auto: delivered as written
    for (std::uint64_t i = 1; i <= count; ++i) {
      json::object frame{{"type", 1},
                         {"receiver", 2},
                         {"content", content_of(i)},
                         {"id", id_of(i)},
                         {"notify", true}};
      sender.send(frame);
    }
    for (std::uint64_t i = 1; i <= count; ++i)
      BOOST_REQUIRE_EQUAL(u64(receiver.read().at("seq")), i);
    receiver.send(json::object{{"type", 6}, {"seq", 2}});  // read up to 2
    // Receipts, then STATUS entries until "read" upto 2 and "delivered" upto 5.
    bool read_2 = false, delivered_5 = false;
    while (!read_2 || !delivered_5) {
      const auto f = sender.read();
      if (type_of(f) != 5) continue;
      before.push_back(f);
      if (str(f.at("state")) == "read" && u64(f.at("upto")) == 2) read_2 = true;
      if (str(f.at("state")) == "delivered" && u64(f.at("upto")) == count) delivered_5 = true;
    }
    server.crash();
  }

  server_process server(db);
  // Not acknowledged: replayed, the same entries.
  ws_client sender(server.port(), "/ws/1?ack=manual");
  std::vector<json::object> replayed;
  while (replayed.size() < before.size())
    replayed.push_back(sender.read());
  for (std::size_t i = 0; i < before.size(); ++i)
    BOOST_TEST(json::serialize(replayed[i]) == json::serialize(before[i]));
  // A READ of everything: "read" upto 5 alone (all were delivered before the crash).
  ws_client receiver(server.port(), "/ws/2");
  receiver.send(json::object{{"type", 6}, {"seq", count}});
  const auto f = sender.read();
  BOOST_TEST(type_of(f) == 5);
  BOOST_TEST(str(f.at("state")) == "read");
  BOOST_TEST(u64(f.at("upto")) == count);
  BOOST_TEST(u64(f.at("seq")) == u64(before.back().at("seq")) + 1);
  BOOST_TEST(!sender.read_maybe(500ms).has_value());
}

BOOST_AUTO_TEST_CASE(a_corrupt_database_stops_the_start_with_exit_1) {
  temp_dir dir;
  const auto db = dir.file("garbage.db");
  std::string garbage(8192, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = static_cast<char>((i * 131 + 7) & 0xff);
  {
    std::ofstream out(db, std::ios::binary);
    out.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  child_process p(server_args(db));
  expect_open_failure(p, db);
  // The file was left as it was.
  std::ifstream in(db, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BOOST_TEST((after == garbage));
}

BOOST_AUTO_TEST_CASE(a_database_held_by_another_server_stops_the_start_with_exit_1) {
  temp_dir dir;
  const auto db = dir.file("inbox.db");
  server_process first(db);
  {
    child_process second(server_args(db));
    expect_open_failure(second, db);
  }
  // The first one is unharmed.
  ws_client sender(first.port(), "/ws/1");
  ws_client receiver(first.port(), "/ws/2");
  sender.send(send_frame(2, "still here", "h1"));
  BOOST_TEST(u64(sender.read().at("seq")) == 1u);
  BOOST_TEST(str(receiver.read().at("content")) == "still here");
  first.process().signal(SIGTERM);
  BOOST_TEST(sender.read_until_closed() == 1001u);
  BOOST_TEST(receiver.read_until_closed() == 1001u);
  BOOST_TEST(first.process().wait(20s) == 0);
}

BOOST_AUTO_TEST_CASE(an_unusable_location_stops_the_start_with_exit_1) {
  temp_dir dir;
  // Inside a directory that does not exist (root can write anywhere else).
  const auto missing = dir.file("no-such-dir/inbox.db");
  {
    child_process p(server_args(missing));
    expect_open_failure(p, missing);
  }
  BOOST_TEST(!std::filesystem::exists(dir.file("no-such-dir")));
  // A directory, not a file.
  {
    child_process p(server_args(dir.path()));
    expect_open_failure(p, dir.path());
  }
}

BOOST_AUTO_TEST_CASE(sigterm_exits_0_and_keeps_messages_and_cursors) {
  temp_dir dir;
  const auto db = dir.file("inbox.db");
  {
    server_process server(db);
    ws_client online(server.port(), "/ws/2");  // ack=auto
    ws_client sender(server.port(), "/ws/1");
    for (std::uint64_t i = 1; i <= 2; ++i) {
      sender.send(send_frame(2, content_of(i), id_of(i)));
      BOOST_TEST(u64(sender.read().at("seq")) == i);
      check_numbered(online.read(), i);
    }
    for (int i = 1; i <= 3; ++i) {
      sender.send(send_frame(3, "kept " + std::to_string(i), "k" + std::to_string(i)));
      const auto r = sender.read();
      BOOST_TEST(u64(r.at("receiver")) == 3u);
      BOOST_TEST(u64(r.at("seq")) == static_cast<std::uint64_t>(i));
    }
    server.process().signal(SIGTERM);
    std::vector<json::object> frames;
    BOOST_TEST(online.read_until_closed(&frames) == 1001u);
    BOOST_REQUIRE_EQUAL(frames.size(), 1u);
    BOOST_TEST(type_of(frames.back()) == 3);
    BOOST_TEST(str(frames.back().at("code")) == "shutdown");
    BOOST_TEST(sender.read_until_closed() == 1001u);
    BOOST_TEST(server.process().wait(20s) == 0);
    BOOST_TEST(server.process().stdout_text() ==
               "listening on 127.0.0.1:" + std::to_string(server.port()) + "\n");
  }

  server_process server(db);
  ws_client offline(server.port(), "/ws/3");
  BOOST_TEST(u64(offline.welcome().at("seq")) == 3u);
  for (int i = 1; i <= 3; ++i) {
    const auto m = offline.read();
    BOOST_TEST(u64(m.at("seq")) == static_cast<std::uint64_t>(i));
    BOOST_TEST(str(m.at("content")) == "kept " + std::to_string(i));
    BOOST_TEST(u64(m.at("sender")) == 1u);
  }
  // User 2 had both messages written to it under ack=auto: none comes again,
  // the next frame is a new message with the next seq.
  ws_client online(server.port(), "/ws/2");
  BOOST_TEST(u64(online.welcome().at("seq")) == 2u);
  ws_client sender(server.port(), "/ws/1");
  sender.send(send_frame(2, content_of(3), id_of(3)));
  BOOST_TEST(u64(sender.read().at("seq")) == 3u);
  check_numbered(online.read(), 3);
  // The dedup memory was kept as well.
  sender.send(send_frame(2, "again", id_of(1)));
  const auto r = sender.read();
  BOOST_TEST(u64(r.at("seq")) == 1u);
  BOOST_TEST(u64(r.at("receiver")) == 2u);

  // (Read to the end: the drain waits for each close handshake.)
  server.process().signal(SIGTERM);
  for (auto* client : {&offline, &online, &sender})
    BOOST_TEST(client->read_until_closed() == 1001u);
  BOOST_TEST(server.process().wait(20s) == 0);
}
