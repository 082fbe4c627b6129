#define BOOST_TEST_MODULE protocol
#include <boost/test/unit_test.hpp>

#include <boost/json.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "support/protocol_reference.hpp"
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

// PROTOCOL.md section 11.
BOOST_AUTO_TEST_CASE(read_frames) {
  for (const auto& [text, seq] : std::vector<std::pair<std::string, std::uint64_t>>{
           {R"({"type":6,"seq":0})", 0},
           {R"({"type":6,"seq":7})", 7},
           {R"({"type":6,"seq":18446744073709551615,"id":null})", 18446744073709551615u}}) {
    const auto frame = parse(text);
    BOOST_TEST_CONTEXT("frame: " << text) {
      BOOST_REQUIRE(std::holds_alternative<sp::read_frame>(frame));
      BOOST_TEST(std::get<sp::read_frame>(frame).seq == seq);
    }
  }
  check_error(R"({"type":6})", "bad_field", "seq");
  for (const std::string_view s : {"\"5\"", "-1", "5.0", "null", "true", "[5]"})
    check_error("{\"type\":6,\"seq\":" + std::string(s) + "}", "bad_field", "seq");
}

BOOST_AUTO_TEST_CASE(send_notify) {
  BOOST_TEST(!expect_send(R"({"type":1,"receiver":8,"content":"c","id":"m"})").notify);
  BOOST_TEST(expect_send(R"({"type":1,"receiver":8,"content":"c","id":"m","notify":true})").notify);
  BOOST_TEST(!expect_send(R"({"type":1,"receiver":8,"content":"c","id":1,"notify":false})").notify);
  // Without an id there is nothing to report on: accepted, ignored.
  BOOST_TEST(!expect_send(R"({"type":1,"receiver":8,"content":"c","notify":true})").notify);
  // The last of a duplicated key counts.
  BOOST_TEST(
      expect_send(R"({"type":1,"receiver":8,"content":"c","id":2,"notify":false,"notify":true})")
          .notify);
  for (const std::string_view v : {"1", "0", "\"true\"", "null", "[true]", "{}"}) {
    const std::string text =
        R"({"type":1,"receiver":8,"content":"c","id":"m","notify":)" + std::string(v) + "}";
    check_error(text, "bad_field", "notify");
    BOOST_TEST(expect_error(text).id->value == "m");
  }
  // Checked before the sender: a mismatch is a well-formed frame.
  check_error(R"({"type":1,"receiver":8,"content":"c","notify":1,"sender":99})", "bad_field",
              "notify");
}

