// The `sqlite:PATH` store: inboxes in one SQLite file, in WAL mode, owned by
// one server process at a time (PROTOCOL.md sections 3 and 8).
//
// Durability: a receipted message was committed before its receipt, so it
// survives kill -9 with sync_mode::normal (synchronous=NORMAL: the WAL is
// written, not synced, on commit) and a power cut with sync_mode::full
// (synchronous=FULL: the WAL is synced on every commit). The store worker
// batches SENDs so one commit (one fsync with full) covers many messages.
//
// User ids and seqs are uint64 up to 2^64-1, SQLite integers are int64: they
// are stored as the int64 with the same bit pattern (static_cast both ways).
// User ids are only compared for equality, so any value round-trips. Seqs
// are also ordered in SQL (seq > ?, ORDER BY seq), which is right for every
// seq below 2^63: a receiver would need 2^63 messages to get past it, and a
// larger `after` or cursor given by a client is clamped before it reaches SQL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "switchboard/config.hpp"
#include "switchboard/store/backend.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace switchboard::store {

// The database cannot be used: not a database, locked by another process,
// not writable, or made by a newer version of the server. what() is one line
// naming the path and the reason, ready for the operator (exit code 1).
class open_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class sqlite_backend final : public backend {
 public:
  // Opens or creates the file, migrates its schema and takes an exclusive
  // lock on it that is held until destruction. Throws open_error.
  sqlite_backend(const std::string& path, sync_mode sync, backend_limits limits);
  ~sqlite_backend() override;

  sqlite_backend(const sqlite_backend&) = delete;
  sqlite_backend& operator=(const sqlite_backend&) = delete;

  // Any SQLite failure in these (disk full, I/O error) rolls the work back
  // and throws unavailable; the backend stays usable.
  using backend::advance_cursor;
  using backend::position;

  append_outcome append(std::span<const append_request> batch) override;
  membership_change add_member(group_id group, user_id user) override;
  void remove_member(group_id group, user_id user) override;
  std::vector<user_id> members(group_id group) override;
  std::vector<group_id> groups_of(user_id user) override;
  user_position position(user_id user, const device_name& device) override;
  user_position open(user_id user, const device_name& device, std::int64_t now_ms) override;
  void close(user_id user, const device_name& device, std::int64_t now_ms) override;
  std::vector<stored_message> fetch(user_id user, seq_t after, std::size_t max_count,
                                    std::size_t max_bytes) override;
  status_outcome advance_cursor(const cursor_move& move) override;
  // One transaction for all the moves (a round of the store worker).
  status_outcome advance_cursors(std::span<const cursor_move> moves) override;
  status_outcome read(user_id user, seq_t seq, std::int64_t ts_ms) override;
  std::uint64_t evict_expired(std::int64_t now_ms) override;

  // Test and operations hook: caps the file at `pages` pages (PRAGMA
  // max_page_count, for this connection only; SQLite never goes below the
  // current size), so that a full disk can be simulated and then lifted.
  void set_max_page_count(std::uint64_t pages);

  // The schema version this code creates and understands (PRAGMA user_version).
  static int schema_version();

 private:
  // One prepared statement, prepared once and reused. use() hands out the
  // statement for one execution; it is reset and unbound when that ends,
  // whatever way it ends.
  class statement {
   public:
    class use;

    statement() = default;
    ~statement();
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;

    void prepare(sqlite3* db, std::string_view sql);
    use start();

   private:
    sqlite3_stmt* stmt_ = nullptr;
  };

  struct db_closer {
    void operator()(sqlite3* db) const noexcept;
  };

  struct user_row {
    seq_t highest = 0;
    seq_t floor = 0;               // rows at or below it are deleted (schema 3: floor_seq)
    std::uint64_t held = 0;        // rows in messages for this user, to apply --inbox-limit in O(1)
    std::uint64_t held_bytes = 0;  // their held_bytes(), for --inbox-bytes (schema 2)
    // At most the ts of every row held, meaningless with none (schema 4:
    // NULL then); the retention sweep finds users by it.
    std::int64_t oldest_ts = 0;

    void add_held(std::int64_t ts_ms) {
      if (held == 0 || ts_ms < oldest_ts) oldest_ts = ts_ms;
      ++held;
    }
  };

  struct device_row {
    seq_t cursor = 0;
    std::int64_t seen_ms = 0;  // its last sighting (types.hpp, device_forget_ms)
  };

  // A device with sessions open in this process: never forgotten while it
  // has any, and seen again by the sweep while it does (forget_devices).
  struct open_key {
    user_id user = 0;
    std::string device;
    friend auto operator<=>(const open_key&, const open_key&) = default;
  };
  struct open_device {
    std::uint32_t sessions = 0;
    std::int64_t seen_ms = 0;  // as last written
  };

