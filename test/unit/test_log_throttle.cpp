#define BOOST_TEST_MODULE log_throttle
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <thread>

#include "switchboard/log_throttle.hpp"

using switchboard::held_back;
using switchboard::log_throttle;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(a_burst_per_period_then_the_held_back_count) {
  log_throttle throttle(3, 200ms);
  std::uint64_t held = 99;
  for (int i = 0; i < 3; ++i) {
    BOOST_TEST(throttle.allow(held));
    BOOST_TEST(held == 0u);
  }
  for (int i = 0; i < 1000; ++i)
    BOOST_TEST(!throttle.allow(held));
  std::this_thread::sleep_for(250ms);
  BOOST_TEST(throttle.allow(held));
  BOOST_TEST(held == 1000u);  // said once, by the next line written
  BOOST_TEST(throttle.allow(held));
  BOOST_TEST(held == 0u);
}

BOOST_AUTO_TEST_CASE(the_note) {
  BOOST_TEST(held_back(0).empty());
  BOOST_TEST(held_back(12) == " (12 similar lines held back)");
}