BOOST_AUTO_TEST_CASE(status_frames) {
  switchboard::store::stored_message m;
  m.kind = switchboard::store::entry_kind::status;
  m.sender = 18446744073709551615u;  // the user the STATUS is about
  m.receiver = 5;                    // whose inbox holds it: not in the frame
  m.seq = 12;
  m.upto = 9007199254740993u;
  m.ts_ms = 1700000000123;
  BOOST_TEST(sp::status_frame(m) ==
             R"({"type":5,"receiver":18446744073709551615,"state":"delivered",)"
             R"("upto":9007199254740993,"seq":12,"ts":1700000000123})");
  m.state = switchboard::store::status_state::read;
  BOOST_TEST(sp::entry_frame(m) == R"({"type":5,"receiver":18446744073709551615,"state":"read",)"
                                   R"("upto":9007199254740993,"seq":12,"ts":1700000000123})");
  m.kind = switchboard::store::entry_kind::message;
  BOOST_TEST(sp::entry_frame(m) == sp::deliver_frame(m));
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
  BOOST_TEST(o.size() == 5u);
  BOOST_TEST(u64(o.at("type")) == 0u);
  BOOST_TEST(u64(o.at("receiver")) == 7u);
  BOOST_TEST(u64(o.at("seq")) == 18446744073709551615u);
  BOOST_TEST(str(o.at("session")) == "s-\"1\"\\");
  BOOST_TEST(str(o.at("device")) == "");  // the default device (section 9)

  const auto fresh = parse_object(sp::welcome_frame(18446744073709551615u, 0, "abc"));
  BOOST_TEST(u64(fresh.at("receiver")) == 18446744073709551615u);
  BOOST_TEST(u64(fresh.at("seq")) == 0u);

  const auto named = parse_object(sp::welcome_frame(7, 1, "abc", "phone-1"));
  BOOST_TEST(str(named.at("device")) == "phone-1");
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

// ---- identity with the DOM reference -------------------------------------
//
// parse_client_frame reads frames with a SAX handler; the DOM version it
// replaced (test/support/protocol_reference.hpp) defines what every input
// must give: the same alternative, code, message, echoed id and is_send.

namespace {

namespace reference = switchboard::test::reference;

void check_same_as_reference(std::string_view text, sp::user_id session_user = self) {
  const auto fast = sp::parse_client_frame(text, session_user);
  const auto dom = reference::parse_client_frame(text, session_user);
  BOOST_TEST(reference::same(fast, dom),
             "frame: " << (text.size() <= 200 ? text : text.substr(0, 200))
                       << "\n  got:       " << reference::describe(fast)
                       << "\n  reference: " << reference::describe(dom));
}

std::string nested(std::size_t levels, std::string_view open, std::string_view close,
                   std::string_view inner = "") {
  std::string text;
  for (std::size_t i = 0; i < levels; ++i)
    text += open;
  text += inner;
  for (std::size_t i = 0; i < levels; ++i)
    text += close;
  return text;
}

}  // namespace

BOOST_AUTO_TEST_CASE(reference_duplicate_keys) {
  // Boost.JSON 1.81's object keeps the last of duplicated keys
  // (object(unchecked_object&&)), whatever the kinds of the values.
  for (
      const std::string_view text : {
          R"({"type":1,"receiver":8,"receiver":9,"content":"c"})",
          R"({"type":1,"receiver":9,"receiver":"9","content":"c"})",
          R"({"type":1,"receiver":"9","receiver":9,"content":"c"})",
          R"({"type":1,"receiver":[9],"receiver":9,"content":"c"})",
          R"({"type":1,"receiver":9,"receiver":{"receiver":9},"content":"c"})",
          R"({"type":2,"type":1,"receiver":8,"content":"c"})",
          R"({"type":1,"type":2,"seq":4})",
          R"({"type":1,"type":"1","receiver":8,"content":"c"})",
          R"({"type":1,"receiver":8,"content":"first","content":"second"})",
          R"({"type":1,"receiver":8,"content":"first","content":5})",
          R"({"type":1,"receiver":8,"content":5,"content":"second"})",
          R"({"type":1,"receiver":8,"content":"a\nb","content":"c\"d"})",
          R"({"type":1,"receiver":8,"content":["x"],"content":"y"})",
          R"({"type":1,"receiver":8,"content":"y","content":["x"]})",
          R"({"type":1,"receiver":8,"content":"c","id":"a","id":"b"})",
          R"({"type":1,"receiver":8,"content":"c","id":"a","id":null})",
          R"({"type":1,"receiver":8,"content":"c","id":null,"id":"a"})",
          R"({"type":1,"receiver":8,"content":"c","id":"","id":17})",
          R"({"type":1,"receiver":8,"content":"c","id":17,"id":"17"})",
          R"({"type":1,"receiver":8,"content":"c","id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","id":"ok"})",
          R"({"type":1,"receiver":8,"content":"c","id":"ok","id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})",
          R"({"type":1,"sender":8,"sender":7,"receiver":8,"content":"c"})",
          R"({"type":1,"sender":7,"sender":8,"receiver":8,"content":"c"})",
          R"({"type":2,"seq":1,"seq":2})",
          R"({"type":2,"seq":1,"seq":-2})",
          R"({"type":3,"type":9})",
          R"({"type":9,"type":3})",
      }) {
    check_same_as_reference(text);
  }
  BOOST_TEST(
      expect_send(R"({"type":1,"receiver":8,"content":"first","content":"second"})").content ==
      "second");
  BOOST_TEST(expect_send(R"({"type":1,"receiver":8,"content":"c","id":"a","id":"b"})").id->value ==
             "b");
  check_error(R"({"type":1,"receiver":8,"content":"first","content":5})", "bad_field", "content");
}

