// The store backends behind the asynchronous seam (store/async_backend.hpp):
// the same behaviour tests run against the memory and the SQLite backend
// (through sync_adapter) and the Redis backend (a private redis-server per
// test case); then the SQLite backend's own promises (reopen, schema
// version, refusing files it cannot use, full disk) and the Redis backend's
// (expiry by TTL in real time, a hung Redis, sessions and routing across
// nodes).
//
// Where the backends differ by design, the test says so: the Redis backend
// keeps acknowledged messages a while (a session on another node may still
// need them) and expires by TTL rather than in evict_expired() sweeps
// (docs/cluster.md), so the sweep tests run on memory and SQLite only and
// the Redis ones use real time instead.
#define BOOST_TEST_MODULE store_backend
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/mpl/list.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "support/redis_server.hpp"
#include "support/sanitizers.hpp"
#include "switchboard/clock.hpp"
#include "switchboard/log.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/store/async_backend.hpp"
#include "switchboard/store/memory_backend.hpp"
#include "switchboard/store/redis_backend.hpp"
#include "switchboard/store/sqlite_backend.hpp"

namespace switchboard::store {

// For Boost.Test's failure messages.
std::ostream& operator<<(std::ostream& os, const user_position& p) {
  return os << "{highest " << p.highest << ", cursor " << p.cursor << "}";
}

}  // namespace switchboard::store

namespace {

namespace asio = boost::asio;
namespace sb = switchboard::store;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using switchboard::sync_mode;
using switchboard::unix_ms;
using switchboard::test::redis_server;

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();
// A fetch with no byte cap.
constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

// The backends log every connection and state change at info: only what
// goes wrong is worth reading in a test run.
struct quiet_logs {
  quiet_logs() { switchboard::set_log_level(switchboard::log_level::warn); }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(quiet_logs);

namespace {

// A fresh directory under /tmp, removed with its content at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    std::string name = "/tmp/switchboard-store-XXXXXX";
    if (mkdtemp(name.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    }
    path_ = name;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ignored);
    std::filesystem::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The coroutines of one test case, run on one io_context on the test's own
// thread, and only while the test waits for something: every wait has a
// limit, so a hang fails the test instead of blocking CI, and an exception
// from a coroutine is rethrown to the test.
class runner {
 public:
  runner() = default;
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;
  // The backends are gone by now (declared after their runner): what they
  // left pending must end by itself once they stopped.
  ~runner() {
    BOOST_CHECK_MESSAGE(drain(2000ms),
                        "work left in the io_context 2 s after the backends stopped");
  }

  asio::any_io_executor executor() { return context_.get_executor(); }

  // Runs the context until `done` holds; false after `limit`.
  bool run_until(const std::function<bool()>& done, milliseconds limit = 5000ms) {
    const auto end = steady_clock::now() + limit;
    while (!done()) {
      if (steady_clock::now() >= end) return false;
      context_.restart();
      context_.run_for(5ms);
      if (context_.stopped()) std::this_thread::sleep_for(1ms);  // nothing to run
    }
    return true;
  }

  // Runs the context for `d`, whatever happens: a backend stays alive
  // (pings, lease renewals) while the test lets time pass.
  void run_for(milliseconds d) {
    run_until([] { return false; }, d);
  }

  template <class T>
  std::future<T> spawn(asio::awaitable<T> op) {
    return asio::co_spawn(context_, std::move(op), asio::use_future);
  }

  // The result of a spawned coroutine, or its exception.
  template <class T>
  T wait(std::future<T>& result, milliseconds limit = 5000ms) {
    BOOST_REQUIRE_MESSAGE(
        run_until([&] { return result.wait_for(0s) == std::future_status::ready; }, limit),
        "the coroutine did not end within " << limit.count() << " ms");
    return result.get();
  }

  template <class T>
  T await(asio::awaitable<T> op, milliseconds limit = 5000ms) {
    auto result = spawn(std::move(op));
    return wait(result, limit);
  }

 private:
  // Runs what is left until the context runs out of work.
  bool drain(milliseconds limit) {
    const auto end = steady_clock::now() + limit;
    context_.restart();
    while (!context_.stopped()) {
      if (steady_clock::now() >= end) return false;
      context_.run_for(10ms);
    }
    return true;
  }

  asio::io_context context_;
};

// An async_backend driven from a test: each call runs to its end on the
// runner, within a deadline, so the tests read as plain calls.
class backend_under_test {
 public:
  backend_under_test(runner& run, std::unique_ptr<sb::async_backend> backend)
      : run_(run), backend_(std::move(backend)) {}
  ~backend_under_test() { backend_->stop(); }
  backend_under_test(const backend_under_test&) = delete;
  backend_under_test& operator=(const backend_under_test&) = delete;

  sb::append_outcome append(std::span<const sb::append_request> batch) {
    return run_.await(backend_->append(batch));
  }
  // Where the user's inbox stands, as a session opening sees it; on Redis
  // that registers a session for the while, under a name of its own.
  // The probe is a session of `device`, so that device counts as seen.
  sb::user_position position(sb::user_id user, std::string_view device = {},
                             std::int64_t now_ms = 0) {
    const std::string id = "probe-" + std::to_string(++probes_);
    const auto p = open(user, id, device, now_ms);
    close(user, id, device, now_ms);
    return p;
  }
  sb::user_position open(sb::user_id user, std::string_view session, std::string_view device = {},
                         std::int64_t now_ms = 0) {
    return run_.await(backend_->open(sb::session_key{user, session, name(device), now_ms}));
  }
  void close(sb::user_id user, std::string_view session, std::string_view device = {},
             std::int64_t now_ms = 0) {
    run_.await(backend_->close(sb::session_key{user, session, name(device), now_ms}));
  }
  static sb::device_name name(std::string_view device) {
    auto parsed = sb::device_name::parse(device);
    BOOST_REQUIRE(parsed.has_value());
    return *parsed;
  }
  std::vector<sb::stored_message> fetch(sb::user_id user, sb::seq_t after, std::size_t max_count,
                                        std::size_t max_bytes = unlimited) {
    return run_.await(backend_->fetch(user, after, max_count, max_bytes));
  }
  sb::status_outcome advance_cursor(sb::user_id user, sb::seq_t seq, std::string_view device = {},
                                    std::int64_t ts_ms = 0) {
    const sb::cursor_move moves[] = {{user, seq, name(device), ts_ms}};
    return run_.await(backend_->advance_cursors(moves));
  }
  // READ (PROTOCOL.md section 11).
  sb::status_outcome read(sb::user_id user, sb::seq_t seq, std::int64_t ts_ms) {
    return run_.await(backend_->read(user, seq, ts_ms));
  }
  std::uint64_t evict_expired(std::int64_t now_ms) {
    return run_.await(backend_->evict_expired(now_ms));
  }
  bool available() const { return backend_->available(); }
  sb::async_backend& async() { return *backend_; }

  // Group membership (PROTOCOL.md section 10).
  sb::membership_change add_member(sb::group_id group, sb::user_id user) {
    return run_.await(backend_->add_member(group, user));
  }
  void remove_member(sb::group_id group, sb::user_id user) {
    run_.await(backend_->remove_member(group, user));
  }
  std::vector<sb::user_id> members(sb::group_id group) {
    return run_.await(backend_->members(group));
  }
  std::vector<sb::group_id> groups_of(sb::user_id user) {
    return run_.await(backend_->groups_of(user));
  }

 private:
  runner& run_;
  std::unique_ptr<sb::async_backend> backend_;
  unsigned probes_ = 0;
};

// What a cluster backend hands to the layer above, recorded in order.
struct kick {
  sb::user_id user = 0;
  std::string session;
  friend bool operator==(const kick&, const kick&) = default;
  friend std::ostream& operator<<(std::ostream& os, const kick& k) {
    return os << "{user " << k.user << ", session " << k.session << "}";
  }
};

struct inbox_at_call {
  sb::user_id user = 0;
  sb::seq_t highest = 0;
};

struct recording_sink final : sb::route_sink {
  void message(sb::stored_message m) override { messages.push_back(std::move(m)); }
  void inbox_at(sb::user_id user, sb::seq_t highest) override {
    inbox_at_calls.push_back({user, highest});
  }
  void replaced(sb::user_id user, std::string session_id) override {
    kicks.push_back({user, std::move(session_id)});
  }

