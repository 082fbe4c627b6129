#define BOOST_TEST_MODULE protocol
#include <boost/test/unit_test.hpp>

#include <boost/json.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <variant>

#include "switchboard/protocol.hpp"

namespace json = boost::json;
namespace sp = switchboard::protocol;

namespace {

constexpr sp::user_id self = 7;

sp::client_frame parse(std::string_view text) {
  return sp::parse_client_frame(text, self);
}

// Each helper requires the expected alternative, so a wrong kind of result
// fails with the frame's text instead of a bad_variant_access.
sp::frame_error expect_error(std::string_view text) {
  const auto frame = parse(text);
  BOOST_TEST_INFO("frame: " << text);
  BOOST_REQUIRE(std::holds_alternative<sp::frame_error>(frame));
  return std::get<sp::frame_error>(frame);
}

sp::send_frame expect_send(std::string_view text) {
  const auto frame = parse(text);
  if (const auto* e = std::get_if<sp::frame_error>(&frame)) {
    BOOST_TEST_INFO("frame: " << text << " refused: " << sp::to_string(e->code) << " "
                              << e->message);
  }
  BOOST_REQUIRE(std::holds_alternative<sp::send_frame>(frame));
  return std::get<sp::send_frame>(frame);
}

sp::receive_frame expect_receive(std::string_view text) {
  const auto frame = parse(text);
  BOOST_TEST_INFO("frame: " << text);
  BOOST_REQUIRE(std::holds_alternative<sp::receive_frame>(frame));
  return std::get<sp::receive_frame>(frame);
}

void check_error(std::string_view text, std::string_view code, std::string_view field) {
  BOOST_TEST_CONTEXT("frame: " << text) {
    const auto e = expect_error(text);
    BOOST_TEST(sp::to_string(e.code) == code);
    BOOST_TEST(e.message.find(field) != std::string::npos,
               "message \"" << e.message << "\" names " << field);
  }
}

// The unsigned value of a JSON integer, whichever of int64/uint64 holds it.
std::uint64_t u64(const json::value& v) {
  if (v.is_uint64()) return v.get_uint64();
  BOOST_REQUIRE(v.is_int64());
  BOOST_REQUIRE(v.get_int64() >= 0);
  return static_cast<std::uint64_t>(v.get_int64());
}

json::object parse_object(const std::string& text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  BOOST_TEST_INFO("server frame: " << text);
  BOOST_REQUIRE(!ec);
  BOOST_REQUIRE(v.is_object());
  return v.get_object();
}

std::string str(const json::value& v) {
  BOOST_REQUIRE(v.is_string());
  return std::string(v.get_string().data(), v.get_string().size());
}

// Every control character, quotes, backslashes, a slash, a NUL, DEL and
// characters of two, three and four UTF-8 bytes.
std::string tricky_content() {
  std::string s = "he said \"hi\" \\ back\\\\slash / ";
  for (char c = 1; c < 0x20; ++c)
    s += c;
  s += '\0';
  s += "\x7f caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \\u0041 </script>";
  return s;
}

}  // namespace

// ---- error codes -------------------------------------------------------

BOOST_AUTO_TEST_CASE(error_code_names) {
  BOOST_TEST(sp::to_string(sp::error_code::bad_json) == "bad_json");
  BOOST_TEST(sp::to_string(sp::error_code::binary) == "binary");
  BOOST_TEST(sp::to_string(sp::error_code::unknown_type) == "unknown_type");
  BOOST_TEST(sp::to_string(sp::error_code::bad_field) == "bad_field");
  BOOST_TEST(sp::to_string(sp::error_code::sender_mismatch) == "sender_mismatch");
  BOOST_TEST(sp::to_string(sp::error_code::rate_limited) == "rate_limited");
  BOOST_TEST(sp::to_string(sp::error_code::unavailable) == "unavailable");
}

// ---- bad_json ----------------------------------------------------------

