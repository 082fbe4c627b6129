// The storage backends (store/backend.hpp): the same behaviour tests run
// against the memory and the SQLite backend; then the SQLite backend's own
// promises (reopen, schema version, refusing files it cannot use, full disk).
#define BOOST_TEST_MODULE store_backend
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/mpl/list.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <system_error>
#include <vector>

#include "switchboard/store/memory_backend.hpp"
#include "switchboard/store/sqlite_backend.hpp"

namespace switchboard::store {

// For Boost.Test's failure messages.
std::ostream& operator<<(std::ostream& os, const user_position& p) {
  return os << "{highest " << p.highest << ", cursor " << p.cursor << "}";
}

}  // namespace switchboard::store

namespace {

namespace sb = switchboard::store;
using switchboard::sync_mode;

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

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

// The backends under test, each made fresh per test case.
struct memory_kind {
  std::unique_ptr<sb::backend> open(sb::backend_limits limits = {}) {
    return std::make_unique<sb::memory_backend>(limits);
  }
};

struct sqlite_kind {
  temp_dir dir;
  std::unique_ptr<sb::backend> open(sb::backend_limits limits = {}) {
    return std::make_unique<sb::sqlite_backend>(dir.file("store.db"), sync_mode::normal, limits);
  }
};

using backend_kinds = boost::mpl::list<memory_kind, sqlite_kind>;

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

sb::append_outcome append_one(sb::backend& b, sb::append_request request) {
  const std::vector<sb::append_request> batch{std::move(request)};
  return b.append(batch);
}

std::vector<sb::seq_t> seqs_of(const std::vector<sb::stored_message>& messages) {
  std::vector<sb::seq_t> seqs;
  for (const auto& m : messages)
    seqs.push_back(m.seq);
  return seqs;
}

std::vector<sb::seq_t> held_seqs(sb::backend& b, sb::user_id user) {
  return seqs_of(b.fetch(user, 0, 1000));
}

using seqs = std::vector<sb::seq_t>;

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
  BOOST_TEST(b->fetch(2, 0, 0).empty());
  BOOST_TEST(b->fetch(2, max_u64, 100).empty());
  BOOST_TEST(b->fetch(3, 0, 100).empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(cursor_clamps_and_drops_acknowledged, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  for (int i = 0; i < 5; ++i)
    append_one(*b, msg(1, 2, "x"));

  b->advance_cursor(2, 2);
  BOOST_TEST(b->position(2) == (sb::user_position{5, 2}));
  BOOST_TEST(held_seqs(*b, 2) == (seqs{3, 4, 5}), boost::test_tools::per_element());
  // Asking from below the cursor still gives only what is held.
  BOOST_TEST(seqs_of(b->fetch(2, 1, 100)) == (seqs{3, 4, 5}), boost::test_tools::per_element());

  b->advance_cursor(2, 1);  // below the cursor: nothing changes
  BOOST_TEST(b->position(2) == (sb::user_position{5, 2}));
  b->advance_cursor(2, 2);  // at the cursor: nothing changes
  BOOST_TEST(b->position(2) == (sb::user_position{5, 2}));

  b->advance_cursor(2, 100);  // above highest: clamped
  BOOST_TEST(b->position(2) == (sb::user_position{5, 5}));
  BOOST_TEST(b->fetch(2, 0, 100).empty());

  b->advance_cursor(2, max_u64);
  BOOST_TEST(b->position(2) == (sb::user_position{5, 5}));

  BOOST_TEST(append_one(*b, msg(1, 2, "y")).results.at(0).seq == 6u);
  BOOST_TEST(held_seqs(*b, 2) == (seqs{6}), boost::test_tools::per_element());

  b->advance_cursor(42, 10);  // a user with nothing: stays at zero
  BOOST_TEST(b->position(42) == (sb::user_position{0, 0}));
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
  const auto held = b->fetch(5, 0, 100);
  BOOST_TEST_REQUIRE(held.size() == 1u);
  BOOST_TEST(held[0].content == "n");
  BOOST_TEST_REQUIRE(held[0].id.has_value());
  BOOST_TEST(held[0].id->value == "17");
  BOOST_TEST(held[0].id->is_number);

  // Messages without an id are never de-duplicated.
  append_one(*b, msg(1, 6, "same"));
  BOOST_TEST(append_one(*b, msg(1, 6, "same")).results.at(0).seq == 2u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(dedup_expires_after_the_window, Kind, backend_kinds) {
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

  append_one(*b, msg(1, 2, "y", 20000, text_id("y")));  // seq 3
  BOOST_TEST(b->evict_expired(30000) == 0u);            // ts 20000 is not older than 30000 - 10s
  BOOST_TEST(append_one(*b, msg(1, 2, "y", 20500, text_id("y"))).results.at(0).stored == false);
  BOOST_TEST(b->evict_expired(30001) == 0u);  // retention is a week: no message goes
  // Dropped by evict_expired, so even a resend dated inside the window is new.
  BOOST_TEST(of(append_one(*b, msg(1, 2, "y", 20500, text_id("y"))).results.at(0)) ==
             (receipt{true, 2, 4, 20500}));
  BOOST_TEST(held_seqs(*b, 2) == (seqs{1, 2, 3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(retention_drops_old_messages, Kind, backend_kinds) {
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
}

BOOST_AUTO_TEST_CASE_TEMPLATE(extreme_ids_and_content_round_trip, Kind, backend_kinds) {
  Kind kind;
  auto b = kind.open();
  const std::string content = std::string("nul \0 inside, ", 14) + "caf\xc3\xa9";
  const auto outcome =
      append_one(*b, msg(max_u64, max_u64, content, -5, text_id(std::string(64, 'z'))));
  BOOST_TEST(of(outcome.results.at(0)) == (receipt{true, max_u64, 1, -5}));
  append_one(*b, msg(max_u64 - 1, max_u64, "second", 0));
  const auto held = b->fetch(max_u64, 0, 10);
  BOOST_TEST_REQUIRE(held.size() == 2u);
  BOOST_TEST(held[0].sender == max_u64);
  BOOST_TEST(held[0].receiver == max_u64);
  BOOST_TEST(held[0].content == content);
  BOOST_TEST(held[0].ts_ms == -5);
  BOOST_TEST(held[0].id->value == std::string(64, 'z'));
  BOOST_TEST(held[1].sender == max_u64 - 1);
  BOOST_TEST(b->position(max_u64) == (sb::user_position{2, 0}));
  BOOST_TEST(b->position(1) == (sb::user_position{0, 0}));
  BOOST_TEST(of(append_one(*b, msg(max_u64, 1, "again", 7, text_id(std::string(64, 'z'))))
                    .results.at(0)) == (receipt{false, max_u64, 1, -5}));
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
      const auto held = b->fetch(2, 0, 100);
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
  BOOST_TEST(sb::sqlite_backend::schema_version() == 1);
  BOOST_TEST(raw_int(path, "PRAGMA user_version") == 1);
  BOOST_TEST(raw_int(path,
                     "SELECT count(*) FROM sqlite_master WHERE name IN "
                     "('users', 'messages', 'dedup')") == 3);
  BOOST_TEST(raw_int(path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode") == 1);
  open_sqlite(path);  // an up-to-date file opens again
  BOOST_TEST(raw_int(path, "PRAGMA user_version") == 1);
}

BOOST_AUTO_TEST_CASE(newer_schema_is_refused) {
  temp_dir dir;
  const std::string path = dir.file("store.db");
  open_sqlite(path);
  raw_exec(path, "PRAGMA user_version = 2");
  const std::string error = open_failure(path);
  BOOST_TEST(contains(error, path));
  BOOST_TEST(contains(error, "schema version 2 is newer"));
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
  BOOST_TEST(b->fetch(2, 1, 1).at(0).content == big);

  b.reset();
  auto reopened = open_sqlite(path);
  BOOST_TEST(reopened->position(2) == (sb::user_position{3, 0}));
  BOOST_TEST(held_seqs(*reopened, 3) == (seqs{1, 2}), boost::test_tools::per_element());
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