BOOST_AUTO_TEST_CASE(reference_only_top_level_keys_count) {
  for (const std::string_view text : {
           R"({"x":{"type":1,"receiver":8,"content":"c"}})",
           R"({"type":1,"x":{"receiver":9},"receiver":8,"content":"c"})",
           R"({"type":1,"receiver":8,"x":[{"content":"nested"}],"content":"top"})",
           R"({"type":1,"receiver":8,"content":{"content":"nested"}})",
           R"({"type":1,"receiver":8,"content":"c","x":{"id":"nested"}})",
           R"({"type":1,"receiver":8,"content":"c","id":{"id":"nested"}})",
           R"({"type":1,"receiver":8,"content":"c","x":[[{"sender":9}]]})",
           R"([{"type":3}])",
           R"([{"type":1,"receiver":8,"content":"c"},{"type":3}])",
           R"({"a":[1,{"b":[2,{"type":3}]}],"type":2,"seq":5})",
       }) {
    check_same_as_reference(text);
  }
  BOOST_TEST(expect_send(R"({"type":1,"receiver":8,"x":[{"content":"nested"}],"content":"top"})")
                 .content == "top");
}

BOOST_AUTO_TEST_CASE(reference_number_kinds) {
  // int64, uint64 and double, as Boost.JSON's parser reports them, in every
  // field the protocol reads.
  const std::string_view numbers[] = {"0",
                                      "-0",
                                      "1",
                                      "-1",
                                      "7",
                                      "8",
                                      "1.0",
                                      "-0.0",
                                      "0.0",
                                      "0.5",
                                      "1e2",
                                      "1E2",
                                      "1e+2",
                                      "1e-2",
                                      "0e0",
                                      "9223372036854775807",
                                      "9223372036854775808",
                                      "-9223372036854775808",
                                      "-9223372036854775809",
                                      "18446744073709551615",
                                      "18446744073709551616",
                                      "99999999999999999999999",
                                      "1e400",
                                      "-1e400",
                                      "123456789012345678901234567890",
                                      "1.7976931348623157e308",
                                      "4.9e-324",
                                      "00",
                                      "01",
                                      "-",
                                      "1.",
                                      ".5",
                                      "+1",
                                      "0x10",
                                      "Infinity"};
  for (const auto n : numbers) {
    const std::string v(n);
    check_same_as_reference("{\"type\":" + v + ",\"receiver\":8,\"content\":\"c\"}");
    check_same_as_reference("{\"type\":" + v + ",\"seq\":1}");
    check_same_as_reference("{\"type\":1,\"receiver\":" + v + ",\"content\":\"c\"}");
    check_same_as_reference("{\"type\":1,\"receiver\":8,\"content\":" + v + "}");
    check_same_as_reference("{\"type\":1,\"receiver\":8,\"content\":\"c\",\"id\":" + v + "}");
    check_same_as_reference("{\"type\":1,\"sender\":" + v + ",\"receiver\":8,\"content\":\"c\"}");
    check_same_as_reference("{\"type\":1,\"sender\":" + v + ",\"receiver\":8,\"content\":\"c\"}",
                            0);
    check_same_as_reference("{\"type\":2,\"seq\":" + v + "}");
    check_same_as_reference("{\"type\":3,\"x\":[" + v + "]}");
  }
  // The kinds behind the readings of PROTOCOL.md: -0 is the int64 0, 1e2 and
  // 1.0 are doubles, 2^63 is a uint64, 2^64 a double.
  check_error(R"({"type":1,"receiver":-0,"content":"c"})", "bad_field", "receiver");
  BOOST_TEST(expect_receive(R"({"type":2,"seq":-0})").seq == 0u);
  check_error(R"({"type":2,"seq":1e2})", "bad_field", "seq");
  BOOST_TEST(expect_receive(R"({"type":2,"seq":9223372036854775808})").seq == 9223372036854775808u);
  check_error(R"({"type":2,"seq":18446744073709551616})", "bad_field", "seq");
}

