#define BOOST_TEST_MODULE ws_query
#include <boost/test/unit_test.hpp>

#include <sstream>
#include <string>
#include <string_view>
#include <variant>

#include "switchboard/ws_query.hpp"

using switchboard::ack_mode;
using switchboard::parse_ws_query;
using switchboard::percent_decode;
using switchboard::ws_query;
using switchboard::ws_query_error;

namespace {

// Printable in failure messages: "ack=manual since=3 token=abc", or the error.
std::string show(std::string_view query) {
  const auto parsed = parse_ws_query(query);
  if (const auto* e = std::get_if<ws_query_error>(&parsed)) {
    switch (*e) {
      case ws_query_error::bad_ack:
        return "bad_ack";
      case ws_query_error::bad_since:
        return "bad_since";
      case ws_query_error::bad_device:
        return "bad_device";
    }
  }
  const auto& q = std::get<ws_query>(parsed);
  std::ostringstream out;
  out << "ack=" << (q.ack == ack_mode::manual ? "manual" : "auto");
  if (q.since) out << " since=" << *q.since;
  if (!q.device.empty()) out << " device=" << q.device.view();
  if (q.token) out << " token=" << *q.token;
  if (q.token_malformed) out << " token_malformed";
  return out.str();
}

}  // namespace

BOOST_AUTO_TEST_CASE(defaults) {
  BOOST_TEST(show("") == "ack=auto");
  BOOST_TEST(show("&&") == "ack=auto");
  BOOST_TEST(show("foo=bar&_=123") == "ack=auto");
}

BOOST_AUTO_TEST_CASE(each_parameter) {
  BOOST_TEST(show("ack=manual") == "ack=manual");
  BOOST_TEST(show("ack=auto") == "ack=auto");
  BOOST_TEST(show("since=0") == "ack=auto since=0");
  BOOST_TEST(show("since=18446744073709551615") == "ack=auto since=18446744073709551615");
  BOOST_TEST(show("token=a.b.c") == "ack=auto token=a.b.c");
  BOOST_TEST(show("ack=manual&since=12&token=x") == "ack=manual since=12 token=x");
}

BOOST_AUTO_TEST_CASE(values_are_percent_decoded_keys_are_not) {
  BOOST_TEST(show("ack=man%75al") == "ack=manual");
  BOOST_TEST(show("since=%31%32") == "ack=auto since=12");
  BOOST_TEST(show("token=a%2Eb+c") == "ack=auto token=a.b c");
  BOOST_TEST(show("%61ck=bogus") == "ack=auto");  // not the key `ack`
}

BOOST_AUTO_TEST_CASE(last_value_wins) {
  BOOST_TEST(show("ack=manual&ack=auto") == "ack=auto");
  BOOST_TEST(show("since=1&since=2") == "ack=auto since=2");
  BOOST_TEST(show("token=a&token=b") == "ack=auto token=b");
}

// PROTOCOL.md section 9: 1 to 64 bytes of A-Z a-z 0-9 . _ -; absent is the
// default device (""), empty is refused.
BOOST_AUTO_TEST_CASE(device) {
  BOOST_TEST(show("device=phone") == "ack=auto device=phone");
  BOOST_TEST(show("device=A-z_0.9") == "ack=auto device=A-z_0.9");
  BOOST_TEST(show("device=%70hone") == "ack=auto device=phone");  // decoded, then checked
  const std::string longest(64, 'd');
  BOOST_TEST(show("device=" + longest) == "ack=auto device=" + longest);
  BOOST_TEST(show("device=" + longest + "d") == "bad_device");
  BOOST_TEST(show("device=") == "bad_device");
  BOOST_TEST(show("device") == "bad_device");
  BOOST_TEST(show("device=a+b") == "bad_device");  // a space
  BOOST_TEST(show("device=a%2Fb") == "bad_device");
  BOOST_TEST(show("device=caf%C3%A9") == "bad_device");
  BOOST_TEST(show("device=%zz") == "bad_device");
  BOOST_TEST(show("device=a&device=b") == "ack=auto device=b");
  BOOST_TEST(show("device=a&device=") == "bad_device");
}

BOOST_AUTO_TEST_CASE(refusals) {
  BOOST_TEST(show("ack=sometimes") == "bad_ack");
  BOOST_TEST(show("ack") == "bad_ack");
  BOOST_TEST(show("ack=") == "bad_ack");
  BOOST_TEST(show("ack=%") == "bad_ack");
  BOOST_TEST(show("since=x") == "bad_since");
  BOOST_TEST(show("since=") == "bad_since");
  BOOST_TEST(show("since=01") == "bad_since");
  BOOST_TEST(show("since=+1") == "bad_since");  // '+' is a space
  BOOST_TEST(show("since=18446744073709551616") == "bad_since");
  // The first refusal ends the parse, even when a later value would be good.
  BOOST_TEST(show("since=x&since=1") == "bad_since");
}

// A token with a malformed escape is the router's to refuse, with 401 and
// only when auth is on, after every 400: PROTOCOL.md checks ack and since
// first, upgrade or not, token or not.
BOOST_AUTO_TEST_CASE(malformed_token_is_not_a_refusal_here) {
  BOOST_TEST(show("token=%zz") == "ack=auto token_malformed");
  BOOST_TEST(show("token=ab%4") == "ack=auto token_malformed");
  BOOST_TEST(show("token=%zz&since=x") == "bad_since");
  BOOST_TEST(show("ack=bogus&token=%zz") == "bad_ack");
  // The last token counts, malformed or not.
  BOOST_TEST(show("token=%zz&token=a") == "ack=auto token=a");
  BOOST_TEST(show("token=a&token=%zz") == "ack=auto token_malformed");
}

BOOST_AUTO_TEST_CASE(percent_decoding) {
  BOOST_TEST(percent_decode("").value() == "");
  BOOST_TEST(percent_decode("%41%62+").value() == "Ab ");
  BOOST_TEST(percent_decode("%00").value() == std::string(1, '\0'));
  BOOST_TEST(percent_decode("%ff").value() == "\xff");
  BOOST_TEST(!percent_decode("%"));
  BOOST_TEST(!percent_decode("%4"));
  BOOST_TEST(!percent_decode("%4g"));
  BOOST_TEST(!percent_decode("a%"));
}