BOOST_AUTO_TEST_CASE(bad_json_not_json) {
  for (const std::string_view text :
       {"", " ", "not json", "{", "{\"type\":1", "{'type':3}", "{type:3}", "{\"type\":3} x",
        "{\"type\":3}{\"type\":3}", "{\"type\":3,}", "{\"type\":3 /* c */}",
        "\xef\xbb\xbf{\"type\":3}", "{\"type\":3,\"x\":\"\xff\"}", "{\"type\":3,\"x\":\"\xc3\"}",
        "{\"type\":3,\"x\":NaN}"}) {
    BOOST_TEST_CONTEXT("frame: " << text) {
      const auto e = expect_error(text);
      BOOST_TEST(sp::to_string(e.code) == "bad_json");
      BOOST_TEST(e.message == "frame is not valid JSON");
      BOOST_TEST(!e.id.has_value());
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_json_not_an_object) {
  for (const std::string_view text :
       {"[]", "[{\"type\":3}]", "3", "\"type\"", "null", "true", "1.5"}) {
    BOOST_TEST_CONTEXT("frame: " << text) {
      const auto e = expect_error(text);
      BOOST_TEST(sp::to_string(e.code) == "bad_json");
      BOOST_TEST(e.message == "frame must be a JSON object");
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_json_too_deep) {
  const std::string deep =
      "{\"type\":3,\"x\":" + std::string(1000, '[') + std::string(1000, ']') + "}";
  const auto e = expect_error(deep);
  BOOST_TEST(sp::to_string(e.code) == "bad_json");
  BOOST_TEST(e.message == "frame is nested too deeply");

  // The limit counts the frame itself: 31 levels of nesting inside it still pass.
  const std::string at_limit =
      "{\"type\":3,\"x\":" + std::string(31, '[') + std::string(31, ']') + "}";
  BOOST_TEST(std::holds_alternative<sp::close_frame>(parse(at_limit)));
  const std::string over_limit =
      "{\"type\":3,\"x\":" + std::string(32, '[') + std::string(32, ']') + "}";
  BOOST_TEST(sp::to_string(expect_error(over_limit).code) == "bad_json");
}

// ---- type --------------------------------------------------------------

BOOST_AUTO_TEST_CASE(bad_field_type) {
  check_error("{}", "bad_field", "type");
  check_error(R"({"receiver":8,"content":"x"})", "bad_field", "type");
  check_error(R"({"type":"1","receiver":8,"content":"x"})", "bad_field", "type");
  check_error(R"({"type":1.0,"receiver":8,"content":"x"})", "bad_field", "type");
  check_error(R"({"type":1e0,"receiver":8,"content":"x"})", "bad_field", "type");
  check_error(R"({"type":true})", "bad_field", "type");
  check_error(R"({"type":null})", "bad_field", "type");
  check_error(R"({"type":[1]})", "bad_field", "type");
  check_error(R"({"type":{}})", "bad_field", "type");
  check_error(R"({"Type":3})", "bad_field", "type");
}

BOOST_AUTO_TEST_CASE(unknown_type) {
  for (const std::string_view t :
       {"0", "4", "5", "-1", "100", "9223372036854775807", "9223372036854775808",
        "18446744073709551615", "-9223372036854775808"}) {
    const std::string text = "{\"type\":" + std::string(t) + "}";
    BOOST_TEST_CONTEXT("frame: " << text) {
      const auto e = expect_error(text);
      BOOST_TEST(sp::to_string(e.code) == "unknown_type");
      BOOST_TEST(e.message == "type " + std::string(t) + " cannot be sent by a client");
    }
  }
}

// ---- SEND --------------------------------------------------------------

BOOST_AUTO_TEST_CASE(send_minimal) {
  const auto s = expect_send(R"({"type":1,"receiver":8,"content":"hello"})");
  BOOST_TEST(s.receiver == 8u);
  BOOST_TEST(s.content == "hello");
  BOOST_TEST(!s.id.has_value());
}

BOOST_AUTO_TEST_CASE(send_receiver_range) {
  BOOST_TEST(expect_send(R"({"type":1,"receiver":1,"content":""})").receiver == 1u);
  BOOST_TEST(expect_send(R"({"type":1,"receiver":7,"content":""})").receiver == 7u);
  BOOST_TEST(expect_send(R"({"type":1,"receiver":9223372036854775807,"content":""})").receiver ==
             9223372036854775807u);
  BOOST_TEST(expect_send(R"({"type":1,"receiver":9223372036854775808,"content":""})").receiver ==
             9223372036854775808u);
  BOOST_TEST(expect_send(R"({"type":1,"receiver":18446744073709551615,"content":""})").receiver ==
             18446744073709551615u);
}

BOOST_AUTO_TEST_CASE(send_bad_receiver) {
  check_error(R"({"type":1,"content":"x"})", "bad_field", "receiver");
  for (const std::string_view r :
       {"\"8\"", "0", "-0", "-1", "-9223372036854775808", "8.0", "8.5", "8e0", "1e3",
        "18446744073709551616", "99999999999999999999999", "null", "true", "[8]", "{}"}) {
    check_error("{\"type\":1,\"receiver\":" + std::string(r) + ",\"content\":\"x\"}", "bad_field",
                "receiver");
  }
}

BOOST_AUTO_TEST_CASE(send_bad_content) {
  check_error(R"({"type":1,"receiver":8})", "bad_field", "content");
  for (const std::string_view c : {"1", "null", "true", "[\"x\"]", "{\"text\":\"x\"}"}) {
    check_error("{\"type\":1,\"receiver\":8,\"content\":" + std::string(c) + "}", "bad_field",
                "content");
  }
}

BOOST_AUTO_TEST_CASE(send_content_round_trips_escapes) {
  const std::string content = tricky_content();
  const std::string text =
      json::serialize(json::object{{"type", 1}, {"receiver", 8}, {"content", content}});
  BOOST_TEST(expect_send(text).content == content);
  // Escapes written by hand by a client decode to the characters.
  BOOST_TEST(
      expect_send(R"({"type":1,"receiver":8,"content":"a\"b\\c\n\u00e9\ud83d\ude00"})").content ==
      "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80");
}

BOOST_AUTO_TEST_CASE(send_ignores_unknown_fields) {
  const auto s = expect_send(
      R"({"extra":{"nested":[1,2,{"a":null}]},"type":1,"ts":5,"seq":"x","receiver":8,"content":"c","session":null})");
  BOOST_TEST(s.receiver == 8u);
  BOOST_TEST(s.content == "c");
}

BOOST_AUTO_TEST_CASE(send_duplicate_key_last_wins) {
  BOOST_TEST(expect_send(R"({"type":1,"receiver":8,"receiver":9,"content":"c"})").receiver == 9u);
  check_error(R"({"type":1,"receiver":9,"receiver":"9","content":"c"})", "bad_field", "receiver");
}

BOOST_AUTO_TEST_CASE(send_sender_matching_self_is_accepted) {
  const auto s = expect_send(R"({"type":1,"sender":7,"receiver":8,"content":"c"})");
  BOOST_TEST(s.receiver == 8u);
  // Sending to oneself is allowed.
  BOOST_TEST(expect_send(R"({"type":1,"sender":7,"receiver":7,"content":"c"})").receiver == 7u);
}

BOOST_AUTO_TEST_CASE(send_sender_mismatch) {
  const auto e = expect_error(R"({"type":1,"sender":8,"receiver":8,"content":"c"})");
  BOOST_TEST(sp::to_string(e.code) == "sender_mismatch");
  BOOST_TEST(e.message.find("sender") != std::string::npos);
  BOOST_TEST(!e.id.has_value());
  check_error(R"({"type":1,"sender":0,"receiver":8,"content":"c"})", "sender_mismatch", "sender");
  check_error(R"({"type":1,"sender":18446744073709551615,"receiver":8,"content":"c"})",
              "sender_mismatch", "sender");
}

BOOST_AUTO_TEST_CASE(send_bad_sender) {
  // Even the right user written as a string is not an unsigned integer.
  for (const std::string_view s :
       {"\"7\"", "-7", "7.0", "7e0", "null", "true", "[7]", "{}", "18446744073709551616"}) {
    check_error("{\"type\":1,\"sender\":" + std::string(s) + ",\"receiver\":8,\"content\":\"c\"}",
                "bad_field", "sender");
  }
}

BOOST_AUTO_TEST_CASE(send_malformed_fields_win_over_sender_mismatch) {
  check_error(R"({"type":1,"sender":8,"receiver":"8","content":"c"})", "bad_field", "receiver");
  check_error(R"({"type":1,"sender":8,"receiver":8})", "bad_field", "content");
  check_error(R"({"type":1,"sender":8,"receiver":8,"content":"c","id":null})", "bad_field", "id");
}

// ---- id ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(id_number_and_string_are_the_same_id) {
  const auto n = expect_send(R"({"type":1,"receiver":8,"content":"c","id":17})");
  const auto s = expect_send(R"({"type":1,"receiver":8,"content":"c","id":"17"})");
  BOOST_REQUIRE(n.id.has_value());
  BOOST_REQUIRE(s.id.has_value());
  BOOST_TEST(n.id->value == "17");
  BOOST_TEST(n.id->is_number);
  BOOST_TEST(s.id->value == "17");
  BOOST_TEST(!s.id->is_number);
  BOOST_TEST(n.id->value == s.id->value);
}

BOOST_AUTO_TEST_CASE(id_numeric_range) {
  const auto zero = expect_send(R"({"type":1,"receiver":8,"content":"c","id":0})");
  BOOST_REQUIRE(zero.id.has_value());
  BOOST_TEST(zero.id->value == "0");
  BOOST_TEST(zero.id->is_number);
  const auto max =
      expect_send(R"({"type":1,"receiver":8,"content":"c","id":18446744073709551615})");
  BOOST_REQUIRE(max.id.has_value());
  BOOST_TEST(max.id->value == "18446744073709551615");
  BOOST_TEST(max.id->is_number);
  // A leading-zero string is a different id from the number.
  const auto padded = expect_send(R"({"type":1,"receiver":8,"content":"c","id":"017"})");
  BOOST_REQUIRE(padded.id.has_value());
  BOOST_TEST(padded.id->value == "017");
  BOOST_TEST(!padded.id->is_number);
}

BOOST_AUTO_TEST_CASE(id_string_length_in_bytes) {
  const std::string id64(64, 'a');
  const auto ok = expect_send(R"({"type":1,"receiver":8,"content":"c","id":")" + id64 + "\"}");
  BOOST_REQUIRE(ok.id.has_value());
  BOOST_TEST(ok.id->value == id64);
  BOOST_TEST(!ok.id->is_number);
  const auto one = expect_send(R"({"type":1,"receiver":8,"content":"c","id":"x"})");
  BOOST_REQUIRE(one.id.has_value());
  BOOST_TEST(one.id->value == "x");

  check_error(R"({"type":1,"receiver":8,"content":"c","id":")" + std::string(65, 'a') + "\"}",
              "bad_field", "id");

  // 32 two-byte characters are 64 bytes; 33 are 66.
  std::string e32;
  for (int i = 0; i < 32; ++i)
    e32 += "\xc3\xa9";
  BOOST_TEST(
      expect_send(R"({"type":1,"receiver":8,"content":"c","id":")" + e32 + "\"}").id->value == e32);
  check_error(R"({"type":1,"receiver":8,"content":"c","id":")" + e32 + "\xc3\xa9\"}", "bad_field",
              "id");
  // Escapes count as the bytes they decode to: 64 escaped "\u0041" are 64 bytes.
  std::string escaped;
  for (int i = 0; i < 64; ++i)
    escaped += "\\u0041";
  BOOST_TEST(
      expect_send(R"({"type":1,"receiver":8,"content":"c","id":")" + escaped + "\"}").id->value ==
      std::string(64, 'A'));
}

