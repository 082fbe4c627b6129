// The `memory:` store: every inbox in process memory. Nothing survives a
// restart (PROTOCOL.md section 3); used for tests and throwaway servers.
//
// Everything it holds is charged against --memory-store-bytes (an estimate
// of the heap it takes: messages, inboxes and dedup entries with their
// bookkeeping, see memory_backend.cpp). An inbox is never erased (its seq
// must not be reused) and the dedup map grows with the SEND rate over one
// --dedup-window, so without that bound a client sending one message to
// each of millions of receivers, or millions of ids, would grow it without
// end. At the bound a SEND is refused (ERROR unavailable, nothing stored):
// other users' messages are never dropped to make room.
//
// With --threads N it is N partitions, one per I/O thread, each holding the
// inboxes of its users (memory_shared, below; docs/architecture.md, "Step
// 2"); each partition is a memory_backend called by its own worker only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "switchboard/store/backend.hpp"

namespace switchboard::store {

// What the partitions of a memory store share (docs/architecture.md, "Step
// 2"). With --threads N the store is N partitions, one per I/O thread, each
// owning the inboxes of the users shard_of(user, N) gives it and touched
// only by its own worker; what does not split by receiver is here:
// - the --memory-store-bytes budget, one atomic count for the process, so
//   that a refusal means the same whatever partition refuses;
// - the dedup table, keyed by (sender, id), striped by sender with a mutex
//   per stripe. A SEND with an id claims its entry when it is submitted
//   (claim(), on the sender's thread, in the order the sender's SENDs were
//   read), so that the first one submitted is the original whichever
//   partition takes it; a later SEND with the same id goes to the
//   partition of the original, which answers it after it stored (or
//   refused) the original;
// - one mailbox per partition of entries that others handed it: the copies
//   of group messages (stored with a seq of the member's partition) and
//   STATUS entries for its users. Every one of those was reserved from the
//   budget or is bounded by what was (a STATUS by the notify-messages it
//   covers), so a mailbox needs no bound of its own.
// With one partition there is one stripe, no lock is taken and nothing is
// ever claimed or handed over: the store is what it was before the split.
class memory_shared {
 public:
  memory_shared(std::size_t shards, backend_limits limits);

  std::size_t shards() const { return shards_; }

  // --memory-store-bytes: reserves `bytes` if they fit (false: nothing
  // changed), charges them whatever the bound, gives them back.
  bool reserve(std::size_t bytes);
  void charge(std::size_t bytes);
  void release(std::size_t bytes);
  std::size_t charged() const { return charged_.load(std::memory_order_relaxed); }

  // With more than one partition: claims the (sender, id) of `request`
  // before it is queued, and returns the partition that must take it (its
  // receiver's, the group shard's, or for an id already claimed that of the
  // original); nullopt if the budget has no room for the entry (refused).
  std::optional<std::size_t> claim(append_request& request);
  // A claimed request that never reached its partition: its claim lapses.
  void unclaim(const append_request& request);
  // Called, on the thread that handed it something, with the number of a
  // partition whose mailbox was empty and is not any more. Set before the
  // partitions start.
  void on_handed(std::function<void(std::size_t)> wake) { wake_ = std::move(wake); }

 private:
  friend class memory_backend;

  struct dedup_key {
    user_id sender = 0;
    std::string id;  // message_id::value, so 17 and "17" collide as they must
    friend bool operator==(const dedup_key&, const dedup_key&) = default;
  };
  struct dedup_key_hash {
    std::size_t operator()(const dedup_key& key) const noexcept;
  };
  enum class claim_state : std::uint8_t {
    stored,   // the original was stored: a resend gets its receipt
    pending,  // claimed, on its way to `shard`
    dropped,  // the claimed SEND was refused: as if there were no entry
  };
  // The receipt a resend gets again.
  struct original {
    user_id receiver = 0;
    seq_t seq = 0;
    std::int64_t ts_ms = 0;  // expiry is counted from the original's time
    group_id group = 0;      // a group receipt: receiver and seq are 0
    seq_t gseq = 0;
    claim_state state = claim_state::stored;
    std::uint32_t shard = 0;  // the partition that takes (took) the original
  };
  // An entry in the order of its insertion (which is ts order but for the
  // few ms between I/O threads): the sweep pops from the front. One record
  // per entry: an entry replaced in place keeps its record, which is moved
  // to the back when it comes up with a newer ts.
  struct dedup_record {
    std::int64_t ts_ms = 0;
    const std::pair<const dedup_key, original>* entry = nullptr;
  };
  struct stripe {
    std::mutex lock;  // only taken with more than one partition
    std::unordered_map<dedup_key, original, dedup_key_hash> entries;
    std::deque<dedup_record> order;  // one per entry
  };
  // An inbox entry handed to the partition of its receiver, which gives it
  // its seq. `reserved`: a group copy, whose charge (and that of an inbox
  // for its receiver, given back if it has one) the group's partition
  // reserved; a STATUS is charged where it is stored, never refused.
  struct crossing {
    stored_message entry;
    bool reserved = false;
  };
  struct mailbox {
    std::mutex lock;
    std::vector<crossing> entries;
  };