BOOST_AUTO_TEST_CASE(reference_depth_limit) {
  // max_json_depth counts the frame's own object: 31 more levels pass, 32 do not.
  const std::size_t inside = sp::max_json_depth - 1;
  for (const std::size_t levels : {inside - 1, inside, inside + 1, inside + 2, std::size_t{1000}}) {
    BOOST_TEST_CONTEXT("levels inside the frame: " << levels) {
      check_same_as_reference("{\"type\":3,\"x\":" + nested(levels, "[", "]") + "}");
      check_same_as_reference("{\"type\":3,\"x\":" + nested(levels, "{\"a\":", "}", "1") + "}");
      check_same_as_reference("{\"type\":1,\"receiver\":8,\"content\":" + nested(levels, "[", "]") +
                              "}");
      check_same_as_reference("{\"type\":1,\"receiver\":8,\"content\":\"c\",\"id\":" +
                              nested(levels, "[", "]", "\"x\"") + "}");
      check_same_as_reference(nested(levels + 1, "[", "]"));
      check_same_as_reference(nested(levels + 1, "[", "]", "{\"type\":3}"));
      // Too deep, and broken after (or before) the deep part.
      check_same_as_reference("{\"type\":3,\"x\":" + nested(levels, "[", "]") + ",}");
      check_same_as_reference("{\"type\":3,,\"x\":" + nested(levels, "[", "]") + "}");
      check_same_as_reference("{\"type\":3,\"x\":" + std::string(levels, '['));
      // Trailing data that is itself too deep.
      check_same_as_reference("{\"type\":3}" + nested(levels, "[", "]"));
    }
  }
  BOOST_TEST(std::holds_alternative<sp::close_frame>(
      parse("{\"type\":3,\"x\":" + nested(inside, "{\"a\":", "}", "1") + "}")));
  BOOST_TEST(
      expect_error("{\"type\":3,\"x\":" + nested(inside + 1, "{\"a\":", "}", "1") + "}").message ==
      "frame is nested too deeply");
}

