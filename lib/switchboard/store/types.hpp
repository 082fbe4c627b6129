// The values every layer of Switchboard shares: users, seqs, messages and
// inbox positions (PROTOCOL.md section 3). Plain data, no behaviour beyond
// comparison: the store, the hub, the sessions and the protocol all use them,
// and none of them should need another's header to do so.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::store {

using user_id = std::uint64_t;
using seq_t = std::uint64_t;
// A group (PROTOCOL.md section 10): ids of their own, 1..2^64-1; 0 is none.
using group_id = std::uint64_t;

// The owner of `user` among `count` shards (docs/architecture.md, "Shards"):
// splitmix64's finaliser, so that consecutive ids spread evenly. The hub
// and the sharded memory store use the same one, so that a user's hub shard
// and store partition are on the same I/O thread.
inline std::size_t shard_of(user_id user, std::size_t count) {
  if (count <= 1) return 0;
  std::uint64_t z = user;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<std::size_t>(z % count);
}

// The name of a device of a user (PROTOCOL.md section 9): 1 to 64 bytes of
// A-Z a-z 0-9 . _ -, or empty for the default device (a session without
// `?device=`). Inline with a fixed capacity rather than a std::string:
// every session handle and every cursor move carries one, and none of them
// should allocate (std::string keeps 15 bytes inline, names go to 64).
class device_name {
 public:
  static constexpr std::size_t max_size = 64;

  device_name() = default;
  // The name if `text` is one (empty included: the default device);
  // nullopt for a longer text or a byte outside the alphabet.
  static std::optional<device_name> parse(std::string_view text) {
    if (text.size() > max_size) return std::nullopt;
    device_name name;
    for (const char c : text) {
      const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) return std::nullopt;
      name.chars_[name.size_++] = c;
    }
    return name;
  }

  std::string_view view() const { return {chars_.data(), size_}; }
  bool empty() const { return size_ == 0; }
  friend bool operator==(const device_name& a, const device_name& b) {
    return a.view() == b.view();
  }

 private:
  std::array<char, max_size> chars_{};
  std::uint8_t size_ = 0;
};

// The client's message id, canonical: 17 and "17" are the same id, so both
// are kept as the text "17"; is_number remembers how it was written, to echo
// it back as the client sent it.
struct message_id {
  std::string value;
  bool is_number = false;
  friend bool operator==(const message_id&, const message_id&) = default;
};

// What an inbox entry is (PROTOCOL.md section 3): a message, or a STATUS
// notification about the user's own messages (section 11).
enum class entry_kind : std::uint8_t { message, status };
// The state a STATUS reports: "delivered" or "read".
enum class status_state : std::uint8_t { delivered, read };

// One inbox entry. A STATUS (kind status) sits in the inbox of the user
// whose messages it is about, `receiver`; its `sender` is the user who got
// them (the STATUS frame's "receiver"), its content and id are empty, and
// `state` and `upto` say what happened to that user's seqs up to `upto`.
// A message leaves those three at their defaults. No string for a STATUS:
// this struct is on every message's path.
struct stored_message {
  seq_t seq = 0;
  user_id sender = 0;
  user_id receiver = 0;
  std::string content;
  std::int64_t ts_ms = 0;  // the server's receive time, ms since the Unix epoch
  std::optional<message_id> id;
  group_id group = 0;  // a copy of a group message (section 10): its group, 0 for a direct one
  seq_t gseq = 0;      // the group's number of the message, 0 for a direct one
  entry_kind kind = entry_kind::message;
  status_state state = status_state::delivered;  // a STATUS only
  seq_t upto = 0;                                // a STATUS only: the receiver's point
};

struct append_request {
  user_id sender = 0;
  user_id receiver = 0;  // ignored when `group` is set
  std::string content;
  std::int64_t ts_ms = 0;
  std::optional<message_id> id;
  // A group SEND (section 10): one copy to every member but the sender,
  // stored with the group's next gseq, atomically; 0 for a direct SEND.
  group_id group = 0;
  // "notify":true on a direct SEND with an id (PROTOCOL.md section 11): the
  // sender gets STATUS entries once the receiver's cursor or a READ covers
  // this message. The protocol layer leaves it false without an id, and on
  // a group SEND.
  bool notify = false;
  // A sharded memory store only (memory_backend.hpp): the (sender, id) of
  // this request was claimed when it was submitted, and is pending until
  // the partition that takes it stores it or refuses it.
  bool claimed = false;
};

// One copy of a group message: the member's inbox and the seq it got there.
struct group_copy {
  user_id member = 0;
  seq_t seq = 0;
};

// The STATUS entries that a cursor move or a READ appended to the senders'
// inboxes (PROTOCOL.md section 11), in append order (seq order per sender),
// for the hub to deliver live like committed messages.
struct status_outcome {
  std::vector<stored_message> statuses;
  std::uint64_t evicted = 0;  // entries above a cursor dropped by --inbox-limit to make room
};