  stripe& stripe_of(user_id sender) { return *stripes_[shard_of(sender, stripes_.size())]; }
  // The stripe's lock, or none with one partition.
  std::unique_lock<std::mutex> hold(stripe& s) {
    return shards_ > 1 ? std::unique_lock<std::mutex>(s.lock) : std::unique_lock<std::mutex>();
  }

  const std::size_t shards_;
  const backend_limits limits_;
  std::atomic<std::size_t> charged_{0};  // against limits_.memory_store_bytes
  std::vector<std::unique_ptr<stripe>> stripes_;
  std::vector<std::unique_ptr<mailbox>> mailboxes_;  // one per partition
  std::function<void(std::size_t)> wake_;
};

class memory_backend final : public backend {
 public:
  // The whole store in one partition.
  explicit memory_backend(backend_limits limits);
  // Partition `shard` of a store split across shared->shards() partitions.
  memory_backend(backend_limits limits, std::shared_ptr<memory_shared> shared, std::size_t shard);

  // The partition that takes `request` among `shards`: its receiver's, or
  // for a group SEND the group shard, which holds every group's members and
  // gseq (docs/architecture.md, "Step 2").
  static std::size_t home_of(const append_request& request, std::size_t shards);
  static constexpr std::size_t group_shard = 0;

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
  status_outcome read(user_id user, seq_t seq, std::int64_t ts_ms) override;
  std::uint64_t evict_expired(std::int64_t now_ms) override;
  status_outcome take_crossed() override;

  // What is charged against --memory-store-bytes now (by every partition).
  std::size_t charged_bytes() const { return shared_->charged(); }
  // Inboxes evict_expired() looked into so far: those with something due.
  std::uint64_t inboxes_swept() const { return inboxes_swept_; }

  // What each thing held is charged against --memory-store-bytes.
  static std::size_t message_cost(const append_request& r);
  static std::size_t message_cost(const stored_message& m);
  static std::size_t inbox_cost();
  static std::size_t dedup_cost(std::string_view id);
  // One more device of a user beyond its first (whose slot is in inbox_cost()).
  static std::size_t device_cost();
  // What `devices` devices of one user are charged.
  static std::size_t devices_charge(std::size_t devices);
  // A group's record (kept while empty: its gseq is never reused), one
  // membership (in the group's set and in the user's), and a user's set of
  // groups.
  static std::size_t group_cost();
  static std::size_t membership_cost();
  static std::size_t user_groups_cost();
  static std::size_t notify_cost();

 private:
  // A device of the user the store remembers (PROTOCOL.md section 9).
  struct device_state {
    device_name name;
    seq_t cursor = 0;
    std::int64_t seen_ms = 0;    // its last sighting (types.hpp, device_forget_ms)
    std::uint32_t sessions = 0;  // open sessions: never forgotten while any is
  };

  // A notify-message of the user (PROTOCOL.md section 11) that no "read"
  // STATUS covered yet.
  struct pending_notify {
    seq_t seq = 0;           // the receiver's seq of the message
    user_id sender = 0;      // who gets the STATUS entries
    std::int64_t ts_ms = 0;  // the message's, for --retention
    bool delivered = false;  // a "delivered" STATUS covered it
  };

  struct inbox {
    seq_t highest = 0;  // kept for ever, so that a seq is never reused
    // The latest ts held so far: a message below it (receive times from
    // different I/O threads) is listed in early_, the others expire in
    // seq order behind the front of `held`.
    std::int64_t newest_ts = std::numeric_limits<std::int64_t>::min();
    // When the sweep must look at it next: the key of its live entry in
    // due_ (max: none). A lower bound, never later than anything expires.
    std::int64_t due_ms = std::numeric_limits<std::int64_t>::max();
    // Messages at or below it are gone: the lowest cursor of `devices` when
    // it last rose (it never goes down; a device that joins later gets
    // what is still held).
    seq_t floor = 0;
    std::size_t bytes = 0;              // held_bytes() of `held`, for --inbox-bytes
    std::vector<device_state> devices;  // few per user: searched, not indexed
    std::deque<stored_message> held;    // exactly the messages above the floor, in seq order
    // In seq order; bounded by notify_forgotten() and --retention. A
    // vector, not a deque: most inboxes never have one, and an empty
    // vector costs no heap.
    std::vector<pending_notify> notify;
  };

  // A group (PROTOCOL.md section 10). Ordered sets: the API lists members
  // ascending, and fan-out goes in the same order.
  struct group_state {
    seq_t gseq = 0;  // the last gseq given, kept for ever like an inbox's highest
    std::set<user_id> members;
  };

