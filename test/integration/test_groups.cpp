// Groups (PROTOCOL.md section 10) against an in-process server over real
// sockets: the membership endpoints (their refusals in the contract's
// order, 204s, 409, ascending lists) and group SENDs (a copy per member
// with its own seq, the group receipt, not_member, bad_field).
#define BOOST_TEST_MODULE groups
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <boost/json.hpp>

#include "support/test_support.hpp"

using namespace switchboard;
using namespace switchboard::test;

namespace {

constexpr const char* key = "group-k3y";

struct api_server : api_test_server {
  explicit api_server(config cfg = test_config()) : api_test_server(key, std::move(cfg)) {}

  // PUT or DELETE of a membership; the status.
  unsigned member(const std::string& method, std::uint64_t group, std::uint64_t user) const {
    return http_request(port(), method,
                        "/api/groups/" + std::to_string(group) + "/members/" + std::to_string(user),
                        bearer(key))
        .status;
  }
  std::string get(const std::string& target) const {
    const auto r = http_get(port(), target, bearer(key));
    BOOST_TEST(r.status == 200u, target);
    BOOST_TEST(r.headers.at("content-type") == "application/json");
    return r.body;
  }
};

boost::json::object group_send(std::uint64_t group, const std::string& content,
                               std::optional<std::string> id = std::nullopt) {
  boost::json::object frame{{"type", 1}, {"group", group}, {"content", content}};
  if (id) frame["id"] = *id;
  return frame;
}

}  // namespace

BOOST_AUTO_TEST_CASE(without_the_option_the_group_paths_are_404) {
  test_server server;
  for (const auto* target : {"/api/groups/1/members", "/api/users/1/groups"}) {
    const auto r = http_get(server.port(), target, bearer(key));
    BOOST_TEST(r.status == 404u, target);
    BOOST_TEST(error_of(r) == "not_found");
  }
  BOOST_TEST(http_request(server.port(), "PUT", "/api/groups/1/members/2", bearer(key)).status ==
             404u);
}

// The key, then the path (404, 405), then the ids (400 bad_id).
BOOST_AUTO_TEST_CASE(refusals_in_the_contracts_order) {
  api_server api;
  const auto port = api.port();
  struct request {
    const char* method;
    const char* target;
  };
  const std::vector<request> all{
      {"PUT", "/api/groups/1/members/2"}, {"DELETE", "/api/groups/1/members/2"},
      {"GET", "/api/groups/1/members"},   {"GET", "/api/users/1/groups"},
      {"PUT", "/api/groups/0/members/x"}, {"GET", "/api/groups/1/memberz"},
      {"POST", "/api/groups/1/members/2"}};
  for (const auto& r : all) {
    for (const auto& headers : std::vector<std::map<std::string, std::string>>{
             {}, bearer("wrong"), {{"Authorization", std::string("Basic ") + key}}}) {
      const auto answer = http_request(port, r.method, r.target, headers);
      BOOST_TEST(answer.status == 401u, r.method << " " << r.target);
      BOOST_TEST(error_of(answer) == "unauthorized");
    }
  }
  for (const auto& [method, target] : std::vector<request>{{"GET", "/api/groups/1/memberz"},
                                                           {"GET", "/api/groups/1"},
                                                           {"GET", "/api/groups/1/members/2/x"},
                                                           {"PUT", "/api/users/1/groups/2"},
                                                           {"GET", "/api/groups"}}) {
    const auto answer = http_request(port, method, target, bearer(key));
    BOOST_TEST(answer.status == 404u, method << " " << target);
    BOOST_TEST(error_of(answer) == "not_found");
  }
  // A known path with another method, bad ids or not: 405.
  for (const auto& [method, target] : std::vector<request>{{"GET", "/api/groups/1/members/2"},
                                                           {"POST", "/api/groups/0/members/2"},
                                                           {"DELETE", "/api/groups/1/members"},
                                                           {"PUT", "/api/groups/x/members"},
                                                           {"PUT", "/api/users/1/groups"}}) {
    const auto answer = http_request(port, method, target, bearer(key));
    BOOST_TEST(answer.status == 405u, method << " " << target);
    BOOST_TEST(error_of(answer) == "method_not_allowed");
  }
  for (const auto& [method, target] :
       std::vector<request>{{"PUT", "/api/groups/0/members/2"},
                            {"PUT", "/api/groups/1/members/0"},
                            {"PUT", "/api/groups/01/members/2"},
                            {"DELETE", "/api/groups/1/members/+2"},
                            {"DELETE", "/api/groups//members/2"},
                            {"PUT", "/api/groups/1/members/"},
                            {"GET", "/api/groups/18446744073709551616/members"},
                            {"GET", "/api/groups/-1/members"},
                            {"GET", "/api/users/0x10/groups"},
                            {"GET", "/api/users/%31/groups"}}) {
    const auto answer = http_request(port, method, target, bearer(key));
    BOOST_TEST(answer.status == 400u, method << " " << target);
    BOOST_TEST(error_of(answer) == "bad_id", method << " " << target);
  }
}