  std::vector<sb::stored_message> messages;
  std::vector<inbox_at_call> inbox_at_calls;
  std::vector<kick> kicks;
};

sb::redis_settings redis_settings_for(const redis_server& server, std::string node_id,
                                      sb::backend_limits limits = {}) {
  sb::redis_settings s;
  s.host = "127.0.0.1";
  s.port = server.port();
  s.node_id = std::move(node_id);
  s.limits = limits;
  return s;
}

// A Redis backend, started and connected (it connects in the background).
std::unique_ptr<backend_under_test> start_redis(runner& run, sb::redis_settings settings,
                                                sb::route_sink& sink, switchboard::metrics& stats) {
  auto backend =
      std::make_unique<sb::redis_backend>(run.executor(), std::move(settings), sink, stats);
  backend->start();
  auto b = std::make_unique<backend_under_test>(run, std::move(backend));
  BOOST_REQUIRE_MESSAGE(run.run_until([&] { return b->available(); }),
                        "the Redis backend did not connect within 5 s");
  return b;
}

// The backends under test, each made fresh per test case. Members are
// destroyed in reverse: the backend (a local of the test, after its kind)
// stops first, then the runner drains what it left, then the rest goes.
struct memory_kind {
  // Acknowledged messages go at once; evict_expired() sweeps.
  static constexpr bool drops_acknowledged_at_once = true;
  runner run;
  std::unique_ptr<backend_under_test> open(sb::backend_limits limits = {}) {
    return std::make_unique<backend_under_test>(
        run, std::make_unique<sb::sync_adapter>(std::make_unique<sb::memory_backend>(limits)));
  }
};

struct sqlite_kind {
  static constexpr bool drops_acknowledged_at_once = true;
  temp_dir dir;
  runner run;
  std::unique_ptr<backend_under_test> open(sb::backend_limits limits = {}) {
    return std::make_unique<backend_under_test>(
        run, std::make_unique<sb::sync_adapter>(std::make_unique<sb::sqlite_backend>(
                 dir.file("store.db"), sync_mode::normal, limits)));
  }
};

struct redis_kind {
  // Acknowledged messages stay 60 s (docs/cluster.md); TTLs, no sweeps.
  static constexpr bool drops_acknowledged_at_once = false;
  recording_sink sink;
  switchboard::metrics stats;
  runner run;
  redis_server server;
  std::unique_ptr<backend_under_test> open(sb::backend_limits limits = {}) {
    return start_redis(run, redis_settings_for(server, "node-a", limits), sink, stats);
  }
};

using backend_kinds = boost::mpl::list<memory_kind, sqlite_kind, redis_kind>;
// The backends whose retention and dedup window are enforced by
// evict_expired() with the caller's clock; Redis uses TTLs in real time
// (suite redis below).
using sweeping_kinds = boost::mpl::list<memory_kind, sqlite_kind>;

// An append_result reduced to what a test compares, printable.
struct receipt {
  bool stored = true;
  sb::user_id receiver = 0;
  sb::seq_t seq = 0;
  std::int64_t ts_ms = 0;
  friend bool operator==(const receipt&, const receipt&) = default;
  friend std::ostream& operator<<(std::ostream& os, const receipt& r) {
    return os << "{stored " << r.stored << ", receiver " << r.receiver << ", seq " << r.seq
              << ", ts " << r.ts_ms << "}";
  }
};

receipt of(const sb::append_result& r) {
  return receipt{r.stored, r.receiver, r.seq, r.ts_ms};
}

sb::message_id text_id(std::string value) {
  return sb::message_id{std::move(value), false};
}
sb::message_id number_id(std::string value) {
  return sb::message_id{std::move(value), true};
}

sb::append_request msg(sb::user_id sender, sb::user_id receiver, std::string content,
                       std::int64_t ts_ms = 1000, std::optional<sb::message_id> id = {}) {
  return sb::append_request{sender, receiver, std::move(content), ts_ms, std::move(id)};
}

// A group SEND (PROTOCOL.md section 10).
sb::append_request group_msg(sb::user_id sender, sb::group_id group, std::string content,
                             std::int64_t ts_ms = 1000, std::optional<sb::message_id> id = {}) {
  sb::append_request r{sender, 0, std::move(content), ts_ms, std::move(id)};
  r.group = group;
  return r;
}

// One copy of a group message, printable: the member and its seq there.
struct copy_at {
  sb::user_id member = 0;
  sb::seq_t seq = 0;
  friend bool operator==(const copy_at&, const copy_at&) = default;
  friend std::ostream& operator<<(std::ostream& os, const copy_at& c) {
    return os << "{member " << c.member << ", seq " << c.seq << "}";
  }
};
using copies = std::vector<copy_at>;

// The copies of group message `i` of `outcome`.
copies copies_of(const sb::append_outcome& outcome, std::size_t i = 0) {
  const auto& r = outcome.results.at(i);
  copies out;
  for (std::uint32_t c = 0; c < r.copies; ++c) {
    const auto& copy = outcome.copies.at(r.first_copy + c);
    out.push_back(copy_at{copy.member, copy.seq});
  }
  return out;
}

// Store: a backend_under_test, or a synchronous backend (SQLite only tests).
template <class Store>
sb::append_outcome append_one(Store& b, sb::append_request request) {
  const std::vector<sb::append_request> batch{std::move(request)};
  return b.append(batch);
}

std::vector<sb::seq_t> seqs_of(const std::vector<sb::stored_message>& messages) {
  std::vector<sb::seq_t> seqs;
  for (const auto& m : messages)
    seqs.push_back(m.seq);
  return seqs;
}

// Everything the backend still holds for the user, acknowledged or not.
template <class Store>
std::vector<sb::seq_t> held_seqs(Store& b, sb::user_id user) {
  return seqs_of(b.fetch(user, 0, 1000, unlimited));
}

using seqs = std::vector<sb::seq_t>;

// A SEND with "notify":true (PROTOCOL.md section 11).
sb::append_request notify_msg(sb::user_id sender, sb::user_id receiver, std::string id,
                              std::int64_t ts_ms = 1000) {
  auto r = msg(sender, receiver, "n-" + id, ts_ms, text_id(std::move(id)));
  r.notify = true;
  return r;
}

// A STATUS entry reduced to what a test compares, printable: in the inbox
// of `owner`, about the seqs of `about` up to `upto`.
struct status_entry {
  sb::user_id owner = 0;
  sb::user_id about = 0;
  bool read = false;
  sb::seq_t upto = 0;
  sb::seq_t seq = 0;
  std::int64_t ts_ms = 0;
  friend bool operator==(const status_entry&, const status_entry&) = default;
  friend std::ostream& operator<<(std::ostream& os, const status_entry& s) {
    return os << "{owner " << s.owner << ", about " << s.about << ", "
              << (s.read ? "read" : "delivered") << " upto " << s.upto << ", seq " << s.seq
              << ", ts " << s.ts_ms << "}";
  }
};

std::vector<status_entry> statuses_of(const std::vector<sb::stored_message>& entries) {
  std::vector<status_entry> out;
  for (const auto& m : entries) {
    if (m.kind != sb::entry_kind::status) continue;
    BOOST_TEST(m.content.empty());
    BOOST_TEST(!m.id.has_value());
    out.push_back(
        {m.receiver, m.sender, m.state == sb::status_state::read, m.upto, m.seq, m.ts_ms});
  }
  return out;
}
std::vector<status_entry> statuses_of(const sb::status_outcome& outcome) {
  return statuses_of(outcome.statuses);
}

using statuses = std::vector<status_entry>;

}  // namespace

BOOST_AUTO_TEST_SUITE(behaviour)

BOOST_AUTO_TEST_CASE_TEMPLATE(seqs_count_per_receiver, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  BOOST_TEST(of(append_one(*b, msg(1, 2, "a")).results.at(0)) == (receipt{true, 2, 1, 1000}));
  BOOST_TEST(of(append_one(*b, msg(1, 3, "b")).results.at(0)) == (receipt{true, 3, 1, 1000}));
  BOOST_TEST(of(append_one(*b, msg(4, 2, "c", 1001)).results.at(0)) == (receipt{true, 2, 2, 1001}));

  const std::vector<sb::append_request> batch{msg(1, 2, "d"), msg(1, 3, "e"), msg(1, 2, "f")};
  const sb::append_outcome outcome = b->append(batch);
  BOOST_TEST_REQUIRE(outcome.results.size() == 3u);
  BOOST_TEST(of(outcome.results[0]) == (receipt{true, 2, 3, 1000}));
  BOOST_TEST(of(outcome.results[1]) == (receipt{true, 3, 2, 1000}));
  BOOST_TEST(of(outcome.results[2]) == (receipt{true, 2, 4, 1000}));
  BOOST_TEST(outcome.evicted == 0u);

  BOOST_TEST(b->position(2) == (sb::user_position{4, 0}));
  BOOST_TEST(b->position(3) == (sb::user_position{2, 0}));
  BOOST_TEST(b->position(99) == (sb::user_position{0, 0}));
  BOOST_TEST(b->append({}).results.empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(fetch_in_order_after_and_max_count, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  for (int i = 1; i <= 5; ++i) {
    append_one(*b, msg(7, 2, "m" + std::to_string(i), 1000 + i,
                       i == 2 ? std::optional(text_id("c-2")) : std::nullopt));
  }
  const auto all = b->fetch(2, 0, 100);
  BOOST_TEST(seqs_of(all) == (seqs{1, 2, 3, 4, 5}), boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(all.size() == 5u);
  BOOST_TEST(all[0].sender == 7u);
  BOOST_TEST(all[0].receiver == 2u);
  BOOST_TEST(all[0].content == "m1");
  BOOST_TEST(all[0].ts_ms == 1001);
  BOOST_TEST(!all[0].id.has_value());
  BOOST_TEST_REQUIRE(all[1].id.has_value());
  BOOST_TEST(all[1].id->value == "c-2");
  BOOST_TEST(!all[1].id->is_number);
  BOOST_TEST(all[4].content == "m5");

  BOOST_TEST(seqs_of(b->fetch(2, 2, 2)) == (seqs{3, 4}), boost::test_tools::per_element());
  BOOST_TEST(seqs_of(b->fetch(2, 4, 100)) == (seqs{5}), boost::test_tools::per_element());
  BOOST_TEST(b->fetch(2, 5, 100).empty());
  BOOST_TEST(b->fetch(2, 100, 100).empty());
  BOOST_TEST(b->fetch(2, 0, 0).empty());
  BOOST_TEST(b->fetch(2, max_u64, 100).empty());
  BOOST_TEST(b->fetch(3, 0, 100).empty());
  // A count with no practical limit: everything. Redis throws instead (a
  // bug, see redis/fetch_with_an_unbounded_count_returns_everything).
  if constexpr (!std::is_same_v<Kind, redis_kind>) {
    BOOST_TEST(seqs_of(b->fetch(2, 3, std::numeric_limits<std::size_t>::max())) == (seqs{4, 5}),
               boost::test_tools::per_element());
  }
}

// The rule every backend keeps: a fetch after the cursor returns only what
// is above it, and a session opening sees highest and cursor. Whether what
// is at or below the cursor is still held differs (section 3 allows both).
BOOST_AUTO_TEST_CASE_TEMPLATE(cursor_clamps_and_hides_acknowledged, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  for (int i = 0; i < 5; ++i)
    append_one(*b, msg(1, 2, "x"));

  b->advance_cursor(2, 2);
  BOOST_TEST(b->position(2) == (sb::user_position{5, 2}));
  BOOST_TEST(seqs_of(b->fetch(2, 2, 100)) == (seqs{3, 4, 5}), boost::test_tools::per_element());
  if constexpr (Kind::drops_acknowledged_at_once) {
    // Asking from below the cursor gives only what is held.
    BOOST_TEST(held_seqs(*b, 2) == (seqs{3, 4, 5}), boost::test_tools::per_element());
    BOOST_TEST(seqs_of(b->fetch(2, 1, 100)) == (seqs{3, 4, 5}), boost::test_tools::per_element());
  } else {
    // Kept for a session on another node that lost a publish.
    BOOST_TEST(held_seqs(*b, 2) == (seqs{1, 2, 3, 4, 5}), boost::test_tools::per_element());
  }

  b->advance_cursor(2, 1);  // below the cursor: nothing changes
  BOOST_TEST(b->position(2) == (sb::user_position{5, 2}));
  b->advance_cursor(2, 2);  // at the cursor: nothing changes
  BOOST_TEST(b->position(2) == (sb::user_position{5, 2}));

  b->advance_cursor(2, 100);  // above highest: clamped
  BOOST_TEST(b->position(2) == (sb::user_position{5, 5}));
  BOOST_TEST(b->fetch(2, 5, 100).empty());
  if constexpr (Kind::drops_acknowledged_at_once) BOOST_TEST(b->fetch(2, 0, 100).empty());

  b->advance_cursor(2, max_u64);
  BOOST_TEST(b->position(2) == (sb::user_position{5, 5}));

  BOOST_TEST(append_one(*b, msg(1, 2, "y")).results.at(0).seq == 6u);
  BOOST_TEST(seqs_of(b->fetch(2, 5, 100)) == (seqs{6}), boost::test_tools::per_element());
  if constexpr (Kind::drops_acknowledged_at_once)
    BOOST_TEST(held_seqs(*b, 2) == (seqs{6}), boost::test_tools::per_element());

  // Several moves at once, the furthest of one user wins, each user apart.
  append_one(*b, msg(1, 3, "z"));
  append_one(*b, msg(1, 3, "z"));
  const sb::cursor_move moves[] = {{3, 2, {}, 0}, {2, 6, {}, 0}, {3, 1, {}, 0}};
  kind.run.await(b->async().advance_cursors(moves));
  BOOST_TEST(b->position(2) == (sb::user_position{6, 6}));
  BOOST_TEST(b->position(3) == (sb::user_position{2, 2}));

  b->advance_cursor(42, 10);  // a user with nothing: stays at zero
  BOOST_TEST(b->position(42) == (sb::user_position{0, 0}));
  BOOST_TEST(append_one(*b, msg(1, 42, "first")).results.at(0).seq == 1u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(resend_gets_the_original_receipt, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  BOOST_TEST(of(append_one(*b, msg(1, 2, "hello", 1000, text_id("a"))).results.at(0)) ==
             (receipt{true, 2, 1, 1000}));

  // Another receiver, content and time: still the original's receipt.
  const auto resend = append_one(*b, msg(1, 3, "other", 2000, text_id("a")));
  BOOST_TEST(of(resend.results.at(0)) == (receipt{false, 2, 1, 1000}));
  BOOST_TEST(b->fetch(3, 0, 100).empty());
  BOOST_TEST(b->position(3) == (sb::user_position{0, 0}));
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1}), boost::test_tools::per_element());
  BOOST_TEST(b->fetch(2, 0, 100).at(0).content == "hello");

  // Within one batch.
  const std::vector<sb::append_request> batch{msg(1, 2, "b1", 3000, text_id("b")),
                                              msg(1, 4, "b2", 3001, text_id("b")),
                                              msg(1, 2, "no id", 3002)};
  const auto outcome = b->append(batch);
  BOOST_TEST_REQUIRE(outcome.results.size() == 3u);
  BOOST_TEST(of(outcome.results[0]) == (receipt{true, 2, 2, 3000}));
  BOOST_TEST(of(outcome.results[1]) == (receipt{false, 2, 2, 3000}));
  BOOST_TEST(of(outcome.results[2]) == (receipt{true, 2, 3, 3002}));
  BOOST_TEST(b->position(4) == (sb::user_position{0, 0}));

  // The same id from another sender is another message.
  BOOST_TEST(of(append_one(*b, msg(9, 2, "hi", 4000, text_id("a"))).results.at(0)) ==
             (receipt{true, 2, 4, 4000}));

  // 17 and "17" are the same id; the stored one keeps how it was written.
  BOOST_TEST(of(append_one(*b, msg(1, 5, "n", 5000, number_id("17"))).results.at(0)) ==
             (receipt{true, 5, 1, 5000}));
  BOOST_TEST(of(append_one(*b, msg(1, 5, "s", 5001, text_id("17"))).results.at(0)) ==
             (receipt{false, 5, 1, 5000}));
  // And the other way round, within one batch.
  const std::vector<sb::append_request> text_first{msg(1, 5, "t", 5002, text_id("18")),
                                                   msg(1, 6, "u", 5003, number_id("18"))};
  const auto mixed = b->append(text_first);
  BOOST_TEST_REQUIRE(mixed.results.size() == 2u);
  BOOST_TEST(of(mixed.results[0]) == (receipt{true, 5, 2, 5002}));
  BOOST_TEST(of(mixed.results[1]) == (receipt{false, 5, 2, 5002}));
  const auto held = b->fetch(5, 0, 100);
  BOOST_TEST_REQUIRE(held.size() == 2u);
  BOOST_TEST(held[0].content == "n");
  BOOST_TEST_REQUIRE(held[0].id.has_value());
  BOOST_TEST(held[0].id->value == "17");
  BOOST_TEST(held[0].id->is_number);
  BOOST_TEST_REQUIRE(held[1].id.has_value());
  BOOST_TEST(held[1].id->value == "18");
  BOOST_TEST(!held[1].id->is_number);
  BOOST_TEST(b->position(6) == (sb::user_position{0, 0}));

  // Messages without an id are never de-duplicated.
  append_one(*b, msg(1, 7, "same"));
  BOOST_TEST(append_one(*b, msg(1, 7, "same")).results.at(0).seq == 2u);
}

// The window is measured between the messages' ts, to the millisecond, on
// every backend (Redis compares the ts in its script, not only by TTL).
BOOST_AUTO_TEST_CASE_TEMPLATE(dedup_window_is_exact_by_ts, Kind, backend_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.dedup_window = std::chrono::seconds(10);
  auto b = kind.open(limits);

  append_one(*b, msg(1, 2, "x", 1000, text_id("x")));
  // Exactly the window later: still a resend.
  BOOST_TEST(of(append_one(*b, msg(1, 2, "x", 11000, text_id("x"))).results.at(0)) ==
             (receipt{false, 2, 1, 1000}));
  // One ms later it is forgotten, even before evict_expired() ran.
  BOOST_TEST(of(append_one(*b, msg(1, 2, "x", 11001, text_id("x"))).results.at(0)) ==
             (receipt{true, 2, 2, 11001}));
  // The new message is the original from now on.
  BOOST_TEST(of(append_one(*b, msg(1, 2, "x", 21001, text_id("x"))).results.at(0)) ==
             (receipt{false, 2, 2, 11001}));
  // A resend dated before its original (another node's clock behind) is a resend.
  BOOST_TEST(of(append_one(*b, msg(1, 2, "x", 900, text_id("x"))).results.at(0)) ==
             (receipt{false, 2, 2, 11001}));
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1, 2}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(dedup_entry_forgotten_by_a_sweep, Kind, sweeping_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.dedup_window = std::chrono::seconds(10);
  auto b = kind.open(limits);

  append_one(*b, msg(1, 2, "y", 20000, text_id("y")));  // seq 1
  BOOST_TEST(b->evict_expired(30000) == 0u);            // ts 20000 is not older than 30000 - 10s
  BOOST_TEST(append_one(*b, msg(1, 2, "y", 20500, text_id("y"))).results.at(0).stored == false);
  BOOST_TEST(b->evict_expired(30001) == 0u);  // retention is a week: no message goes
  // Dropped by evict_expired, so even a resend dated inside the window is new.
  BOOST_TEST(of(append_one(*b, msg(1, 2, "y", 20500, text_id("y"))).results.at(0)) ==
             (receipt{true, 2, 2, 20500}));
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1, 2}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(retention_drops_old_messages, Kind, sweeping_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.retention = std::chrono::seconds(60);
  auto b = kind.open(limits);
  const std::vector<sb::append_request> batch{msg(1, 2, "a", 1000), msg(1, 2, "b", 2000),
                                              msg(1, 2, "c", 3000), msg(1, 3, "d", 1500),
                                              msg(1, 2, "e", 2500)};
  b->append(batch);

  BOOST_TEST(b->evict_expired(61000) == 0u);  // ts 1000 is exactly the retention old
  BOOST_TEST(b->evict_expired(62000) == 2u);  // 1000 (user 2) and 1500 (user 3)
  BOOST_TEST(held_seqs(*b, 2) == (seqs{2, 3, 4}), boost::test_tools::per_element());
  BOOST_TEST(b->fetch(3, 0, 100).empty());
  BOOST_TEST(b->position(2) == (sb::user_position{4, 0}));
  BOOST_TEST(b->position(3) == (sb::user_position{1, 0}));
  BOOST_TEST(b->evict_expired(62000) == 0u);

  // Out of ts order (seq 4 is older than seq 3): each by its own time.
  BOOST_TEST(b->evict_expired(62600) == 2u);  // 2000 and 2500
  BOOST_TEST(held_seqs(*b, 2) == (seqs{3}), boost::test_tools::per_element());

  // Acknowledged messages are gone already and not counted.
  append_one(*b, msg(1, 2, "f", 4000));  // seq 5
  b->advance_cursor(2, 3);
  BOOST_TEST(b->evict_expired(1000000) == 1u);
  BOOST_TEST(b->fetch(2, 0, 100).empty());
  BOOST_TEST(append_one(*b, msg(1, 2, "g", 1000000)).results.at(0).seq == 6u);
}

// --retention, exactly, against a model: receive times out of seq order by
// up to 30 ms (as from different I/O threads), cursors moving, sweeps at
// arbitrary times. Each message goes at the first sweep at which it is more
// than the retention old, whatever its place in the inbox, and the count is
// of those above the cursor.
BOOST_AUTO_TEST_CASE_TEMPLATE(retention_is_exact_out_of_ts_order, Kind, sweeping_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.retention = std::chrono::seconds(5);
  auto b = kind.open(limits);
  struct held_message {
    sb::seq_t seq;
    std::int64_t ts_ms;
  };
  std::map<sb::user_id, std::vector<held_message>> model;  // what each user holds
  std::map<sb::user_id, sb::seq_t> highest;
  std::uint64_t state = 12345;
  const auto random = [&state](std::uint64_t n) {  // a fixed sequence, any platform
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % n;
  };
  std::int64_t clock = 100000;
  for (int step = 0; step < 3000; ++step) {
    clock += static_cast<std::int64_t>(random(8));
    const sb::user_id user = 2 + random(6);
    const std::int64_t ts = clock - static_cast<std::int64_t>(random(31));
    const auto r = append_one(*b, msg(1, user, "m", ts)).results.at(0);
    BOOST_TEST_REQUIRE(r.seq == ++highest[user]);
    model[user].push_back(held_message{r.seq, ts});
    if (random(40) == 0) {
      const sb::user_id acked = 2 + random(6);
      const sb::seq_t upto = random(highest[acked] + 1);
      b->advance_cursor(acked, upto);
      std::erase_if(model[acked], [&](const held_message& m) { return m.seq <= upto; });
    }
    if (random(25) == 0) {
      // Sometimes exactly on a message's boundary: the retention old is kept.
      const std::int64_t now = random(2) == 0 ? ts + 5000 + static_cast<std::int64_t>(random(2))
                                              : clock + static_cast<std::int64_t>(random(3)) * 1000;
      std::uint64_t expected = 0;
      for (auto& [u, messages] : model)
        expected +=
            std::erase_if(messages, [&](const held_message& m) { return m.ts_ms < now - 5000; });
      BOOST_TEST_REQUIRE(b->evict_expired(now) == expected);
      for (const auto& [u, messages] : model) {
        seqs want;
        for (const auto& m : messages)
          want.push_back(m.seq);
        BOOST_TEST_REQUIRE(held_seqs(*b, u) == want, boost::test_tools::per_element());
      }
    }
  }
}

// The same messages go on every backend, and only those above the cursor
// count: Redis keeps acknowledged ones in the inbox a while, but they are
// the oldest, so the limit drops them first.
BOOST_AUTO_TEST_CASE_TEMPLATE(inbox_limit_evicts_oldest, Kind, backend_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.inbox_limit = 3;
  auto b = kind.open(limits);

  std::vector<sb::append_request> batch;
  for (int i = 0; i < 5; ++i)
    batch.push_back(msg(1, 2, "m" + std::to_string(i + 1)));
  batch.push_back(msg(1, 3, "other"));
  const auto outcome = b->append(batch);
  BOOST_TEST(outcome.evicted == 2u);
  BOOST_TEST(outcome.results.at(4).seq == 5u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{3, 4, 5}), boost::test_tools::per_element());
  BOOST_TEST(b->fetch(2, 0, 1).at(0).content == "m3");
  BOOST_TEST(held_seqs(*b, 3) == (seqs{1}), boost::test_tools::per_element());

  // Seqs go on: a client sees the jump.
  const auto next = append_one(*b, msg(1, 2, "m6"));
  BOOST_TEST(next.evicted == 1u);
  BOOST_TEST(next.results.at(0).seq == 6u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{4, 5, 6}), boost::test_tools::per_element());
  BOOST_TEST(b->position(2) == (sb::user_position{6, 0}));

  // Only messages above the cursor count.
  b->advance_cursor(2, 5);
  const std::vector<sb::append_request> two{msg(1, 2, "m7"), msg(1, 2, "m8")};
  BOOST_TEST(b->append(two).evicted == 0u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{6, 7, 8}), boost::test_tools::per_element());
  BOOST_TEST(append_one(*b, msg(1, 2, "m9")).evicted == 1u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{7, 8, 9}), boost::test_tools::per_element());
  BOOST_TEST(b->position(2) == (sb::user_position{9, 5}));