BOOST_AUTO_TEST_CASE(id_bad_kinds) {
  for (const std::string_view id :
       {"null", "\"\"", "-1", "-9223372036854775808", "17.0", "1.5", "1e2", "18446744073709551616",
        "true", "false", "{}", "[]", "{\"v\":17}", "[17]"}) {
    BOOST_TEST_CONTEXT("id: " << id) {
      const auto e = expect_error(
          "{\"type\":1,\"receiver\":8,\"content\":\"c\",\"id\":" + std::string(id) + "}");
      BOOST_TEST(sp::to_string(e.code) == "bad_field");
      BOOST_TEST(e.message.find("id") != std::string::npos);
      BOOST_TEST(!e.id.has_value());
    }
  }
}

BOOST_AUTO_TEST_CASE(errors_echo_a_readable_id) {
  {
    const auto e = expect_error(R"({"type":1,"receiver":"8","content":"c","id":"c-17"})");
    BOOST_TEST(sp::to_string(e.code) == "bad_field");
    BOOST_REQUIRE(e.id.has_value());
    BOOST_TEST(e.id->value == "c-17");
    BOOST_TEST(!e.id->is_number);
  }
  {
    const auto e = expect_error(R"({"type":1,"receiver":8,"id":17})");
    BOOST_TEST(sp::to_string(e.code) == "bad_field");
    BOOST_REQUIRE(e.id.has_value());
    BOOST_TEST(e.id->value == "17");
    BOOST_TEST(e.id->is_number);
  }
  {
    const auto e = expect_error(R"({"type":1,"sender":9,"receiver":8,"content":"c","id":"m"})");
    BOOST_TEST(sp::to_string(e.code) == "sender_mismatch");
    BOOST_REQUIRE(e.id.has_value());
    BOOST_TEST(e.id->value == "m");
  }
  {
    const auto e = expect_error(R"({"type":"1","receiver":8,"content":"c","id":"m"})");
    BOOST_TEST(sp::to_string(e.code) == "bad_field");
    BOOST_REQUIRE(e.id.has_value());
    BOOST_TEST(e.id->value == "m");
  }
  {
    const auto e = expect_error(R"({"type":9,"id":5})");
    BOOST_TEST(sp::to_string(e.code) == "unknown_type");
    BOOST_REQUIRE(e.id.has_value());
    BOOST_TEST(e.id->value == "5");
  }
  {
    // An invalid id is reported first, and not echoed.
    const auto e = expect_error(R"({"type":1,"receiver":"8","id":""})");
    BOOST_TEST(sp::to_string(e.code) == "bad_field");
    BOOST_TEST(e.message.find("id") != std::string::npos);
    BOOST_TEST(e.message.find("receiver") == std::string::npos);
    BOOST_TEST(!e.id.has_value());
  }
}