// One per request, in request order.
struct append_result {
  // false: a resend of (sender, id) within the dedup window; receiver, seq
  // and ts (or group and gseq) are the original's, and nothing was stored.
  bool stored = true;
  user_id receiver = 0;
  seq_t seq = 0;
  std::int64_t ts_ms = 0;
  // true: this message alone could not be stored (a cluster's script found
  // its deadline passed, or Redis refused it): ERROR unavailable, nothing
  // stored; the other fields mean nothing.
  bool refused = false;
  // A group receipt (section 10; also the original of a resend, whatever
  // the resend's target): receiver and seq are 0 then.
  group_id group = 0;
  seq_t gseq = 0;
  // A group SEND whose sender is not a member: ERROR not_member, nothing
  // stored.
  bool not_member = false;
  // The copies of a stored group message: append_outcome::copies[first_copy,
  // first_copy + copies), ascending by member. An index rather than a vector
  // of its own, so that a direct append allocates nothing for them.
  std::uint32_t first_copy = 0;
  std::uint32_t copies = 0;
  // A sharded memory store: the copies handed to other partitions, which
  // store them and report them themselves (not in `copies`).
  std::uint32_t crossed = 0;
};

struct append_outcome {
  std::vector<append_result> results;
  std::uint64_t evicted = 0;       // messages above a cursor dropped by --inbox-limit
  std::vector<group_copy> copies;  // of the group messages of `results`, in their order
};

// What adding a member came to (PUT /api/groups/G/members/U).
enum class membership_change {
  done,  // a member now (or already was)
  full,  // not a member, and the group holds --max-group-members already
};

struct user_position {
  seq_t highest = 0;  // highest seq assigned to the user, 0 if none
  seq_t cursor = 0;   // delivered cursor (section 3) of the device asked about (section 9)
  friend bool operator==(const user_position&, const user_position&) = default;
};

// The held bytes of a message, for --inbox-bytes and the replay page cap:
// its content, in bytes as stored (UTF-8 after JSON unescaping). Seqs,
// senders, ids and each store's own overhead are left out, so that the
// three backends count the same thing.
inline std::size_t held_bytes(std::string_view content) {
  return content.size();
}

struct backend_limits {
  std::chrono::seconds retention{604800};
  std::size_t inbox_limit = 10000;
  std::chrono::seconds dedup_window{600};
  // Content bytes held per inbox (held_bytes); beyond, the oldest messages
  // go as with inbox_limit. The newest message always stays, so one inbox
  // holds at most max(inbox_bytes, one message).
  std::size_t inbox_bytes = std::size_t{16} << 20;
  // memory: only, everything it holds (messages, inboxes, dedup entries,
  // with their bookkeeping); a SEND that would go beyond is refused.
  std::size_t memory_store_bytes = std::size_t{256} << 20;
  // --device-ttl: a device with no session for this long is forgotten
  // (PROTOCOL.md section 9; device_forget_ms below says when exactly).
  std::chrono::seconds device_ttl{2592000};
  // --max-group-members: members of one group (PROTOCOL.md section 10).
  std::size_t max_group_members = 1000;
  // --max-devices-per-user: a device new to a user who already has this
  // many forgets the least recently seen one without a session open (one
  // with a session is never forgotten, so a user may briefly have up to
  // --max-sessions-per-user more).
  std::size_t max_devices_per_user = 32;
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

// One cursor move of one device; the store worker collects them from every
// session between commits.
struct cursor_move {
  user_id user;
  seq_t seq;
  device_name device;
  // When the move was made: the ts of the "delivered" STATUS it may bring
  // (PROTOCOL.md section 11).
  std::int64_t ts_ms = 0;
};

// How many notify-messages a receiver's store remembers until a STATUS
// covers them (PROTOCOL.md section 11): those among its last --inbox-limit
// seqs and younger than --retention. Older ones are forgotten without a
// STATUS, as an evicted message would be; so the pending state of a user
// costs at most what its inbox may hold.
inline bool notify_forgotten(seq_t seq, seq_t highest, std::size_t inbox_limit) {
  return highest >= inbox_limit && seq <= highest - inbox_limit;
}

// When a device is forgotten (PROTOCOL.md section 9: no session for
// --device-ttl, never sooner, at the latest twice that long after its last
// session ended): once its last sighting is more than ttl + ttl/8 old. A
// store records a sighting when a session opens or closes and, while one is
// open, again whenever the last is over ttl/8 old (device_refresh_ms), so
// that a server killed with sessions open (no close recorded) still forgets
// their devices no sooner than ttl after it died. The sweep that forgets
// runs every second: a device goes between 1.125 ttl and 1.125 ttl + 1 s
// after its last session ended.
inline std::int64_t device_refresh_ms(std::chrono::seconds ttl) {
  constexpr std::int64_t cap = std::numeric_limits<std::int64_t>::max() / 1000 / 2;
  return std::min<std::int64_t>(ttl.count(), cap) * 1000 / 8;
}
inline std::int64_t device_forget_ms(std::chrono::seconds ttl) {
  constexpr std::int64_t cap = std::numeric_limits<std::int64_t>::max() / 1000 / 2;
  return std::min<std::int64_t>(ttl.count(), cap) * 1000 + device_refresh_ms(ttl);
}
// Whether a device last seen at seen_ms, with no session open now, is
// forgotten at now_ms.
inline bool device_forgotten(std::int64_t seen_ms, std::int64_t now_ms, std::chrono::seconds ttl) {
  const std::int64_t forget = device_forget_ms(ttl);
  if (now_ms < std::numeric_limits<std::int64_t>::min() + forget) return false;
  return seen_ms < now_ms - forget;
}

}  // namespace switchboard::store