BOOST_AUTO_TEST_CASE(reference_strings_in_parts) {
  // Boost.JSON hands a string over in parts around each escape and every
  // 4,096 bytes of unescaped text (BOOST_JSON_STACK_BUFFER_SIZE); content, id
  // and keys must come out whole.
  for (const std::string_view text : {
           R"({"type":1,"receiver":8,"content":"a\"b\\c\/d\be\ff\ng\rh\ti"})",
           R"({"type":1,"receiver":8,"content":"\n"})",
           R"({"type":1,"receiver":8,"content":"\n\n\n"})",
           R"({"type":1,"receiver":8,"content":"\u0041BC"})",
           R"({"type":1,"receiver":8,"content":"AB\u0043"})",
           R"({"type":1,"receiver":8,"content":"\u00e9\u65e5\ud83d\ude00"})",
           R"({"type":1,"receiver":8,"content":"\u0000"})",
           R"({"type":1,"receiver":8,"content":"a\u0000b"})",
           R"({"type":1,"receiver":8,"content":"\ud83d"})",
           R"({"type":1,"receiver":8,"content":"\ude00"})",
           R"({"type":1,"receiver":8,"content":"\ud83dx"})",
           R"({"type":1,"receiver":8,"content":"\ud83d\u0041"})",
           R"({"type":1,"receiver":8,"content":"\x"})",
           R"({"type":1,"receiver":8,"content":"\u12"})",
           R"({"type":1,"receiver":8,"content":"\u12G4"})",
           R"({"type":1,"receiver":8,"content":"c","id":"\u0031\u0037"})",
           R"({"type":1,"receiver":8,"content":"c","id":"c-\n"})",
           R"({"type":1,"receiver":8,"content":"c","id":"\u0000"})",
           R"({"type":1,"receiver":8,"content":"","id":""})",
       }) {
    check_same_as_reference(text);
  }

  const std::string long_plain(100'000, 'x');
  check_same_as_reference(R"({"type":1,"receiver":8,"content":")" + long_plain + "\"}");
  BOOST_TEST(expect_send(R"({"type":1,"receiver":8,"content":")" + long_plain + "\"}").content ==
             long_plain);
  std::string long_escaped;
  for (int i = 0; i < 3000; ++i)
    long_escaped += std::string(static_cast<std::size_t>(i % 97), 'y') + "\\n\\u00e9";
  check_same_as_reference(R"({"type":1,"receiver":8,"content":")" + long_escaped + "\"}");
  // A long escaped content that another, shorter one replaces.
  check_same_as_reference(R"({"type":1,"receiver":8,"content":")" + long_escaped +
                          R"(","content":"short"})");

  // ids around 64 bytes, split by escapes at every position.
  for (std::size_t length : {63, 64, 65, 66, 100}) {
    for (std::size_t at = 0; at <= length; at += 7) {
      const std::string id = std::string(at, 'a') + "\\u0062" + std::string(length - at, 'c');
      check_same_as_reference(R"({"type":1,"receiver":8,"content":"c","id":")" + id + "\"}");
      check_same_as_reference(R"({"type":2,"seq":1,"id":")" + id + "\"}");
      check_same_as_reference(R"({"type":1,"receiver":"x","content":"c","id":")" + id + "\"}");
    }
  }
}

BOOST_AUTO_TEST_CASE(reference_keys_with_escapes) {
  for (const std::string_view text : {
           R"({"type":1,"rec\u0065iver":8,"content":"c"})",
           R"({"\u0074ype":1,"receiver":8,"content":"c"})",
           R"({"type":1,"receiver":8,"con\u0074ent":"c"})",
           R"({"type":1,"receiver":8,"content":"c","i\u0064":"m"})",
           R"({"\u0074\u0079\u0070\u0065":2,"se\u0071":3})",
           R"({"type":1,"s\u0065nder":9,"receiver":8,"content":"c"})",
           R"({"type":1,"receiver\u0000":8,"content":"c"})",
           R"({"type\u0000":3})",
           R"({"type ":3})",
           R"({" type":3})",
           R"({"TYPE":3})",
           R"({"typ":3})",
           R"({"types":3})",
           R"({"type":1,"receiver1":8,"content":"c"})",
           R"({"type":1,"receive":8,"content":"c"})",
           R"({"type":1,"r\u0065c\u0065iv\u0065r":8,"content":"c"})",
           R"({"type":1,"receiver":8,"content":"c","\u0069\u0064":17})",
           R"({"type":1,"\u0072eceiverX":8,"content":"c"})",
           R"({"type":1,"receiver":8,"content":"c","idid":17})",
           R"({"":3,"type":3})",
           R"({"\u00e9":3,"type":3})",
           R"({"type":1,"receiver":8,"content":"c","\ud83d\ude00":1})",
       }) {
    check_same_as_reference(text);
  }
  BOOST_TEST(expect_send(R"({"type":1,"rec\u0065iver":8,"content":"c"})").receiver == 8u);
  check_error(R"({"type":1,"receiver\u0000":8,"content":"c"})", "bad_field", "receiver");
  // A key longer than any the protocol reads, split by an escape.
  std::string long_key = "{\"type\":3,\"";
  for (int i = 0; i < 5000; ++i)
    long_key += "k\\u0041";
  check_same_as_reference(long_key + "\":1}");
}