// ---- RECEIVE and CLOSE -------------------------------------------------

BOOST_AUTO_TEST_CASE(receive_frames) {
  BOOST_TEST(expect_receive(R"({"type":2,"seq":0})").seq == 0u);
  BOOST_TEST(expect_receive(R"({"type":2,"seq":42})").seq == 42u);
  BOOST_TEST(expect_receive(R"({"type":2,"seq":18446744073709551615})").seq ==
             18446744073709551615u);
  // An id is of no use to RECEIVE, even an invalid one.
  BOOST_TEST(expect_receive(R"({"type":2,"seq":3,"id":null,"receiver":"x"})").seq == 3u);
}

BOOST_AUTO_TEST_CASE(receive_bad_seq) {
  check_error(R"({"type":2})", "bad_field", "seq");
  for (const std::string_view s :
       {"\"5\"", "-1", "5.0", "5e0", "null", "true", "[5]", "18446744073709551616"}) {
    check_error("{\"type\":2,\"seq\":" + std::string(s) + "}", "bad_field", "seq");
  }
}

BOOST_AUTO_TEST_CASE(close_frames) {
  BOOST_TEST(std::holds_alternative<sp::close_frame>(parse(R"({"type":3})")));
  BOOST_TEST(std::holds_alternative<sp::close_frame>(parse(R"( { "type" : 3 } )")));
  BOOST_TEST(std::holds_alternative<sp::close_frame>(
      parse(R"({"type":3,"code":"bye","content":5,"id":null})")));
}

