// JWT authentication on the upgrade (PROTOCOL.md section 5), against an
// in-process server with --jwt-secret-file.
#define BOOST_TEST_MODULE auth
#include <boost/test/unit_test.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include <boost/json.hpp>

#include "support/test_support.hpp"

using namespace switchboard;
using namespace switchboard::test;

namespace {

constexpr const char* secret = "s3cret-for-tests";

std::string base64url(std::string_view in) {
  std::string out((in.size() + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  for (auto& c : out)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  return out;
}

std::string token(const std::string& payload, const std::string& key = secret,
                  const std::string& header = R"({"alg":"HS256","typ":"JWT"})") {
  const auto signing_input = base64url(header) + "." + base64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_len);
  return signing_input + "." + base64url(std::string_view(reinterpret_cast<char*>(mac), mac_len));
}

std::int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct auth_server {
  auth_server() {
    std::ofstream(path) << secret << "\n";  // one trailing newline is not part of it
    auto cfg = test_config();
    cfg.jwt_secret_file = path;
    server = std::make_unique<test_server>(cfg);
  }
  ~auth_server() {
    server.reset();
    std::remove(path.c_str());
  }
  std::string path = "/tmp/switchboard-test-secret-" + std::to_string(::getpid());
  std::unique_ptr<test_server> server;
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(valid_tokens_open_sessions, auth_server) {
  const auto port = server->port();
  const auto good = token(R"({"sub":"7","exp":)" + std::to_string(now() + 60) + "}");
  ws_client by_query(port, "/ws/7?token=" + good);
  BOOST_TEST(u64(by_query.welcome().at("receiver")) == 7u);
  BOOST_TEST(upgrade_status(port, "/ws/7", {{"Authorization", "Bearer " + good}}) == 101u);
  BOOST_TEST(upgrade_status(port, "/ws/7?token=" + good, {{"Authorization", "Bearer " + good}}) ==
             101u);
  // Expired 29 s ago: inside the 30 s leeway.
  BOOST_TEST(upgrade_status(port, "/ws/7?token=" + token(R"({"sub":"7","exp":)" +
                                                         std::to_string(now() - 29) + "}")) ==
             101u);
}

BOOST_FIXTURE_TEST_CASE(every_bad_token_is_401, auth_server) {
  const auto port = server->port();
  const auto exp = std::to_string(now() + 60);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"missing", ""},
      {"expired", token(R"({"sub":"7","exp":)" + std::to_string(now() - 40) + "}")},
      {"wrong sub", token(R"({"sub":"8","exp":)" + exp + "}")},
      {"numeric sub", token(R"({"sub":7})")},
      {"wrong secret", token(R"({"sub":"7"})", "another secret")},
      {"alg none", base64url(R"({"alg":"none"})") + "." + base64url(R"({"sub":"7"})") + "."},
      {"HS512 header", token(R"({"sub":"7"})", secret, R"({"alg":"HS512"})")},
      {"truncated", token(R"({"sub":"7"})").substr(0, 20)},
      {"not base64", "a$b.c$d.e$f"},
  };
  for (const auto& [name, t] : cases) {
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(upgrade_status(port, t.empty() ? "/ws/7" : "/ws/7?token=" + t) == 401u);
    }
  }
  const auto a = token(R"({"sub":"7"})");
  const auto b = token(R"({"sub":"7","exp":)" + exp + "}");
  BOOST_TEST(upgrade_status(port, "/ws/7?token=" + a, {{"Authorization", "Bearer " + b}}) == 401u);
  BOOST_TEST(upgrade_status(port, "/ws/7", {{"Authorization", "Basic " + a}}) == 401u);
  // A token that is not a valid query value is refused as a token: after the
  // 400s and the 426, even beside a good bearer token.
  BOOST_TEST(upgrade_status(port, "/ws/7?token=%zz") == 401u);
  BOOST_TEST(upgrade_status(port, "/ws/7?token=%zz", {{"Authorization", "Bearer " + a}}) == 401u);
  BOOST_TEST(upgrade_status(port, "/ws/7?token=%zz&since=x") == 400u);
  BOOST_TEST(http_get(port, "/ws/7?token=%zz").status == 426u);

  const auto refused = http_get(port, "/ws/7",
                                {{"Upgrade", "websocket"},
                                 {"Connection", "Upgrade"},
                                 {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                 {"Sec-WebSocket-Version", "13"}});
  BOOST_TEST(refused.status == 401u);
  BOOST_TEST(parse_object(refused.body).at("error").as_string() == "unauthorized");
  // 400 and 426 come before authentication.
  BOOST_TEST(upgrade_status(port, "/ws/07") == 400u);
  BOOST_TEST(http_get(port, "/ws/7").status == 426u);
  BOOST_TEST(http_get(port, "/metrics")
                 .body.find("switchboard_handshake_rejections_total{status=\"401\"}") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(only_listed_origins_may_open_sessions) {
  auto cfg = test_config();
  cfg.allow_origins = {"https://chat.example.com", "http://127.0.0.1:8080"};
  test_server server(cfg);
  const auto port = server.port();
  BOOST_TEST(upgrade_status(port, "/ws/7", {{"Origin", "https://chat.example.com"}}) == 101u);
  BOOST_TEST(upgrade_status(port, "/ws/7", {{"Origin", "http://127.0.0.1:8080"}}) == 101u);
  // No Origin: not a browser, allowed.
  BOOST_TEST(upgrade_status(port, "/ws/7") == 101u);
  for (const std::string origin : {"https://evil.example.com", "https://chat.example.com.evil.com",
                                   "http://chat.example.com", "null"}) {
    BOOST_TEST_CONTEXT(origin) {
      BOOST_TEST(upgrade_status(port, "/ws/7", {{"Origin", origin}}) == 403u);
    }
  }
  BOOST_TEST(http_get(port, "/metrics")
                 .body.find("switchboard_handshake_rejections_total{status=\"403\"} 4") !=
             std::string::npos);
}
