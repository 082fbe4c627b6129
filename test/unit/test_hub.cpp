// The hub's registry rules, driven through its mailbox on a real io_context,
// with session handles whose channels the test reads directly.
#define BOOST_TEST_MODULE hub
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include "switchboard/hub.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/spawn.hpp"

using namespace switchboard;
namespace asio = boost::asio;

namespace {

struct fixture {
  explicit fixture(std::size_t max_sessions = 2)
      : registry(asio::make_strand(context), max_sessions, stats) {
    asio::co_spawn(registry.get_executor(), registry.run(), log_exception("hub"));
  }
  ~fixture() {
    registry.close();
    context.run_for(std::chrono::seconds(1));
  }

  session_ptr open(store::user_id user, std::size_t queue_limit = 1 << 20,
                   std::string_view device = {}) {
    return std::make_shared<session_handle>(asio::make_strand(context), user,
                                            "s" + std::to_string(++count), ack_mode::automatic,
                                            queue_limit, *store::device_name::parse(device));
  }

  // Delivers one event and lets the hub handle it.
  void send(hub_message m) {
    auto done = asio::co_spawn(
        context,
        [&, m = std::move(m)]() mutable -> asio::awaitable<void> {
          co_await registry.send(std::move(m));
        },
        asio::use_future);
    // A deadline: a hub that hangs fails the test instead of blocking CI.
    for (int i = 0; i < 1000 && done.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
         ++i)
      context.run_for(std::chrono::milliseconds(1));
    BOOST_REQUIRE(done.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
    context.run_for(std::chrono::milliseconds(5));
  }

  void registered(const session_ptr& s, store::seq_t highest) {
    send(hub_event::registered{s, store::user_position{highest, 0}});
  }

  void committed(store::user_id receiver, std::initializer_list<store::seq_t> seqs) {
    hub_event::committed c;
    for (auto seq : seqs)
      c.messages.push_back(store::stored_message{seq, 1, receiver, "m", 0, {}});
    send(std::move(c));
  }

  // The next event waiting in a session's channel, if any.
  static std::optional<session_event> next(const session_ptr& s) {
    std::optional<session_event> out;
    s->channel().try_receive(
        [&](boost::system::error_code, session_event e) { out = std::move(e); });
    return out;
  }

  asio::io_context context;
  metrics stats;
  hub registry;
  int count = 0;
};

template <class T>
const T* as(const std::optional<session_event>& e) {
  return e ? std::get_if<T>(&*e) : nullptr;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_session_goes_live_only_once_caught_up) {
  fixture f;
  auto s = f.open(2);
  f.registered(s, 0);
  f.committed(2, {1});
  BOOST_TEST(!f.next(s).has_value());  // still replaying: nothing pushed

  f.send(hub_event::caught_up{s, 0});  // behind: seq 1 was stored meanwhile
  auto more = f.next(s);
  BOOST_REQUIRE(as<event::replay_more>(more));
  BOOST_TEST(as<event::replay_more>(more)->target == 1u);

  f.send(hub_event::caught_up{s, 1});
  BOOST_TEST(!f.next(s).has_value());
  f.committed(2, {2, 3});
  for (store::seq_t seq : {2u, 3u}) {
    auto e = f.next(s);
    BOOST_REQUIRE(as<event::frame>(e));
    BOOST_TEST(as<event::frame>(e)->seq == seq);
    BOOST_TEST(as<event::frame>(e)->text->find("\"seq\":" + std::to_string(seq)) !=
               std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(live_frames_at_or_below_the_switch_point_are_not_doubled) {
  fixture f;
  auto s = f.open(2);
  f.registered(s, 0);
  f.send(hub_event::caught_up{s, 5});  // since above the highest
  f.committed(2, {4, 5, 6});
  auto e = f.next(s);
  BOOST_REQUIRE(as<event::frame>(e));
  BOOST_TEST(as<event::frame>(e)->seq == 6u);
  BOOST_TEST(!f.next(s).has_value());
}

BOOST_AUTO_TEST_CASE(one_session_too_many_closes_the_oldest_not_the_newest) {
  fixture f(2);
  auto a = f.open(7), b = f.open(7), c = f.open(7);
  f.registered(a, 0);
  f.registered(b, 0);
  BOOST_TEST(!f.next(a).has_value());
  f.registered(c, 0);
  auto e = f.next(a);
  BOOST_REQUIRE(as<event::close>(e));
  BOOST_TEST(static_cast<int>(as<event::close>(e)->reason) ==
             static_cast<int>(close_reason::replaced));
  BOOST_TEST(!f.next(b).has_value());
  BOOST_TEST(!f.next(c).has_value());

  // The replaced one gets nothing more; the others do.
  f.send(hub_event::caught_up{b, 0});
  f.send(hub_event::caught_up{c, 0});
  f.send(hub_event::caught_up{a, 0});
  f.committed(7, {1});
  BOOST_TEST(!f.next(a).has_value());
  BOOST_TEST(as<event::frame>(f.next(b)));
  BOOST_TEST(as<event::frame>(f.next(c)));
}

// PROTOCOL.md section 9: the session replaced is the oldest of the same
// device if that device has one, otherwise the user's oldest.
BOOST_AUTO_TEST_CASE(the_session_replaced_is_the_oldest_of_the_same_device) {
  fixture f(2);
  auto laptop = f.open(7, 1 << 20, "laptop");
  auto phone1 = f.open(7, 1 << 20, "phone");
  auto phone2 = f.open(7, 1 << 20, "phone");
  auto tablet = f.open(7, 1 << 20, "tablet");
  f.registered(laptop, 0);
  f.registered(phone1, 0);
  f.registered(phone2, 0);  // phone1 goes, not the older laptop
  BOOST_TEST(as<event::close>(f.next(phone1)));
  BOOST_TEST(!f.next(laptop).has_value());
  f.registered(tablet, 0);  // no other tablet: the user's oldest, the laptop
  BOOST_TEST(as<event::close>(f.next(laptop)));
  BOOST_TEST(!f.next(phone2).has_value());
  BOOST_TEST(!f.next(tablet).has_value());
}

BOOST_AUTO_TEST_CASE(users_are_independent) {
  fixture f;
  auto a = f.open(1), b = f.open(2);
  f.registered(a, 0);
  f.registered(b, 0);
  f.send(hub_event::caught_up{a, 0});
  f.send(hub_event::caught_up{b, 0});
  f.committed(2, {1});
  BOOST_TEST(!f.next(a).has_value());
  BOOST_TEST(as<event::frame>(f.next(b)));
}

BOOST_AUTO_TEST_CASE(unregistered_sessions_get_nothing_and_late_registrations_are_ignored) {
  fixture f;
  auto a = f.open(3);
  f.registered(a, 0);
  f.send(hub_event::caught_up{a, 0});
  f.send(hub_event::unregistered{a});
  f.committed(3, {1});
  BOOST_TEST(!f.next(a).has_value());

  // A session that ended before its registration arrived closed its channel.
  auto gone = f.open(3);
  gone->channel().close();
  f.registered(gone, 0);
  f.send(hub_event::caught_up{gone, 0});
  auto live = f.open(3);
  f.registered(live, 1);
  f.send(hub_event::caught_up{live, 1});
  f.committed(3, {2});
  BOOST_TEST(as<event::frame>(f.next(live)));
}

BOOST_AUTO_TEST_CASE(a_full_queue_aborts_the_slow_session_only) {
  fixture f;
  auto slow = f.open(4, 200);  // bytes
  auto fast = f.open(4);
  f.registered(slow, 0);
  f.registered(fast, 0);
  f.send(hub_event::caught_up{slow, 0});
  f.send(hub_event::caught_up{fast, 0});
  f.committed(4, {1, 2, 3, 4, 5, 6});
  f.context.run_for(std::chrono::milliseconds(20));
  BOOST_TEST((slow->abort_reason() == close_reason::slow_consumer));
  int fast_frames = 0;
  while (as<event::frame>(f.next(fast)))
    ++fast_frames;
  BOOST_TEST(fast_frames == 6);
  // Removed from the registry: later messages do not reach it.
  while (f.next(slow)) {
  }
  f.committed(4, {7});
  BOOST_TEST(!f.next(slow).has_value());
  BOOST_TEST(as<event::frame>(f.next(fast)));
}

BOOST_AUTO_TEST_CASE(drain_closes_everyone_and_reports_when_empty) {
  fixture f;
  auto a = f.open(1), b = f.open(2);
  f.registered(a, 0);
  f.registered(b, 0);
  bool drained = false;
  f.send(hub_event::drain{[&] { drained = true; }});
  for (auto& s : {a, b}) {
    auto e = f.next(s);
    BOOST_REQUIRE(as<event::close>(e));
    BOOST_TEST(static_cast<int>(as<event::close>(e)->reason) ==
               static_cast<int>(close_reason::shutdown));
  }
  f.send(hub_event::unregistered{a});
  BOOST_TEST(!drained);
  f.send(hub_event::unregistered{b});
  BOOST_TEST(drained);
  // A session registering during the drain is told at once.
  auto late = f.open(3);
  f.registered(late, 0);
  BOOST_TEST(as<event::close>(f.next(late)));
}
