#include "switchboard/store/sqlite_backend.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <utility>

namespace switchboard::store {

namespace {

// The schema, one step per version: migrations[i] takes a file from
// user_version i to i + 1, in place, inside the transaction that opens the
// file. Append new steps; never edit a released one, files in the field were
// made by it (test_store_backend.cpp keeps a file made by each old version).
//
// held_bytes() in SQL: length(CAST(content AS BLOB)), the bytes of the
// content as stored (length() of the TEXT would count characters and stop
// at a NUL).
constexpr std::array<std::string_view, 4> migrations = {
    // 1: the first schema.
    // users.held counts the user's rows in messages, so that --inbox-limit
    // costs no COUNT(*) per append. Every message row is above its
    // receiver's cursor: rows at or below it are deleted when it moves.
    // messages_by_ts and dedup_by_ts serve the expiry deletes.
    R"sql(
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
    )sql",
    // 2: users.held_bytes, the held_bytes() of the user's rows in messages,
    // so that --inbox-bytes costs no SUM() per append; counted once here
    // for the rows a file of version 1 holds.
    R"sql(
      ALTER TABLE users ADD COLUMN held_bytes INTEGER NOT NULL DEFAULT 0;
      UPDATE users SET held_bytes = (
        SELECT coalesce(sum(length(CAST(content AS BLOB))), 0) FROM messages
        WHERE messages.receiver = users.user_id);
    )sql",
    // 3: devices (PROTOCOL.md section 9). Each device of a user has its own
    // cursor and its last sighting (ms since the Unix epoch); users.cursor
    // becomes users.floor_seq, the point up to which messages are deleted
    // (the lowest cursor of the user's devices when it last rose). A file
    // of version 2 had one cursor per user: it becomes the default
    // device's (""), seen at the upgrade, so that it is not forgotten
    // before --device-ttl has passed.
    R"sql(
      ALTER TABLE users RENAME COLUMN cursor TO floor_seq;
      CREATE TABLE devices(
        user_id INTEGER NOT NULL,
        device TEXT NOT NULL,
        cursor INTEGER NOT NULL,
        seen INTEGER NOT NULL,
        PRIMARY KEY(user_id, device)
      ) WITHOUT ROWID;
      CREATE INDEX devices_by_seen ON devices(seen);
      INSERT INTO devices(user_id, device, cursor, seen)
        SELECT user_id, '', floor_seq, CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM users;
      -- Groups (PROTOCOL.md section 10), in the same unreleased step. A
      -- group's row keeps its last gseq for ever (never reused), also once
      -- it has no member; group_members_by_user serves GET
      -- /api/users/U/groups. A message or dedup row of a group message has
      -- its group and gseq (0: a direct one; a group dedup row has receiver
      -- and seq 0).
      CREATE TABLE groups(
        group_id INTEGER PRIMARY KEY,
        gseq INTEGER NOT NULL
      );
      CREATE TABLE group_members(
        group_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        PRIMARY KEY(group_id, user_id)
      ) WITHOUT ROWID;
      CREATE INDEX group_members_by_user ON group_members(user_id, group_id);
      ALTER TABLE messages ADD COLUMN group_id INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE messages ADD COLUMN gseq INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE dedup ADD COLUMN group_id INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE dedup ADD COLUMN gseq INTEGER NOT NULL DEFAULT 0;
    )sql"
    // Also 3: STATUS entries and notify-messages (PROTOCOL.md section 11).
    // A messages row is a message (status 0) or a STATUS (1 delivered,
    // 2 read, with the receiver's point in upto; sender is the user it is
    // about, content empty). notify holds a receiver's notify-messages
    // that no "read" STATUS covered yet, `delivered` once a "delivered"
    // one did; its rows go with the read, past --retention (notify_by_ts)
    // or once --inbox-limit newer seqs came (notify_forgotten).
    R"sql(
      ALTER TABLE messages ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE messages ADD COLUMN upto INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE notify(
        receiver INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        sender INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        delivered INTEGER NOT NULL,
        PRIMARY KEY(receiver, seq)
      ) WITHOUT ROWID;
      CREATE INDEX notify_by_ts ON notify(ts);
      -- A cursor move marks what is not yet delivered: through this index
      -- it does not walk the delivered rows that wait for a READ.
      CREATE INDEX notify_undelivered ON notify(receiver, seq) WHERE delivered = 0;
    )sql",
    // 4: no index entry per message or per dedup entry for the expiry
    // sweeps (issue 14: each was an index insert per SEND and, for
    // messages, an index delete per delivered message). users.oldest_ts is
    // a lower bound of the ts of the user's rows (NULL with none): the
    // sweep finds the users with expired rows through users_by_oldest and
    // deletes those users' expired rows. dedup becomes a rowid table, its
    // rows in the order they were written, with (sender, client_id)
    // unique: the sweep deletes from the front while the entries are past
    // the window (an older entry behind a newer one waits; an entry past
    // its window is never taken for a resend anyway).
    R"sql(
      ALTER TABLE users ADD COLUMN oldest_ts INTEGER;
      UPDATE users SET oldest_ts = (
        SELECT min(ts) FROM messages WHERE messages.receiver = users.user_id);
      CREATE INDEX users_by_oldest ON users(oldest_ts) WHERE oldest_ts IS NOT NULL;
      DROP INDEX messages_by_ts;
      CREATE TABLE dedup_4(
        sender INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        receiver INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        group_id INTEGER NOT NULL DEFAULT 0,
        gseq INTEGER NOT NULL DEFAULT 0
      );
      INSERT INTO dedup_4(sender, client_id, receiver, seq, ts, group_id, gseq)
        SELECT sender, client_id, receiver, seq, ts, group_id, gseq FROM dedup ORDER BY ts;
      DROP TABLE dedup;
      ALTER TABLE dedup_4 RENAME TO dedup;
      CREATE UNIQUE INDEX dedup_by_id ON dedup(sender, client_id);
    )sql",
};