  // An inbox that has something to expire (a message, a notify-message, a
  // device without a session) at `at_ms` at the earliest. due_ is min-ordered
  // by it, so a sweep touches only what expires, not every inbox.
  struct due_entry {
    std::int64_t at_ms = 0;
    user_id user = 0;
    friend bool operator>(const due_entry& a, const due_entry& b) { return a.at_ms > b.at_ms; }
  };
  // A held message whose ts is below that of one held before it.
  struct early_message {
    seq_t seq = 0;
    std::int64_t ts_ms = 0;
  };
  // One request of append(): its dedup check, then append_direct or
  // append_group, then its dedup entry.
  append_result append_one(const append_request& request, append_outcome& outcome);
  // A SEND whose dedup check found nothing; `dedup_charge` is what its new
  // dedup entry costs (0: none, or one to replace in place).
  append_result append_direct(const append_request& request, std::size_t dedup_charge,
                              append_outcome& outcome);
  append_result append_group(const append_request& request, std::size_t dedup_charge,
                             append_outcome& outcome);
  // Gives `entry` the next seq of its receiver's inbox (in this partition),
  // holds it and applies the inbox's limits; what it is charged is the
  // caller's. Returns its seq.
  seq_t store_entry(inbox& box, stored_message entry, std::uint64_t& evicted);
  // Hands `entry` to the partition of its receiver (with more than one).
  void hand(std::size_t shard, stored_message entry, bool reserved);
  // Puts what hand() gathered in the other partitions' mailboxes.
  void hand_over();

  // Appends `m` to the inbox of `user` and indexes its expiry.
  void hold(user_id user, inbox& box, stored_message m);
  // The inbox must be swept at `at_ms` at the latest.
  void expire_at(user_id user, inbox& box, std::int64_t at_ms);
  // Drops from the inbox what --retention and --device-ttl have passed at
  // now_ms; returns the messages dropped; indexes the next expiry.
  std::uint64_t sweep(user_id user, inbox& box, std::int64_t now_ms);
  // Drops the dedup entries older than --dedup-window at now_ms.
  void sweep_dedup(std::int64_t now_ms);
  // when + --retention, and when + the device forget time, saturated.
  std::int64_t retained_until(std::int64_t ts_ms) const;
  std::int64_t remembered_until(std::int64_t seen_ms) const;
  // Drops the oldest held message of `box`, giving back what it was charged.
  void drop_front(inbox& box);
  // Applies --inbox-limit and --inbox-bytes; returns the messages dropped.
  std::uint64_t trim(inbox& box);
  static device_state* find(inbox& box, const device_name& device);
  // Raises the floor to the lowest cursor of the devices remembered (none:
  // everything stays for the next device) and drops what it passed.
  void settle(inbox& box);
  // --max-devices-per-user: forgets the device without a session that was
  // seen least recently, if there is one, and settles.
  void forget_least_recent(inbox& box);
  // Appends a STATUS about `about`'s seqs up to `upto` to the inbox of
  // `owner` (the sender of the messages it covers).
  void append_status(user_id owner, user_id about, status_state state, seq_t upto,
                     std::int64_t ts_ms, status_outcome& out);
  // The STATUS entries that the user's point `upto` brings: "delivered"
  // (a cursor move), or "delivered" then "read" (a READ, read = true).
  void cover(user_id user, inbox& box, seq_t upto, std::int64_t ts_ms, bool read,
             status_outcome& out);
  // Drops the pending notify-messages at the front that match `gone`.
  template <class Predicate>
  void drop_notify(inbox& box, Predicate gone);

  backend_limits limits_;
  std::shared_ptr<memory_shared> shared_;  // the budget, the dedup table, the mailboxes
  const std::size_t shard_ = 0;            // this partition's number
  // The latest time the backend was told of: when a cursor moves for a
  // device it does not know (no open; cannot happen from a session), that
  // device counts as seen then.
  std::int64_t clock_ms_ = 0;
  // Entries are never erased: highest must outlive the messages.
  std::unordered_map<user_id, inbox> inboxes_;
  // Bounded by --memory-store-bytes: every membership is charged.
  std::unordered_map<group_id, group_state> groups_;
  std::unordered_map<user_id, std::set<group_id>> user_groups_;  // no entry for a user in none
  // The expiry index (evict_expired). Entries of an inbox whose due_ms has
  // moved since are stale and skipped; a new one is pushed only when the
  // due time goes down, so there are few beyond one per inbox.
  std::priority_queue<due_entry, std::vector<due_entry>, std::greater<>> due_;
  // Per user, the held messages out of ts order, in seq order; no entry for
  // most users. Bounded by what the user holds: pruned as the front moves.
  std::unordered_map<user_id, std::vector<early_message>> early_;
  // Entries for other partitions gathered by the current call, per
  // partition: one lock per partition per call (hand_over).
  std::vector<std::vector<memory_shared::crossing>> outgoing_;
  std::uint64_t inboxes_swept_ = 0;
};

}  // namespace switchboard::store
