// The cluster's key names and message format in Redis (store/redis_codec.hpp):
// pure code, checked without a Redis.
#define BOOST_TEST_MODULE redis_codec
#include <boost/test/unit_test.hpp>

#include <limits>
#include <string>

#include "switchboard/store/redis_codec.hpp"

namespace sb = switchboard::store;
namespace codec = switchboard::store::redis_codec;

namespace {
constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();
}

BOOST_AUTO_TEST_CASE(keys_carry_the_user_in_a_hash_tag) {
  BOOST_TEST(codec::seq_key(42) == "{u:42}:seq");
  BOOST_TEST(codec::cursor_key(42) == "{u:42}:cursors");
  BOOST_TEST(codec::inbox_key(42) == "{u:42}:inbox");
  BOOST_TEST(codec::inbox_bytes_key(42) == "{u:42}:inbox_bytes");
  BOOST_TEST(codec::sessions_key(42) == "{u:42}:sessions");
  BOOST_TEST(codec::applied_key(42) == "{u:42}:applied");
  BOOST_TEST(codec::channel(42, 0) == "{u:42}:ch:0");
  BOOST_TEST(codec::channel(max_u64, 15) == "{u:18446744073709551615}:ch:15");
  // The sender's slot, and 17 and "17" are one id.
  BOOST_TEST(codec::dedup_key(7, sb::message_id{"17", true}) == "{u:7}:dedup:17");
  BOOST_TEST(codec::dedup_key(7, sb::message_id{"17", false}) == "{u:7}:dedup:17");
}

BOOST_AUTO_TEST_CASE(channel_names_are_read_back_for_their_database_only) {
  BOOST_TEST(codec::channel_user("{u:42}:ch:0", 0).value() == 42u);
  BOOST_TEST(codec::channel_user(codec::channel(max_u64, 3), 3).value() == max_u64);
  for (const char* bad :
       {"{u:42}:ch:1", "{u:42}:ch:", "{u:42}:inbox", "{u:}:ch:0", "{u:0}:ch:0", "{u:042}:ch:0",
        "{u:-1}:ch:0", "{u:18446744073709551616}:ch:0", "u:42:ch:0", "", "{u:42", "{u:4 2}:ch:0"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(!codec::channel_user(bad, 0).has_value());
    }
  }
}

BOOST_AUTO_TEST_CASE(messages_round_trip) {
  std::string content("nul \0 and space, then ", 23);  // (not operator+: a GCC 12 false warning)
  content += "-:s3:abc \xc3\xa9";
  struct example {
    std::int64_t ts;
    std::uint64_t sender;
    std::optional<sb::message_id> id;
    std::string content;
  };
  for (const auto& e : {example{1700000000123, 7, std::nullopt, "hello"},
                        example{-5, max_u64, sb::message_id{std::string(64, 'z'), false}, content},
                        example{0, 1, sb::message_id{"17", true}, ""},
                        example{1, 2, sb::message_id{"a b:c\nd", false}, " leading space"}}) {
    const auto text = codec::encode_message(e.ts, e.sender, e.id, e.content);
    const auto m = codec::decode_message(text, 9, 3);
    BOOST_REQUIRE(m.has_value());
    BOOST_TEST(m->seq == 9u);
    BOOST_TEST(m->receiver == 3u);
    BOOST_TEST(m->sender == e.sender);
    BOOST_TEST(m->ts_ms == e.ts);
    BOOST_TEST(m->content == e.content);
    BOOST_TEST(m->id.has_value() == e.id.has_value());
    if (e.id) {
      BOOST_TEST(m->id->value == e.id->value);
      BOOST_TEST(m->id->is_number == e.id->is_number);
    }
  }
  // The leading ts is what the append script reads for retention.
  BOOST_TEST(codec::encode_message(-5, 1, std::nullopt, "x").starts_with("-5 1 -:"));
}

BOOST_AUTO_TEST_CASE(status_entries_round_trip) {
  for (const auto state : {sb::status_state::delivered, sb::status_state::read}) {
    const auto text = codec::encode_status(1700000000000, 42, state, 1234);
    BOOST_TEST(text == std::string("1700000000000 42 ") +
                           (state == sb::status_state::read ? "r" : "d") + "4:1234");
    const auto m = codec::decode_entry("7 " + text, 9);
    BOOST_REQUIRE(m.has_value());
    BOOST_TEST((m->kind == sb::entry_kind::status));
    BOOST_TEST((m->state == state));
    BOOST_TEST(m->upto == 1234u);
    BOOST_TEST(m->seq == 7u);
    BOOST_TEST(m->sender == 42u);
    BOOST_TEST(m->receiver == 9u);
    BOOST_TEST(m->content.empty());
    BOOST_TEST(!m->id.has_value());
  }
  // A length that does not match, anything after the point, or a group
  // prefix (a STATUS is never a group copy).
  for (const char* bad :
       {"7 1 42 d3:1234", "7 1 42 d4:1234x", "7 1 42 d0:", "7 1 42 d2:-1", "7 1 42 g3.4.d4:1234"})
    BOOST_TEST(!codec::decode_entry(bad, 9).has_value(), bad);
}

