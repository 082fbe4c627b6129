#define BOOST_TEST_MODULE user_id
#include <boost/test/unit_test.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "switchboard/user_id.hpp"

using switchboard::parse_seq;
using switchboard::parse_user_id;

namespace {

// Printable in failure messages, unlike std::optional.
std::string show(std::optional<std::uint64_t> v) {
  return v ? std::to_string(*v) : std::string("nullopt");
}

}  // namespace

BOOST_AUTO_TEST_CASE(accepts_canonical_user_ids) {
  BOOST_TEST(show(parse_user_id("1")) == "1");
  BOOST_TEST(show(parse_user_id("9")) == "9");
  BOOST_TEST(show(parse_user_id("10")) == "10");
  BOOST_TEST(show(parse_user_id("42")) == "42");
  BOOST_TEST(show(parse_user_id("9223372036854775808")) == "9223372036854775808");
  BOOST_TEST(show(parse_user_id("18446744073709551615")) == "18446744073709551615");
}

BOOST_AUTO_TEST_CASE(refuses_zero_and_empty) {
  BOOST_TEST(show(parse_user_id("")) == "nullopt");
  BOOST_TEST(show(parse_user_id("0")) == "nullopt");
  BOOST_TEST(show(parse_user_id("00")) == "nullopt");
}

BOOST_AUTO_TEST_CASE(refuses_leading_zeros) {
  BOOST_TEST(show(parse_user_id("01")) == "nullopt");
  BOOST_TEST(show(parse_user_id("007")) == "nullopt");
  BOOST_TEST(show(parse_user_id("018446744073709551615")) == "nullopt");
}

BOOST_AUTO_TEST_CASE(refuses_signs_and_spaces) {
  BOOST_TEST(show(parse_user_id("+1")) == "nullopt");
  BOOST_TEST(show(parse_user_id("-1")) == "nullopt");
  BOOST_TEST(show(parse_user_id("-0")) == "nullopt");
  BOOST_TEST(show(parse_user_id(" 1")) == "nullopt");
  BOOST_TEST(show(parse_user_id("1 ")) == "nullopt");
  BOOST_TEST(show(parse_user_id("\t1")) == "nullopt");
  BOOST_TEST(show(parse_user_id("1\n")) == "nullopt");
  BOOST_TEST(show(parse_user_id("1 2")) == "nullopt");
}

BOOST_AUTO_TEST_CASE(refuses_other_notations) {
  BOOST_TEST(show(parse_user_id("0x1")) == "nullopt");
  BOOST_TEST(show(parse_user_id("0x10")) == "nullopt");
  BOOST_TEST(show(parse_user_id("1a")) == "nullopt");
  BOOST_TEST(show(parse_user_id("ff")) == "nullopt");
  BOOST_TEST(show(parse_user_id("1.0")) == "nullopt");
  BOOST_TEST(show(parse_user_id("1e3")) == "nullopt");
  BOOST_TEST(show(parse_user_id("1,000")) == "nullopt");
  BOOST_TEST(show(parse_user_id("abc")) == "nullopt");
  // An embedded NUL must not end the number early.
  BOOST_TEST(show(parse_user_id(std::string_view("1\0", 2))) == "nullopt");
  // Non-ASCII digits (FULLWIDTH DIGIT ONE) are not digits here.
  BOOST_TEST(show(parse_user_id("\xef\xbc\x91")) == "nullopt");
}

BOOST_AUTO_TEST_CASE(refuses_overflow) {
  BOOST_TEST(show(parse_user_id("18446744073709551616")) == "nullopt");  // 2^64
  BOOST_TEST(show(parse_user_id("18446744073709551617")) == "nullopt");
  BOOST_TEST(show(parse_user_id("99999999999999999999")) == "nullopt");
  BOOST_TEST(show(parse_user_id("184467440737095516150")) == "nullopt");
  BOOST_TEST(show(parse_user_id("100000000000000000000000000000")) == "nullopt");
}

BOOST_AUTO_TEST_CASE(seq_accepts_zero_and_full_range) {
  BOOST_TEST(show(parse_seq("0")) == "0");
  BOOST_TEST(show(parse_seq("1")) == "1");
  BOOST_TEST(show(parse_seq("120")) == "120");
  BOOST_TEST(show(parse_seq("18446744073709551615")) == "18446744073709551615");
}

BOOST_AUTO_TEST_CASE(seq_refuses_what_user_id_refuses_except_zero) {
  for (const std::string_view bad : {"", "00", "01", "+0", "-0", "-1", "+1", " 0", "0 ", "0x0",
                                     "1.5", "18446744073709551616", "99999999999999999999999"}) {
    BOOST_TEST_CONTEXT("since=\"" << bad << "\"") {
      BOOST_TEST(show(parse_seq(bad)) == "nullopt");
    }
  }
}