  // The cursor in the middle of what the limit drops: 7 and 8 acknowledged,
  // 9 not; three new messages push out all three, and one counts.
  b->advance_cursor(2, 8);
  const std::vector<sb::append_request> three{msg(1, 2, "m10"), msg(1, 2, "m11"), msg(1, 2, "m12")};
  BOOST_TEST(b->append(three).evicted == 1u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{10, 11, 12}), boost::test_tools::per_element());
  BOOST_TEST(b->position(2) == (sb::user_position{12, 8}));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(extreme_ids_and_content_round_trip, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  const std::string content = std::string("nul \0 inside, ", 14) + "caf\xc3\xa9";
  const auto outcome =
      append_one(*b, msg(max_u64, max_u64, content, -5, text_id(std::string(64, 'z'))));
  BOOST_TEST(of(outcome.results.at(0)) == (receipt{true, max_u64, 1, -5}));
  append_one(*b, msg(max_u64 - 1, max_u64, "second", 0));
  // An id of 64 bytes that looks like the stores' own separators.
  std::string odd_id = std::string("a b:\0\n", 6) + "s5:x" + "\xc3\xa9";
  odd_id.resize(64, ' ');
  append_one(*b, msg(max_u64, max_u64, "", 1, text_id(odd_id)));
  append_one(*b,
             msg(max_u64, max_u64, std::string(1, '\0'), 2, number_id(std::to_string(max_u64))));
  const auto held = b->fetch(max_u64, 0, 10);
  BOOST_TEST_REQUIRE(held.size() == 4u);
  BOOST_TEST(held[0].sender == max_u64);
  BOOST_TEST(held[0].receiver == max_u64);
  BOOST_TEST(held[0].content == content);
  BOOST_TEST(held[0].ts_ms == -5);
  BOOST_TEST(held[0].id->value == std::string(64, 'z'));
  BOOST_TEST(held[1].sender == max_u64 - 1);
  BOOST_TEST(held[1].content == "second");
  BOOST_TEST(!held[1].id.has_value());
  BOOST_TEST(held[2].content == "");
  BOOST_TEST_REQUIRE(held[2].id.has_value());
  BOOST_TEST(held[2].id->value == odd_id);
  BOOST_TEST(!held[2].id->is_number);
  BOOST_TEST(held[3].content == std::string(1, '\0'));
  BOOST_TEST_REQUIRE(held[3].id.has_value());
  BOOST_TEST(held[3].id->value == std::to_string(max_u64));
  BOOST_TEST(held[3].id->is_number);
  BOOST_TEST(b->position(max_u64) == (sb::user_position{4, 0}));
  BOOST_TEST(b->position(1) == (sb::user_position{0, 0}));
  BOOST_TEST(of(append_one(*b, msg(max_u64, 1, "again", 7, text_id(std::string(64, 'z'))))
                    .results.at(0)) == (receipt{false, max_u64, 1, -5}));
  BOOST_TEST(of(append_one(*b, msg(max_u64, 1, "again", 8, text_id(odd_id))).results.at(0)) ==
             (receipt{false, max_u64, 3, 1}));
  b->advance_cursor(max_u64, max_u64);
  BOOST_TEST(b->position(max_u64) == (sb::user_position{4, 4}));
  BOOST_TEST(b->fetch(max_u64, 4, 10).empty());
}

// --inbox-bytes: the content bytes held per inbox. The oldest messages go,
// exactly as with --inbox-limit (acknowledged ones first where they are
// still held, only those above the cursor counted), and the newest always
// stays, whatever its size.
BOOST_AUTO_TEST_CASE_TEMPLATE(inbox_bytes_evicts_oldest, Kind, backend_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.inbox_bytes = 100;
  auto b = kind.open(limits);
  const std::string forty(40, 'a');

  // 40 + 40 fit; a third 40 makes 120: the first goes. Ids and the other
  // user's inbox do not count.
  std::vector<sb::append_request> batch{msg(1, 2, forty, 1000, text_id(std::string(64, 'i'))),
                                        msg(1, 2, forty), msg(1, 3, std::string(90, 'o'))};
  BOOST_TEST(b->append(batch).evicted == 0u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1, 2}), boost::test_tools::per_element());
  const auto third = append_one(*b, msg(1, 2, forty));
  BOOST_TEST(third.evicted == 1u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{2, 3}), boost::test_tools::per_element());
  BOOST_TEST(held_seqs(*b, 3) == (seqs{1}), boost::test_tools::per_element());

  // Exactly at the bound: nothing goes (40 + 40 + 20 = 100).
  BOOST_TEST(append_one(*b, msg(1, 2, std::string(20, 'b'))).evicted == 0u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{2, 3, 4}), boost::test_tools::per_element());

  // One message over the bound alone: everything older goes, it stays.
  const auto huge = append_one(*b, msg(1, 2, std::string(150, 'h')));
  BOOST_TEST(huge.evicted == 3u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{5}), boost::test_tools::per_element());
  BOOST_TEST(b->fetch(2, 0, 10).at(0).content.size() == 150u);
  // The next one pushes it out; the counter went down by what went.
  BOOST_TEST(append_one(*b, msg(1, 2, std::string(60, 'c'))).evicted == 1u);
  BOOST_TEST(append_one(*b, msg(1, 2, std::string(40, 'd'))).evicted == 0u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{6, 7}), boost::test_tools::per_element());
  BOOST_TEST(b->position(2) == (sb::user_position{7, 0}));

  // Acknowledged messages count while held (Redis keeps them a minute) and
  // go first; they are not counted as evicted. Empty content costs nothing.
  b->advance_cursor(2, 6);
  BOOST_TEST(append_one(*b, msg(1, 2, "")).evicted == 0u);
  // 40 + 0 + 60 = 100 above the cursor: nothing counted (Redis, which still
  // held seq 6, dropped it now: 160 bytes); one byte more evicts seq 7,
  // which counts.
  BOOST_TEST(append_one(*b, msg(1, 2, std::string(60, 'e'))).evicted == 0u);
  BOOST_TEST(append_one(*b, msg(1, 2, "f")).evicted == 1u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{8, 9, 10}), boost::test_tools::per_element());

  // Content is counted in bytes, NULs and UTF-8 included.
  const std::string odd = std::string("\0\0", 2) + "caf\xc3\xa9";  // 7 bytes
  append_one(*b, msg(1, 4, std::string(93, 'g')));
  BOOST_TEST(append_one(*b, msg(1, 4, odd)).evicted == 0u);  // 100
  BOOST_TEST(append_one(*b, msg(1, 4, std::string(1, '\0'))).evicted == 1u);
  BOOST_TEST(held_seqs(*b, 4) == (seqs{2, 3}), boost::test_tools::per_element());
}

// Both bounds at once: whichever is reached first evicts.
BOOST_AUTO_TEST_CASE_TEMPLATE(inbox_bytes_and_limit_together, Kind, backend_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.inbox_bytes = 30;
  limits.inbox_limit = 3;
  auto b = kind.open(limits);
  std::vector<sb::append_request> batch;
  for (int i = 0; i < 5; ++i)
    batch.push_back(msg(1, 2, "x"));  // the count bites
  BOOST_TEST(b->append(batch).evicted == 2u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{3, 4, 5}), boost::test_tools::per_element());
  // 3 + 29 = 32 bytes: the count takes seq 3, the bytes seq 4 (31 > 30).
  BOOST_TEST(append_one(*b, msg(1, 2, std::string(29, 'y'))).evicted == 2u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{5, 6}), boost::test_tools::per_element());
  // Two more bytes: 5 and then the 29 bytes of 6 go, in one batch.
  const std::vector<sb::append_request> small{msg(1, 2, "z"), msg(1, 2, "z")};
  BOOST_TEST(b->append(small).evicted == 2u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{7, 8}), boost::test_tools::per_element());
  // The bytes of what went were given back: the count bites again.
  BOOST_TEST(append_one(*b, msg(1, 2, "w")).evicted == 0u);
  BOOST_TEST(append_one(*b, msg(1, 2, "v")).evicted == 1u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{8, 9, 10}), boost::test_tools::per_element());
}

// A replay page holds at most max_bytes of content, but always its first
// message, so that a replay moves on whatever the sizes.
BOOST_AUTO_TEST_CASE_TEMPLATE(fetch_caps_a_page_by_bytes, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  for (int i = 1; i <= 40; ++i)
    append_one(*b, msg(1, 2, std::string(static_cast<std::size_t>(i == 5 ? 500 : 10), 'm')));
  BOOST_TEST(seqs_of(b->fetch(2, 0, 100, 30)) == (seqs{1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(seqs_of(b->fetch(2, 0, 100, 29)) == (seqs{1, 2}), boost::test_tools::per_element());
  BOOST_TEST(seqs_of(b->fetch(2, 0, 2, 1000)) == (seqs{1, 2}), boost::test_tools::per_element());
  // The big one alone, even with a cap below it; then on.
  BOOST_TEST(seqs_of(b->fetch(2, 4, 100, 100)) == (seqs{5}), boost::test_tools::per_element());
  BOOST_TEST(seqs_of(b->fetch(2, 4, 100, 0)) == (seqs{5}), boost::test_tools::per_element());
  BOOST_TEST(seqs_of(b->fetch(2, 3, 100, 100)) == (seqs{4}), boost::test_tools::per_element());
  // Across Redis's reads of 16 entries: 25 messages of 10 bytes.
  BOOST_TEST(seqs_of(b->fetch(2, 5, 100, 250)).size() == 25u);
  BOOST_TEST(seqs_of(b->fetch(2, 5, 100, 250)).back() == 30u);
  BOOST_TEST(seqs_of(b->fetch(2, 5, 100, 1000)).size() == 35u);
  BOOST_TEST(b->fetch(2, 40, 100, 1000).empty());
}

// PROTOCOL.md section 9: each device keeps its own cursor; a message is held
// until every device remembered has passed it.
BOOST_AUTO_TEST_CASE_TEMPLATE(devices_keep_their_own_cursors, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  for (int i = 0; i < 3; ++i)
    append_one(*b, msg(1, 2, "x"));
  BOOST_TEST(b->open(2, "p1", "phone", 1000) == (sb::user_position{3, 0}));
  BOOST_TEST(b->open(2, "l1", "laptop", 1000) == (sb::user_position{3, 0}));

  b->advance_cursor(2, 3, "phone");
  BOOST_TEST(b->position(2, "phone", 1000) == (sb::user_position{3, 3}));
  BOOST_TEST(b->position(2, "laptop", 1000) == (sb::user_position{3, 0}));
  // The laptop has not passed any: all are held for it.
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1, 2, 3}), boost::test_tools::per_element());

  b->advance_cursor(2, 2, "laptop");
  BOOST_TEST(b->position(2, "laptop", 1000) == (sb::user_position{3, 2}));
  BOOST_TEST(b->position(2, "phone", 1000) == (sb::user_position{3, 3}));
  if constexpr (Kind::drops_acknowledged_at_once)
    BOOST_TEST(held_seqs(*b, 2) == (seqs{3}), boost::test_tools::per_element());

  b->advance_cursor(2, 100, "laptop");  // clamped, as for the default device
  BOOST_TEST(b->position(2, "laptop", 1000) == (sb::user_position{3, 3}));
  if constexpr (Kind::drops_acknowledged_at_once) BOOST_TEST(held_seqs(*b, 2).empty());

  // A device seen for the first time starts at 0 and reads what is held.
  append_one(*b, msg(1, 2, "y"));
  BOOST_TEST(b->open(2, "t1", "tablet", 1000) == (sb::user_position{4, 0}));
  if constexpr (Kind::drops_acknowledged_at_once)
    BOOST_TEST(held_seqs(*b, 2) == (seqs{4}), boost::test_tools::per_element());
  // The default device is a device like the others, and another user's
  // devices are their own.
  append_one(*b, msg(1, 3, "z"));
  BOOST_TEST(b->open(3, "o1", "phone", 1000) == (sb::user_position{1, 0}));
  b->close(2, "p1", "phone", 1000);
  b->close(2, "l1", "laptop", 1000);
  b->close(2, "t1", "tablet", 1000);
  b->close(3, "o1", "phone", 1000);
}

// A device with no session for --device-ttl is forgotten (never sooner):
// its cursor holds nothing back, and it starts again at 0. A device with a
// session open is never forgotten; a user with no device left holds
// everything for the next one.
BOOST_AUTO_TEST_CASE_TEMPLATE(devices_are_forgotten_after_the_ttl, Kind, sweeping_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.device_ttl = std::chrono::seconds(80);  // forgotten 90 s after the last session
  auto b = kind.open(limits);
  for (int i = 0; i < 3; ++i)
    append_one(*b, msg(1, 2, "x", 1000));
  b->open(2, "p1", "phone", 1000);
  b->open(2, "l1", "laptop", 1000);
  b->advance_cursor(2, 1, "laptop");
  b->close(2, "l1", "laptop", 2000);
  b->advance_cursor(2, 3, "phone");
  BOOST_TEST(held_seqs(*b, 2) == (seqs{2, 3}), boost::test_tools::per_element());

  BOOST_TEST(b->evict_expired(82000) == 0u);  // 80 s: not sooner than the ttl
  BOOST_TEST(held_seqs(*b, 2) == (seqs{2, 3}), boost::test_tools::per_element());
  BOOST_TEST(b->evict_expired(92001) == 0u);  // past 90 s: the laptop is forgotten
  BOOST_TEST(held_seqs(*b, 2).empty());
  // The phone, whose session is still open, is not, however long.
  BOOST_TEST(b->evict_expired(500000) == 0u);
  BOOST_TEST(b->open(2, "p2", "phone", 500000) == (sb::user_position{3, 3}));
  b->close(2, "p2", "phone", 500000);
  // The laptop comes back: a new device at 0.
  append_one(*b, msg(1, 2, "y", 500000));
  BOOST_TEST(b->open(2, "l2", "laptop", 500000) == (sb::user_position{4, 0}));
  BOOST_TEST(held_seqs(*b, 2) == (seqs{4}), boost::test_tools::per_element());
  b->close(2, "l2", "laptop", 500000);
  b->close(2, "p1", "phone", 500000);

  // Both forgotten: nothing more goes for want of a device, and the next
  // device gets it all.
  BOOST_TEST(b->evict_expired(600000) == 0u);
  append_one(*b, msg(1, 2, "z", 600000));
  BOOST_TEST(held_seqs(*b, 2) == (seqs{4, 5}), boost::test_tools::per_element());
  BOOST_TEST(b->open(2, "t1", "tablet", 600000) == (sb::user_position{5, 0}));
  b->close(2, "t1", "tablet", 600000);
}

// PROTOCOL.md section 10: members ascending, groups ascending (ids above
// 2^63 included), adding twice and removing a non-member are no-ops.
BOOST_AUTO_TEST_CASE_TEMPLATE(group_membership, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  using ids = std::vector<std::uint64_t>;
  BOOST_TEST(b->members(7).empty());
  BOOST_TEST(b->groups_of(10).empty());
  for (const sb::user_id u : {max_u64, sb::user_id{30}, sb::user_id{10}, sb::user_id{20}})
    BOOST_TEST((b->add_member(7, u) == sb::membership_change::done));
  BOOST_TEST((b->add_member(7, 10) == sb::membership_change::done));  // already
  BOOST_TEST(b->members(7) == (ids{10, 20, 30, max_u64}), boost::test_tools::per_element());
  BOOST_TEST((b->add_member(max_u64, 10) == sb::membership_change::done));
  BOOST_TEST((b->add_member(9, 10) == sb::membership_change::done));
  BOOST_TEST(b->groups_of(10) == (ids{7, 9, max_u64}), boost::test_tools::per_element());
  BOOST_TEST(b->groups_of(max_u64) == (ids{7}), boost::test_tools::per_element());

  b->remove_member(7, 20);
  b->remove_member(7, 20);  // not a member: nothing to do
  b->remove_member(8, 20);  // no such group
  BOOST_TEST(b->members(7) == (ids{10, 30, max_u64}), boost::test_tools::per_element());
  BOOST_TEST(b->groups_of(20).empty());
  b->remove_member(9, 10);
  BOOST_TEST(b->groups_of(10) == (ids{7, max_u64}), boost::test_tools::per_element());
  BOOST_TEST(b->members(9).empty());
}

// --max-group-members: a new member beyond it is refused; one already in a
// full group is not; room made by a removal can be taken.
BOOST_AUTO_TEST_CASE_TEMPLATE(group_full, Kind, backend_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.max_group_members = 2;
  auto b = kind.open(limits);
  BOOST_TEST((b->add_member(7, 1) == sb::membership_change::done));
  BOOST_TEST((b->add_member(7, 2) == sb::membership_change::done));
  BOOST_TEST((b->add_member(7, 3) == sb::membership_change::full));
  BOOST_TEST((b->add_member(7, 1) == sb::membership_change::done));
  BOOST_TEST(b->members(7) == (std::vector<std::uint64_t>{1, 2}), boost::test_tools::per_element());
  BOOST_TEST(b->groups_of(3).empty());
  BOOST_TEST((b->add_member(8, 3) == sb::membership_change::done));  // another group
  b->remove_member(7, 2);
  BOOST_TEST((b->add_member(7, 3) == sb::membership_change::done));
  BOOST_TEST(b->members(7) == (std::vector<std::uint64_t>{1, 3}), boost::test_tools::per_element());
}

