// The storage interface behind every inbox (PROTOCOL.md section 3).
//
// A backend is plain synchronous code: the store worker (store.hpp) calls it
// from its own thread only, so implementations need no locking and the I/O
// threads never touch the disk. The same behaviour tests run against every
// backend (test/test_store_backend.cpp).
//
// The backend is also the sequencer: it assigns each receiver's seq inside
// append(), so a failed append leaves no gap and no half-stored message.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace switchboard::store {

using user_id = std::uint64_t;
using seq_t = std::uint64_t;

// The client's message id, canonical: 17 and "17" are the same id, so both
// are kept as the text "17"; is_number remembers how it was written, to echo
// it back as the client sent it.
struct message_id {
  std::string value;
  bool is_number = false;
  friend bool operator==(const message_id&, const message_id&) = default;
};

struct stored_message {
  seq_t seq = 0;
  user_id sender = 0;
  user_id receiver = 0;
  std::string content;
  std::int64_t ts_ms = 0;  // the server's receive time, ms since the Unix epoch
  std::optional<message_id> id;
};

struct append_request {
  user_id sender = 0;
  user_id receiver = 0;
  std::string content;
  std::int64_t ts_ms = 0;
  std::optional<message_id> id;
};

// One per request, in request order.
struct append_result {
  // false: a resend of (sender, id) within the dedup window; receiver, seq
  // and ts are the original's, and nothing was stored.
  bool stored = true;
  user_id receiver = 0;
  seq_t seq = 0;
  std::int64_t ts_ms = 0;
};

struct append_outcome {
  std::vector<append_result> results;
  std::uint64_t evicted = 0;  // messages above a cursor dropped by --inbox-limit
};

struct user_position {
  seq_t highest = 0;  // highest seq assigned to the user, 0 if none
  seq_t cursor = 0;   // delivered cursor (section 3)
  friend bool operator==(const user_position&, const user_position&) = default;
};

struct backend_limits {
  std::chrono::seconds retention{604800};
  std::size_t inbox_limit = 10000;
  std::chrono::seconds dedup_window{600};
};

// Thrown when the storage cannot take a write now (disk full, I/O error):
// the whole append failed, nothing of it is stored, the caller answers
// ERROR `unavailable` and the backend stays usable.
class unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// now_ms - window, saturating: an absurdly large --retention or
// --dedup-window must keep everything rather than wrap around and drop it.
// Both backends cut their retention and dedup windows here.
inline std::int64_t window_start(std::int64_t now_ms, std::chrono::seconds window) {
  constexpr auto lowest = std::numeric_limits<std::int64_t>::min();
  const std::int64_t seconds = window.count();
  if (seconds <= 0) return now_ms;
  if (seconds > std::numeric_limits<std::int64_t>::max() / 1000) return lowest;
  const std::int64_t window_ms = seconds * 1000;
  if (now_ms < lowest + window_ms) return lowest;
  return now_ms - window_ms;
}

class backend {
 public:
  virtual ~backend() = default;

  // Stores the batch atomically (all or nothing, one transaction), assigns
  // seqs, resolves (sender, id) resends against the dedup window, including
  // resends within the same batch, and applies --inbox-limit.
  virtual append_outcome append(std::span<const append_request> batch) = 0;

  virtual user_position position(user_id user) = 0;

  // Held messages of `user` with seq > after, in seq order, at most max_count.
  virtual std::vector<stored_message> fetch(user_id user, seq_t after, std::size_t max_count) = 0;

  // Moves the cursor forward to min(seq, highest); a seq at or below the
  // cursor changes nothing. Messages at or below the new cursor may go.
  virtual void advance_cursor(user_id user, seq_t seq) = 0;

  // Several cursor moves at once; a backend with transactions does them in
  // one. The store worker collects them from every session between commits.
  struct cursor_move {
    user_id user;
    seq_t seq;
  };
  virtual void advance_cursors(std::span<const cursor_move> moves) {
    for (const auto& m : moves)
      advance_cursor(m.user, m.seq);
  }

  // Drops messages older than --retention and dedup entries older than
  // --dedup-window; returns the number of messages above a cursor dropped.
  virtual std::uint64_t evict_expired(std::int64_t now_ms) = 0;
};

}  // namespace switchboard::store