BOOST_AUTO_TEST_CASE(reference_not_an_object_or_not_json) {
  for (const std::string_view text : {"",
                                      " ",
                                      "\n",
                                      "[]",
                                      "{}",
                                      " {} ",
                                      "[{\"type\":3}]",
                                      "3",
                                      "-0",
                                      "1e2",
                                      "\"type\"",
                                      "null",
                                      "true",
                                      "false",
                                      "[",
                                      "]",
                                      "{",
                                      "}",
                                      "{\"type\":3}}",
                                      "{\"type\":3}]",
                                      "{\"type\":3} x",
                                      "{\"type\":3}{}",
                                      "{\"type\":3}{\"type\":3}",
                                      "{\"type\":3}\n",
                                      "{\"type\":3} \t\r\n ",
                                      "{\"type\":3},",
                                      "{\"type\":3,}",
                                      "{\"type\":3 /* c */}",
                                      "{\"type\":3} // c",
                                      "\xef\xbb\xbf{\"type\":3}",
                                      "{\"type\":3,\"x\":\"\xff\"}",
                                      "{\"type\":3,\"x\":\"\xc3\"}",
                                      "{\"type\":3,\"\xff\":1}",
                                      "{\"type\":3,\"x\":[\"\xed\xa0\x80\"]}",
                                      "{\"type\":3,\"x\":NaN}",
                                      "{\"type\":1,\"receiver\":8,\"content\":\"c\"",
                                      "{\"type\":1,\"receiver\":8,\"content\":\"c",
                                      "{\"type\":1,\"receiver\":8,\"content\":",
                                      "{\"type\":1,\"receiver\":8,\"content\"",
                                      "{\"type\":1,\"receiver\":8,\"cont",
                                      "{\"type\":1,\"receiver\":8,",
                                      "{\"type\":1,\"receiver\":8",
                                      "{\"type\":1,\"receiver\":",
                                      "{\"type\":tru",
                                      "{\"type\":nul}",
                                      "{\"type\":3,\"x\":\"tab\there\"}",
                                      "{\"type\":3,\"x\":\"nl\nhere\"}"}) {
    check_same_as_reference(text);
  }
  // The same texts with their lengths as written: some hold a NUL.
  const std::string nul(1, '\0');
  check_same_as_reference("{\"type\":3}" + nul);
  check_same_as_reference(nul + "{\"type\":3}");
  check_same_as_reference("{\"type\":3,\"x\":\"" + nul + "\"}");
  check_same_as_reference("{\"type\":3,\"" + nul + "\":1}");
  check_same_as_reference(std::string_view());
}

BOOST_AUTO_TEST_CASE(reference_random_mutations) {
  // Valid frames, every prefix of them, and random byte edits.
  const std::string samples[] = {
      R"({"type":1,"sender":7,"receiver":18446744073709551615,"content":"h\u00e9\"\\","id":"c-17"})",
      R"({"type":1,"receiver":179574740400002,"content":"0123456789abcdef0123456789abcdef","id":17})",
      R"({"type":2,"seq":12345678901234567890,"id":[1,{"id":2}]})",
      R"({"type":3,"x":[[[{"y":-1.5e300}]]],"type":3})",
      R"({"type":1,"rec\u0065iver":8,"content":"a\nb","receiver":9,"id":"x\u0041"})",
  };
  std::mt19937 rng(20240531);
  const std::string_view alphabet = "{}[],:\"\\u0123456789-+.eEtrufalsn \x01\x7f\xc3\xa9\xff";
  for (const auto& sample : samples) {
    for (std::size_t n = 0; n <= sample.size(); ++n)
      check_same_as_reference(std::string_view(sample).substr(0, n));
    for (int round = 0; round < 3000; ++round) {
      std::string mutated = sample;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < edits; ++i) {
        const auto at = rng() % mutated.size();
        const char c =
            rng() % 2 ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng() % 256);
        switch (rng() % 3) {
          case 0:
            mutated[at] = c;
            break;
          case 1:
            mutated.insert(mutated.begin() + static_cast<std::ptrdiff_t>(at), c);
            break;
          default:
            if (mutated.size() > 1) mutated.erase(at, 1);
        }
      }
      check_same_as_reference(mutated);
      check_same_as_reference(mutated, 0);
    }
  }
}