// One group SEND: the group's next gseq, a copy for every member but the
// sender with that member's own next seq; a non-member stores nothing.
BOOST_AUTO_TEST_CASE_TEMPLATE(group_fan_out, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  for (const sb::user_id u : {1, 2, 3})
    b->add_member(7, u);
  append_one(*b, msg(9, 2, "direct"));
  append_one(*b, msg(9, 2, "direct"));  // user 2 is at seq 2

  const auto first = append_one(*b, group_msg(1, 7, "g1", 1000, text_id("a")));
  BOOST_TEST_REQUIRE(first.results.size() == 1u);
  BOOST_TEST(first.results[0].stored);
  BOOST_TEST(first.results[0].group == 7u);
  BOOST_TEST(first.results[0].gseq == 1u);
  BOOST_TEST(first.results[0].ts_ms == 1000);
  BOOST_TEST(copies_of(first) == (copies{{2, 3}, {3, 1}}), boost::test_tools::per_element());

  // Two in one batch, and one from another member.
  const std::vector<sb::append_request> batch{group_msg(1, 7, "g2", 1001),
                                              group_msg(2, 7, "g3", 1002)};
  const auto more = b->append(batch);
  BOOST_TEST_REQUIRE(more.results.size() == 2u);
  BOOST_TEST(more.results[0].gseq == 2u);
  BOOST_TEST(more.results[1].gseq == 3u);
  BOOST_TEST(copies_of(more, 0) == (copies{{2, 4}, {3, 2}}), boost::test_tools::per_element());
  BOOST_TEST(copies_of(more, 1) == (copies{{1, 1}, {3, 3}}), boost::test_tools::per_element());

  const auto three = b->fetch(3, 0, 100);
  BOOST_TEST_REQUIRE(three.size() == 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    BOOST_TEST(three[i].seq == i + 1);
    BOOST_TEST(three[i].gseq == i + 1);
    BOOST_TEST(three[i].group == 7u);
    BOOST_TEST(three[i].receiver == 3u);
  }
  BOOST_TEST(three[0].sender == 1u);
  BOOST_TEST(three[0].content == "g1");
  BOOST_TEST_REQUIRE(three[0].id.has_value());
  BOOST_TEST(three[0].id->value == "a");
  BOOST_TEST(three[2].sender == 2u);
  BOOST_TEST(three[2].content == "g3");
  // The sender gets no copy of its own: user 1 has only user 2's.
  const auto one = b->fetch(1, 0, 100);
  BOOST_TEST_REQUIRE(one.size() == 1u);
  BOOST_TEST(one[0].gseq == 3u);
  BOOST_TEST(one[0].sender == 2u);
  // Direct messages keep group 0.
  const auto two = b->fetch(2, 0, 100);
  BOOST_TEST_REQUIRE(two.size() == 4u);
  BOOST_TEST(two[0].group == 0u);
  BOOST_TEST(two[0].gseq == 0u);
  BOOST_TEST(two[2].gseq == 1u);

  // Not a member: nothing stored, no gseq used.
  const auto refused = append_one(*b, group_msg(4, 7, "intruder", 1003, text_id("x")));
  BOOST_TEST(refused.results.at(0).not_member);
  BOOST_TEST(!refused.results.at(0).stored);
  BOOST_TEST(refused.copies.empty());
  BOOST_TEST(append_one(*b, group_msg(4, 8, "no such group")).results.at(0).not_member);
  BOOST_TEST(b->position(1).highest == 1u);
  BOOST_TEST(b->position(2).highest == 4u);
  BOOST_TEST(b->position(3).highest == 3u);
  // ... and the refused id was not remembered.
  BOOST_TEST(append_one(*b, group_msg(1, 7, "g4", 1004)).results.at(0).gseq == 4u);
}

// A membership change applies to the messages after it: a new member gets
// nothing earlier, a removed one nothing later and keeps what it had.
BOOST_AUTO_TEST_CASE_TEMPLATE(group_membership_applies_to_later_messages, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  b->add_member(7, 1);
  b->add_member(7, 2);
  append_one(*b, group_msg(1, 7, "before"));
  b->add_member(7, 3);
  BOOST_TEST(b->fetch(3, 0, 100).empty());
  const auto second = append_one(*b, group_msg(1, 7, "joined"));
  BOOST_TEST(copies_of(second) == (copies{{2, 2}, {3, 1}}), boost::test_tools::per_element());
  b->remove_member(7, 2);
  const auto third = append_one(*b, group_msg(1, 7, "left"));
  BOOST_TEST(third.results.at(0).gseq == 3u);
  BOOST_TEST(copies_of(third) == (copies{{3, 2}}), boost::test_tools::per_element());
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1, 2}), boost::test_tools::per_element());
  // A removed sender is not a member any more.
  BOOST_TEST(append_one(*b, group_msg(2, 7, "gone")).results.at(0).not_member);
  // A group with the sender alone: a gseq, no copy.
  b->add_member(9, 5);
  const auto alone = append_one(*b, group_msg(5, 9, "echo"));
  BOOST_TEST(alone.results.at(0).stored);
  BOOST_TEST(alone.results.at(0).gseq == 1u);
  BOOST_TEST(alone.results.at(0).copies == 0u);
  BOOST_TEST(b->position(5).highest == 0u);
}

// Dedup by (sender, id) whatever the target: a group resend gets the group
// receipt, a resend of a direct message as a group SEND the direct one.
BOOST_AUTO_TEST_CASE_TEMPLATE(group_resend_gets_the_original_receipt, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  b->add_member(7, 1);
  b->add_member(7, 2);
  b->add_member(7, 3);
  const auto first = append_one(*b, group_msg(1, 7, "g", 1000, number_id("5")));
  BOOST_TEST(first.results.at(0).gseq == 1u);

  for (const auto& again : {group_msg(1, 7, "g again", 2000, text_id("5")),
                            group_msg(1, 8, "elsewhere", 2001, number_id("5")),
                            msg(1, 2, "direct", 2002, number_id("5"))}) {
    const auto outcome = append_one(*b, again);
    const auto& r = outcome.results.at(0);
    BOOST_TEST(!r.stored);
    BOOST_TEST(!r.not_member);
    BOOST_TEST(r.group == 7u);
    BOOST_TEST(r.gseq == 1u);
    BOOST_TEST(r.ts_ms == 1000);
    BOOST_TEST(r.receiver == 0u);
    BOOST_TEST(r.seq == 0u);
    BOOST_TEST(outcome.copies.empty());
  }
  BOOST_TEST(b->position(2).highest == 1u);
  BOOST_TEST(b->position(3).highest == 1u);

  // Within one batch, and a direct original resent to a group.
  const std::vector<sb::append_request> batch{
      msg(1, 2, "d", 3000, text_id("d")), group_msg(1, 7, "d again", 3001, text_id("d")),
      group_msg(1, 7, "n", 3002, text_id("n")), group_msg(1, 7, "n again", 3003, text_id("n"))};
  const auto outcome = b->append(batch);
  BOOST_TEST_REQUIRE(outcome.results.size() == 4u);
  BOOST_TEST(of(outcome.results[1]) == (receipt{false, 2, 2, 3000}));
  BOOST_TEST(outcome.results[1].group == 0u);
  BOOST_TEST(outcome.results[2].gseq == 2u);
  BOOST_TEST(!outcome.results[3].stored);
  BOOST_TEST(outcome.results[3].gseq == 2u);
  BOOST_TEST(outcome.results[3].ts_ms == 3002);
  BOOST_TEST(held_seqs(*b, 3) == (seqs{1, 2}), boost::test_tools::per_element());
}