  using rows_type = std::unordered_map<user_id, user_row>;

  void prepare_statements();
  // append()'s work inside the caller's transaction.
  append_outcome append_rows(std::span<const append_request> batch);
  // The append's working copy of `user`'s row, read on first use.
  user_row& working_row(user_id user, rows_type& rows);
  // The seq the next entry of `receiver` gets in this append.
  seq_t next_seq(user_id receiver, rows_type& rows);
  // Inserts one message row for `receiver` with its next seq (rows: the
  // append's working copy of the users touched); returns the seq.
  seq_t store_copy(const append_request& request, user_id receiver, rows_type& rows, group_id group,
                   seq_t gseq);
  // A group SEND whose dedup check found nothing: not_member, or stored
  // with the group's next gseq and a copy for every other member.
  append_result store_group(const append_request& request, rows_type& rows,
                            append_outcome& outcome);
  // Ascending (sorted here: SQL would order ids above 2^63 first).
  std::vector<user_id> members_of(group_id group);
  std::optional<device_row> read_device(user_id user, const device_name& device);
  void write_device(user_id user, const device_name& device, const device_row& row);
  // Raises the user's floor to the lowest cursor of its devices (none: all
  // stays) and deletes the rows it passed.
  void settle(user_id user, user_row& row);
  // --max-devices-per-user, before `user` gets one more device: forgets
  // the least recently seen device without a session open in this
  // process, if the user has that many, and settles.
  void make_room_for_device(user_id user);
  // The sweep's part for devices (PROTOCOL.md section 9).
  void forget_devices(std::int64_t now_ms);
  user_row read_user(user_id user);
  void write_user(user_id user, const user_row& row);
  // Deletes the user's rows up to `seq`; `row` loses what they held.
  void delete_up_to(user_id user, seq_t seq, user_row& row);
  // Applies --inbox-limit and --inbox-bytes to the user's rows (the oldest
  // go, the newest stays); returns how many went.
  std::uint64_t trim(user_id user, user_row& row);
  // Appends a STATUS about `about`'s seqs up to `upto` to the inbox of
  // `owner` (PROTOCOL.md section 11).
  void append_status(user_id owner, user_id about, status_state state, seq_t upto,
                     std::int64_t ts_ms, status_outcome& out);
  // The STATUS entries that the user's point `upto` brings: "delivered"
  // (a cursor move), or "delivered" then "read" (a READ, read = true).
  void cover(user_id user, seq_t upto, std::int64_t ts_ms, bool read, status_outcome& out);
  // Whether the move would take the device's cursor forward (reads only).
  bool moves_forward(const cursor_move& move);
  // One cursor move and its STATUS entries, inside the caller's transaction.
  void apply_move(const cursor_move& move, status_outcome& out);
  void run(statement& s);
  // Runs f() between BEGIN IMMEDIATE and COMMIT; on any exception rolls back
  // and rethrows.
  template <class F>
  auto in_transaction(F&& f);
  void rollback() noexcept;

  backend_limits limits_;
  // The latest time the backend was told of: when a cursor moves for a
  // device never opened (cannot happen from a session), it counts as seen
  // then.
  std::int64_t clock_ms_ = 0;
  std::map<open_key, open_device> open_;  // bounded by the open sessions
  std::unique_ptr<sqlite3, db_closer> db_;
  // Declared after db_ so they are finalized before it is closed.
  statement begin_;
  statement commit_;
  statement rollback_;
  statement select_user_;
  statement write_user_;
  statement devices_by_seen_;
  statement insert_message_;
  statement select_dedup_;
  statement claim_dedup_;
  statement write_dedup_;
  statement select_oldest_;
  statement fetch_;
  statement measure_up_to_;
  statement delete_up_to_;
  statement users_with_expired_;
  statement measure_expired_;
  statement delete_expired_messages_;
  statement oldest_of_;
  statement delete_expired_dedup_;
  statement select_device_;
  statement write_device_;
  statement move_cursor_;
  statement lowest_cursor_;
  statement select_stale_devices_;
  statement delete_device_;
  statement select_gseq_;
  statement write_gseq_;
  statement is_member_;
  statement count_members_;
  statement select_members_;
  statement select_groups_of_;
  statement insert_member_;
  statement delete_member_;
  statement insert_notify_;
  statement forget_notify_;
  statement any_notify_;
  statement any_undelivered_;
  statement deliver_notify_;
  statement read_notify_;
  statement expire_notify_;
};

}  // namespace switchboard::store
