// The Redis client against a real redis-server of its own (redis_server.hpp):
// pipelining, reconnects after kill/restart, a hung (SIGSTOPped) Redis, the
// handshake (AUTH, SELECT, setup commands) and pub/sub. Deadlines are short
// (500 ms) to keep the suite fast; every wait in a test has one of its own.
#define BOOST_TEST_MODULE redis_connection
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "support/redis_server.hpp"
#include "switchboard/redis/connection.hpp"
#include "switchboard/redis/resp.hpp"
#include "switchboard/redis/subscriber.hpp"

using namespace switchboard;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
namespace asio = boost::asio;

namespace {

constexpr milliseconds deadline = 500ms;

redis::options fast_options() {
  redis::options o;
  o.deadline = deadline;
  o.backoff_min = 20ms;
  o.backoff_max = 200ms;
  return o;
}

redis::endpoint at(const test::redis_server& server) {
  redis::endpoint ep;
  ep.host = "127.0.0.1";
  ep.port = server.port();
  return ep;
}

using command = std::vector<std::string>;

long elapsed_ms(steady_clock::time_point since) {
  return static_cast<long>(
      std::chrono::duration_cast<milliseconds>(steady_clock::now() - since).count());
}

std::string encode(const std::vector<command>& commands) {
  std::string out;
  for (const auto& c : commands)
    redis::append_command(out, c);
  return out;
}

// One io_context for the test, run only by the helpers below: each returns
// or fails the test within its limit, so a hang never blocks CI.
struct fixture {
  asio::io_context context;
  redis::counters counters;

  // Runs the context until `done` holds; false after `limit`.
  bool run_until(const std::function<bool()>& done, milliseconds limit = 5000ms) {
    const auto end = steady_clock::now() + limit;
    while (!done()) {
      if (steady_clock::now() >= end) return false;
      context.restart();
      context.run_for(5ms);
    }
    return true;
  }

  // Runs the context for `d` whatever happens.
  void run_for(milliseconds d) {
    context.restart();
    context.run_for(d);
  }

  // Runs the coroutine to its end and returns (or rethrows) its result.
  template <class T>
  T await(asio::awaitable<T> op, milliseconds limit = 5000ms) {
    auto result = asio::co_spawn(context, std::move(op), asio::use_future);
    BOOST_REQUIRE_MESSAGE(
        run_until([&] { return result.wait_for(0s) == std::future_status::ready; }, limit),
        "the coroutine did not end within " << limit.count() << " ms");
    return result.get();
  }

  std::vector<redis::reply> exec(redis::connection& c, const std::vector<command>& commands) {
    return await(c.exec(encode(commands), commands.size()));
  }

  void wait_connected(redis::connection& c, milliseconds limit = 5000ms) {
    BOOST_REQUIRE_MESSAGE(run_until([&] { return c.connected(); }, limit),
                          "not connected within " << limit.count() << " ms");
  }

  // A second command connection to the same server, up.
  redis::connection& publisher_of(const test::redis_server& server) {
    if (!other) {
      other = std::make_unique<redis::connection>(context.get_executor(), at(server),
                                                  fast_options(), counters);
      other->start();
      wait_connected(*other);
    }
    return *other;
  }
  std::unique_ptr<redis::connection> other;

  ~fixture() {
    if (other) stop(*other);
  }