constexpr std::int64_t max_int64 = std::numeric_limits<std::int64_t>::max();

// A failed SQLite call. It never leaves this file: the constructor turns it
// into open_error and the operations into unavailable.
class sqlite_error : public std::runtime_error {
 public:
  sqlite_error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

[[noreturn]] void fail(sqlite3* db, int code) {
  // sqlite3_errmsg(nullptr) is "out of memory", which is what a null handle means.
  std::string message = sqlite3_errmsg(db);
  const int primary = code & 0xff;
  if ((primary == SQLITE_CANTOPEN || primary == SQLITE_IOERR) && db != nullptr &&
      sqlite3_system_errno(db) != 0) {
    // "unable to open database file" alone does not tell the operator why.
    message += " (";
    message += std::strerror(sqlite3_system_errno(db));
    message += ")";
  }
  throw sqlite_error(code, message);
}

// SQLite integers are int64; see the header for why the bit pattern is kept.
constexpr std::int64_t to_db(std::uint64_t value) {
  return static_cast<std::int64_t>(value);
}
constexpr std::uint64_t from_db(std::int64_t value) {
  return static_cast<std::uint64_t>(value);
}

// Every operation after the open maps a SQLite failure to unavailable, the
// one error the store worker knows how to answer (ERROR `unavailable`).
template <class F>
auto or_unavailable(F&& f) {
  try {
    return f();
  } catch (const sqlite_error& e) {
    throw unavailable(std::string("sqlite store: ") + e.what());
  }
}

void exec(sqlite3* db, const char* sql) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) fail(db, rc);
}

}  // namespace

// ---- statement ----

class sqlite_backend::statement::use {
 public:
  explicit use(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~use() {
    // The error code was already reported by step().
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  use(const use&) = delete;
  use& operator=(const use&) = delete;

  use& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  // Not copied (SQLITE_STATIC): `text` must outlive this use, which ends
  // with the bindings cleared.
  use& bind(int index, std::string_view text) {
    check(sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8));
    return *this;
  }
  use& bind_null(int index) {
    check(sqlite3_bind_null(stmt_, index));
    return *this;
  }

  // true: a row is ready; false: done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(sqlite3_db_handle(stmt_), rc);
  }

  std::int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  // The size in bytes of a TEXT column, without copying it.
  std::size_t text_bytes(int column) const {
    return static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
  }
  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string text(int column) const {
    // With its length: content may hold NUL characters (JSON "\u0000").
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
    return data == nullptr ? std::string() : std::string(data, size);
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(sqlite3_db_handle(stmt_), rc);
  }

  sqlite3_stmt* stmt_;
};

sqlite_backend::statement::~statement() {
  sqlite3_finalize(stmt_);
}

void sqlite_backend::statement::prepare(sqlite3* db, std::string_view sql) {
  // PERSISTENT: these live as long as the connection.
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  if (rc != SQLITE_OK) fail(db, rc);
}

sqlite_backend::statement::use sqlite_backend::statement::start() {
  return use(stmt_);
}

void sqlite_backend::db_closer::operator()(sqlite3* db) const noexcept {
  // _v2: never fails for want of finalized statements; they are all
  // finalized before this runs anyway.
  sqlite3_close_v2(db);
}

// ---- open ----

namespace {

// One-off statements of the open sequence; the operations use the prepared ones.
std::int64_t query_int(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) fail(db, rc);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owner(stmt, sqlite3_finalize);
  rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW) fail(db, rc);
  return sqlite3_column_int64(stmt, 0);
}

std::string query_text(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) fail(db, rc);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owner(stmt, sqlite3_finalize);
  rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW) fail(db, rc);
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  return text == nullptr ? std::string() : std::string(text);
}

