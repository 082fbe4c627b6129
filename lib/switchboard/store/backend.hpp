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

#include <cstdint>
#include <span>
#include <vector>

#include "switchboard/store/types.hpp"

namespace switchboard::store {

class backend {
 public:
  virtual ~backend() = default;

  // Stores the batch atomically (all or nothing, one transaction), assigns
  // seqs, resolves (sender, id) resends against the dedup window, including
  // resends within the same batch, and applies --inbox-limit and
  // --inbox-bytes (the oldest messages go, the newest always stays).
  //
  // A group request (append_request::group) is one message: if its sender
  // is a member, the group gets its next gseq and every other member a copy
  // with its own next seq (outcome.copies), all in the same transaction;
  // if not, nothing is stored (append_result::not_member). The members are
  // those of the moment the request is applied, in batch order with the
  // membership changes below (the worker never mixes them in one call).
  virtual append_outcome append(std::span<const append_request> batch) = 0;

  // Group membership (PROTOCOL.md section 10), stored as durably as a
  // message once the call returns. add_member: full when `user` is not a
  // member and the group has --max-group-members already. remove_member:
  // also when not a member. Lists are ascending; an unknown group has none.
  virtual membership_change add_member(group_id group, user_id user) = 0;
  virtual void remove_member(group_id group, user_id user) = 0;
  virtual std::vector<user_id> members(group_id group) = 0;
  virtual std::vector<group_id> groups_of(user_id user) = 0;

  // Where the inbox stands for one device of the user (PROTOCOL.md section
  // 9): the highest seq, and the device's cursor (0 for a device the store
  // does not know, or has forgotten). Reads only.
  virtual user_position position(user_id user, const device_name& device) = 0;
  user_position position(user_id user) { return position(user, device_name{}); }

  // A session of `device` opens at now_ms: the device is seen (a device
  // new or forgotten starts at cursor 0) and holds the user's messages
  // until its cursor passes them; returns its position as position() does.
  // Every open is followed by one close.
  virtual user_position open(user_id user, const device_name& device, std::int64_t now_ms) = 0;
  // A session of `device` ended at now_ms: once the device has no session
  // left, its --device-ttl runs from now_ms.
  virtual void close(user_id user, const device_name& device, std::int64_t now_ms) = 0;

  // Held messages of `user` with seq > after, in seq order, at most
  // max_count, and no more than max_bytes of held_bytes() in all but for
  // the first message, which comes whatever its size (a replay page always
  // moves on). Held: above the cursor of some device the store remembers,
  // or everything while it remembers none (section 9).
  virtual std::vector<stored_message> fetch(user_id user, seq_t after, std::size_t max_count,
                                            std::size_t max_bytes) = 0;

  // Moves the device's cursor forward to N = min(seq, highest); a seq at or
  // below it changes nothing, and so does a device the store does not know
  // (it had no open). Messages at or below every remembered device's
  // cursor may go. In the same transaction, each sender with a
  // notify-message at or below N that no "delivered" STATUS covered yet
  // gets one, upto N, ts move.ts_ms (PROTOCOL.md section 11).
  using cursor_move = store::cursor_move;
  virtual status_outcome advance_cursor(const cursor_move& move) = 0;
  status_outcome advance_cursor(user_id user, const device_name& device, seq_t seq) {
    return advance_cursor(cursor_move{user, seq, device, 0});
  }
  status_outcome advance_cursor(user_id user, seq_t seq) {
    return advance_cursor(user, device_name{}, seq);
  }

  // Several cursor moves at once, in order. The store worker collects them
  // from every session between commits.
  virtual status_outcome advance_cursors(std::span<const cursor_move> moves) {
    status_outcome all;
    for (const auto& m : moves) {
      auto one = advance_cursor(m);
      all.evicted += one.evicted;
      for (auto& s : one.statuses)
        all.statuses.push_back(std::move(s));
    }
    return all;
  }

  // A READ of `user` up to N = min(seq, highest) at ts_ms (PROTOCOL.md
  // section 11): moves no cursor. Each sender with a notify-message at or
  // below N gets, in one transaction, a "delivered" STATUS first if one
  // of those was not covered by an earlier "delivered", then a "read" one
  // if one was not covered by an earlier "read"; both upto N.
  virtual status_outcome read(user_id user, seq_t seq, std::int64_t ts_ms) = 0;

  // Drops messages older than --retention and dedup entries older than
  // --dedup-window, and forgets devices past --device-ttl (device_forget_ms)
  // with what only they still held; returns the number of messages above a
  // cursor dropped.
  virtual std::uint64_t evict_expired(std::int64_t now_ms) = 0;

  // A sharded memory store only (memory_backend.hpp): stores what other
  // partitions handed this one (group copies and STATUS entries for its
  // users), in the order they were handed, and returns them as stored.
  virtual status_outcome take_crossed() { return {}; }
};

}  // namespace switchboard::store