BOOST_AUTO_TEST_CASE(membership_over_http) {
  config cfg = test_config();
  cfg.max_group_members = 3;
  api_server api(cfg);
  BOOST_TEST(api.get("/api/groups/7/members") == R"({"group":7,"members":[]})");
  BOOST_TEST(api.get("/api/users/10/groups") == R"({"user":10,"groups":[]})");
  for (const std::uint64_t user : {18446744073709551615ULL, 10ULL, 3ULL})
    BOOST_TEST(api.member("PUT", 7, user) == 204u);
  BOOST_TEST(api.member("PUT", 7, 10) == 204u);  // already a member, in a full group
  const auto full = http_request(api.port(), "PUT", "/api/groups/7/members/4", bearer(key));
  BOOST_TEST(full.status == 409u);
  BOOST_TEST(error_of(full) == "group_full");
  BOOST_TEST(api.get("/api/groups/7/members") ==
             R"({"group":7,"members":[3,10,18446744073709551615]})");
  BOOST_TEST(api.member("PUT", 18446744073709551615ULL, 10) == 204u);
  BOOST_TEST(api.member("PUT", 2, 10) == 204u);
  BOOST_TEST(api.get("/api/users/10/groups") ==
             R"({"user":10,"groups":[2,7,18446744073709551615]})");

  BOOST_TEST(api.member("DELETE", 7, 10) == 204u);
  BOOST_TEST(api.member("DELETE", 7, 10) == 204u);   // not a member
  BOOST_TEST(api.member("DELETE", 99, 10) == 204u);  // no such group
  BOOST_TEST(api.get("/api/groups/7/members") ==
             R"({"group":7,"members":[3,18446744073709551615]})");
  BOOST_TEST(api.member("PUT", 7, 4) == 204u);  // room again
  BOOST_TEST(api.get("/api/users/10/groups") == R"({"user":10,"groups":[2,18446744073709551615]})");
}