BOOST_AUTO_TEST_CASE(parser_never_throws) {
  // Every prefix of valid frames, and random mutations of them.
  const std::string samples[] = {
      R"({"type":1,"sender":7,"receiver":18446744073709551615,"content":"h\u00e9\"\\","id":"c-17"})",
      R"({"type":2,"seq":12345678901234567890})",
      R"({"type":3,"x":[[[{"y":-1.5e300}]]]})",
  };
  std::mt19937 rng(12345);
  std::size_t frames = 0;
  for (const auto& sample : samples) {
    for (std::size_t n = 0; n <= sample.size(); ++n) {
      BOOST_CHECK_NO_THROW(parse(std::string_view(sample).substr(0, n)));
      ++frames;
    }
    for (int round = 0; round < 2000; ++round) {
      std::string mutated = sample;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < edits; ++i) {
        mutated[rng() % mutated.size()] = static_cast<char>(rng() % 256);
      }
      BOOST_CHECK_NO_THROW(parse(mutated));
      ++frames;
    }
  }
  // One more prefix than characters per sample: the empty one.
  BOOST_TEST(frames == 3 * 2000 + (samples[0].size() + 1) + (samples[1].size() + 1) +
                           (samples[2].size() + 1));
}

// ---- server frames -----------------------------------------------------