void configure(sqlite3* db, sync_mode sync) {
  // A second server on the same file must fail now, not wait for the lock.
  sqlite3_busy_timeout(db, 0);
  // SQLITE_OPEN_READWRITE silently falls back to read-only on a file that
  // cannot be written; every SEND would then fail.
  if (sqlite3_db_readonly(db, "main") == 1) {
    throw sqlite_error(SQLITE_READONLY, "the file is not writable");
  }
  // Before the switch to WAL: in exclusive mode SQLite keeps the WAL index in
  // process memory (no -shm file) and never lets go of the file lock.
  exec(db, "PRAGMA locking_mode=EXCLUSIVE");
  // The first statement that reads the file: a garbage file fails here with
  // "file is not a database", a file held by another server with "database
  // is locked".
  const std::string journal = query_text(db, "PRAGMA journal_mode=WAL");
  if (journal != "wal") {
    throw sqlite_error(SQLITE_ERROR, "cannot use WAL mode (journal_mode is " + journal + ")");
  }
  exec(db, sync == sync_mode::full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

void migrate(sqlite3* db) {
  // BEGIN IMMEDIATE takes the write lock, which locking_mode=EXCLUSIVE then
  // keeps until the connection closes: from here on no other process can use
  // the file.
  exec(db, "BEGIN IMMEDIATE");
  try {
    const std::int64_t known = static_cast<std::int64_t>(migrations.size());
    const std::int64_t version = query_int(db, "PRAGMA user_version");
    if (version > known || version < 0) {
      throw sqlite_error(SQLITE_ERROR, "schema version " + std::to_string(version) +
                                           " is newer than this server knows (" +
                                           std::to_string(known) + "); run a newer switchboard");
    }
    if (version == 0 && query_int(db, "SELECT count(*) FROM sqlite_master") != 0) {
      throw sqlite_error(SQLITE_ERROR, "not a switchboard database (tables but no schema version)");
    }
    for (std::int64_t step = version; step < known; ++step) {
      exec(db, std::string(migrations[static_cast<std::size_t>(step)]).c_str());
    }
    if (version != known) {
      exec(db, ("PRAGMA user_version = " + std::to_string(known)).c_str());
    }
    exec(db, "COMMIT");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace

sqlite_backend::sqlite_backend(const std::string& path, sync_mode sync, backend_limits limits)
    : limits_(limits) {
  // Before SQLite initializes (it refuses later, harmlessly): no memory
  // statistics, whose global mutex every allocation of every statement
  // took (docs/performance.md).
  static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)memstatus_off;
  try {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(
        path.c_str(), &db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
        nullptr);
    db_.reset(db);  // closed on every way out, failed opens included
    if (rc != SQLITE_OK) fail(db, rc);
    configure(db, sync);
    migrate(db);
    prepare_statements();
  } catch (const sqlite_error& e) {
    std::string reason = e.what();
    if ((e.code() & 0xff) == SQLITE_BUSY) reason += " (another switchboard is using it?)";
    throw open_error("cannot use database " + path + ": " + reason);
  }
}

sqlite_backend::~sqlite_backend() = default;

int sqlite_backend::schema_version() {
  return static_cast<int>(migrations.size());
}

void sqlite_backend::prepare_statements() {
  sqlite3* db = db_.get();
  begin_.prepare(db, "BEGIN IMMEDIATE");
  commit_.prepare(db, "COMMIT");
  rollback_.prepare(db, "ROLLBACK");
  select_user_.prepare(
      db, "SELECT highest, floor_seq, held, held_bytes, oldest_ts FROM users WHERE user_id = ?1");
  write_user_.prepare(db,
                      "INSERT INTO users(user_id, highest, floor_seq, held, held_bytes, oldest_ts) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
                      "ON CONFLICT(user_id) DO UPDATE SET highest = excluded.highest, "
                      "floor_seq = excluded.floor_seq, held = excluded.held, "
                      "held_bytes = excluded.held_bytes, oldest_ts = excluded.oldest_ts");
  select_device_.prepare(db, "SELECT cursor, seen FROM devices WHERE user_id = ?1 AND device = ?2");
  write_device_.prepare(db,
                        "INSERT INTO devices(user_id, device, cursor, seen) VALUES(?1, ?2, ?3, ?4) "
                        "ON CONFLICT(user_id, device) DO UPDATE SET cursor = excluded.cursor, "
                        "seen = excluded.seen");
  move_cursor_.prepare(db, "UPDATE devices SET cursor = ?3 WHERE user_id = ?1 AND device = ?2");
  lowest_cursor_.prepare(db, "SELECT min(cursor), count(*) FROM devices WHERE user_id = ?1");
  devices_by_seen_.prepare(db, "SELECT device FROM devices WHERE user_id = ?1 ORDER BY seen");
  select_stale_devices_.prepare(db, "SELECT user_id, device FROM devices WHERE seen < ?1");
  delete_device_.prepare(db, "DELETE FROM devices WHERE user_id = ?1 AND device = ?2");
  insert_message_.prepare(db,
                          "INSERT INTO messages(receiver, seq, sender, content, ts, client_id, "
                          "client_id_is_number, group_id, gseq, status, upto) "
                          "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  insert_notify_.prepare(db,
                         "INSERT OR REPLACE INTO notify(receiver, seq, sender, ts, delivered) "
                         "VALUES(?1, ?2, ?3, ?4, 0)");
  forget_notify_.prepare(db, "DELETE FROM notify WHERE receiver = ?1 AND seq <= ?2");
  any_notify_.prepare(db, "SELECT 1 FROM notify WHERE receiver = ?1 AND seq <= ?2 LIMIT 1");
  // The probe before deliver_notify_: most cursor moves cover no
  // notify-message, and an UPDATE ... RETURNING costs an ephemeral table
  // even when it changes nothing.
  any_undelivered_.prepare(db,
                           "SELECT 1 FROM notify INDEXED BY notify_undelivered "
                           "WHERE receiver = ?1 AND seq <= ?2 AND delivered = 0 LIMIT 1");
  // INDEXED BY: without ANALYZE statistics the planner would take the
  // primary key and walk every delivered row still waiting for a READ.
  deliver_notify_.prepare(db,
                          "UPDATE notify INDEXED BY notify_undelivered SET delivered = 1 "
                          "WHERE receiver = ?1 AND seq <= ?2 AND delivered = 0 RETURNING sender");
  read_notify_.prepare(db,
                       "DELETE FROM notify WHERE receiver = ?1 AND seq <= ?2 "
                       "RETURNING sender, delivered");
  expire_notify_.prepare(db, "DELETE FROM notify WHERE ts < ?1");
  select_dedup_.prepare(db,
                        "SELECT receiver, seq, ts, group_id, gseq FROM dedup "
                        "WHERE sender = ?1 AND client_id = ?2");
  // ON CONFLICT ... WHERE: an entry past its window (?6) that
  // evict_expired() has not reached yet is taken over; one within it is
  // left alone, and sqlite3_changes() says so.
  claim_dedup_.prepare(db,
                       "INSERT INTO dedup(sender, client_id, receiver, seq, ts, group_id, gseq) "
                       "VALUES(?1, ?2, ?3, ?4, ?5, 0, 0) "
                       "ON CONFLICT(sender, client_id) DO UPDATE SET receiver = excluded.receiver, "
                       "seq = excluded.seq, ts = excluded.ts, group_id = 0, gseq = 0 "
                       "WHERE dedup.ts < ?6");
  // REPLACE: an entry past its window that evict_expired() has not reached yet.
  write_dedup_.prepare(db,
                       "INSERT OR REPLACE INTO dedup(sender, client_id, receiver, seq, ts, "
                       "group_id, gseq) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  select_gseq_.prepare(db, "SELECT gseq FROM groups WHERE group_id = ?1");
  write_gseq_.prepare(db,
                      "INSERT INTO groups(group_id, gseq) VALUES(?1, ?2) "
                      "ON CONFLICT(group_id) DO UPDATE SET gseq = excluded.gseq");
  is_member_.prepare(db, "SELECT 1 FROM group_members WHERE group_id = ?1 AND user_id = ?2");
  count_members_.prepare(db, "SELECT count(*) FROM group_members WHERE group_id = ?1");
  // Unordered in SQL: ids above 2^63 are negative there (see the header).
  select_members_.prepare(db, "SELECT user_id FROM group_members WHERE group_id = ?1");
  select_groups_of_.prepare(db, "SELECT group_id FROM group_members WHERE user_id = ?1");
  insert_member_.prepare(db,
                         "INSERT OR IGNORE INTO group_members(group_id, user_id) VALUES(?1, ?2)");
  delete_member_.prepare(db, "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2");
  // In primary key order: the walk stops at the first row it keeps.
  select_oldest_.prepare(db,
                         "SELECT seq, length(CAST(content AS BLOB)) FROM messages "
                         "WHERE receiver = ?1 ORDER BY seq");
  fetch_.prepare(db,
                 "SELECT seq, sender, content, ts, client_id, client_id_is_number, group_id, gseq, "
                 "status, upto "
                 "FROM messages "
                 "WHERE receiver = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
  // held and held_bytes drop by what delete_up_to_ deletes: counted by a
  // read of the same range first, not with RETURNING, which buffers its
  // rows in an ephemeral table (a B-tree and a pager opened and closed on
  // every execution: most of a cursor move's cost, docs/performance.md).
  measure_up_to_.prepare(db,
                         "SELECT count(*), coalesce(sum(length(CAST(content AS BLOB))), 0) "
                         "FROM messages WHERE receiver = ?1 AND seq <= ?2");
  delete_up_to_.prepare(db, "DELETE FROM messages WHERE receiver = ?1 AND seq <= ?2");
  // Retention (schema 4): the users whose oldest row may be expired, then
  // each one's expired rows, counted before they go.
  users_with_expired_.prepare(
      db, "SELECT user_id FROM users INDEXED BY users_by_oldest WHERE oldest_ts < ?1");
  measure_expired_.prepare(db,
                           "SELECT count(*), coalesce(sum(length(CAST(content AS BLOB))), 0) "
                           "FROM messages WHERE receiver = ?1 AND ts < ?2");
  delete_expired_messages_.prepare(db, "DELETE FROM messages WHERE receiver = ?1 AND ts < ?2");
  oldest_of_.prepare(db, "SELECT min(ts) FROM messages WHERE receiver = ?1");
  // From the front, in the order written, up to the first entry still in
  // its window.
  delete_expired_dedup_.prepare(db,
                                "DELETE FROM dedup WHERE rowid < coalesce("
                                "(SELECT rowid FROM dedup WHERE ts >= ?1 ORDER BY rowid LIMIT 1), "
                                "(SELECT max(rowid) + 1 FROM dedup))");
}

// ---- helpers ----

void sqlite_backend::run(statement& s) {
  auto q = s.start();
  while (q.step()) {
  }
}

template <class F>
auto sqlite_backend::in_transaction(F&& f) {
  run(begin_);
  try {
    auto result = f();
    run(commit_);
    return result;
  } catch (...) {
    rollback();
    throw;
  }
}

void sqlite_backend::rollback() noexcept {
  // Some errors (SQLITE_FULL, SQLITE_IOERR...) already rolled the whole
  // transaction back; ROLLBACK then would only fail.
  if (sqlite3_get_autocommit(db_.get()) != 0) return;
  try {
    run(rollback_);
  } catch (const sqlite_error&) {
    // Nothing better to do: the next BEGIN fails, and its caller is told.
  }
}

sqlite_backend::user_row sqlite_backend::read_user(user_id user) {
  auto q = select_user_.start();
  q.bind(1, to_db(user));
  if (!q.step()) return {};
  return user_row{from_db(q.int64(0)), from_db(q.int64(1)), from_db(q.int64(2)),
                  from_db(q.int64(3)), q.int64(4)};
}

void sqlite_backend::write_user(user_id user, const user_row& row) {
  auto q = write_user_.start();
  q.bind(1, to_db(user)).bind(2, to_db(row.highest)).bind(3, to_db(row.floor));
  q.bind(4, to_db(row.held)).bind(5, to_db(row.held_bytes));
  // NULL without rows: users_by_oldest holds only the users with some.
  if (row.held == 0) {
    q.bind_null(6);
  } else {
    q.bind(6, row.oldest_ts);
  }
  q.step();
}

void sqlite_backend::delete_up_to(user_id user, seq_t seq, user_row& row) {
  std::uint64_t rows = 0;
  std::uint64_t bytes = 0;
  {
    auto q = measure_up_to_.start();
    q.bind(1, to_db(user)).bind(2, to_db(seq));
    if (q.step()) {
      rows = from_db(q.int64(0));
      bytes = from_db(q.int64(1));
    }
  }
  if (rows == 0) return;
  auto q = delete_up_to_.start();
  q.bind(1, to_db(user)).bind(2, to_db(seq));
  q.step();
  row.held -= std::min(rows, row.held);
  row.held_bytes -= std::min(bytes, row.held_bytes);
}

std::uint64_t sqlite_backend::trim(user_id user, user_row& row) {
  const std::uint64_t must_drop =
      row.held > limits_.inbox_limit ? row.held - limits_.inbox_limit : 0;
  if (must_drop == 0 && (row.held_bytes <= limits_.inbox_bytes || row.held <= 1)) return 0;
  // The oldest rows, until both bounds hold again (the newest always stays).
  std::uint64_t dropping = 0;
  std::uint64_t freed = 0;
  seq_t last = 0;
  {
    auto q = select_oldest_.start();
    q.bind(1, to_db(user));
    while (q.step()) {
      const bool over_count = dropping < must_drop;
      const bool over_bytes =
          row.held_bytes - std::min(freed, row.held_bytes) > limits_.inbox_bytes &&
          row.held - std::min(dropping, row.held) > 1;
      if (!over_count && !over_bytes) break;
      last = from_db(q.int64(0));
      freed += from_db(q.int64(1));
      ++dropping;
    }
  }
  if (dropping == 0) return 0;
  const std::uint64_t before = row.held;
  delete_up_to(user, last, row);
  // Every row is above the floor, so some device lacks it (or none is
  // remembered): each one deleted counts as evicted.
  return before - row.held;
}

// ---- operations ----

sqlite_backend::user_row& sqlite_backend::working_row(user_id user, rows_type& rows) {
  auto [found, fresh] = rows.try_emplace(user);
  if (fresh) found->second = read_user(user);
  return found->second;
}

seq_t sqlite_backend::next_seq(user_id receiver, rows_type& rows) {
  const user_row& row = working_row(receiver, rows);
  if (row.highest >= static_cast<seq_t>(max_int64)) {
    // Unreachable in practice (2^63 messages), but a wrapped seq would sort first.
    throw sqlite_error(SQLITE_FULL, "receiver has used every seq");
  }
  return row.highest + 1;
}

seq_t sqlite_backend::store_copy(const append_request& request, user_id receiver, rows_type& rows,
                                 group_id group, seq_t gseq) {
  const seq_t seq = next_seq(receiver, rows);
  user_row& row = rows.find(receiver)->second;
  auto q = insert_message_.start();
  q.bind(1, to_db(receiver)).bind(2, to_db(seq)).bind(3, to_db(request.sender));
  q.bind(4, std::string_view(request.content)).bind(5, request.ts_ms);
  if (request.id) {
    q.bind(6, std::string_view(request.id->value));
    q.bind(7, std::int64_t{request.id->is_number ? 1 : 0});
  } else {
    q.bind_null(6).bind(7, std::int64_t{0});
  }
  q.bind(8, to_db(group)).bind(9, to_db(gseq));
  q.bind(10, std::int64_t{0}).bind(11, std::int64_t{0});
  q.step();
  row.highest = seq;
  row.add_held(request.ts_ms);
  row.held_bytes += held_bytes(request.content);
  return seq;
}

append_result sqlite_backend::store_group(const append_request& request, rows_type& rows,
                                          append_outcome& outcome) {
  append_result result;
  {
    auto q = is_member_.start();
    q.bind(1, to_db(request.group)).bind(2, to_db(request.sender));
    if (!q.step()) {
      result.stored = false;
      result.not_member = true;
      return result;
    }
  }
  seq_t gseq = 1;
  {
    auto q = select_gseq_.start();
    q.bind(1, to_db(request.group));
    if (q.step()) gseq = from_db(q.int64(0)) + 1;
  }
  {
    auto q = write_gseq_.start();
    q.bind(1, to_db(request.group)).bind(2, to_db(gseq));
    q.step();
  }
  result.group = request.group;
  result.gseq = gseq;
  result.ts_ms = request.ts_ms;
  result.first_copy = static_cast<std::uint32_t>(outcome.copies.size());
  for (const user_id member : members_of(request.group)) {
    if (member == request.sender) continue;
    outcome.copies.push_back(
        group_copy{member, store_copy(request, member, rows, request.group, gseq)});
  }
  result.copies = static_cast<std::uint32_t>(outcome.copies.size()) - result.first_copy;
  return result;
}

std::vector<user_id> sqlite_backend::members_of(group_id group) {
  std::vector<user_id> out;
  auto q = select_members_.start();
  q.bind(1, to_db(group));
  while (q.step())
    out.push_back(from_db(q.int64(0)));
  std::sort(out.begin(), out.end());
  return out;
}

append_outcome sqlite_backend::append(std::span<const append_request> batch) {
  return or_unavailable([&] { return in_transaction([&] { return append_rows(batch); }); });
}

append_outcome sqlite_backend::append_rows(std::span<const append_request> batch) {
  append_outcome outcome;
  outcome.results.reserve(batch.size());
  // Read once and written once per receiver: the batch's working copy,
  // simply dropped if the transaction fails, so nothing in memory needs
  // restoring.
  rows_type rows;
  for (const append_request& request : batch) {
    clock_ms_ = std::max(clock_ms_, request.ts_ms);
    if (request.id && request.group == 0) {
      // A direct message with an id claims its (sender, id) for the seq
      // it is about to get, in one statement: no row, or one past the
      // window, and the claim is written; one within the window, and
      // nothing changes: a resend (the rare case, read back then).
      const std::int64_t since = window_start(request.ts_ms, limits_.dedup_window);
      {
        auto q = claim_dedup_.start();
        q.bind(1, to_db(request.sender)).bind(2, std::string_view(request.id->value));
        q.bind(3, to_db(request.receiver));
        q.bind(4, to_db(next_seq(request.receiver, rows))).bind(5, request.ts_ms);
        q.bind(6, since);
        q.step();
      }
      if (sqlite3_changes(db_.get()) == 0) {
        auto q = select_dedup_.start();
        q.bind(1, to_db(request.sender)).bind(2, std::string_view(request.id->value));
        q.step();
        append_result again{false, from_db(q.int64(0)), from_db(q.int64(1)), q.int64(2)};
        again.group = from_db(q.int64(3));
        again.gseq = from_db(q.int64(4));
        outcome.results.push_back(again);
        continue;
      }
    } else if (request.id) {
      // Sees the rows written by earlier requests of this batch: same transaction.
      auto q = select_dedup_.start();
      q.bind(1, to_db(request.sender)).bind(2, std::string_view(request.id->value));
      if (q.step() && q.int64(2) >= window_start(request.ts_ms, limits_.dedup_window)) {
        append_result again{false, from_db(q.int64(0)), from_db(q.int64(1)), q.int64(2)};
        again.group = from_db(q.int64(3));
        again.gseq = from_db(q.int64(4));
        outcome.results.push_back(again);
        continue;
      }
    }
    append_result result;
    if (request.group != 0) {
      result = store_group(request, rows, outcome);
      if (result.not_member) {
        outcome.results.push_back(result);
        continue;
      }
    } else {
      const seq_t seq = store_copy(request, request.receiver, rows, 0, 0);
      result = append_result{true, request.receiver, seq, request.ts_ms};
      if (request.notify && request.id) {
        auto q = insert_notify_.start();
        q.bind(1, to_db(request.receiver)).bind(2, to_db(seq)).bind(3, to_db(request.sender));
        q.bind(4, request.ts_ms);
        q.step();
      }
    }
    if (request.id && request.group != 0) {
      auto q = write_dedup_.start();
      q.bind(1, to_db(request.sender)).bind(2, std::string_view(request.id->value));
      q.bind(3, to_db(result.receiver)).bind(4, to_db(result.seq)).bind(5, request.ts_ms);
      q.bind(6, to_db(result.group)).bind(7, to_db(result.gseq));
      q.step();
    }
    outcome.results.push_back(result);
  }
  for (auto& [user, row] : rows) {
    if (row.highest > limits_.inbox_limit) {
      // The notify-messages that no STATUS will report any more
      // (notify_forgotten): once per receiver and batch, at its end.
      auto q = forget_notify_.start();
      q.bind(1, to_db(user)).bind(2, to_db(row.highest - limits_.inbox_limit));
      q.step();
    }
    outcome.evicted += trim(user, row);
    write_user(user, row);
  }
  return outcome;
}

membership_change sqlite_backend::add_member(group_id group, user_id user) {
  return or_unavailable([&] {
    return in_transaction([&] {
      {
        auto q = is_member_.start();
        q.bind(1, to_db(group)).bind(2, to_db(user));
        if (q.step()) return membership_change::done;
      }
      {
        auto q = count_members_.start();
        q.bind(1, to_db(group));
        if (q.step() && from_db(q.int64(0)) >= limits_.max_group_members)
          return membership_change::full;
      }
      auto q = insert_member_.start();
      q.bind(1, to_db(group)).bind(2, to_db(user));
      q.step();
      return membership_change::done;
    });
  });
}

void sqlite_backend::remove_member(group_id group, user_id user) {
  or_unavailable([&] {
    return in_transaction([&] {
      auto q = delete_member_.start();
      q.bind(1, to_db(group)).bind(2, to_db(user));
      q.step();
      return 0;
    });
  });
}

std::vector<user_id> sqlite_backend::members(group_id group) {
  return or_unavailable([&] { return members_of(group); });
}

std::vector<group_id> sqlite_backend::groups_of(user_id user) {
  return or_unavailable([&] {
    std::vector<group_id> out;
    auto q = select_groups_of_.start();
    q.bind(1, to_db(user));
    while (q.step())
      out.push_back(from_db(q.int64(0)));
    std::sort(out.begin(), out.end());
    return out;
  });
}

std::optional<sqlite_backend::device_row> sqlite_backend::read_device(user_id user,
                                                                      const device_name& device) {
  auto q = select_device_.start();
  q.bind(1, to_db(user)).bind(2, device.view());
  if (!q.step()) return std::nullopt;
  return device_row{from_db(q.int64(0)), q.int64(1)};
}

void sqlite_backend::write_device(user_id user, const device_name& device, const device_row& row) {
  auto q = write_device_.start();
  q.bind(1, to_db(user)).bind(2, device.view()).bind(3, to_db(row.cursor)).bind(4, row.seen_ms);
  q.step();
}

void sqlite_backend::settle(user_id user, user_row& row) {
  seq_t lowest = 0;
  {
    auto q = lowest_cursor_.start();
    q.bind(1, to_db(user));
    // No device remembered: everything stays for the next one.
    if (!q.step() || q.int64(1) == 0) return;
    lowest = from_db(q.int64(0));
  }
  if (lowest <= row.floor) return;
  delete_up_to(user, lowest, row);
  row.floor = lowest;
  write_user(user, row);
}

user_position sqlite_backend::position(user_id user, const device_name& device) {
  return or_unavailable([&] {
    const user_row row = read_user(user);
    const auto d = read_device(user, device);
    return user_position{row.highest, d ? std::min(d->cursor, row.highest) : 0};
  });
}

user_position sqlite_backend::open(user_id user, const device_name& device, std::int64_t now_ms) {
  clock_ms_ = std::max(clock_ms_, now_ms);
  auto& open = open_[open_key{user, std::string(device.view())}];
  try {
    return or_unavailable([&] {
      // What the session gets: its device's cursor, 0 for a device new or
      // forgotten (and not swept yet: it starts again).
      auto known = read_device(user, device);
      if (known && open.sessions == 0 &&
          device_forgotten(known->seen_ms, now_ms, limits_.device_ttl))
        known->cursor = 0;
      const user_row row = read_user(user);
      const user_position position{row.highest,
                                   known ? std::min(known->cursor, row.highest) : seq_t{0}};
      ++open.sessions;
      try {
        in_transaction([&] {
          if (!known) make_room_for_device(user);
          device_row d = known.value_or(device_row{0, now_ms});
          d.seen_ms = std::max(d.seen_ms, now_ms);
          write_device(user, device, d);
          return 0;
        });
        open.seen_ms = std::max(open.seen_ms, now_ms);
      } catch (const sqlite_error&) {
        // The sighting could not be written (a full disk: appends fail and
        // say so): the session opens all the same, read-only as before
        // devices. Its device is tracked as open in memory, so it is not
        // forgotten meanwhile, and the sweep writes the sighting once it can
        // (forget_devices).
      }
      return position;
    });
  } catch (...) {
    if (open.sessions == 0) open_.erase(open_key{user, std::string(device.view())});
    throw;
  }
}

void sqlite_backend::close(user_id user, const device_name& device, std::int64_t now_ms) {
  clock_ms_ = std::max(clock_ms_, now_ms);
  const auto found = open_.find(open_key{user, std::string(device.view())});
  if (found != open_.end() && --found->second.sessions == 0) open_.erase(found);
  or_unavailable([&] {
    return in_transaction([&] {
      auto d = read_device(user, device);
      if (!d) return 0;
      d->seen_ms = std::max(d->seen_ms, now_ms);
      write_device(user, device, *d);
      return 0;
    });
  });
}

std::vector<stored_message> sqlite_backend::fetch(user_id user, seq_t after, std::size_t max_count,
                                                  std::size_t max_bytes) {
  return or_unavailable([&] {
    std::vector<stored_message> messages;
    // No seq reaches 2^63 (see the header); a larger `after` (a client's
    // `since`) would turn negative in SQL and match everything.
    if (max_count == 0 || after >= static_cast<seq_t>(max_int64)) return messages;
    auto q = fetch_.start();
    q.bind(1, to_db(user)).bind(2, to_db(after));
    q.bind(3, static_cast<std::int64_t>(
                  std::min<std::uint64_t>(max_count, static_cast<std::uint64_t>(max_int64))));
    std::size_t bytes = 0;
    while (q.step()) {
      bytes += q.text_bytes(2);
      // The first message goes whatever its size: a page always moves on.
      if (!messages.empty() && bytes > max_bytes) break;
      stored_message m;
      m.seq = from_db(q.int64(0));
      m.sender = from_db(q.int64(1));
      m.receiver = user;
      m.content = q.text(2);
      m.ts_ms = q.int64(3);
      if (!q.is_null(4)) m.id = message_id{q.text(4), q.int64(5) != 0};
      m.group = from_db(q.int64(6));
      m.gseq = from_db(q.int64(7));
      if (const auto status = q.int64(8); status != 0) {
        m.kind = entry_kind::status;
        m.state = status == 2 ? status_state::read : status_state::delivered;
        m.upto = from_db(q.int64(9));
      }
      messages.push_back(std::move(m));
    }
    return messages;
  });
}

void sqlite_backend::append_status(user_id owner, user_id about, status_state state, seq_t upto,
                                   std::int64_t ts_ms, status_outcome& out) {
  user_row row = read_user(owner);
  if (row.highest >= static_cast<seq_t>(max_int64))
    throw sqlite_error(SQLITE_FULL, "user has used every seq");
  stored_message m;
  m.seq = row.highest + 1;
  m.sender = about;
  m.receiver = owner;
  m.ts_ms = ts_ms;
  m.kind = entry_kind::status;
  m.state = state;
  m.upto = upto;
  {
    auto q = insert_message_.start();
    q.bind(1, to_db(owner)).bind(2, to_db(m.seq)).bind(3, to_db(about));
    // Not a default string_view: its null data would bind NULL.
    q.bind(4, std::string_view("", 0)).bind(5, ts_ms).bind_null(6).bind(7, std::int64_t{0});
    q.bind(8, std::int64_t{0}).bind(9, std::int64_t{0});
    q.bind(10, std::int64_t{state == status_state::read ? 2 : 1}).bind(11, to_db(upto));
    q.step();
  }
  row.highest = m.seq;
  row.add_held(ts_ms);
  out.evicted += trim(owner, row);
  write_user(owner, row);
  out.statuses.push_back(std::move(m));
}

void sqlite_backend::cover(user_id user, seq_t upto, std::int64_t ts_ms, bool read,
                           status_outcome& out) {
  // Each sender once, "delivered" before "read". Collected before
  // appending: a user may send to itself.
  std::vector<user_id> delivered;
  std::vector<user_id> read_by;
  const auto add = [](std::vector<user_id>& senders, user_id sender) {
    if (std::find(senders.begin(), senders.end(), sender) == senders.end())
      senders.push_back(sender);
  };
  if (!read) {
    auto q = any_undelivered_.start();
    q.bind(1, to_db(user)).bind(2, to_db(upto));
    if (!q.step()) return;
  }
  {
    auto q = read ? read_notify_.start() : deliver_notify_.start();
    q.bind(1, to_db(user)).bind(2, to_db(upto));
    while (q.step()) {
      const user_id sender = from_db(q.int64(0));
      if (!read || q.int64(1) == 0) add(delivered, sender);
      if (read) add(read_by, sender);
    }
  }
  for (const user_id sender : delivered)
    append_status(sender, user, status_state::delivered, upto, ts_ms, out);
  for (const user_id sender : read_by)
    append_status(sender, user, status_state::read, upto, ts_ms, out);
}

status_outcome sqlite_backend::advance_cursor(const cursor_move& move) {
  return advance_cursors(std::span<const cursor_move>(&move, 1));
}

bool sqlite_backend::moves_forward(const cursor_move& move) {
  const user_row row = read_user(move.user);
  const auto d = read_device(move.user, move.device);
  return std::min(move.seq, row.highest) > (d ? d->cursor : 0);
}

void sqlite_backend::apply_move(const cursor_move& move, status_outcome& out) {
  user_row row = read_user(move.user);
  // Never opened (cannot happen from a session): seen at clock_ms_.
  const auto known = read_device(move.user, move.device);
  auto d = known.value_or(device_row{0, clock_ms_});
  const seq_t target = std::min(move.seq, row.highest);
  if (target <= d.cursor) return;
  if (!known) {
    make_room_for_device(move.user);
    row = read_user(move.user);
  }
  d.cursor = target;
  if (known) {
    // The cursor alone: an upsert would also rewrite devices_by_seen.
    auto q = move_cursor_.start();
    q.bind(1, to_db(move.user)).bind(2, move.device.view()).bind(3, to_db(target));
    q.step();
  } else {
    write_device(move.user, move.device, d);
  }
  settle(move.user, row);
  cover(move.user, target, move.ts_ms, false, out);
}

status_outcome sqlite_backend::advance_cursors(std::span<const cursor_move> moves) {
  return or_unavailable([&] {
    // Checked before BEGIN: this connection is the file's only writer, so
    // the rows cannot change in between, and most rounds of acks of a busy
    // receiver are then no write at all.
    if (std::none_of(moves.begin(), moves.end(),
                     [&](const cursor_move& m) { return moves_forward(m); }))
      return status_outcome{};
    // One transaction for the round: one commit (one fsync with --sync
    // full), and the STATUS entries of every move are reported or none is.
    return in_transaction([&] {
      status_outcome out;
      for (const auto& m : moves)
        apply_move(m, out);
      return out;
    });
  });
}

status_outcome sqlite_backend::read(user_id user, seq_t seq, std::int64_t ts_ms) {
  return or_unavailable([&] {
    const seq_t upto = std::min(seq, read_user(user).highest);
    if (upto == 0) return status_outcome{};
    {
      // Most READs cover no notify-message: no write transaction then.
      auto q = any_notify_.start();
      q.bind(1, to_db(user)).bind(2, to_db(upto));
      if (!q.step()) return status_outcome{};
    }
    return in_transaction([&] {
      status_outcome out;
      cover(user, upto, ts_ms, true, out);
      return out;
    });
  });
}

std::uint64_t sqlite_backend::evict_expired(std::int64_t now_ms) {
  clock_ms_ = std::max(clock_ms_, now_ms);
  return or_unavailable([&] {
    return in_transaction([&] {
      forget_devices(now_ms);
      // Every user with a row past --retention has oldest_ts below the
      // bound (it is a lower bound of the user's rows): collected first,
      // since rewriting a user moves it in users_by_oldest.
      const std::int64_t bound = window_start(now_ms, limits_.retention);
      std::vector<user_id> expired;
      {
        auto q = users_with_expired_.start();
        q.bind(1, bound);
        while (q.step())
          expired.push_back(from_db(q.int64(0)));
      }
      std::uint64_t evicted = 0;
      for (const user_id user : expired) {
        std::uint64_t rows = 0;
        std::uint64_t bytes = 0;
        {
          auto q = measure_expired_.start();
          q.bind(1, to_db(user)).bind(2, bound);
          if (q.step()) {
            rows = from_db(q.int64(0));
            bytes = from_db(q.int64(1));
          }
        }
        if (rows != 0) {
          auto q = delete_expired_messages_.start();
          q.bind(1, to_db(user)).bind(2, bound);
          q.step();
        }
        user_row row = read_user(user);
        row.held -= std::min(rows, row.held);
        row.held_bytes -= std::min(bytes, row.held_bytes);
        if (row.held != 0) {
          // Exact again: the bound rises to the oldest row left.
          auto q = oldest_of_.start();
          q.bind(1, to_db(user));
          if (q.step() && !q.is_null(0)) row.oldest_ts = q.int64(0);
        }
        write_user(user, row);
        // Every row is above the floor (see trim): each one counts.
        evicted += rows;
      }
      {
        auto q = delete_expired_dedup_.start();
        q.bind(1, window_start(now_ms, limits_.dedup_window));
        q.step();
      }
      {
        // A notify-message past --retention gets no STATUS any more.
        auto q = expire_notify_.start();
        q.bind(1, window_start(now_ms, limits_.retention));
        q.step();
      }
      return evicted;
    });
  });
}

void sqlite_backend::make_room_for_device(user_id user) {
  std::optional<std::string> oldest;
  std::size_t count = 0;
  {
    auto q = devices_by_seen_.start();
    q.bind(1, to_db(user));
    while (q.step()) {
      ++count;
      std::string device = q.text(0);
      if (!oldest && !open_.contains(open_key{user, device})) oldest = std::move(device);
    }
  }
  if (count < limits_.max_devices_per_user || !oldest) return;
  {
    auto q = delete_device_.start();
    q.bind(1, to_db(user)).bind(2, std::string_view(*oldest));
    q.step();
  }
  user_row row = read_user(user);
  settle(user, row);
}

void sqlite_backend::forget_devices(std::int64_t now_ms) {
  // A sighting for the devices with a session open, when the last is old.
  const std::int64_t refresh = device_refresh_ms(limits_.device_ttl);
  for (auto& [key, open] : open_) {
    if (open.seen_ms >= now_ms - refresh) continue;
    const device_name device = *device_name::parse(key.device);
    auto d = read_device(key.user, device).value_or(device_row{0, now_ms});
    d.seen_ms = std::max(d.seen_ms, now_ms);
    write_device(key.user, device, d);
    open.seen_ms = d.seen_ms;
  }
  const std::int64_t forget = device_forget_ms(limits_.device_ttl);
  if (now_ms < std::numeric_limits<std::int64_t>::min() + forget) return;
  std::vector<open_key> stale;
  {
    auto q = select_stale_devices_.start();
    q.bind(1, now_ms - forget);
    while (q.step()) {
      open_key key{from_db(q.int64(0)), q.text(1)};
      if (!open_.contains(key)) stale.push_back(std::move(key));
    }
  }
  for (const auto& key : stale) {
    auto q = delete_device_.start();
    q.bind(1, to_db(key.user)).bind(2, std::string_view(key.device));
    q.step();
  }
  // What only the forgotten devices still held may go.
  for (std::size_t i = 0; i < stale.size(); ++i) {
    if (i > 0 && stale[i].user == stale[i - 1].user) continue;
    user_row row = read_user(stale[i].user);
    settle(stale[i].user, row);
  }
}

void sqlite_backend::set_max_page_count(std::uint64_t pages) {
  or_unavailable([&] {
    const auto clamped = std::min<std::uint64_t>(pages, static_cast<std::uint64_t>(max_int64));
    exec(db_.get(), ("PRAGMA max_page_count = " + std::to_string(clamped)).c_str());
    return 0;
  });
}

}  // namespace switchboard::store