// Three members, one sends: the two others get a copy each with their own
// seq and the same gseq; the sender gets the group receipt and no copy.
BOOST_AUTO_TEST_CASE(a_group_send_reaches_every_other_member) {
  api_server api;
  const auto port = api.port();
  for (const std::uint64_t user : {1, 2, 3})
    BOOST_TEST(api.member("PUT", 50, user) == 204u);

  ws_client one(port, "/ws/1");
  ws_client two(port, "/ws/2");
  ws_client two_laptop(port, "/ws/2?device=laptop");
  ws_client three(port, "/ws/3");
  ws_client one_other(port, "/ws/1?device=other");
  // User 3 is at seq 1 already: a direct message.
  one.send(send_frame(3, "direct"));
  BOOST_TEST(u64(three.read().at("seq")) == 1u);

  one.send(group_send(50, "hello group", "g-1"));
  const auto receipt = one.read();
  BOOST_TEST(type_of(receipt) == 2);
  BOOST_TEST(str(receipt.at("id")) == "g-1");
  BOOST_TEST(u64(receipt.at("group")) == 50u);
  BOOST_TEST(u64(receipt.at("gseq")) == 1u);
  BOOST_TEST(!receipt.contains("receiver"));
  BOOST_TEST(!receipt.contains("seq"));
  BOOST_TEST(receipt.size() == 5u);
  const auto ts = receipt.at("ts").to_number<std::int64_t>();

  struct expected {
    ws_client* client;
    std::uint64_t member;
    std::uint64_t seq;
  };
  for (const auto& e :
       {expected{&two, 2, 1}, expected{&two_laptop, 2, 1}, expected{&three, 3, 2}}) {
    const auto copy = e.client->read();
    BOOST_TEST(type_of(copy) == 1);
    BOOST_TEST(u64(copy.at("sender")) == 1u);
    BOOST_TEST(u64(copy.at("group")) == 50u);
    BOOST_TEST(u64(copy.at("receiver")) == e.member);
    BOOST_TEST(str(copy.at("content")) == "hello group");
    BOOST_TEST(u64(copy.at("seq")) == e.seq);
    BOOST_TEST(u64(copy.at("gseq")) == 1u);
    BOOST_TEST(copy.at("ts").to_number<std::int64_t>() == ts);
    BOOST_TEST(str(copy.at("id")) == "g-1");
  }

  // The next from another member: gseq 2, and the first sender gets it.
  three.send(group_send(50, "reply"));
  const auto back = one.read();
  BOOST_TEST(u64(back.at("gseq")) == 2u);
  BOOST_TEST(u64(back.at("seq")) == 1u);
  BOOST_TEST(u64(back.at("sender")) == 3u);
  BOOST_TEST(!back.contains("id"));
  BOOST_TEST(u64(two.read().at("gseq")) == 2u);
  // No session of a sender gets its own message, on any device: user 1's
  // other device got the reply first, nothing of its own message.
  const auto other_first = one_other.read();
  BOOST_TEST(u64(other_first.at("gseq")) == 2u);
  BOOST_TEST(u64(other_first.at("sender")) == 3u);

  // A resend of g-1 gets the original receipt again, and nobody a copy.
  one.send(group_send(50, "hello again", "g-1"));
  const auto again = one.read();
  BOOST_TEST(u64(again.at("gseq")) == 1u);
  BOOST_TEST(again.at("ts").to_number<std::int64_t>() == ts);
  one.send(group_send(50, "marker", "g-2"));
  BOOST_TEST(u64(one.read().at("gseq")) == 3u);
  const auto next = two.read();
  BOOST_TEST(str(next.at("content")) == "marker");  // nothing in between

  // The metrics count the group messages and their copies.
  const auto metrics = http_get(port, "/metrics").body;
  BOOST_TEST(metrics.find("switchboard_group_messages_total 3\n") != std::string::npos);
  BOOST_TEST(metrics.find("switchboard_group_copies_total 6\n") != std::string::npos);
  BOOST_TEST(metrics.find("switchboard_group_fanout_count 3\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(not_member_and_bad_field) {
  api_server api;
  const auto port = api.port();
  BOOST_TEST(api.member("PUT", 60, 1) == 204u);
  BOOST_TEST(api.member("PUT", 60, 2) == 204u);
  ws_client outsider(port, "/ws/9");
  ws_client member(port, "/ws/2");

  outsider.send(group_send(60, "let me in", "x-1"));
  auto error = outsider.read();
  BOOST_TEST(type_of(error) == 4);
  BOOST_TEST(str(error.at("code")) == "not_member");
  BOOST_TEST(str(error.at("id")) == "x-1");
  outsider.send(group_send(61, "no such group"));
  BOOST_TEST(str(outsider.read().at("code")) == "not_member");

  for (const auto* text :
       {R"({"type":1,"receiver":2,"group":60,"content":"both"})",
        R"({"type":1,"content":"neither","id":"b"})", R"({"type":1,"group":0,"content":"zero"})",
        R"({"type":1,"group":"60","content":"text"})", R"({"type":1,"group":60,"content":7})"}) {
    outsider.send_text(text);
    const auto refused = outsider.read();
    BOOST_TEST(type_of(refused) == 4, text);
    BOOST_TEST(str(refused.at("code")) == "bad_field", text);
  }
  const auto metrics = http_get(port, "/metrics").body;
  BOOST_TEST(metrics.find("switchboard_errors_total{code=\"not_member\"} 2\n") !=
             std::string::npos);

  // The member got nothing of all that; the outsider, once added, may send.
  BOOST_TEST(api.member("PUT", 60, 9) == 204u);
  outsider.send(group_send(60, "in now", "x-2"));
  const auto receipt = outsider.read();
  BOOST_TEST(type_of(receipt) == 2);
  BOOST_TEST(u64(receipt.at("gseq")) == 1u);
  const auto copy = member.read();
  BOOST_TEST(str(copy.at("content")) == "in now");
  BOOST_TEST(u64(copy.at("seq")) == 1u);
}