BOOST_AUTO_TEST_CASE(welcome) {
  const std::string text = sp::welcome_frame(7, 18446744073709551615u, "s-\"1\"\\");
  BOOST_TEST(text.rfind("{\"type\":0,", 0) == 0u);
  const auto o = parse_object(text);
  BOOST_TEST(o.size() == 4u);
  BOOST_TEST(u64(o.at("type")) == 0u);
  BOOST_TEST(u64(o.at("receiver")) == 7u);
  BOOST_TEST(u64(o.at("seq")) == 18446744073709551615u);
  BOOST_TEST(str(o.at("session")) == "s-\"1\"\\");

  const auto fresh = parse_object(sp::welcome_frame(18446744073709551615u, 0, "abc"));
  BOOST_TEST(u64(fresh.at("receiver")) == 18446744073709551615u);
  BOOST_TEST(u64(fresh.at("seq")) == 0u);
}

BOOST_AUTO_TEST_CASE(deliver_without_id) {
  switchboard::store::stored_message m;
  m.seq = 3;
  m.sender = 7;
  m.receiver = 18446744073709551615u;
  m.content = tricky_content();
  m.ts_ms = 1700000000123;
  const std::string text = sp::deliver_frame(m);
  BOOST_TEST(text.rfind("{\"type\":1,", 0) == 0u);
  const auto o = parse_object(text);
  BOOST_TEST(o.size() == 6u);
  BOOST_TEST(u64(o.at("type")) == 1u);
  BOOST_TEST(u64(o.at("sender")) == 7u);
  BOOST_TEST(u64(o.at("receiver")) == 18446744073709551615u);
  BOOST_TEST(str(o.at("content")) == tricky_content());
  BOOST_TEST(u64(o.at("seq")) == 3u);
  BOOST_REQUIRE(o.at("ts").is_int64());
  BOOST_TEST(o.at("ts").get_int64() == 1700000000123);
  BOOST_TEST(!o.contains("id"));
}

BOOST_AUTO_TEST_CASE(deliver_passes_the_id_through_as_written) {
  switchboard::store::stored_message m;
  m.seq = 1;
  m.sender = 7;
  m.receiver = 8;
  m.content = "c";
  m.ts_ms = 1;

  m.id = sp::message_id{"17", true};
  auto o = parse_object(sp::deliver_frame(m));
  BOOST_TEST(u64(o.at("id")) == 17u);

  m.id = sp::message_id{"18446744073709551615", true};
  o = parse_object(sp::deliver_frame(m));
  BOOST_TEST(u64(o.at("id")) == 18446744073709551615u);

  m.id = sp::message_id{"17", false};
  o = parse_object(sp::deliver_frame(m));
  BOOST_TEST(str(o.at("id")) == "17");

  m.id = sp::message_id{"c-\"q\"\\\n\xc3\xa9", false};
  o = parse_object(sp::deliver_frame(m));
  BOOST_TEST(str(o.at("id")) == "c-\"q\"\\\n\xc3\xa9");
}

BOOST_AUTO_TEST_CASE(send_then_deliver_round_trip) {
  const std::string content = tricky_content();
  for (const auto* id : {"17", "\"17\"", "\"c-17\""}) {
    const std::string in = R"({"type":1,"sender":7,"receiver":8,"id":)" + std::string(id) +
                           ",\"content\":" + json::serialize(json::string(content)) + "}";
    BOOST_TEST_CONTEXT("frame: " << in) {
      const auto s = expect_send(in);
      switchboard::store::stored_message m{5, self, s.receiver, s.content, 99, s.id};
      const auto o = parse_object(sp::deliver_frame(m));
      BOOST_TEST(str(o.at("content")) == content);
      BOOST_TEST(json::serialize(o.at("id")) == id);
    }
  }
}

// Found by fuzz_frame (test/fuzz/corpus/fuzz_frame/send_sender_and_infinite_number):
// Boost.JSON reads a number beyond a double's range as an infinity, and would
// write it back as `Infinity`, which is not JSON. Such a number in a field the
// server ignores must neither spoil the frame nor reach any frame it writes.
BOOST_AUTO_TEST_CASE(number_beyond_double_range_in_an_ignored_field) {
  const std::string in = R"({"type":1,"sender":7,"receiver":2,"content":"ello","seq":0,)"
                         R"("ts":17018446744551616e30000,"id":"m1"})";
  const auto s = expect_send(in);
  BOOST_TEST(s.receiver == 2u);
  BOOST_TEST(s.content == "ello");
  BOOST_REQUIRE(s.id.has_value());
  BOOST_TEST(s.id->value == "m1");
  const auto mismatch = sp::parse_client_frame(in, self + 1);
  BOOST_REQUIRE(std::holds_alternative<sp::frame_error>(mismatch));
  BOOST_TEST(sp::to_string(std::get<sp::frame_error>(mismatch).code) == "sender_mismatch");

  const switchboard::store::stored_message m{1, self, s.receiver, s.content, 99, s.id};
  const auto o = parse_object(sp::deliver_frame(m));
  BOOST_TEST(u64(o.at("ts")) == 99u);
  BOOST_TEST(str(o.at("id")) == "m1");
  const auto error = std::get<sp::frame_error>(parse(R"({"type":5,"x":-1e400,"id":3})"));
  BOOST_TEST(sp::to_string(error.code) == "unknown_type");
  parse_object(sp::error_frame(error.code, error.message, error.id));
}

