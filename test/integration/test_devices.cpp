// Devices end to end (PROTOCOL.md section 9): an in-process server on a
// loopback port, Beast clients over real sockets, on the memory and the
// SQLite store. Every case runs with --threads 1 and 2 (ctest).
#define BOOST_TEST_MODULE devices
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "support/test_support.hpp"

using namespace switchboard;
using namespace switchboard::test;
namespace json = boost::json;

namespace {

// The seqs of the message frames a session gets until `quiet` passes with
// nothing more. Leaves the client unusable (read_maybe): call it last.
std::vector<std::uint64_t> drain_seqs(ws_client& client, milliseconds quiet = 500ms) {
  std::vector<std::uint64_t> seqs;
  while (auto f = client.read_maybe(quiet))
    if (type_of(*f) == 1) seqs.push_back(u64(f->at("seq")));
  return seqs;
}

// Reads `count` message frames and returns their seqs.
std::vector<std::uint64_t> read_seqs(ws_client& client, std::size_t count) {
  std::vector<std::uint64_t> seqs;
  while (seqs.size() < count) {
    const auto f = client.read();
    if (type_of(f) == 1) seqs.push_back(u64(f.at("seq")));
  }
  return seqs;
}

// Sends `count` messages with ids to `receiver` and waits for every receipt.
void send_receipted(ws_client& sender, std::uint64_t receiver, int count,
                    const std::string& prefix = "m") {
  for (int i = 0; i < count; ++i)
    sender.send(send_frame(receiver, prefix + std::to_string(i), prefix + std::to_string(i)));
  for (int received = 0; received < count;)
    if (type_of(sender.read()) == 2) ++received;
}

// Closes with CLOSE and waits for the server to end the session, so that
// the cursor moves of ack=auto have reached the store.
void bye(ws_client& client) {
  client.send_text(R"({"type":3})");
  client.read_until_closed();
}

const std::vector<std::uint64_t> one_to_three{1, 2, 3};

config sqlite_config(const temp_dir& dir) {
  auto cfg = test_config();
  cfg.store = "sqlite:" + dir.file("devices.db");
  return cfg;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_welcome_names_the_device) {
  test_server server;
  ws_client phone(server.port(), "/ws/1?device=phone-1.A_b");
  BOOST_TEST(str(phone.welcome().at("device")) == "phone-1.A_b");
  ws_client plain(server.port(), "/ws/1");
  BOOST_TEST(str(plain.welcome().at("device")) == "");
  ws_client escaped(server.port(), "/ws/1?device=%70hone&ack=manual");
  BOOST_TEST(str(escaped.welcome().at("device")) == "phone");
}

BOOST_AUTO_TEST_CASE(a_bad_device_is_a_400_upgrade_or_not) {
  test_server server;
  const std::string too_long(65, 'd');
  const std::vector<std::string> queries = {
      "device=",       "device",     "device=a%20b",       "device=a+b",
      "device=%C3%A9", "device=a/b", "device=" + too_long, "device=ok&device="};
  for (const auto& query : queries) {
    BOOST_TEST_CONTEXT(query) {
      BOOST_TEST(upgrade_status(server.port(), "/ws/1?" + query) == 400u);
      const auto r = http_get(server.port(), "/ws/1?" + query);
      BOOST_TEST(r.status == 400u);
      BOOST_TEST(str(parse_object(r.body).at("error")) == "bad_device");
    }
  }
  ws_client longest(server.port(), "/ws/1?device=" + std::string(64, 'd'));
  BOOST_TEST(str(longest.welcome().at("device")) == std::string(64, 'd'));
  const auto metrics = http_get(server.port(), "/metrics").body;
  BOOST_TEST(metrics.find("switchboard_handshake_rejections_total{status=\"400\"} 16") !=
             std::string::npos);
}

// The contract's own example: with ack=auto, a message delivered to the
// phone is still replayed to the laptop, and dropped once both have it.
BOOST_AUTO_TEST_CASE(each_device_keeps_its_place_with_auto_ack) {
  test_server server;
  { ws_client laptop(server.port(), "/ws/2?device=laptop"); }  // seen once
  ws_client alice(server.port(), "/ws/1");
  {
    ws_client phone(server.port(), "/ws/2?device=phone");
    send_receipted(alice, 2, 3);
    BOOST_TEST(read_seqs(phone, 3) == one_to_three);
    bye(phone);
  }
  {
    ws_client laptop(server.port(), "/ws/2?device=laptop");
    BOOST_TEST(u64(laptop.welcome().at("seq")) == 3u);
    BOOST_TEST(drain_seqs(laptop) == one_to_three);
  }
  // The phone passed them already: nothing again.
  ws_client phone(server.port(), "/ws/2?device=phone");
  BOOST_TEST(drain_seqs(phone).empty());
  // Both have them: dropped (a device seen for the first time gets what is
  // still held, and that is nothing).
  ws_client tablet(server.port(), "/ws/2?device=tablet");
  BOOST_TEST(u64(tablet.welcome().at("seq")) == 3u);
  BOOST_TEST(drain_seqs(tablet).empty());
}

BOOST_AUTO_TEST_CASE(a_new_device_gets_everything_still_held) {
  test_server server;
  { ws_client laptop(server.port(), "/ws/2?device=laptop"); }  // seen, at 0: holds 1..3
  ws_client alice(server.port(), "/ws/1");
  {
    ws_client phone(server.port(), "/ws/2?device=phone&ack=manual");
    send_receipted(alice, 2, 3);
    BOOST_TEST(read_seqs(phone, 3) == one_to_three);
    phone.send_text(R"({"type":2,"seq":2})");
    bye(phone);
  }
  // The phone acknowledged 2 for itself only: the default device, never seen
  // before, starts at 0 and gets everything still held; the phone gets 3 again.
  {
    ws_client plain(server.port(), "/ws/2");
    BOOST_TEST(str(plain.welcome().at("device")) == "");
    BOOST_TEST(drain_seqs(plain) == one_to_three);
  }
  ws_client phone(server.port(), "/ws/2?device=phone&ack=manual");
  BOOST_TEST(drain_seqs(phone) == std::vector<std::uint64_t>{3});
}

BOOST_AUTO_TEST_CASE(receive_moves_only_the_cursor_of_its_own_device) {
  test_server server;
  ws_client alice(server.port(), "/ws/1");
  ws_client phone(server.port(), "/ws/2?device=phone&ack=manual");
  ws_client laptop(server.port(), "/ws/2?device=laptop&ack=manual");
  send_receipted(alice, 2, 3);
  BOOST_TEST(read_seqs(phone, 3) == one_to_three);
  BOOST_TEST(read_seqs(laptop, 3) == one_to_three);
  phone.send_text(R"({"type":2,"seq":3})");
  laptop.send_text(R"({"type":2,"seq":1})");
  bye(phone);
  bye(laptop);

  ws_client phone_again(server.port(), "/ws/2?device=phone&ack=manual");
  ws_client laptop_again(server.port(), "/ws/2?device=laptop&ack=manual");
  // `since` still overrides the device's cursor.
  ws_client phone_since(server.port(), "/ws/2?device=phone&ack=manual&since=1");
  BOOST_TEST(drain_seqs(phone_again).empty());
  BOOST_TEST((drain_seqs(laptop_again) == std::vector<std::uint64_t>{2, 3}));
  BOOST_TEST((drain_seqs(phone_since) == std::vector<std::uint64_t>{2, 3}));
}

BOOST_AUTO_TEST_CASE(the_session_replaced_is_the_oldest_of_the_same_device) {
  auto cfg = test_config();
  cfg.max_sessions_per_user = 2;
  test_server server(cfg);
  ws_client laptop(server.port(), "/ws/3?device=laptop");
  ws_client old_phone(server.port(), "/ws/3?device=phone");
  ws_client new_phone(server.port(), "/ws/3?device=phone");
  std::vector<json::object> frames;
  BOOST_TEST(old_phone.read_until_closed(&frames) == 4001u);
  BOOST_TEST_REQUIRE(!frames.empty());
  BOOST_TEST(str(frames.back().at("code")) == "replaced");

  // The laptop, older than both, stays; a third device replaces the oldest.
  ws_client alice(server.port(), "/ws/1");
  alice.send(send_frame(3, "still here"));
  BOOST_TEST(str(laptop.read().at("content")) == "still here");
  BOOST_TEST(str(new_phone.read().at("content")) == "still here");
  ws_client tablet(server.port(), "/ws/3?device=tablet");
  BOOST_TEST(laptop.read_until_closed() == 4001u);
  alice.send(send_frame(3, "after"));
  BOOST_TEST(str(new_phone.read().at("content")) == "after");
  BOOST_TEST(str(tablet.read().at("content")) == "after");
}

// A device forgotten after --device-ttl starts again at cursor 0: what a
// manual-ack phone still holds is replayed to it once more. Before the ttl
// it keeps its place.
BOOST_AUTO_TEST_CASE(a_forgotten_device_starts_again_at_zero) {
  auto cfg = test_config();
  cfg.device_ttl = std::chrono::seconds(1);
  test_server server(cfg);
  ws_client alice(server.port(), "/ws/1");
  ws_client phone(server.port(), "/ws/2?device=phone&ack=manual");  // holds everything
  {
    ws_client laptop(server.port(), "/ws/2?device=laptop");
    send_receipted(alice, 2, 3);
    BOOST_TEST(read_seqs(laptop, 3) == one_to_three);
    bye(laptop);
  }
  {
    // Before the ttl it keeps its place: nothing comes before the close.
    ws_client laptop(server.port(), "/ws/2?device=laptop");
    std::this_thread::sleep_for(300ms);
    laptop.send_text(R"({"type":3})");
    std::vector<json::object> frames;
    laptop.read_until_closed(&frames);
    for (const auto& f : frames)
      BOOST_TEST(type_of(f) != 1);
  }
  // Forgotten between ttl and twice the ttl after its last session ended.
  std::this_thread::sleep_for(2500ms);
  ws_client laptop(server.port(), "/ws/2?device=laptop");
  BOOST_TEST(drain_seqs(laptop) == one_to_three);
  // The phone, with a session open all along, was never forgotten.
  BOOST_TEST(read_seqs(phone, 3) == one_to_three);
}

BOOST_AUTO_TEST_CASE(the_sqlite_store_keeps_each_device_place_across_a_restart) {
  temp_dir dir;
  {
    test_server server(sqlite_config(dir));
    ws_client alice(server.port(), "/ws/1");
    { ws_client laptop(server.port(), "/ws/2?device=laptop"); }
    ws_client phone(server.port(), "/ws/2?device=phone");
    send_receipted(alice, 2, 3);
    BOOST_TEST(read_seqs(phone, 3) == one_to_three);
    bye(phone);
  }
  test_server server(sqlite_config(dir));
  {
    ws_client phone(server.port(), "/ws/2?device=phone");
    BOOST_TEST(u64(phone.welcome().at("seq")) == 3u);
    BOOST_TEST(drain_seqs(phone).empty());
  }
  ws_client laptop(server.port(), "/ws/2?device=laptop");
  BOOST_TEST(drain_seqs(laptop) == one_to_three);
}

BOOST_AUTO_TEST_CASE(the_sessions_api_reports_the_device) {
  temp_dir dir;
  auto cfg = test_config();
  const auto key_file = dir.file("api-key");
  { std::ofstream(key_file) << "key\n"; }
  cfg.api_key_file = key_file;
  test_server server(cfg);
  ws_client phone(server.port(), "/ws/4?device=phone");
  const auto r = http_get(server.port(), "/api/sessions?user=4", {{"Authorization", "Bearer key"}});
  BOOST_TEST(r.status == 200u);
  const auto sessions = parse_object(r.body).at("sessions").as_array();
  BOOST_TEST_REQUIRE(sessions.size() == 1u);
  BOOST_TEST(str(sessions[0].as_object().at("device")) == "phone");
}
