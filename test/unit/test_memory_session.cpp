// Sessions over in-memory connections (memory_link.hpp, support/
// memory_server.hpp): races between a session's reader and writer set up
// step by step, which a socket cannot order on demand.
#define BOOST_TEST_MODULE memory_session
#include <boost/test/unit_test.hpp>

#include <string>

#include "support/memory_server.hpp"
#include "support/test_support.hpp"

using namespace switchboard;
using namespace switchboard::test;

namespace {

config memory_config() {
  config cfg;
  cfg.store = "memory:";
  cfg.threads = 1;
  return cfg;
}

// Reads everything the link has, running the server until it has nothing
// more to do.
std::string drain(memory_server& s, memory_link& link) {
  std::string all;
  for (int i = 0; i < 100; ++i) {
    s.settle();
    auto more = link.client_read();
    if (more.empty()) break;
    all += more;
  }
  return all;
}

}  // namespace

// The client goes away (end of stream) in the same turn as the last bytes
// the server was writing to it are taken: the reader ends while the
// writer's flush is still in flight, then the flush succeeds. The writer
// must not then wait on its channel for a frame that may never come: the
// session ends, and stops counting toward the limits. (fuzz_session found
// it: the session stayed open until the next message to its user.)
BOOST_AUTO_TEST_CASE(a_session_ends_when_its_client_leaves_as_its_last_write_completes) {
  memory_server s(memory_config());
  // A window smaller than the message, larger than half of it: one read by
  // the client lets the server's write complete.
  auto receiver = s.connect(256);
  auto sender = s.connect(64 * 1024);
  receiver->client_write(upgrade_request("/ws/1"));
  sender->client_write(upgrade_request("/ws/2"));
  BOOST_TEST(drain(s, *receiver).find("\"type\":0") != std::string::npos);  // the welcome
  BOOST_TEST(drain(s, *sender).find("\"type\":0") != std::string::npos);
  BOOST_TEST(s.stats.sessions.load() == 2);

  // A message larger than the window: the receiver's writer waits in its flush.
  const std::string content(300, 'm');
  sender->client_write(
      client_frame(0x81, R"({"type":1,"receiver":1,"content":")" + content + R"(","id":"a"})"));
  s.settle();
  BOOST_TEST(!receiver->closed());

  // Both at once: the read lets the flush complete, the end of stream ends
  // the reader.
  std::string received = receiver->client_read();
  receiver->client_shutdown();
  received += drain(s, *receiver);
  BOOST_TEST(received.find(content) != std::string::npos);
  BOOST_TEST(receiver->closed());
  BOOST_TEST(s.stats.sessions.load() == 1, "the receiver's session is still open");

  sender->client_shutdown();
  drain(s, *sender);
  BOOST_TEST(s.stats.sessions.load() == 0);
  receiver->reset();
  sender->reset();
}