BOOST_AUTO_TEST_CASE(receipt) {
  const std::string text = sp::receipt_frame(sp::message_id{"c-17", false}, 8, 12, 1700000000123);
  BOOST_TEST(text.rfind("{\"type\":2,", 0) == 0u);
  const auto o = parse_object(text);
  BOOST_TEST(o.size() == 5u);
  BOOST_TEST(u64(o.at("type")) == 2u);
  BOOST_TEST(str(o.at("id")) == "c-17");
  BOOST_TEST(u64(o.at("receiver")) == 8u);
  BOOST_TEST(u64(o.at("seq")) == 12u);
  BOOST_TEST(o.at("ts").get_int64() == 1700000000123);

  const auto n = parse_object(sp::receipt_frame(sp::message_id{"17", true}, 8, 1, 0));
  BOOST_REQUIRE(n.at("id").is_number());
  BOOST_TEST(u64(n.at("id")) == 17u);
  BOOST_TEST(n.at("ts").get_int64() == 0);
}

BOOST_AUTO_TEST_CASE(close_notice) {
  for (const std::string_view code : {"replaced", "slow_consumer", "idle", "shutdown", "bye"}) {
    const std::string text = sp::close_frame_text(code, "why: \"quoted\"\\\x01");
    BOOST_TEST(text.rfind("{\"type\":3,", 0) == 0u);
    const auto o = parse_object(text);
    BOOST_TEST(o.size() == 3u);
    BOOST_TEST(u64(o.at("type")) == 3u);
    BOOST_TEST(str(o.at("code")) == code);
    BOOST_TEST(str(o.at("content")) == "why: \"quoted\"\\\x01");
  }
}

BOOST_AUTO_TEST_CASE(error_frames_for_every_code) {
  using ec = sp::error_code;
  for (const ec code : {ec::bad_json, ec::binary, ec::unknown_type, ec::bad_field,
                        ec::sender_mismatch, ec::rate_limited, ec::unavailable}) {
    const std::string text = sp::error_frame(code, tricky_content(), std::nullopt);
    BOOST_TEST(text.rfind("{\"type\":4,", 0) == 0u);
    const auto o = parse_object(text);
    BOOST_TEST(o.size() == 3u);
    BOOST_TEST(u64(o.at("type")) == 4u);
    BOOST_TEST(str(o.at("code")) == sp::to_string(code));
    BOOST_TEST(str(o.at("content")) == tricky_content());
    BOOST_TEST(!o.contains("id"));
  }
  const auto rl =
      parse_object(sp::error_frame(ec::rate_limited, "slow down", sp::message_id{"9", true}));
  BOOST_TEST(str(rl.at("code")) == "rate_limited");
  BOOST_TEST(u64(rl.at("id")) == 9u);
  const auto un =
      parse_object(sp::error_frame(ec::unavailable, "store down", sp::message_id{"c-9", false}));
  BOOST_TEST(str(un.at("code")) == "unavailable");
  BOOST_TEST(str(un.at("id")) == "c-9");
  const auto bin = parse_object(sp::error_frame(ec::binary, "text frames only", std::nullopt));
  BOOST_TEST(str(bin.at("code")) == "binary");
  BOOST_TEST(str(bin.at("content")) == "text frames only");
}

BOOST_AUTO_TEST_CASE(parse_error_to_error_frame) {
  const auto e = expect_error(R"({"type":1,"receiver":0,"content":"c","id":"c-1"})");
  const auto o = parse_object(sp::error_frame(e.code, e.message, e.id));
  BOOST_TEST(str(o.at("code")) == "bad_field");
  BOOST_TEST(str(o.at("content")) == e.message);
  BOOST_TEST(str(o.at("id")) == "c-1");
}