// ---- server frames: identity with the reference ---------------------------

namespace {

// Every power of ten and its neighbours, and the ends of both ranges.
std::vector<std::uint64_t> edge_numbers() {
  std::vector<std::uint64_t> n = {0,
                                  1,
                                  2,
                                  9,
                                  10,
                                  11,
                                  99,
                                  100,
                                  101,
                                  179574740400002u,
                                  1700000000123u,
                                  UINT64_MAX,
                                  UINT64_MAX - 1,
                                  static_cast<std::uint64_t>(INT64_MAX),
                                  static_cast<std::uint64_t>(INT64_MAX) + 1};
  for (std::uint64_t p = 10; p <= UINT64_MAX / 10; p *= 10) {
    n.push_back(p - 1);
    n.push_back(p);
    n.push_back(p + 1);
    n.push_back(p * 2 - 1);
  }
  n.push_back(10000000000000000000u - 1);
  n.push_back(10000000000000000000u);
  return n;
}

void check_deliver_same(const switchboard::store::stored_message& m) {
  const std::string fast = sp::deliver_frame(m);
  const std::string slow = reference::deliver_frame(m);
  BOOST_TEST(fast == slow, "deliver_frame\n  got:       " << fast << "\n  reference: " << slow);
}

void check_receipt_same(const sp::message_id& id, sp::user_id receiver, sp::seq_t seq,
                        std::int64_t ts) {
  const std::string fast = sp::receipt_frame(id, receiver, seq, ts);
  const std::string slow = reference::receipt_frame(id, receiver, seq, ts);
  BOOST_TEST(fast == slow, "receipt_frame\n  got:       " << fast << "\n  reference: " << slow);
}

}  // namespace

BOOST_AUTO_TEST_CASE(reference_server_frame_numbers) {
  const auto numbers = edge_numbers();
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> all = numbers;
  for (int i = 0; i < 2000; ++i)
    all.push_back(rng() >> (rng() % 64));
  switchboard::store::stored_message m{1, 7, 8, "c", 0, std::nullopt};
  for (const std::uint64_t n : all) {
    const auto signed_n = static_cast<std::int64_t>(n);
    m.seq = n;
    m.sender = n;
    m.receiver = ~n;
    m.ts_ms = signed_n;
    check_deliver_same(m);
    const auto negated = static_cast<std::int64_t>(0 - n);  // wraps: INT64_MIN stays itself
    m.ts_ms = negated;
    check_deliver_same(m);
    check_receipt_same(sp::message_id{std::to_string(n), true}, n, ~n, signed_n);
    check_receipt_same(sp::message_id{"c", false}, ~n, n, negated);
  }
  m.ts_ms = INT64_MIN;
  check_deliver_same(m);
  m.ts_ms = INT64_MAX;
  check_deliver_same(m);
}