  // Stops `c` and lets what it had pending end before the context goes.
  void stop(redis::connection& c) {
    c.stop();
    run_for(20ms);
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(command_connection, fixture)

BOOST_AUTO_TEST_CASE(pipelines_n_commands_and_returns_n_replies_in_order) {
  test::redis_server server;
  redis::connection c(context.get_executor(), at(server), fast_options(), counters);
  c.start();
  wait_connected(c);

  std::vector<command> commands;
  constexpr int n = 500;
  for (int i = 0; i < n; ++i)
    commands.push_back({"RPUSH", "list", std::to_string(i)});
  commands.push_back({"LRANGE", "list", "0", "-1"});
  const auto replies = exec(c, commands);
  BOOST_REQUIRE_EQUAL(replies.size(), n + 1u);
  for (int i = 0; i < n; ++i) {
    BOOST_TEST(replies[i].type == redis::reply::kind::integer);
    BOOST_TEST(replies[i].integer == i + 1);
  }
  BOOST_REQUIRE_EQUAL(replies[n].elements.size(), std::size_t(n));
  BOOST_TEST(replies[n].elements[n - 1].str == std::to_string(n - 1));
  BOOST_TEST(counters.round_trips.load() == 1u);
  BOOST_TEST(counters.command_up.load());
  BOOST_TEST(server.cli({"INFO", "commandstats"}).find("cmdstat_rpush:calls=500,") !=
             std::string::npos);

  // Binary-safe both ways.
  const std::string binary("a\0b\r\nc", 6);
  const auto got = exec(c, {{"SET", "bin", binary}, {"GET", "bin"}, {"GET", "missing"}});
  BOOST_TEST(got[0].str == "OK");
  BOOST_TEST(got[1].str == binary);
  BOOST_TEST(got[2].type == redis::reply::kind::nil);
  stop(c);
}

BOOST_AUTO_TEST_CASE(error_replies_are_returned_not_thrown) {
  test::redis_server server;
  redis::connection c(context.get_executor(), at(server), fast_options(), counters);
  c.start();
  wait_connected(c);
  const auto replies =
      exec(c, {{"SET", "s", "text"}, {"INCR", "s"}, {"NOSUCHCOMMAND"}, {"GET", "s"}});
  BOOST_REQUIRE_EQUAL(replies.size(), 4u);
  BOOST_TEST(!replies[0].is_error());
  BOOST_TEST(replies[1].is_error());
  BOOST_TEST(replies[1].str.find("not an integer") != std::string::npos);
  BOOST_TEST(replies[2].is_error());
  BOOST_TEST(replies[3].str == "text");
  BOOST_TEST(c.connected());
  stop(c);
}

BOOST_AUTO_TEST_CASE(not_connected_throws_at_once) {
  test::redis_server server;
  auto ep = at(server);
  server.kill();  // nothing listens on its port now
  redis::connection c(context.get_executor(), ep, fast_options(), counters);
  // Not started yet, then started but refused.
  BOOST_CHECK_THROW(exec(c, {{"PING"}}), redis::unavailable);
  c.start();
  run_for(100ms);
  BOOST_TEST(!c.connected());
  const auto before = steady_clock::now();
  BOOST_CHECK_THROW(exec(c, {{"PING"}}), redis::unavailable);
  BOOST_TEST(elapsed_ms(before) < 50);
  BOOST_TEST(!counters.command_up.load());
  stop(c);
}

BOOST_AUTO_TEST_CASE(killed_redis_throws_then_reconnects_by_itself) {
  test::redis_server server;
  redis::connection c(context.get_executor(), at(server), fast_options(), counters);
  std::vector<bool> states;
  c.on_state = [&](bool up) { states.push_back(up); };
  c.start();
  wait_connected(c);
  BOOST_TEST(exec(c, {{"PING"}})[0].str == "PONG");

  server.kill();
  // The read side sees the EOF while idle, or the next exec does: either way
  // unavailable, never a hang.
  BOOST_CHECK_THROW(exec(c, {{"PING"}}), redis::unavailable);
  BOOST_TEST(!c.connected());

  server.restart();
  wait_connected(c, 3000ms);
  BOOST_TEST(exec(c, {{"PING"}})[0].str == "PONG");
  BOOST_TEST(counters.reconnects.load() == 1u);
  BOOST_TEST((states == std::vector<bool>{true, false, true}));
  stop(c);
}

BOOST_AUTO_TEST_CASE(hung_redis_throws_within_the_deadline_then_recovers) {
  test::redis_server server;
  redis::connection c(context.get_executor(), at(server), fast_options(), counters);
  c.start();
  wait_connected(c);

  server.pause();
  const auto before = steady_clock::now();
  BOOST_CHECK_THROW(exec(c, {{"PING"}}), redis::unavailable);
  const auto took = elapsed_ms(before);
  BOOST_TEST(took >= deadline.count() - 10);
  BOOST_TEST(took < deadline.count() + 300);
  BOOST_TEST(!c.connected());
  // Reconnecting meanwhile: the kernel accepts, the handshake times out.
  run_for(700ms);
  BOOST_TEST(!c.connected());

  server.resume();
  wait_connected(c, 3000ms);
  BOOST_TEST(exec(c, {{"PING"}})[0].str == "PONG");
  stop(c);
}

BOOST_AUTO_TEST_CASE(late_replies_never_reach_the_next_call) {
  test::redis_server server;
  redis::connection c(context.get_executor(), at(server), fast_options(), counters);
  c.start();
  wait_connected(c);
  // DEBUG SLEEP outlives the deadline; its reply must not be taken for GET's.
  // (DEBUG is refused by default since Redis 7: use a blocking pop instead.)
  BOOST_CHECK_THROW(exec(c, {{"BLPOP", "nothing", "2"}}), redis::unavailable);
  wait_connected(c, 3000ms);
  const auto replies = exec(c, {{"SET", "k", "v"}, {"GET", "k"}});
  BOOST_TEST(replies[0].str == "OK");
  BOOST_TEST(replies[1].str == "v");
  stop(c);
}

BOOST_AUTO_TEST_CASE(an_append_only_redis_keeps_data_across_a_restart) {
  test::redis_server_options o;
  o.append_only = true;
  test::redis_server server(o);
  redis::connection c(context.get_executor(), at(server), fast_options(), counters);
  c.start();
  wait_connected(c);
  exec(c, {{"SET", "durable", "yes"}});
  server.restart();
  BOOST_TEST(run_until([&] { return !c.connected(); }, 3000ms));
  wait_connected(c, 3000ms);
  BOOST_TEST(exec(c, {{"GET", "durable"}})[0].str == "yes");
  stop(c);
}

BOOST_AUTO_TEST_CASE(one_exec_at_a_time) {
  test::redis_server server;
  redis::connection c(context.get_executor(), at(server), fast_options(), counters);
  c.start();
  c.start();  // a second start does nothing
  wait_connected(c);
  auto first = asio::co_spawn(context, c.exec(encode({{"BLPOP", "q", "1"}}), 1), asio::use_future);
  run_for(20ms);
  BOOST_CHECK_THROW(exec(c, {{"PING"}}), std::logic_error);
  exec(publisher_of(server), {{"RPUSH", "q", "item"}});
  BOOST_REQUIRE(run_until([&] { return first.wait_for(0s) == std::future_status::ready; }));
  const auto replies = first.get();
  BOOST_TEST(replies[0].elements.at(1).str == "item");
  BOOST_TEST(exec(c, {{"PING"}})[0].str == "PONG");
  stop(c);
}

BOOST_AUTO_TEST_CASE(auth_with_password) {
  test::redis_server_options o;
  o.password = "s3cret";
  test::redis_server server(o);
  auto ep = at(server);
  ep.password = "s3cret";
  redis::connection c(context.get_executor(), ep, fast_options(), counters);
  c.start();
  wait_connected(c);
  BOOST_TEST(exec(c, {{"SET", "a", "1"}})[0].str == "OK");
  stop(c);

  // A wrong password: the handshake fails and is retried, never up.
  ep.password = "wrong";
  redis::connection bad(context.get_executor(), ep, fast_options(), counters);
  bad.start();
  run_for(300ms);
  BOOST_TEST(!bad.connected());
  stop(bad);
}

BOOST_AUTO_TEST_CASE(auth_with_acl_user) {
  test::redis_server_options o;
  o.acl_user = "relay";
  o.acl_password = "pw";
  test::redis_server server(o);
  auto ep = at(server);
  ep.user = "relay";
  ep.password = "pw";
  redis::connection c(context.get_executor(), ep, fast_options(), counters);
  c.start();
  wait_connected(c);
  const auto who = exec(c, {{"ACL", "WHOAMI"}});
  BOOST_TEST(who[0].str == "relay");
  stop(c);
}

BOOST_AUTO_TEST_CASE(select_db_is_respected) {
  test::redis_server server;
  auto ep = at(server);
  ep.db = 3;
  redis::connection c(context.get_executor(), ep, fast_options(), counters);
  c.start();
  wait_connected(c);
  exec(c, {{"SET", "where", "three"}});
  BOOST_TEST(server.cli({"-n", "3", "GET", "where"}) == "three\n");
  BOOST_TEST(server.cli({"-n", "0", "EXISTS", "where"}) == "0\n");
  stop(c);
}

BOOST_AUTO_TEST_CASE(setup_commands_run_on_every_reconnect) {
  test::redis_server server;
  const std::string script = "return 'scripted'";
  redis::connection c(context.get_executor(), at(server), fast_options(), counters,
                      {{"SCRIPT", "LOAD", script}, {"INCR", "setups"}});
  c.start();
  wait_connected(c);
  const auto sha = exec(c, {{"SCRIPT", "LOAD", script}})[0].str;
  BOOST_TEST(exec(c, {{"EVALSHA", sha, "0"}})[0].str == "scripted");

  // A restart empties the script cache: the setup loads it again.
  server.restart();
  BOOST_TEST(run_until([&] { return !c.connected(); }, 3000ms));
  wait_connected(c, 3000ms);
  BOOST_TEST(exec(c, {{"EVALSHA", sha, "0"}})[0].str == "scripted");

  // A dropped connection to the same Redis runs them again too.
  server.cli({"CLIENT", "KILL", "TYPE", "normal"});
  BOOST_TEST(run_until([&] { return !c.connected(); }, 3000ms));
  wait_connected(c, 3000ms);
  BOOST_TEST(exec(c, {{"GET", "setups"}})[0].str == "2");  // after the restart: 1, then this
  stop(c);
}

BOOST_AUTO_TEST_CASE(a_failing_setup_command_keeps_it_down) {
  test::redis_server server;
  redis::connection c(context.get_executor(), at(server), fast_options(), counters,
                      {{"NOSUCHCOMMAND"}});
  c.start();
  run_for(300ms);
  BOOST_TEST(!c.connected());
  stop(c);
}

BOOST_AUTO_TEST_CASE(stop_fails_a_pending_exec_and_nothing_runs_after) {
  test::redis_server server;
  redis::counters local;
  auto c = std::make_unique<redis::connection>(context.get_executor(), at(server), fast_options(),
                                               local);
  c->start();
  wait_connected(*c);
  auto pending =
      asio::co_spawn(context, c->exec(encode({{"BLPOP", "nothing", "5"}}), 1), asio::use_future);
  run_for(50ms);
  c->stop();
  c.reset();  // gone: the coroutines still pending must not touch it
  BOOST_REQUIRE(run_until([&] { return pending.wait_for(0s) == std::future_status::ready; }));
  BOOST_CHECK_THROW(pending.get(), redis::unavailable);
  run_for(50ms);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// A subscriber that records what it is told, and a command connection to publish with.
struct pubsub_fixture : fixture {
  test::redis_server server;
  redis::connection publisher{context.get_executor(), at(server), fast_options(), counters};
  redis::subscriber sub{context.get_executor(), at(server), fast_options(), counters};
  std::vector<std::pair<std::string, std::string>> received;
  int connected_calls = 0;
  std::vector<bool> states;

  pubsub_fixture() {
    sub.on_message = [this](std::string_view channel, std::string_view payload) {
      received.emplace_back(channel, payload);
    };
    sub.on_connected = [this] { ++connected_calls; };
    sub.on_state = [this](bool up) { states.push_back(up); };
    publisher.start();
    sub.start();
    wait_connected(publisher);
    BOOST_REQUIRE(run_until([&] { return sub.connected(); }));
  }
  ~pubsub_fixture() {
    sub.stop();
    publisher.stop();
    run_for(20ms);
  }

  void subscribe(const std::string& channel) { await(sub.subscribe(channel)); }

  long long publish(const std::string& channel, const std::string& payload) {
    return exec(publisher, {{"PUBLISH", channel, payload}})[0].integer;
  }

  // PUBSUB NUMSUB, as Redis sees it.
  std::string subscribers_of(const std::string& channel) {
    const auto r = exec(publisher, {{"PUBSUB", "NUMSUB", channel}});
    return std::to_string(r[0].elements.at(1).integer);
  }

  bool receive(std::size_t n, milliseconds limit = 3000ms) {
    return run_until([&] { return received.size() >= n; }, limit);
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(subscriber, pubsub_fixture)

BOOST_AUTO_TEST_CASE(receives_published_messages_in_order) {
  BOOST_TEST(connected_calls == 1);
  subscribe("room");
  constexpr int n = 200;
  std::vector<command> publishes;
  for (int i = 0; i < n; ++i)
    publishes.push_back({"PUBLISH", "room", "m" + std::to_string(i)});
  const auto replies = exec(publisher, publishes);
  BOOST_TEST(replies[0].integer == 1);  // one subscriber got it
  BOOST_REQUIRE(receive(n));
  for (int i = 0; i < n; ++i) {
    BOOST_TEST(received[i].first == "room");
    BOOST_TEST(received[i].second == "m" + std::to_string(i));
  }
  BOOST_TEST(counters.messages.load() == std::uint64_t(n));

  // Binary payloads arrive whole.
  const std::string binary("x\0y\r\n", 5);
  publish("room", binary);
  BOOST_REQUIRE(receive(n + 1));
  BOOST_TEST(received.back().second == binary);
}

BOOST_AUTO_TEST_CASE(subscribe_completes_once_redis_confirmed) {
  subscribe("a");
  // No waiting here: the confirmation came before subscribe() returned.
  BOOST_TEST(subscribers_of("a") == "1");
  BOOST_TEST(publish("a", "hello") == 1);
  BOOST_REQUIRE(receive(1));
  // Already confirmed: completes at once.
  subscribe("a");
}

BOOST_AUTO_TEST_CASE(subscribe_when_down_throws_at_once) {
  redis::subscriber down(context.get_executor(), at(server), fast_options(), counters);
  const auto before = steady_clock::now();
  BOOST_CHECK_THROW(await(down.subscribe("x")), redis::unavailable);
  BOOST_TEST(elapsed_ms(before) < 50);
}

BOOST_AUTO_TEST_CASE(unsubscribe_is_reference_counted) {
  subscribe("c");
  subscribe("c");
  sub.unsubscribe("c");
  run_for(50ms);
  BOOST_TEST(subscribers_of("c") == "1");
  publish("c", "still");
  BOOST_REQUIRE(receive(1));

  sub.unsubscribe("c");
  BOOST_TEST(run_until([&] { return subscribers_of("c") == "0"; }, 2000ms));
  BOOST_TEST(publish("c", "gone") == 0);
  run_for(50ms);
  BOOST_TEST(received.size() == 1u);
  sub.unsubscribe("never-subscribed");  // ignored

  // And back again.
  subscribe("c");
  BOOST_TEST(subscribers_of("c") == "1");
}

BOOST_AUTO_TEST_CASE(client_kill_pubsub_resubscribes_every_channel) {
  for (const auto* c : {"x", "y", "z"})
    subscribe(c);
  subscribe("x");  // counted twice: one entry on the wire
  BOOST_TEST(connected_calls == 1);

  server.cli({"CLIENT", "KILL", "TYPE", "pubsub"});
  BOOST_REQUIRE(run_until([&] { return connected_calls == 2; }, 3000ms));
  BOOST_TEST(sub.connected());
  BOOST_TEST(counters.reconnects.load() == 1u);
  BOOST_TEST((states == std::vector<bool>{true, false, true}));
  for (const auto* c : {"x", "y", "z"}) {
    BOOST_TEST(subscribers_of(c) == "1");
    publish(c, std::string("after ") + c);
  }
  BOOST_REQUIRE(receive(3));
  BOOST_TEST(received[0].second == "after x");
  BOOST_TEST(received[2].second == "after z");
}

BOOST_AUTO_TEST_CASE(restart_resubscribes_and_calls_on_connected) {
  subscribe("r");
  server.restart();
  BOOST_REQUIRE(run_until([&] { return connected_calls == 2; }, 3000ms));
  wait_connected(publisher, 3000ms);
  BOOST_TEST(publish("r", "back") == 1);
  BOOST_REQUIRE(receive(1));
}

BOOST_AUTO_TEST_CASE(a_hung_redis_is_noticed_within_the_deadline) {
  subscribe("h");
  server.pause();
  const auto before = steady_clock::now();
  // A PING goes out at most deadline/3 after the pause, and its answer is
  // given up on a deadline later.
  BOOST_REQUIRE(run_until([&] { return !sub.connected(); }, 3000ms));
  const auto took = elapsed_ms(before);
  BOOST_TEST(took >= deadline.count() - 10);
  BOOST_TEST(took < 2 * deadline.count() + 200);
  BOOST_TEST(!counters.subscriber_up.load());

  server.resume();
  BOOST_REQUIRE(run_until([&] { return connected_calls == 2; }, 3000ms));
  wait_connected(publisher, 3000ms);
  BOOST_TEST(publish("h", "awake") == 1);
  BOOST_REQUIRE(receive(1));
}

BOOST_AUTO_TEST_CASE(an_unconfirmed_subscribe_throws_and_is_rolled_back) {
  subscribe("kept");
  server.pause();
  const auto before = steady_clock::now();
  BOOST_CHECK_THROW(await(sub.subscribe("lost")), redis::unavailable);
  BOOST_TEST(elapsed_ms(before) < deadline.count() + 300);
  BOOST_TEST(!sub.connected());  // taken for hung: reconnecting

  server.resume();
  BOOST_REQUIRE(run_until([&] { return connected_calls == 2; }, 3000ms));
  wait_connected(publisher, 3000ms);
  BOOST_TEST(subscribers_of("kept") == "1");
  BOOST_TEST(subscribers_of("lost") == "0");  // not resubscribed: the count was rolled back
}

BOOST_AUTO_TEST_CASE(stop_fails_a_pending_subscribe_and_nothing_runs_after) {
  redis::counters local;
  auto s = std::make_unique<redis::subscriber>(context.get_executor(), at(server), fast_options(),
                                               local);
  int calls = 0;
  s->on_connected = [&] { ++calls; };
  s->start();
  BOOST_REQUIRE(run_until([&] { return s->connected(); }));
  server.pause();  // so that the confirmation never comes
  auto pending = asio::co_spawn(context, s->subscribe("p"), asio::use_future);
  run_for(50ms);
  s->stop();
  s.reset();
  BOOST_REQUIRE(run_until([&] { return pending.wait_for(0s) == std::future_status::ready; }));
  BOOST_CHECK_THROW(pending.get(), redis::unavailable);
  server.resume();
  run_for(100ms);
  BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_CASE(auth_and_acl_user_on_the_subscriber) {
  test::redis_server_options o;
  o.acl_user = "listener";
  o.acl_password = "pw";
  test::redis_server secured(o);
  auto ep = at(secured);
  ep.user = "listener";
  ep.password = "pw";
  redis::subscriber s(context.get_executor(), ep, fast_options(), counters);
  std::vector<std::string> got;
  s.on_message = [&](std::string_view, std::string_view p) { got.emplace_back(p); };
  s.start();
  BOOST_REQUIRE(run_until([&] { return s.connected(); }));
  await(s.subscribe("secure"));
  secured.cli({"PUBLISH", "secure", "ok"});
  BOOST_REQUIRE(run_until([&] { return got.size() == 1; }, 3000ms));
  BOOST_TEST(got[0] == "ok");

  ep.password = "wrong";
  redis::subscriber bad(context.get_executor(), ep, fast_options(), counters);
  bad.start();
  run_for(300ms);
  BOOST_TEST(!bad.connected());
  s.stop();
  bad.stop();
  run_for(20ms);
}

BOOST_AUTO_TEST_SUITE_END()