BOOST_AUTO_TEST_CASE(malformed_messages_are_refused) {
  for (const char* bad :
       {"", "1", "1 2", "1 2 ", "x 2 -:c", "1 x -:c", "1 -2 -:c", "1 2 -c", "1 2 -3:c", "1 2 s:c",
        "1 2 s0:c", "1 2 s5:abc", "1 2 q1:ac", "1 2 s01:ac", "1 2 n99999999999999999999999:a",
        "007 1 -:x", "-0 1 -:x", "00 1 -:x", "-05 1 -:x"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(!codec::decode_message(bad, 1, 1).has_value());
    }
  }
}

BOOST_AUTO_TEST_CASE(publishes_are_messages_or_kicks) {
  const auto text = "m 12 " + codec::encode_message(5, 6, sb::message_id{"c-1", false}, "hi");
  auto p = codec::decode_published(text, 4);
  auto* m = std::get_if<codec::published_message>(&p);
  BOOST_REQUIRE(m != nullptr);
  BOOST_TEST(m->message.seq == 12u);
  BOOST_TEST(m->message.receiver == 4u);
  BOOST_TEST(m->message.content == "hi");

  p = codec::decode_published("k 0123abcd-7", 4);
  auto* k = std::get_if<codec::published_kick>(&p);
  BOOST_REQUIRE(k != nullptr);
  BOOST_TEST(k->session_id == "0123abcd-7");

  for (const char* bad :
       {"", "m", "m ", "m 0 1 2 -:x", "m x 1 2 -:x", "m 1 garbage", "k ", "k", "x 1", "hello"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(std::holds_alternative<std::monostate>(codec::decode_published(bad, 1)));
    }
  }
}

BOOST_AUTO_TEST_CASE(inbox_entries_are_the_seq_then_the_message) {
  const auto entry = "18446744073709551615 " + codec::encode_message(5, 6, std::nullopt, "x y");
  const auto m = codec::decode_entry(entry, 4);
  BOOST_REQUIRE(m.has_value());
  BOOST_TEST(m->seq == max_u64);
  BOOST_TEST(m->content == "x y");
  for (const char* bad : {"", "5", "5 ", "0 1 2 -:x", "x 1 2 -:x", "05 1 2 -:x", "-5 1 2 -:x"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(!codec::decode_entry(bad, 1).has_value());
    }
  }
}

// A member's copy of a group message (PROTOCOL.md section 10): the group
// script puts g<group>.<gseq>. before the id kind.
BOOST_AUTO_TEST_CASE(group_copies_carry_group_and_gseq) {
  const auto m = codec::decode_entry("3 5 6 g18446744073709551615.12.s2:abx y", 4);
  BOOST_REQUIRE(m.has_value());
  BOOST_TEST(m->seq == 3u);
  BOOST_TEST(m->sender == 6u);
  BOOST_TEST(m->group == max_u64);
  BOOST_TEST(m->gseq == 12u);
  BOOST_REQUIRE(m->id.has_value());
  BOOST_TEST(m->id->value == "ab");
  BOOST_TEST(m->content == "x y");
  const auto direct = codec::decode_entry("3 5 6 -:g1.2.x", 4);
  BOOST_REQUIRE(direct.has_value());
  BOOST_TEST(direct->group == 0u);
  BOOST_TEST(direct->content == "g1.2.x");
  for (const char* bad : {"3 5 6 g1.2-:x", "3 5 6 g0.2.-:x", "3 5 6 g1.0.-:x", "3 5 6 g.2.-:x",
                          "3 5 6 g1.-:x", "3 5 6 g01.2.-:x"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(!codec::decode_entry(bad, 1).has_value());
    }
  }
  BOOST_TEST(codec::group_members_key(7) == "{g:7}:members");
  BOOST_TEST(codec::group_seq_key(7) == "{g:7}:gseq");
  BOOST_TEST(codec::user_groups_key(7) == "{u:7}:groups");
}