BOOST_AUTO_TEST_CASE(reference_server_frame_strings) {
  switchboard::store::stored_message m{3, 7, 8, "", 1700000000123, std::nullopt};
  // Each byte value at each offset of a run long enough for two 8-byte
  // blocks and a tail, around plain bytes.
  for (int c = 0; c < 256; ++c) {
    for (std::size_t length : {1, 7, 8, 9, 16, 17, 23}) {
      for (std::size_t at = 0; at < length; ++at) {
        m.content.assign(length, 'p');
        m.content[at] = static_cast<char>(c);
        check_deliver_same(m);
      }
    }
  }
  // Runs of escapes, escapes at block edges, and contents that outgrow the
  // room reserved for them (every byte a six-byte \u00XX).
  m.content = tricky_content();
  check_deliver_same(m);
  m.content.assign(10'000, '\x01');
  check_deliver_same(m);
  m.content.assign(10'000, '"');
  check_deliver_same(m);
  std::mt19937 rng(99);
  for (int round = 0; round < 2000; ++round) {
    m.content.resize(rng() % 300);
    for (auto& ch : m.content)
      ch = static_cast<char>(rng() % 4 == 0 ? rng() % 0x24 : 0x20 + rng() % 0x60);
    check_deliver_same(m);
  }
  // Ids as the sender wrote them: numbers, strings, and a number whose text
  // is not canonical (written as a string).
  m.content = "c";
  for (const sp::message_id& id :
       {sp::message_id{"17", true}, sp::message_id{"0", true},
        sp::message_id{"18446744073709551615", true}, sp::message_id{"017", true},
        sp::message_id{"18446744073709551616", true}, sp::message_id{"", true},
        sp::message_id{"17", false}, sp::message_id{"", false},
        sp::message_id{"c-\"q\"\\\n\xc3\xa9", false},
        sp::message_id{std::string(64, '\x1f'), false}, sp::message_id{tricky_content(), false}}) {
    m.id = id;
    check_deliver_same(m);
    check_receipt_same(id, 8, 12, 1700000000123);
  }
}

// ---- groups (PROTOCOL.md section 10) ------------------------------------

BOOST_AUTO_TEST_CASE(send_to_a_group) {
  const auto s = expect_send(R"({"type":1,"group":18446744073709551615,"content":"hi","id":"g"})");
  BOOST_TEST(s.group == 18446744073709551615u);
  BOOST_TEST(s.receiver == 0u);
  BOOST_TEST(s.content == "hi");
  BOOST_TEST(expect_send(R"({"type":1,"receiver":3,"content":""})").group == 0u);
  // Both, or neither, whatever the values; a group id as a receiver's.
  for (const auto* text :
       {R"({"type":1,"receiver":3,"group":4,"content":"x","id":"i"})",
        R"({"type":1,"receiver":"x","group":4,"content":"x","id":"i"})",
        R"({"type":1,"content":"x","id":"i"})", R"({"type":1,"group":0,"content":"x","id":"i"})",
        R"({"type":1,"group":-4,"content":"x","id":"i"})",
        R"({"type":1,"group":4.0,"content":"x","id":"i"})",
        R"({"type":1,"group":null,"content":"x","id":"i"})",
        R"({"type":1,"group":4,"content":null,"id":"i"})"}) {
    BOOST_TEST_CONTEXT("frame: " << text) {
      const auto e = expect_error(text);
      BOOST_TEST(sp::to_string(e.code) == "bad_field");
      BOOST_REQUIRE(e.id.has_value());
      BOOST_TEST(e.id->value == "i");
    }
  }
  BOOST_TEST(sp::to_string(sp::error_code::not_member) == "not_member");
}

BOOST_AUTO_TEST_CASE(group_copies_and_receipts) {
  switchboard::store::stored_message m;
  m.seq = 4;
  m.sender = 7;
  m.receiver = 8;
  m.content = tricky_content();
  m.ts_ms = 1700000000123;
  m.id = sp::message_id{"17", true};
  m.group = 18446744073709551615u;
  m.gseq = 9;
  const auto text = sp::deliver_frame(m);
  BOOST_TEST(text.rfind(R"({"type":1,"sender":7,"group":18446744073709551615,"receiver":8,)", 0) ==
             0u);
  const auto o = parse_object(text);
  BOOST_TEST(o.size() == 9u);
  BOOST_TEST(u64(o.at("group")) == 18446744073709551615u);
  BOOST_TEST(u64(o.at("gseq")) == 9u);
  BOOST_TEST(u64(o.at("seq")) == 4u);
  BOOST_TEST(str(o.at("content")) == tricky_content());

  BOOST_TEST(sp::group_receipt_frame(sp::message_id{"c-1", false}, 5, 2, 1700000000123) ==
             R"({"type":2,"id":"c-1","group":5,"gseq":2,"ts":1700000000123})");
  BOOST_TEST(sp::group_receipt_frame(sp::message_id{"17", true}, 5, 2, 1) ==
             R"({"type":2,"id":17,"group":5,"gseq":2,"ts":1})");
}
