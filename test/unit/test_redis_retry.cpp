// The reconnect delays of the Redis client: doubling, jittered, capped.
#define BOOST_TEST_MODULE redis_retry
#include <boost/test/unit_test.hpp>

#include "switchboard/redis/retry.hpp"

using std::chrono::milliseconds;
using switchboard::redis::backoff;

BOOST_AUTO_TEST_CASE(doubles_with_jitter_up_to_the_cap) {
  for (int run = 0; run < 50; ++run) {
    backoff b(milliseconds(50), milliseconds(2000));
    long nominal = 50;
    for (int attempt = 0; attempt < 40; ++attempt) {
      const auto d = b.next().count();
      BOOST_TEST(d >= nominal / 2);
      BOOST_TEST(d <= nominal);
      nominal = std::min(nominal * 2, 2000L);
    }
  }
}

BOOST_AUTO_TEST_CASE(reset_starts_over) {
  backoff b(milliseconds(10), milliseconds(10000));
  for (int i = 0; i < 10; ++i)
    b.next();
  b.reset();
  BOOST_TEST(b.next().count() <= 10);
}

BOOST_AUTO_TEST_CASE(odd_settings_stay_sane) {
  backoff zero(milliseconds(0), milliseconds(0));  // never a busy loop
  BOOST_TEST(zero.next().count() >= 1);
  backoff inverted(milliseconds(100), milliseconds(10));  // the cap is at least the minimum
  for (int i = 0; i < 5; ++i)
    BOOST_TEST(inverted.next().count() <= 100);
}