// Copies are held and evicted per member, as direct messages are: each
// member's --inbox-limit and cursor are its own.
BOOST_AUTO_TEST_CASE_TEMPLATE(group_copies_are_evicted_per_member, Kind, backend_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.inbox_limit = 2;
  auto b = kind.open(limits);
  for (const sb::user_id u : {1, 2, 3})
    b->add_member(7, u);
  append_one(*b, msg(9, 3, "direct"));
  std::uint64_t evicted = 0;
  for (int i = 0; i < 3; ++i)
    evicted += append_one(*b, group_msg(1, 7, "g" + std::to_string(i))).evicted;
  // Member 2 had copies 1..3, member 3 a direct message and copies 2..4.
  BOOST_TEST(evicted == 3u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{2, 3}), boost::test_tools::per_element());
  BOOST_TEST(held_seqs(*b, 3) == (seqs{3, 4}), boost::test_tools::per_element());
  const auto held = b->fetch(3, 0, 100);
  BOOST_TEST(held.at(0).gseq == 2u);
  BOOST_TEST(held.at(1).gseq == 3u);

  b->advance_cursor(2, 3);
  if constexpr (Kind::drops_acknowledged_at_once) BOOST_TEST(held_seqs(*b, 2).empty());
  BOOST_TEST(held_seqs(*b, 3) == (seqs{3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(status_delivered_after_a_cursor_move, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  BOOST_TEST(append_one(*b, notify_msg(1, 2, "a")).results.at(0).seq == 1u);
  append_one(*b, msg(3, 2, "plain"));
  BOOST_TEST(b->advance_cursor(2, 1, {}, 5000).statuses.size() == 1u);
  // The point is the cursor, clamped to the highest seq.
  const auto more = statuses_of(b->advance_cursor(2, 100, {}, 6000));
  BOOST_TEST(more.empty(), "a move that covers no new notify-message brings none");
  BOOST_TEST(b->position(1).highest == 1u);
  // In the sender's own inbox: its seq 1, replayed like a message.
  const statuses expected{{1, 2, false, 1, 1, 5000}};
  BOOST_TEST(statuses_of(b->fetch(1, 0, 10)) == expected, boost::test_tools::per_element());
  // And the receiver's messages are untouched by it.
  BOOST_TEST(b->position(2) == (sb::user_position{2, 2}));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(status_is_cumulative_per_sender_and_state, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  append_one(*b, notify_msg(1, 2, "a"));  // 1
  append_one(*b, notify_msg(4, 2, "b"));  // 2
  append_one(*b, notify_msg(1, 2, "c"));  // 3
  append_one(*b, notify_msg(1, 2, "d"));  // 4
  append_one(*b, notify_msg(4, 2, "e"));  // 5
  // One move covering several messages of two senders: one STATUS each.
  const statuses first{{1, 2, false, 4, 1, 7000}, {4, 2, false, 4, 1, 7000}};
  BOOST_TEST(statuses_of(b->advance_cursor(2, 4, {}, 7000)) == first,
             boost::test_tools::per_element());
  // Only sender 4 has one not covered yet.
  const statuses second{{4, 2, false, 5, 2, 7100}};
  BOOST_TEST(statuses_of(b->advance_cursor(2, 5, "laptop", 7100)) == second,
             boost::test_tools::per_element());
  BOOST_TEST(statuses_of(b->advance_cursor(2, 5, {}, 7200)).empty());
  BOOST_TEST(b->position(1).highest == 1u);
  BOOST_TEST(b->position(4).highest == 2u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(one_round_of_moves_reports_every_status, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  append_one(*b, notify_msg(1, 2, "a"));
  append_one(*b, notify_msg(1, 3, "b"));
  append_one(*b, notify_msg(1, 3, "c"));
  // One round of the store worker: moves of two users, one of them twice.
  const sb::cursor_move moves[] = {{2, 1, {}, 50}, {3, 1, {}, 50}, {3, 2, {}, 50}};
  const auto outcome = kind.run.await(b->async().advance_cursors(moves));
  auto got = statuses_of(outcome);
  // In seq order per sender; Redis keeps one move per (user, device), the
  // furthest.
  BOOST_TEST_REQUIRE(got.size() >= 2u);
  BOOST_TEST(got.front() == (status_entry{1, 2, false, 1, 1, 50}));
  BOOST_TEST(got.back().about == 3u);
  BOOST_TEST(got.back().upto == 2u);
  BOOST_TEST(got.back().seq == got.size());
  BOOST_TEST(statuses_of(b->fetch(1, 0, 10)) == got, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(status_read_after_a_read, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  append_one(*b, notify_msg(1, 2, "a"));  // 1
  append_one(*b, notify_msg(1, 2, "b"));  // 2
  append_one(*b, notify_msg(1, 2, "c"));  // 3
  // Delivered up to 1, then a READ beyond it: delivered first, then read.
  BOOST_TEST(
      statuses_of(b->advance_cursor(2, 1, {}, 8000)) == (statuses{{1, 2, false, 1, 1, 8000}}),
      boost::test_tools::per_element());
  BOOST_TEST(statuses_of(b->read(2, 2, 8100)) ==
                 (statuses{{1, 2, false, 2, 2, 8100}, {1, 2, true, 2, 3, 8100}}),
             boost::test_tools::per_element());
  // A READ moves no cursor.
  BOOST_TEST(b->position(2).cursor == 1u);
  // Nothing new covered: nothing.
  BOOST_TEST(statuses_of(b->read(2, 2, 8200)).empty());
  BOOST_TEST(statuses_of(b->read(2, 1, 8200)).empty());
  // Delivered up to 3 by the cursor, then a READ above the highest seq
  // counts as the highest: read alone.
  BOOST_TEST(
      statuses_of(b->advance_cursor(2, 3, {}, 8300)) == (statuses{{1, 2, false, 3, 4, 8300}}),
      boost::test_tools::per_element());
  BOOST_TEST(statuses_of(b->read(2, max_u64, 8400)) == (statuses{{1, 2, true, 3, 5, 8400}}),
             boost::test_tools::per_element());
  BOOST_TEST(statuses_of(b->read(2, max_u64, 8500)).empty());
  BOOST_TEST(statuses_of(b->read(77, 5, 8500)).empty(), "a user with nothing");
  BOOST_TEST(statuses_of(b->fetch(1, 0, 10)).size() == 5u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_alone_implies_delivered, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  append_one(*b, notify_msg(1, 2, "a"));
  append_one(*b, notify_msg(5, 2, "b"));
  BOOST_TEST(statuses_of(b->read(2, 2, 9000)) == (statuses{{1, 2, false, 2, 1, 9000},
                                                           {5, 2, false, 2, 1, 9000},
                                                           {1, 2, true, 2, 2, 9000},
                                                           {5, 2, true, 2, 2, 9000}}),
             boost::test_tools::per_element());
  // Read covers delivered: the cursor passing them later brings nothing.
  BOOST_TEST(statuses_of(b->advance_cursor(2, 2, {}, 9100)).empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(no_status_without_notify_or_id, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  auto no_id = msg(1, 2, "no id");
  no_id.notify = true;  // the protocol layer clears it; the store ignores it too
  append_one(*b, no_id);
  append_one(*b, msg(1, 2, "not asked", 1000, text_id("x")));
  BOOST_TEST(statuses_of(b->advance_cursor(2, 2, {}, 1)).empty());
  BOOST_TEST(statuses_of(b->read(2, 2, 2)).empty());
  BOOST_TEST(b->position(1).highest == 0u);
  // A resend of a notify-message is not a new one: the first is covered.
  append_one(*b, notify_msg(1, 2, "y"));  // 3
  BOOST_TEST(append_one(*b, notify_msg(1, 2, "y")).results.at(0).stored == false);
  BOOST_TEST(statuses_of(b->advance_cursor(2, 3, {}, 3)).size() == 1u);
  BOOST_TEST(statuses_of(b->advance_cursor(2, 3, "other", 4)).empty());
  // A notify-message to oneself: the STATUS lands in the same inbox.
  append_one(*b, notify_msg(9, 9, "self"));
  BOOST_TEST(statuses_of(b->advance_cursor(9, 1, {}, 5)) == (statuses{{9, 9, false, 1, 2, 5}}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(status_is_acknowledged_and_evicted_like_a_message, Kind,
                              backend_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.inbox_limit = 2;
  auto b = kind.open(limits);
  std::uint64_t evicted = 0;
  for (int i = 1; i <= 3; ++i) {
    append_one(*b, notify_msg(1, 2, "m" + std::to_string(i)));
    const auto outcome = b->advance_cursor(2, static_cast<sb::seq_t>(i), {}, 100 + i);
    BOOST_TEST(statuses_of(outcome).size() == 1u);
    evicted += outcome.evicted;
  }
  // Sender 1's inbox holds two entries: the oldest STATUS was evicted
  // (no device of user 1 had passed it).
  BOOST_TEST(evicted == 1u);
  BOOST_TEST(seqs_of(b->fetch(1, 0, 10)) == (seqs{2, 3}), boost::test_tools::per_element());
  // Its cursor moves over them like over messages.
  b->advance_cursor(1, 3);
  BOOST_TEST(b->position(1) == (sb::user_position{3, 3}));
  if constexpr (Kind::drops_acknowledged_at_once) BOOST_TEST(held_seqs(*b, 1).empty());
  // A notify-message more than --inbox-limit seqs old gets no STATUS.
  append_one(*b, notify_msg(1, 2, "old"));  // 4
  append_one(*b, msg(3, 2, "x"));           // 5
  append_one(*b, msg(3, 2, "y"));           // 6
  BOOST_TEST(statuses_of(b->advance_cursor(2, 6, {}, 200)).empty());
  BOOST_TEST(statuses_of(b->read(2, 6, 201)).empty());
}

// --max-devices-per-user: a device new to a user who has that many forgets
// the least recently seen one without a session open; one with a session
// is never forgotten, so the user then has one more.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_new_device_beyond_the_bound_forgets_the_least_recent, Kind,
                              backend_kinds) {
  Kind kind;
  sb::backend_limits limits;
  limits.max_devices_per_user = 2;
  auto b = kind.open(limits);
  for (int i = 0; i < 3; ++i)
    append_one(*b, msg(1, 2, "x"));
  b->open(2, "a1", "first", 1000);
  b->advance_cursor(2, 1, "first");
  b->close(2, "a1", "first", 1000);
  b->open(2, "b1", "second", 2000);
  b->advance_cursor(2, 2, "second");
  b->close(2, "b1", "second", 2000);
  if constexpr (Kind::drops_acknowledged_at_once)
    BOOST_TEST(held_seqs(*b, 2) == (seqs{2, 3}), boost::test_tools::per_element());

  // A third: "first" goes, and what only it held with it. (position() opens
  // a session of the device it asks about: it is only used on devices the
  // store remembers.)
  BOOST_TEST(b->open(2, "c1", "third", 3000) == (sb::user_position{3, 0}));
  BOOST_TEST(b->position(2, "second", 3000) == (sb::user_position{3, 2}));
  if constexpr (Kind::drops_acknowledged_at_once)
    BOOST_TEST(held_seqs(*b, 2) == (seqs{3}), boost::test_tools::per_element());

  // "first" comes back at 0, forgotten; "third" has a session open, so
  // "second" goes for it.
  BOOST_TEST(b->open(2, "a2", "first", 4000) == (sb::user_position{3, 0}));
  // Both remembered devices have sessions: a fifth is remembered beside them.
  BOOST_TEST(b->open(2, "e1", "fifth", 5000) == (sb::user_position{3, 0}));
  b->advance_cursor(2, 3, "third");
  b->advance_cursor(2, 1, "fifth");
  BOOST_TEST(b->position(2, "third", 5000) == (sb::user_position{3, 3}));
  BOOST_TEST(b->position(2, "fifth", 5000) == (sb::user_position{3, 1}));
  BOOST_TEST(b->position(2, "first", 5000) == (sb::user_position{3, 0}));
  b->close(2, "c1", "third", 5000);
  b->close(2, "a2", "first", 5000);
  b->close(2, "e1", "fifth", 5000);
  // "second" was forgotten: it starts again at 0.
  BOOST_TEST(b->position(2, "second", 6000) == (sb::user_position{3, 0}));
}

BOOST_AUTO_TEST_SUITE_END()

// ---- memory only: --memory-store-bytes ----

namespace {

// A memory backend behind the seam, with a view of what it charges.
struct memory_store {
  explicit memory_store(runner& run, sb::backend_limits limits) {
    auto backend = std::make_unique<sb::memory_backend>(limits);
    raw = backend.get();
    b = std::make_unique<backend_under_test>(
        run, std::make_unique<sb::sync_adapter>(std::move(backend)));
  }
  sb::memory_backend* raw = nullptr;
  std::unique_ptr<backend_under_test> b;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(memory_total)

// One empty message to each of many distinct receivers: every one makes an
// inbox that is never erased. At the bound the SEND is refused alone
// (nothing stored, no seq used), what is held stays, and what the store
// charges never goes past the bound.
BOOST_AUTO_TEST_CASE(distinct_receivers_are_refused_at_the_bound) {
  runner run;
  sb::backend_limits limits;
  limits.memory_store_bytes = 256 * 1024;
  memory_store m(run, limits);
  sb::user_id receiver = 1;
  std::size_t refusals = 0;
  for (; receiver <= 100000 && refusals == 0; ++receiver) {
    const auto outcome = append_one(*m.b, msg(1, receiver, ""));
    BOOST_TEST_REQUIRE(m.raw->charged_bytes() <= limits.memory_store_bytes);
    if (outcome.results.at(0).refused) ++refusals;
  }
  const sb::user_id refused = receiver - 1;
  BOOST_TEST_REQUIRE(refusals == 1u);
  // Each inbox costs several hundred bytes: a few hundred fit, not more.
  BOOST_TEST(refused > 100u);
  BOOST_TEST(refused < 1000u);
  BOOST_TEST(m.b->position(refused) == (sb::user_position{0, 0}));
  BOOST_TEST(m.b->fetch(refused, 0, 10).empty());
  // Everything stored before is still held.
  for (sb::user_id u = 1; u < refused; ++u)
    BOOST_TEST_REQUIRE(held_seqs(*m.b, u) == (seqs{1}), boost::test_tools::per_element());

  // Still full: more new receivers are refused too, in a batch as alone.
  const std::vector<sb::append_request> batch{msg(1, refused, ""), msg(1, refused + 1, "")};
  const auto outcome = m.b->append(batch);
  BOOST_TEST(outcome.results.at(0).refused);
  BOOST_TEST(outcome.results.at(1).refused);
  // Room comes back when messages go: an acknowledged one frees its bytes,
  // and a message to an existing inbox costs less than a new inbox.
  for (sb::user_id u = 1; u < 20; ++u)
    m.b->advance_cursor(u, 1);
  const auto again = append_one(*m.b, msg(1, 1, "x"));
  BOOST_TEST(!again.results.at(0).refused);
  BOOST_TEST(again.results.at(0).seq == 2u);
  BOOST_TEST(m.raw->charged_bytes() <= limits.memory_store_bytes);
}

// Dedup entries grow with the SEND rate over --dedup-window, even when every
// message is acknowledged at once: they are charged too, refused at the
// bound, and the room comes back when the window passes.
BOOST_AUTO_TEST_CASE(dedup_entries_are_charged) {
  runner run;
  sb::backend_limits limits;
  limits.memory_store_bytes = 256 * 1024;
  limits.dedup_window = std::chrono::seconds(60);
  memory_store m(run, limits);
  std::size_t stored = 0;
  bool refused = false;
  while (!refused && stored < 100000) {
    const auto outcome = append_one(
        *m.b, msg(1, 2, "", 1000, text_id("id-" + std::string(40, 'x') + std::to_string(stored))));
    refused = outcome.results.at(0).refused;
    if (!refused) {
      ++stored;
      m.b->advance_cursor(2, outcome.results.at(0).seq);  // the message itself goes
    }
    BOOST_TEST_REQUIRE(m.raw->charged_bytes() <= limits.memory_store_bytes);
  }
  BOOST_TEST_REQUIRE(refused);
  BOOST_TEST(stored > 500u);
  BOOST_TEST(stored < 5000u);
  // A resend of a remembered id still gets its receipt: it costs nothing.
  const auto resend =
      append_one(*m.b, msg(1, 2, "", 1000, text_id("id-" + std::string(40, 'x') + "0")));
  BOOST_TEST(!resend.results.at(0).refused);
  BOOST_TEST(!resend.results.at(0).stored);
  BOOST_TEST(resend.results.at(0).seq == 1u);
  // The window passes: the entries go, and so does the refusal.
  m.b->evict_expired(1000 + 61000);
  BOOST_TEST(m.raw->charged_bytes() < limits.memory_store_bytes / 4);
  BOOST_TEST(!append_one(*m.b, msg(1, 2, "", 70000, text_id("new"))).results.at(0).refused);
}

// Memberships are charged against --memory-store-bytes and given back when
// removed; at the bound an add fails (unavailable: the API answers 503) and
// a group SEND whose copies would not fit stores none of them.
// A sweep looks only into the inboxes that have something due: held
// messages of other users, devices without a session and dedup entries that
// are not old enough cost it nothing.
BOOST_AUTO_TEST_CASE(a_sweep_touches_only_what_expires) {
  runner run;
  sb::backend_limits limits;
  limits.retention = std::chrono::seconds(60);
  limits.dedup_window = std::chrono::seconds(10);
  limits.device_ttl = std::chrono::seconds(80);  // forgotten 90 s after the last session
  memory_store m(run, limits);
  for (sb::user_id u = 2; u < 1002; ++u)
    append_one(*m.b, msg(1, u, "x", 100000, text_id("id-" + std::to_string(u))));
  m.b->open(5000, "s1", "phone", 1000);
  m.b->close(5000, "s1", "phone", 1000);  // forgotten after 91000
  append_one(*m.b, msg(1, 7, "early", 1000));
  append_one(*m.b, msg(1, 7, "later", 100000));

  // Nothing due: nothing looked at, however many sweeps.
  for (std::int64_t now = 1000; now <= 61000; now += 1000)
    BOOST_TEST(m.b->evict_expired(now) == 0u);
  BOOST_TEST(m.raw->inboxes_swept() == 0u);
  // Message 2 of user 7 (ts 1000) is due: one inbox.
  BOOST_TEST(m.b->evict_expired(61001) == 1u);
  BOOST_TEST(m.raw->inboxes_swept() == 1u);
  BOOST_TEST(held_seqs(*m.b, 7) == (seqs{1, 3}), boost::test_tools::per_element());
  // The device of user 5000: one more.
  BOOST_TEST(m.b->evict_expired(92000) == 0u);
  BOOST_TEST(m.raw->inboxes_swept() == 2u);
  // The dedup entries go by their own window, without a look at an inbox.
  std::size_t dedup_charge = 0;
  for (sb::user_id u = 2; u < 1002; ++u)
    dedup_charge += sb::memory_backend::dedup_cost("id-" + std::to_string(u));
  const std::size_t before = m.raw->charged_bytes();
  BOOST_TEST(m.b->evict_expired(110000) == 0u);  // exactly the window old: kept
  BOOST_TEST(m.raw->charged_bytes() == before);
  BOOST_TEST(m.b->evict_expired(160000) == 0u);
  BOOST_TEST(m.raw->charged_bytes() == before - dedup_charge);
  BOOST_TEST(m.raw->inboxes_swept() == 2u);
  // Every other message at once (user 7 has two), each counted.
  BOOST_TEST(m.b->evict_expired(160001) == 1001u);
  BOOST_TEST(m.raw->inboxes_swept() == 1002u);
  BOOST_TEST(held_seqs(*m.b, 7).empty());
  BOOST_TEST(m.b->evict_expired(1000000) == 0u);
  BOOST_TEST(m.raw->inboxes_swept() == 1002u);
}

BOOST_AUTO_TEST_CASE(memberships_are_charged) {
  runner run;
  sb::backend_limits limits;
  limits.memory_store_bytes = 64 * 1024;
  limits.max_group_members = 1000000;
  memory_store m(run, limits);
  sb::user_id added = 0;
  bool refused = false;
  while (!refused && added < 100000) {
    try {
      m.b->add_member(7, added + 1);
      ++added;
    } catch (const sb::unavailable&) {
      refused = true;
    }
    BOOST_TEST_REQUIRE(m.raw->charged_bytes() <= limits.memory_store_bytes);
  }
  BOOST_TEST_REQUIRE(refused);
  BOOST_TEST(added > 100u);
  BOOST_TEST(added < 2000u);
  BOOST_TEST(m.b->members(7).size() == added);
  // A SEND to all of them does not fit: no copy at all.
  const auto outcome = append_one(*m.b, group_msg(1, 7, "to all"));
  BOOST_TEST(outcome.results.at(0).refused);
  BOOST_TEST(outcome.copies.empty());
  BOOST_TEST(m.b->position(2).highest == 0u);
  const auto full = m.raw->charged_bytes();
  for (sb::user_id u = 1; u <= added; ++u)
    m.b->remove_member(7, u);
  BOOST_TEST(m.raw->charged_bytes() < full / 4);
  BOOST_TEST(m.b->groups_of(1).empty());
}

// Large contents are charged by their size; retention gives them back.
BOOST_AUTO_TEST_CASE(content_is_charged_and_given_back) {
  runner run;
  sb::backend_limits limits;
  limits.memory_store_bytes = 1024 * 1024;
  limits.retention = std::chrono::seconds(60);
  memory_store m(run, limits);
  const std::string big(64 * 1024, 'b');
  std::size_t stored = 0;
  for (int i = 0; i < 40; ++i) {
    const auto outcome = append_one(*m.b, msg(1, 2 + i % 3, big, 1000));
    if (!outcome.results.at(0).refused) ++stored;
    BOOST_TEST_REQUIRE(m.raw->charged_bytes() <= limits.memory_store_bytes);
  }
  BOOST_TEST(stored == 15u);  // 16 x 64 KiB would leave no room for the rest
  BOOST_TEST(m.raw->charged_bytes() > 15u * 64 * 1024);
  BOOST_TEST(m.b->evict_expired(1000 + 61000) == 15u);
  BOOST_TEST(m.raw->charged_bytes() == 3 * sb::memory_backend::inbox_cost());
}

// The charge is an estimate of the heap: filled to the bound with each
// shape of input an attacker can choose (empty messages to distinct
// receivers, large messages, dedup entries), the process's resident size
// grows by no more than the bound and a margin.
BOOST_AUTO_TEST_CASE(resident_size_stays_within_the_bound) {
  const auto rss_bytes = [] {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
      if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6)) * 1024;
    return 0ull;
  };
  constexpr std::size_t bound = 32u << 20;
  for (const int shape : {0, 1, 2}) {
    BOOST_TEST_CONTEXT("shape " << shape) {
      sb::backend_limits limits;
      limits.memory_store_bytes = bound;
      sb::memory_backend store(limits);
      const auto before = rss_bytes();
      std::size_t refusals = 0;
      for (sb::user_id i = 1; refusals < 10; ++i) {
        auto request =
            shape == 0 ? msg(1, i, "")
            : shape == 1
                ? msg(1, 1 + i % 1000, std::string(1000, 'x'))
                : msg(1, 2, "", 1000, text_id("id-" + std::to_string(i) + std::string(30, 'y')));
        const auto outcome = append_one(store, std::move(request));
        if (outcome.results.at(0).refused) {
          ++refusals;
        } else if (shape == 2) {
          store.advance_cursor(2, outcome.results.at(0).seq);
        }
      }
      const auto grown = rss_bytes() - std::min(before, rss_bytes());
      BOOST_TEST(store.charged_bytes() <= bound);
      BOOST_TEST(store.charged_bytes() > bound - bound / 64);
      if (!switchboard::test::under_address_sanitizer)
        BOOST_TEST(grown <= bound + bound / 4, grown << " bytes resident for a bound of " << bound);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---- SQLite only ----

namespace {

std::unique_ptr<sb::sqlite_backend> open_sqlite(const std::string& path,
                                                sb::backend_limits limits = {},
                                                sync_mode sync = sync_mode::normal) {
  return std::make_unique<sb::sqlite_backend>(path, sync, limits);
}

// What open_error says, or "" when the open succeeded.
std::string open_failure(const std::string& path) {
  try {
    sb::sqlite_backend b(path, sync_mode::normal, {});
  } catch (const sb::open_error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Runs SQL on a closed file with the plain SQLite API, as a foreign tool would.
void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  BOOST_TEST_REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  sqlite3_close(db);
  BOOST_TEST_REQUIRE(rc == SQLITE_OK);
}

std::int64_t raw_int(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  BOOST_TEST_REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::int64_t value = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    value = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sqlite)

BOOST_AUTO_TEST_CASE(reopen_keeps_everything) {
  temp_dir dir;
  const std::string path = dir.file("store.db");
  for (const sync_mode sync : {sync_mode::normal, sync_mode::full}) {
    BOOST_TEST_CONTEXT("sync " << (sync == sync_mode::full ? "full" : "normal")) {
      std::filesystem::remove(path);
      {
        auto b = open_sqlite(path, {}, sync);
        const std::vector<sb::append_request> batch{
            msg(1, 2, "one", 1001, text_id("c-1")), msg(1, 2, "two", 1002, number_id("2")),
            msg(1, 2, "three", 1003), msg(5, 3, "other", 1004)};
        b->append(batch);
        b->advance_cursor(2, 1);
      }
      auto b = open_sqlite(path, {}, sync);
      BOOST_TEST(b->position(2) == (sb::user_position{3, 1}));
      BOOST_TEST(b->position(3) == (sb::user_position{1, 0}));
      const auto held = b->fetch(2, 0, 100, unlimited);
      BOOST_TEST(seqs_of(held) == (seqs{2, 3}), boost::test_tools::per_element());
      BOOST_TEST_REQUIRE(held.size() == 2u);
      BOOST_TEST(held[0].content == "two");
      BOOST_TEST(held[0].ts_ms == 1002);
      BOOST_TEST(held[0].sender == 1u);
      BOOST_TEST(held[0].id->value == "2");
      BOOST_TEST(held[0].id->is_number);
      BOOST_TEST(!held[1].id.has_value());
      BOOST_TEST(append_one(*b, msg(1, 2, "four", 2000)).results.at(0).seq == 4u);
      // The dedup entry of a message already acknowledged survives too.
      BOOST_TEST(of(append_one(*b, msg(1, 9, "again", 2001, text_id("c-1"))).results.at(0)) ==
                 (receipt{false, 2, 1, 1001}));
    }
  }
}

BOOST_AUTO_TEST_CASE(schema_version_and_wal_are_set) {
  temp_dir dir;
  const std::string path = dir.file("store.db");
  open_sqlite(path);  // created, then closed
  BOOST_TEST(sb::sqlite_backend::schema_version() == 4);
  BOOST_TEST(raw_int(path, "PRAGMA user_version") == 4);
  BOOST_TEST(raw_int(path,
                     "SELECT count(*) FROM sqlite_master WHERE name IN "
                     "('users', 'messages', 'dedup', 'devices')") == 4);
  BOOST_TEST(raw_int(path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode") == 1);
  open_sqlite(path);  // an up-to-date file opens again
  BOOST_TEST(raw_int(path, "PRAGMA user_version") == 4);
}

BOOST_AUTO_TEST_CASE(newer_schema_is_refused) {
  temp_dir dir;
  const std::string path = dir.file("store.db");
  open_sqlite(path);
  raw_exec(path, "PRAGMA user_version = 5");
  const std::string error = open_failure(path);
  BOOST_TEST(contains(error, path));
  BOOST_TEST(contains(error, "schema version 5 is newer"));
}

BOOST_AUTO_TEST_CASE(foreign_database_is_refused) {
  temp_dir dir;
  const std::string path = dir.file("other.db");
  raw_exec(path, "CREATE TABLE notes(body TEXT)");
  const std::string error = open_failure(path);
  BOOST_TEST(contains(error, "not a switchboard database"));
  BOOST_TEST(raw_int(path, "SELECT count(*) FROM sqlite_master") == 1);  // left untouched
}

BOOST_AUTO_TEST_CASE(garbage_file_is_refused) {
  temp_dir dir;
  std::string page(4096, '\0');
  for (std::size_t i = 0; i < page.size(); ++i)
    page[i] = static_cast<char>((i * 7919 + 13) % 251);
  for (const std::string& bytes : {page, std::string("this is not a database, just text\n")}) {
    BOOST_TEST_CONTEXT("garbage of " << bytes.size() << " bytes") {
      const std::string path = dir.file("garbage.db");
      write_file(path, bytes);
      const std::string error = open_failure(path);
      BOOST_TEST(error == "cannot use database " + path + ": file is not a database");
    }
  }
}

BOOST_AUTO_TEST_CASE(second_open_is_refused) {
  temp_dir dir;
  const std::string path = dir.file("store.db");
  open_sqlite(path);  // created and closed: the next open migrates nothing, writes nothing
  {
    auto first = open_sqlite(path);

    const std::string error = open_failure(path);
    BOOST_TEST(contains(error, path));
    BOOST_TEST(contains(error, "database is locked"));
    BOOST_TEST(error.find('\n') == std::string::npos);

    // Another process, as a second server would be.
    const pid_t child = fork();
    BOOST_TEST_REQUIRE(child >= 0);
    if (child == 0) {
      try {
        sb::sqlite_backend b(path, sync_mode::normal, {});
        _exit(0);
      } catch (const sb::open_error& e) {
        _exit(contains(e.what(), "database is locked") ? 3 : 4);
      } catch (...) {
        _exit(5);
      }
    }
    int status = 0;
    BOOST_TEST_REQUIRE(waitpid(child, &status, 0) == child);
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 3);

    // The refused opens did not disturb the first.
    BOOST_TEST(append_one(*first, msg(1, 2, "still working")).results.at(0).seq == 1u);
    BOOST_TEST(contains(open_failure(path), "database is locked"));
  }
  auto again = open_sqlite(path);  // free once the first is closed
  BOOST_TEST(again->position(2) == (sb::user_position{1, 0}));
}

BOOST_AUTO_TEST_CASE(unusable_path_is_refused) {
  temp_dir dir;
  const std::string missing = dir.file("no/such/dir/store.db");
  const std::string error = open_failure(missing);
  BOOST_TEST(error == "cannot use database " + missing +
                          ": unable to open database file (No such file or directory)");

  if (geteuid() == 0) {
    BOOST_TEST_MESSAGE(
        "running as root, where file modes do not stop writes: the read-only file case is not "
        "tested, only the missing directory above");
    return;
  }
  const std::string path = dir.file("store.db");
  open_sqlite(path);
  std::filesystem::permissions(path, std::filesystem::perms::owner_read);
  BOOST_TEST(contains(open_failure(path), "not writable"));
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::permissions(
      dir.path(), std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  BOOST_TEST(open_failure(dir.file("new.db")) != "");
}

BOOST_AUTO_TEST_CASE(full_disk_stores_nothing_and_recovers) {
  temp_dir dir;
  const std::string path = dir.file("store.db");
  auto b = open_sqlite(path);
  append_one(*b, msg(1, 2, "before", 1000, text_id("before")));
  append_one(*b, msg(1, 3, "before", 1000));

  b->set_max_page_count(1);  // SQLite keeps it at the current size: no room to grow
  const std::string big(20000, 'x');
  const std::vector<sb::append_request> batch{msg(1, 2, big, 2000, text_id("lost")),
                                              msg(1, 3, big, 2001), msg(1, 2, big, 2002)};
  BOOST_CHECK_THROW(b->append(batch), sb::unavailable);
  BOOST_CHECK_THROW(b->append(batch), sb::unavailable);  // still full, still clean

  // Nothing of the batch, and reads still work.
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1}), boost::test_tools::per_element());
  BOOST_TEST(held_seqs(*b, 3) == (seqs{1}), boost::test_tools::per_element());
  BOOST_TEST(b->position(2) == (sb::user_position{1, 0}));
  BOOST_TEST(b->position(3) == (sb::user_position{1, 0}));

  b->set_max_page_count(1'000'000);
  const auto outcome = b->append(batch);
  BOOST_TEST_REQUIRE(outcome.results.size() == 3u);
  // No gap, and the failed batch's id was not remembered.
  BOOST_TEST(of(outcome.results[0]) == (receipt{true, 2, 2, 2000}));
  BOOST_TEST(of(outcome.results[1]) == (receipt{true, 3, 2, 2001}));
  BOOST_TEST(of(outcome.results[2]) == (receipt{true, 2, 3, 2002}));
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(b->fetch(2, 1, 1, unlimited).at(0).content == big);

  b.reset();
  auto reopened = open_sqlite(path);
  BOOST_TEST(reopened->position(2) == (sb::user_position{3, 0}));
  BOOST_TEST(held_seqs(*reopened, 3) == (seqs{1, 2}), boost::test_tools::per_element());
}

// A file made by schema 1 (before --inbox-bytes) is upgraded in place: its
// held bytes are counted once, at the open, and the bound applies to what
// it held already.
BOOST_AUTO_TEST_CASE(schema_1_file_is_upgraded_in_place) {
  temp_dir dir;
  const std::string path = dir.file("v1.db");
  // Schema 1 as that version created it (the schema of lib/switchboard/
  // store/sqlite_backend.cpp at a10baa6, unchanged since 7180ae5; d1629b3
  // made schema 2), with rows in it.
  raw_exec(path, R"sql(
      CREATE TABLE users(
        user_id INTEGER PRIMARY KEY,
        highest INTEGER NOT NULL,
        cursor INTEGER NOT NULL,
        held INTEGER NOT NULL
      );
      CREATE TABLE messages(
        receiver INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        sender INTEGER NOT NULL,
        content TEXT NOT NULL,
        ts INTEGER NOT NULL,
        client_id TEXT,
        client_id_is_number INTEGER NOT NULL,
        PRIMARY KEY(receiver, seq)
      ) WITHOUT ROWID;
      CREATE INDEX messages_by_ts ON messages(ts);
      CREATE TABLE dedup(
        sender INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        receiver INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY(sender, client_id)
      ) WITHOUT ROWID;
      CREATE INDEX dedup_by_ts ON dedup(ts);
      INSERT INTO users VALUES(2, 4, 1, 3), (3, 1, 0, 1), (4, 2, 2, 0);
      INSERT INTO messages VALUES
        (2, 2, 1, 'caf' || char(233), 1000, 'a', 0),
        (2, 3, 1, CAST(x'00410042' AS TEXT), 1001, NULL, 0),
        (2, 4, 1, printf('%.40c', 'x'), 1002, NULL, 0),
        (3, 1, 1, printf('%.30c', 'y'), 1003, NULL, 0);
      PRAGMA user_version = 1;
  )sql");
  sb::backend_limits limits;
  limits.inbox_bytes = 50;
  // The file is locked while a backend has it open: the raw reads of the
  // test come between the opens.
  {
    auto b = open_sqlite(path, limits);
    BOOST_TEST(b->position(2) == (sb::user_position{4, 1}));
    BOOST_TEST(b->fetch(2, 2, 1, unlimited).at(0).content == std::string("\0A\0B", 4));
  }
  BOOST_TEST(raw_int(path, "PRAGMA user_version") == 4);
  // 'café' is 5 bytes, and the NULs count: 5 + 4 + 40.
  BOOST_TEST(raw_int(path, "SELECT held_bytes FROM users WHERE user_id = 2") == 49);
  BOOST_TEST(raw_int(path, "SELECT held_bytes FROM users WHERE user_id = 3") == 30);
  BOOST_TEST(raw_int(path, "SELECT held_bytes FROM users WHERE user_id = 4") == 0);
  {
    auto b = open_sqlite(path, limits);
    // 49 + 1 = 50 fits; one byte more and the oldest (5 bytes) goes.
    BOOST_TEST(append_one(*b, msg(1, 2, "z")).evicted == 0u);
    BOOST_TEST(append_one(*b, msg(1, 2, "z")).evicted == 1u);
    BOOST_TEST(held_seqs(*b, 2) == (seqs{3, 4, 5, 6}), boost::test_tools::per_element());
  }
  BOOST_TEST(raw_int(path, "SELECT held_bytes FROM users WHERE user_id = 2") == 46);
}

// A file made by schema 2 (the release before devices) is upgraded in
// place: each user's cursor becomes its default device's, seen at the
// upgrade, and a new device reads what is still held.
BOOST_AUTO_TEST_CASE(schema_2_file_is_upgraded_in_place) {
  temp_dir dir;
  const std::string path = dir.file("v2.db");
  // Schema 2 as that version created it (migrations 1 and 2 of lib/
  // switchboard/store/sqlite_backend.cpp at 2c0a5da), with rows in it.
  raw_exec(path, R"sql(
      CREATE TABLE users(
        user_id INTEGER PRIMARY KEY,
        highest INTEGER NOT NULL,
        cursor INTEGER NOT NULL,
        held INTEGER NOT NULL
      );
      CREATE TABLE messages(
        receiver INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        sender INTEGER NOT NULL,
        content TEXT NOT NULL,
        ts INTEGER NOT NULL,
        client_id TEXT,
        client_id_is_number INTEGER NOT NULL,
        PRIMARY KEY(receiver, seq)
      ) WITHOUT ROWID;
      CREATE INDEX messages_by_ts ON messages(ts);
      CREATE TABLE dedup(
        sender INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        receiver INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY(sender, client_id)
      ) WITHOUT ROWID;
      CREATE INDEX dedup_by_ts ON dedup(ts);
      ALTER TABLE users ADD COLUMN held_bytes INTEGER NOT NULL DEFAULT 0;
      INSERT INTO users VALUES(2, 4, 2, 2, 2), (3, 1, 0, 1, 1);
      INSERT INTO messages VALUES
        (2, 3, 1, 'c', 1001, NULL, 0),
        (2, 4, 1, 'd', 1002, NULL, 0),
        (3, 1, 1, 'y', 1003, NULL, 0);
      PRAGMA user_version = 2;
  )sql");
  const auto before = unix_ms();
  {
    auto b = open_sqlite(path);
    BOOST_TEST(b->position(2) == (sb::user_position{4, 2}));
    BOOST_TEST(b->position(3) == (sb::user_position{1, 0}));
    const auto phone = *sb::device_name::parse("phone");
    BOOST_TEST(b->open(2, phone, unix_ms()) == (sb::user_position{4, 0}));
    BOOST_TEST(held_seqs(*b, 2) == (seqs{3, 4}), boost::test_tools::per_element());
    // The phone passes 4; the default device still holds it.
    b->advance_cursor(2, phone, 4);
    BOOST_TEST(held_seqs(*b, 2) == (seqs{3, 4}), boost::test_tools::per_element());
    b->advance_cursor(2, 4);
    BOOST_TEST(held_seqs(*b, 2).empty());
    b->close(2, phone, unix_ms());
    // Groups (section 10) are in the same step: an upgraded file takes them,
    // and the old rows read as direct messages.
    BOOST_TEST((b->add_member(5, 2) == sb::membership_change::done));
    BOOST_TEST((b->add_member(5, 3) == sb::membership_change::done));
    const auto sent = append_one(*b, group_msg(3, 5, "g"));
    BOOST_TEST(sent.results.at(0).gseq == 1u);
    BOOST_TEST(copies_of(sent) == (copies{{2, 5}}), boost::test_tools::per_element());
    const auto three = b->fetch(3, 0, 10, unlimited);
    BOOST_TEST_REQUIRE(three.size() == 1u);
    BOOST_TEST(three[0].group == 0u);
    BOOST_TEST(three[0].gseq == 0u);
  }
  BOOST_TEST(raw_int(path, "PRAGMA user_version") == 4);
  BOOST_TEST(raw_int(path, "SELECT count(*) FROM devices WHERE user_id = 3 AND device = ''") == 1);
  // Seen at the upgrade (whole seconds), so not forgotten for --device-ttl.
  BOOST_TEST(raw_int(path, "SELECT seen FROM devices WHERE user_id = 3") >= before - 1000);
  BOOST_TEST(raw_int(path, "SELECT floor_seq FROM users WHERE user_id = 2") == 4);
}

// A file made by schema 3 is upgraded in place to 4 (issue 14: retention
// through users.oldest_ts instead of messages_by_ts, dedup as a rowid
// table with a unique (sender, client_id)). The rows are those that main
// at fdf90be (schema 3) wrote for this sequence, as `sqlite3 .dump` printed
// them: users 1 and 5 send to 2 (two devices: the default one at seq 2,
// the phone at 5), 1 to 3, 1 to group 7 of {1, 2, 3}, two notify-messages
// from 5 (the first covered by a "delivered" STATUS, seq 1 of user 5),
// ids of both kinds.
BOOST_AUTO_TEST_CASE(schema_3_file_is_upgraded_in_place) {
  temp_dir dir;
  const std::string path = dir.file("v3.db");
  raw_exec(path, R"sql(
      CREATE TABLE users(
        user_id INTEGER PRIMARY KEY,
        highest INTEGER NOT NULL,
        floor_seq INTEGER NOT NULL,
        held INTEGER NOT NULL
      , held_bytes INTEGER NOT NULL DEFAULT 0);
      INSERT INTO users VALUES(2,6,2,4,5);
      INSERT INTO users VALUES(3,2,0,2,2);
      INSERT INTO users VALUES(5,1,0,1,0);
      CREATE TABLE messages(
        receiver INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        sender INTEGER NOT NULL,
        content TEXT NOT NULL,
        ts INTEGER NOT NULL,
        client_id TEXT,
        client_id_is_number INTEGER NOT NULL, group_id INTEGER NOT NULL DEFAULT 0, gseq INTEGER NOT NULL DEFAULT 0, status INTEGER NOT NULL DEFAULT 0, upto INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(receiver, seq)
      ) WITHOUT ROWID;
      INSERT INTO messages VALUES(2,3,4,'c',1002,NULL,0,0,0,0,0);
      INSERT INTO messages VALUES(2,4,1,'g',1004,'g-1',0,7,1,0,0);
      INSERT INTO messages VALUES(2,5,5,'n',1005,'n-1',0,0,0,0,0);
      INSERT INTO messages VALUES(2,6,5,'n2',1006,'n-2',0,0,0,0,0);
      INSERT INTO messages VALUES(3,1,1,'x',1003,'c-3',0,0,0,0,0);
      INSERT INTO messages VALUES(3,2,1,'g',1004,'g-1',0,7,1,0,0);
      INSERT INTO messages VALUES(5,1,2,'',2001,NULL,0,0,0,1,5);
      CREATE TABLE dedup(
        sender INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        receiver INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL, group_id INTEGER NOT NULL DEFAULT 0, gseq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(sender, client_id)
      ) WITHOUT ROWID;
      INSERT INTO dedup VALUES(1,'2',2,2,1001,0,0);
      INSERT INTO dedup VALUES(1,'c-1',2,1,1000,0,0);
      INSERT INTO dedup VALUES(1,'c-3',3,1,1003,0,0);
      INSERT INTO dedup VALUES(1,'g-1',0,0,1004,7,1);
      INSERT INTO dedup VALUES(5,'n-1',2,5,1005,0,0);
      INSERT INTO dedup VALUES(5,'n-2',2,6,1006,0,0);
      CREATE TABLE devices(
        user_id INTEGER NOT NULL,
        device TEXT NOT NULL,
        cursor INTEGER NOT NULL,
        seen INTEGER NOT NULL,
        PRIMARY KEY(user_id, device)
      ) WITHOUT ROWID;
      INSERT INTO devices VALUES(2,'',2,6000);
      INSERT INTO devices VALUES(2,'phone',5,6000);
      CREATE TABLE groups(
        group_id INTEGER PRIMARY KEY,
        gseq INTEGER NOT NULL
      );
      INSERT INTO "groups" VALUES(7,1);
      CREATE TABLE group_members(
        group_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        PRIMARY KEY(group_id, user_id)
      ) WITHOUT ROWID;
      INSERT INTO group_members VALUES(7,1);
      INSERT INTO group_members VALUES(7,2);
      INSERT INTO group_members VALUES(7,3);
      CREATE TABLE notify(
        receiver INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        sender INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        delivered INTEGER NOT NULL,
        PRIMARY KEY(receiver, seq)
      ) WITHOUT ROWID;
      INSERT INTO notify VALUES(2,5,5,1005,1);
      INSERT INTO notify VALUES(2,6,5,1006,0);
      CREATE INDEX messages_by_ts ON messages(ts);
      CREATE INDEX dedup_by_ts ON dedup(ts);
      CREATE INDEX devices_by_seen ON devices(seen);
      CREATE INDEX group_members_by_user ON group_members(user_id, group_id);
      CREATE INDEX notify_by_ts ON notify(ts);
      CREATE INDEX notify_undelivered ON notify(receiver, seq) WHERE delivered = 0;
      PRAGMA user_version = 3;
  )sql");
  const auto phone = *sb::device_name::parse("phone");
  sb::backend_limits limits;
  limits.retention = std::chrono::seconds(60);
  {
    auto b = open_sqlite(path, limits);
    BOOST_TEST(b->position(2) == (sb::user_position{6, 2}));
    BOOST_TEST(b->position(2, phone) == (sb::user_position{6, 5}));
    BOOST_TEST(held_seqs(*b, 2) == (seqs{3, 4, 5, 6}), boost::test_tools::per_element());
    // Resends within the window: the original receipts, direct (both kinds
    // of id) and group; nothing stored.
    BOOST_TEST(of(append_one(*b, msg(1, 9, "again", 1010, text_id("c-1"))).results.at(0)) ==
               (receipt{false, 2, 1, 1000}));
    BOOST_TEST(of(append_one(*b, msg(1, 9, "again", 1010, number_id("2"))).results.at(0)) ==
               (receipt{false, 2, 2, 1001}));
    const auto group_again = append_one(*b, group_msg(1, 7, "again", 1010, text_id("g-1")));
    BOOST_TEST(!group_again.results.at(0).stored);
    BOOST_TEST(group_again.results.at(0).gseq == 1u);
    BOOST_TEST(held_seqs(*b, 9).empty());
    // New messages take the next seqs, direct and group.
    BOOST_TEST(of(append_one(*b, msg(4, 2, "d", 1011, text_id("d-1"))).results.at(0)) ==
               (receipt{true, 2, 7, 1011}));
    const auto group_new = append_one(*b, group_msg(3, 7, "h", 1012));
    BOOST_TEST(group_new.results.at(0).gseq == 2u);
    BOOST_TEST(copies_of(group_new) == (copies{{1, 1}, {2, 8}}), boost::test_tools::per_element());
    // The notify-message still undelivered (seq 6) gets its STATUS when the
    // phone passes it: the next entry of user 5.
    const auto moved = b->advance_cursor(sb::cursor_move{2, 6, phone, 3000});
    BOOST_TEST_REQUIRE(moved.statuses.size() == 1u);
    BOOST_TEST(moved.statuses[0].receiver == 5u);
    BOOST_TEST(moved.statuses[0].seq == 2u);
    BOOST_TEST(moved.statuses[0].upto == 6u);
    // Retention: rows of ts below now - 60 s go, found through oldest_ts
    // as the migration computed it.
    BOOST_TEST(b->evict_expired(1003 + 60000) == 1u);
    BOOST_TEST(held_seqs(*b, 2) == (seqs{4, 5, 6, 7, 8}), boost::test_tools::per_element());
    BOOST_TEST(held_seqs(*b, 3) == (seqs{1, 2}), boost::test_tools::per_element());
  }
  BOOST_TEST(raw_int(path, "PRAGMA user_version") == 4);
  BOOST_TEST(raw_int(path,
                     "SELECT count(*) FROM sqlite_master WHERE name IN "
                     "('messages_by_ts', 'dedup_by_ts')") == 0);
  BOOST_TEST(raw_int(path,
                     "SELECT count(*) FROM sqlite_master WHERE name IN "
                     "('users_by_oldest', 'dedup_by_id')") == 2);
  BOOST_TEST(raw_int(path, "SELECT count(*) FROM dedup") == 7);
  BOOST_TEST(raw_int(path, "SELECT oldest_ts FROM users WHERE user_id = 3") == 1003);
  BOOST_TEST(raw_int(path, "SELECT oldest_ts FROM users WHERE user_id = 2") == 1004);
  BOOST_TEST(raw_int(path, "SELECT oldest_ts FROM users WHERE user_id = 5") == 2001);
  BOOST_TEST(raw_int(path, "SELECT held FROM users WHERE user_id = 2") == 5);
  BOOST_TEST(
      raw_int(path, "SELECT held_bytes FROM users WHERE user_id = 2") ==
      raw_int(path, "SELECT sum(length(CAST(content AS BLOB))) FROM messages WHERE receiver = 2"));
}

// users.held_bytes stays equal to what the rows hold after every kind of
// delete (limit, bytes, cursor, retention), across a reopen.
BOOST_AUTO_TEST_CASE(held_bytes_match_the_rows) {
  temp_dir dir;
  const std::string path = dir.file("store.db");
  sb::backend_limits limits;
  limits.inbox_limit = 4;
  limits.inbox_bytes = 100;
  limits.retention = std::chrono::seconds(60);
  const auto sum_of_rows = [&](int user) {
    return raw_int(path,
                   "SELECT coalesce(sum(length(CAST(content AS BLOB))), 0) FROM messages "
                   "WHERE receiver = " +
                       std::to_string(user));
  };
  const auto counted = [&](int user) {
    return raw_int(path, "SELECT held_bytes FROM users WHERE user_id = " + std::to_string(user));
  };
  // Each step on a backend opened for it: the file is locked while it is open.
  const auto step = [&](const std::function<void(sb::sqlite_backend&)>& f) {
    auto b = open_sqlite(path, limits);
    f(*b);
  };
  step([](sb::sqlite_backend& b) {
    // 10, 17, ... 52 bytes: the bytes bound keeps seqs 6 and 7 (45 + 52).
    for (int i = 0; i < 7; ++i)
      append_one(b, msg(1, 2, std::string(static_cast<std::size_t>(10 + 7 * i), 'a'), 1000 + i));
    BOOST_TEST(held_seqs(b, 2) == (seqs{6, 7}), boost::test_tools::per_element());
  });
  BOOST_TEST(counted(2) == sum_of_rows(2));
  BOOST_TEST(counted(2) == 97);
  step([](sb::sqlite_backend& b) { b.advance_cursor(2, 6); });
  BOOST_TEST(counted(2) == sum_of_rows(2));
  BOOST_TEST(counted(2) == 52);
  step([](sb::sqlite_backend& b) {
    append_one(b, msg(1, 2, "late", 50000));   // 56
    BOOST_TEST(b.evict_expired(61007) == 1u);  // seq 7 (ts 1006)
    BOOST_TEST(held_seqs(b, 2) == (seqs{8}), boost::test_tools::per_element());
  });
  BOOST_TEST(counted(2) == sum_of_rows(2));
  BOOST_TEST(counted(2) == 4);
  step([](sb::sqlite_backend& b) {
    append_one(b, msg(1, 2, std::string(96, 'b'), 60000));
    BOOST_TEST(held_seqs(b, 2) == (seqs{8, 9}), boost::test_tools::per_element());
    BOOST_TEST(append_one(b, msg(1, 2, "c", 60001)).evicted == 1u);
  });
  BOOST_TEST(counted(2) == sum_of_rows(2));
  BOOST_TEST(counted(2) == 97);
}

BOOST_AUTO_TEST_CASE(inbox_limit_count_survives_reopen) {
  // users.held must match the rows after every kind of delete.
  temp_dir dir;
  const std::string path = dir.file("store.db");
  sb::backend_limits limits;
  limits.inbox_limit = 3;
  limits.retention = std::chrono::seconds(60);
  {
    auto b = open_sqlite(path, limits);
    for (int i = 0; i < 5; ++i)
      append_one(*b, msg(1, 2, "m", 1000 + i));  // holds 3, 4, 5
    b->advance_cursor(2, 3);                     // holds 4, 5
    BOOST_TEST(b->evict_expired(61004) == 1u);   // holds 5
  }
  auto b = open_sqlite(path, limits);
  const std::vector<sb::append_request> two{msg(1, 2, "n", 70000), msg(1, 2, "n", 70001)};
  BOOST_TEST(b->append(two).evicted == 0u);  // 5, 6, 7
  BOOST_TEST(append_one(*b, msg(1, 2, "n", 70002)).evicted == 1u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{6, 7, 8}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

// ---- Redis only ----
//
// What the cluster relies on beyond the shared behaviour: expiry by TTL in
// real time (short windows and sleeps of about a second), a hung Redis, and
// what two nodes on one Redis tell each other through the route_sink.

namespace {

// Every way an append can fail as a whole: thrown unavailable, or every
// message refused (a script that found its deadline passed).
bool refused(backend_under_test& b, std::span<const sb::append_request> batch) {
  try {
    const auto outcome = b.append(batch);
    return !outcome.results.empty() &&
           std::all_of(outcome.results.begin(), outcome.results.end(),
                       [](const sb::append_result& r) { return r.refused; });
  } catch (const sb::unavailable&) {
    return true;
  }
}

std::vector<sb::seq_t> routed_seqs(const recording_sink& sink, sb::user_id user) {
  std::vector<sb::seq_t> out;
  for (const auto& m : sink.messages)
    if (m.receiver == user) out.push_back(m.seq);
  return out;
}

std::size_t routed_count(const recording_sink& sink, sb::user_id user) {
  return routed_seqs(sink, user).size();
}

bool has_kick(const recording_sink& sink, const kick& k) {
  return std::find(sink.kicks.begin(), sink.kicks.end(), k) != sink.kicks.end();
}

// The lines of redis-cli's output, sorted.
std::vector<std::string> sorted_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  std::sort(out.begin(), out.end());
  return out;
}

// Two nodes of one cluster on a private Redis. Members go in reverse: the
// backends (locals of the test) stop first, then the runner drains.
struct cluster {
  recording_sink sink_a, sink_b;
  switchboard::metrics stats_a, stats_b;
  runner run;
  redis_server server;

  sb::redis_settings settings(std::string node, sb::backend_limits limits = {}) {
    return redis_settings_for(server, std::move(node), limits);
  }
  std::unique_ptr<backend_under_test> node_a(sb::redis_settings s) {
    return start_redis(run, std::move(s), sink_a, stats_a);
  }
  std::unique_ptr<backend_under_test> node_b(sb::redis_settings s) {
    return start_redis(run, std::move(s), sink_b, stats_b);
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(redis, cluster)

// --retention 1: a message older than the retention is not replayed, both
// when its inbox sees no more appends (the key expires) and when it does
// (every 16th append trims the head; each append renews the key's TTL, so
// only the trim can drop it).
BOOST_AUTO_TEST_CASE(retention_in_real_time) {
  sb::backend_limits limits;
  limits.retention = std::chrono::seconds(1);
  auto b = node_a(settings("node-a", limits));
  const auto t0 = unix_ms();
  append_one(*b, msg(1, 2, "left alone", t0));
  append_one(*b, msg(1, 3, "old", t0));
  for (int i = 2; i <= 15; ++i) {
    run.run_for(100ms);
    BOOST_TEST(append_one(*b, msg(1, 3, "new", unix_ms())).results.at(0).seq == sb::seq_t(i));
  }
  run.run_for(100ms);
  const auto ts16 = unix_ms();
  const auto last = append_one(*b, msg(1, 3, "16th", ts16));
  BOOST_TEST(last.results.at(0).seq == 16u);
  BOOST_TEST(last.evicted >= 1u);  // "old", and the others older than 1 s by now

  const auto held = b->fetch(3, 0, 100);
  BOOST_TEST_REQUIRE(!held.empty());
  BOOST_TEST(held.front().seq > 1u);
  BOOST_TEST(held.back().seq == 16u);
  BOOST_TEST(held.size() + last.evicted == 16u);  // a tail with no hole, the rest counted
  for (std::size_t i = 0; i < held.size(); ++i) {
    BOOST_TEST(held[i].seq == held.front().seq + i);
    BOOST_TEST(held[i].ts_ms >= ts16 - 1000);
    BOOST_TEST(held[i].content != "old");
  }
  BOOST_TEST(b->position(3) == (sb::user_position{16, 0}));

  // User 2's inbox went as a whole; its seq did not.
  BOOST_TEST(b->fetch(2, 0, 100).empty());
  BOOST_TEST(b->position(2) == (sb::user_position{1, 0}));
  BOOST_TEST(append_one(*b, msg(1, 2, "after", unix_ms())).results.at(0).seq == 2u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{2}), boost::test_tools::per_element());
}

// {u:R}:inbox_bytes is kept in step with the list by every path that
// pushes or pops (the bounds, the retention trim of every 16th append),
// expires with the list, and an inbox written before it existed is counted
// once on its next append.
BOOST_AUTO_TEST_CASE(inbox_bytes_counter_in_step_with_the_list) {
  sb::backend_limits limits;
  limits.inbox_limit = 20;
  limits.inbox_bytes = 300;
  limits.retention = std::chrono::seconds(3600);
  auto b = node_a(settings("node-a", limits));
  // It holds 1 + the bytes (a missing counter is told from an empty inbox).
  const auto counter = [&] {
    return std::to_string(std::stoll(server.cli({"GET", "{u:2}:inbox_bytes"})) - 1);
  };
  const auto list_bytes = [&] {
    std::size_t total = 0;
    for (const auto& m : b->fetch(2, 0, 1000))
      total += m.content.size();
    return std::to_string(total);
  };
  const auto t0 = unix_ms();
  for (int i = 0; i < 40; ++i)
    append_one(*b,
               msg(1, 2, std::string(static_cast<std::size_t>(i % 7) * 9, 'a'), t0,
                   i % 3 == 0 ? std::optional(text_id("i" + std::to_string(i))) : std::nullopt));
  BOOST_TEST(counter() == list_bytes());
  // The counter expires, and not before the list: twice its TTL, renewed
  // every 16th append.
  const auto inbox_ttl = std::stoll(server.cli({"PTTL", "{u:2}:inbox"}));
  const auto counter_ttl = std::stoll(server.cli({"PTTL", "{u:2}:inbox_bytes"}));
  BOOST_TEST(inbox_ttl > 0);
  BOOST_TEST(counter_ttl > inbox_ttl);
  BOOST_TEST(counter_ttl <= 2 * 3600 * 1000);

  // Acknowledged entries older than the grace go in the 16th-append trim:
  // dated an hour back they are past it.
  b->advance_cursor(2, 38);
  for (int i = 0; i < 16; ++i)
    append_one(*b, msg(1, 2, "b", t0 + 3'000'000));
  BOOST_TEST(counter() == list_bytes());

  // An inbox from before the counter (or whose counter expired first) is
  // counted again from the list on its next append.
  server.cli({"DEL", "{u:2}:inbox_bytes"});
  append_one(*b, msg(1, 2, "cc", t0 + 3'000'001));
  BOOST_TEST(counter() == list_bytes());
  // A counter that outlived its list (the list expired) starts again.
  server.cli({"SET", "{u:5}:inbox_bytes", "12345"});
  append_one(*b, msg(1, 5, "four", t0));
  BOOST_TEST(server.cli({"GET", "{u:5}:inbox_bytes"}) == "5\n");
}

// --dedup-window 1: the entry is forgotten once the window passed in real
// time (its TTL), as a sweep forgets it on the other backends.
BOOST_AUTO_TEST_CASE(dedup_entry_forgotten_after_the_window) {
  sb::backend_limits limits;
  limits.dedup_window = std::chrono::seconds(1);
  auto b = node_a(settings("node-a", limits));
  const auto t0 = unix_ms();
  append_one(*b, msg(1, 2, "x", t0, text_id("x")));  // seq 1
  append_one(*b, msg(1, 2, "y", t0, text_id("y")));  // seq 2
  BOOST_TEST(of(append_one(*b, msg(1, 2, "x", unix_ms(), text_id("x"))).results.at(0)) ==
             (receipt{false, 2, 1, t0}));

  run.run_for(1200ms);
  // The window counts from the original's ts to the resend's: a new message.
  const auto later = unix_ms();
  BOOST_TEST(of(append_one(*b, msg(1, 2, "x", later, text_id("x"))).results.at(0)) ==
             (receipt{true, 2, 3, later}));
  // The entry is kept longer than the window, for a rerun after a lost
  // reply (redis_scripts.hpp), and no longer than that needs.
  const auto kept = std::stoll(server.cli({"PTTL", "{u:1}:dedup:y"}));
  BOOST_TEST(kept > 55000);
  BOOST_TEST(kept <= 60000);
  const auto now = unix_ms();
  BOOST_TEST(of(append_one(*b, msg(1, 2, "y", now, text_id("y"))).results.at(0)) ==
             (receipt{true, 2, 4, now}));
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1, 2, 3, 4}), boost::test_tools::per_element());
}

// A Redis that hangs (SIGSTOP): appends fail as a whole within the call
// deadline, the script that Redis runs once it wakes up stores nothing
// (it finds its deadline passed), and the backend recovers by itself: it
// brings the users with a session here up to date, and seqs go on with no
// gap.
BOOST_AUTO_TEST_CASE(hung_redis_stores_nothing_and_recovers) {
  auto s = settings("node-a");
  s.deadline = 500ms;
  s.answer_budget = 1200ms;  // a rerun may start up to 700 ms after the first call
  auto b = node_a(s);
  b->open(2, "watcher");
  BOOST_TEST(append_one(*b, msg(1, 2, "before", unix_ms())).results.at(0).seq == 1u);
  BOOST_REQUIRE(run.run_until([&] { return routed_count(sink_a, 2) == 1; }));
  sink_a.inbox_at_calls.clear();

  server.pause();
  const auto ts = unix_ms();
  const std::vector<sb::append_request> batch{msg(1, 2, "lost", ts, text_id("lost")),
                                              msg(1, 3, "lost too", ts)};
  const auto started = steady_clock::now();
  BOOST_TEST(refused(*b, batch));
  const auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - started);
  BOOST_TEST(took.count() < 1500);  // the 500 ms deadline, and slack
  BOOST_TEST(run.run_until([&] { return !b->available(); }, 3000ms));
  BOOST_TEST(refused(*b, batch));  // while down, too
  run.run_for(1000ms);             // long enough for the subscriber to give up as well
  BOOST_TEST(!b->available());

  server.resume();
  BOOST_REQUIRE_MESSAGE(run.run_until([&] { return b->available(); }, 10000ms),
                        "the backend did not recover within 10 s of Redis answering again");
  // The session here is told where its inbox stands, though nothing new came.
  BOOST_TEST(run.run_until([&] {
    return std::any_of(sink_a.inbox_at_calls.begin(), sink_a.inbox_at_calls.end(),
                       [](const inbox_at_call& c) { return c.user == 2 && c.highest == 1; });
  }));

  BOOST_TEST(b->position(2) == (sb::user_position{1, 0}));
  BOOST_TEST(b->position(3) == (sb::user_position{0, 0}));
  BOOST_TEST(b->fetch(2, 1, 100).empty());
  BOOST_TEST(b->fetch(3, 0, 100).empty());

  // The id of the refused batch was not remembered; no gap.
  const auto outcome = b->append(batch);
  BOOST_TEST_REQUIRE(outcome.results.size() == 2u);
  BOOST_TEST(of(outcome.results[0]) == (receipt{true, 2, 2, ts}));
  BOOST_TEST(of(outcome.results[1]) == (receipt{true, 3, 1, ts}));
  BOOST_TEST(b->fetch(2, 1, 100).at(0).content == "lost");
  BOOST_TEST(run.run_until([&] { return routed_count(sink_a, 2) == 2; }));
  BOOST_TEST(routed_seqs(sink_a, 2) == (seqs{1, 2}), boost::test_tools::per_element());
  b->close(2, "watcher");
}

// Redis wakes up after the script's deadline (half the call's) but before
// the call's own: the scripts run and refuse, and the node hears so in time
// (or, on a slow machine, the call times out first: a failure all the same).
BOOST_AUTO_TEST_CASE(script_past_its_deadline_refuses) {
  auto s = settings("node-a");
  s.deadline = 500ms;
  auto b = node_a(s);
  append_one(*b, msg(1, 2, "before", unix_ms()));

  server.pause();
  const auto ts = unix_ms();
  const std::vector<sb::append_request> batch{msg(1, 2, "late", ts, text_id("late")),
                                              msg(1, 3, "late too", ts)};
  auto pending = run.spawn(b->async().append(batch));
  run.run_for(350ms);
  server.resume();
  try {
    const auto outcome = run.wait(pending, 3000ms);
    BOOST_TEST_REQUIRE(outcome.results.size() == 2u);
    BOOST_TEST(outcome.results[0].refused);
    BOOST_TEST(outcome.results[1].refused);
  } catch (const sb::unavailable& e) {
    BOOST_TEST_MESSAGE("the call timed out before Redis answered: " << e.what());
  }
  BOOST_REQUIRE(run.run_until([&] { return b->available(); }, 10000ms));
  BOOST_TEST(b->position(2) == (sb::user_position{1, 0}));
  BOOST_TEST(b->position(3) == (sb::user_position{0, 0}));
  BOOST_TEST(of(b->append(batch).results.at(0)) == (receipt{true, 2, 2, ts}));
}

// --max-sessions-per-user counts the whole cluster; the oldest session goes,
// on whichever node it is, and every node subscribed to the user hears it.
BOOST_AUTO_TEST_CASE(session_limit_kicks_the_oldest_in_the_cluster) {
  auto settings_a = settings("node-a");
  settings_a.max_sessions_per_user = 2;
  auto settings_b = settings("node-b");
  settings_b.max_sessions_per_user = 2;
  auto a = node_a(settings_a);
  auto b = node_b(settings_b);

  append_one(*a, msg(1, 7, "hello"));
  BOOST_TEST(a->open(7, "a1") == (sb::user_position{1, 0}));
  BOOST_TEST(b->open(7, "b1") == (sb::user_position{1, 0}));
  BOOST_TEST(b->open(8, "other-user") == (sb::user_position{0, 0}));
  run.run_for(100ms);
  BOOST_TEST(sink_a.kicks.empty());
  BOOST_TEST(sink_b.kicks.empty());

  b->open(7, "b2");  // the third: a1 on node A goes
  BOOST_TEST(run.run_until([&] {
    return has_kick(sink_a, {7, "a1"}) && has_kick(sink_b, {7, "a1"});
  }));
  BOOST_TEST(sink_a.kicks == (std::vector<kick>{{7, "a1"}}), boost::test_tools::per_element());
  BOOST_TEST(sink_b.kicks == (std::vector<kick>{{7, "a1"}}), boost::test_tools::per_element());
  BOOST_TEST(sorted_lines(server.cli({"HKEYS", "{u:7}:sessions"})) ==
                 (std::vector<std::string>{"#", "b1", "b2"}),
             boost::test_tools::per_element());

  a->open(7, "a2");  // then b1, the oldest left
  BOOST_TEST(run.run_until([&] {
    return has_kick(sink_a, {7, "b1"}) && has_kick(sink_b, {7, "b1"});
  }));
  BOOST_TEST(sorted_lines(server.cli({"HKEYS", "{u:7}:sessions"})) ==
                 (std::vector<std::string>{"#", "a2", "b2"}),
             boost::test_tools::per_element());

  // The layer above closes the replaced sessions; a closed session stops
  // counting at once, so a new one replaces nobody.
  a->close(7, "a1");
  b->close(7, "b1");
  b->close(7, "b2");
  b->open(7, "b3");
  run.run_for(100ms);
  BOOST_TEST(sink_a.kicks.size() == 2u);
  BOOST_TEST(sink_b.kicks.size() == 2u);
  BOOST_TEST(sorted_lines(server.cli({"HKEYS", "{u:7}:sessions"})) ==
                 (std::vector<std::string>{"#", "a2", "b3"}),
             boost::test_tools::per_element());
  a->close(7, "a2");
  b->close(7, "b3");
  b->close(8, "other-user");
  BOOST_TEST(
      sorted_lines(server.cli({"HKEYS", "{u:7}:sessions"})) == (std::vector<std::string>{"#"}),
      boost::test_tools::per_element());
}

// Section 9 in the open script: the session replaced is the oldest of the
// same device, on whichever node; the session hash names each one's device.
BOOST_AUTO_TEST_CASE(the_session_replaced_is_the_oldest_of_the_same_device) {
  auto settings_a = settings("node-a");
  settings_a.max_sessions_per_user = 2;
  auto settings_b = settings("node-b");
  settings_b.max_sessions_per_user = 2;
  auto a = node_a(settings_a);
  auto b = node_b(settings_b);
  a->open(7, "laptop-1", "laptop");
  b->open(7, "phone-1", "phone");
  b->open(7, "phone-2", "phone");  // the laptop is older, but phone-1 goes
  BOOST_TEST(run.run_until([&] { return has_kick(sink_a, {7, "phone-1"}); }));
  BOOST_TEST(sorted_lines(server.cli({"HKEYS", "{u:7}:sessions"})) ==
                 (std::vector<std::string>{"#", "laptop-1", "phone-2"}),
             boost::test_tools::per_element());
  BOOST_TEST(server.cli({"HGET", "{u:7}:sessions", "laptop-1"}).find(" d:laptop node-a") !=
             std::string::npos);
  b->close(7, "phone-1", "phone");
  a->open(7, "tablet-1", "tablet");  // no other tablet: the oldest, the laptop
  BOOST_TEST(run.run_until([&] { return has_kick(sink_b, {7, "laptop-1"}); }));
  a->close(7, "laptop-1", "laptop");
  a->close(7, "tablet-1", "tablet");
  b->close(7, "phone-2", "phone");
}

// Forgetting in real time on Redis's clock: a device whose last session
// ended more than --device-ttl ago starts again at 0; one seen since keeps
// its place.
BOOST_AUTO_TEST_CASE(a_device_is_forgotten_on_the_redis_clock) {
  sb::backend_limits limits;
  limits.device_ttl = std::chrono::seconds(1);  // forgotten 1.125 s after
  auto a = node_a(settings("node-a", limits));
  for (int i = 0; i < 3; ++i)
    append_one(*a, msg(1, 7, "x"));
  a->open(7, "p1", "phone");
  a->open(7, "l1", "laptop");
  a->advance_cursor(7, 3, "laptop");
  a->advance_cursor(7, 2, "phone");
  a->close(7, "l1", "laptop");
  BOOST_TEST(a->position(7, "laptop") == (sb::user_position{3, 3}));
  run.run_for(1500ms);
  // The phone's session is open: its lease keeps it seen.
  BOOST_TEST(a->open(7, "l2", "laptop") == (sb::user_position{3, 0}));
  BOOST_TEST(a->open(7, "p2", "phone") == (sb::user_position{3, 2}));
  a->close(7, "l2", "laptop");
  a->close(7, "p1", "phone");
  a->close(7, "p2", "phone");
}

// Messages reach every node with a session of their receiver, whichever node
// stored them, in seq order; a node without one hears nothing of them.
BOOST_AUTO_TEST_CASE(appended_messages_are_routed_in_seq_order) {
  auto a = node_a(settings("node-a"));
  auto b = node_b(settings("node-b"));
  BOOST_TEST(a->async().routes_messages());

  a->open(2, "s2");
  const std::vector<sb::append_request> first{msg(1, 2, "m1", 1001), msg(1, 3, "x", 1002),
                                              msg(1, 2, "m2", 1003)};
  b->append(first);
  append_one(*a, msg(4, 2, "m3", 1004, text_id("c-3")));
  std::vector<sb::append_request> many;
  for (int i = 4; i <= 23; ++i)
    many.push_back(msg(5, 2, "m" + std::to_string(i), 1000 + i));
  b->append(many);

  BOOST_REQUIRE(run.run_until([&] { return routed_count(sink_a, 2) == 23; }));
  std::vector<sb::seq_t> expected;
  for (sb::seq_t i = 1; i <= 23; ++i)
    expected.push_back(i);
  BOOST_TEST(routed_seqs(sink_a, 2) == expected, boost::test_tools::per_element());
  BOOST_TEST(sink_a.messages.size() == 23u);  // nothing of user 3
  BOOST_TEST(sink_a.messages[0].content == "m1");
  BOOST_TEST(sink_a.messages[0].sender == 1u);
  BOOST_TEST(sink_a.messages[0].ts_ms == 1001);
  BOOST_TEST(sink_a.messages[2].sender == 4u);
  BOOST_TEST_REQUIRE(sink_a.messages[2].id.has_value());
  BOOST_TEST(sink_a.messages[2].id->value == "c-3");
  BOOST_TEST(sink_a.messages[22].content == "m23");
  BOOST_TEST(sink_b.messages.empty());

  // After the session closed, the node hears no more of the user: a
  // message to another user subscribed here, sent after, marks the end.
  a->open(3, "s3");
  a->close(2, "s2");
  append_one(*b, msg(1, 2, "after close", 2000));
  append_one(*b, msg(1, 3, "marker", 2001));
  BOOST_REQUIRE(run.run_until([&] { return routed_count(sink_a, 3) == 1; }));
  BOOST_TEST(routed_count(sink_a, 2) == 23u);
  BOOST_TEST(routed_seqs(sink_a, 3) == (seqs{2}), boost::test_tools::per_element());
  a->close(3, "s3");
}

// A node that dies without closing its sessions: they stop counting toward
// the limit once their lease lapses, and nobody is kicked for them.
BOOST_AUTO_TEST_CASE(dead_node_sessions_are_forgotten_after_their_lease) {
  auto settings_a = settings("node-a");
  settings_a.max_sessions_per_user = 2;
  auto settings_b = settings("node-b");
  settings_b.max_sessions_per_user = 2;
  settings_b.session_lease = 300ms;
  auto a = node_a(settings_a);
  auto b = node_b(settings_b);
  b->open(7, "b1");
  b->open(7, "b2");
  b->async().stop();  // no close, no more renewals: as after kill -9
  run.run_for(500ms);

  a->open(7, "a1");
  run.run_for(200ms);
  BOOST_TEST(sink_a.kicks.empty());
  BOOST_TEST(sorted_lines(server.cli({"HKEYS", "{u:7}:sessions"})) ==
                 (std::vector<std::string>{"#", "a1"}),
             boost::test_tools::per_element());
  a->close(7, "a1");
}

// The fetch script computes in Lua doubles: a huge count must still work
// (it once reached Redis as "1.15e+18" and was refused).
BOOST_AUTO_TEST_CASE(fetch_with_an_unbounded_count_returns_everything) {
  auto b = node_a(settings("node-a"));
  for (int i = 0; i < 3; ++i)
    append_one(*b, msg(1, 2, "x"));
  BOOST_TEST(seqs_of(b->fetch(2, 0, std::numeric_limits<std::size_t>::max())) == (seqs{1, 2, 3}),
             boost::test_tools::per_element());
  BOOST_TEST(seqs_of(b->fetch(2, 1, std::size_t(1) << 60)) == (seqs{2, 3}),
             boost::test_tools::per_element());
}

// After a Redis that keeps nothing restarts, a node that had a session of
// the user across the restart must report what Redis holds, not the highest
// seq it saw published before (the resync lowers it).
BOOST_AUTO_TEST_CASE(position_after_an_empty_restart_is_what_redis_holds) {
  auto a = node_a(settings("node-a"));
  a->open(2, "s1");
  for (int i = 0; i < 3; ++i)
    append_one(*a, msg(1, 2, "before", unix_ms()));
  BOOST_REQUIRE(run.run_until([&] { return routed_count(sink_a, 2) == 3; }));
  sink_a.inbox_at_calls.clear();

  server.restart();  // no persistence: every seq and inbox is gone
  BOOST_REQUIRE(run.run_until([&] { return !a->available(); }));
  BOOST_REQUIRE(run.run_until([&] { return a->available(); }, 10000ms));
  BOOST_REQUIRE(run.run_until([&] { return !sink_a.inbox_at_calls.empty(); }));
  BOOST_TEST(sink_a.inbox_at_calls[0].user == 2u);
  BOOST_TEST(sink_a.inbox_at_calls[0].highest == 0u);

  BOOST_TEST(a->open(2, "s2") == (sb::user_position{0, 0}));
  BOOST_TEST(append_one(*a, msg(1, 2, "after", unix_ms())).results.at(0).seq == 1u);
  BOOST_TEST(a->open(2, "s3") == (sb::user_position{1, 0}));
  for (const auto* id : {"s1", "s2", "s3"})
    a->close(2, id);
}

BOOST_AUTO_TEST_SUITE_END()
