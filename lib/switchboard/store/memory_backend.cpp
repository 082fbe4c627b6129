#include "switchboard/store/memory_backend.hpp"

#include <algorithm>
#include <functional>
#include <limits>

namespace switchboard::store {

std::size_t memory_shared::dedup_key_hash::operator()(const dedup_key& key) const noexcept {
  const std::size_t h = std::hash<std::string>{}(key.id);
  return h ^ (std::hash<user_id>{}(key.sender) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

namespace {

// What the memory store charges for each thing it holds: an estimate of the
// heap it takes with libstdc++ (what --memory-store-bytes bounds), not an
// exact count. Every heap block costs its bytes and the allocator's header
// (16 bytes with glibc and jemalloc's small classes, about); a string has a
// block of its own beyond the 15 bytes kept inline; an unordered_map node
// holds its value, a next pointer and the cached hash, and the bucket array
// holds up to two pointers per node (it doubles); a std::deque allocates a
// map of 8 block pointers and one 512-byte block as soon as it exists.
// Checked against the resident size of a process (glibc malloc) filled to a
// bound of 64 MiB with empty messages to distinct receivers, 1000-byte
// messages, or dedup entries: it grew by 49, 64 and 54 MiB.
constexpr std::size_t inline_string = 15;
constexpr std::size_t block_header = 16;
constexpr std::size_t map_node_overhead = 4 * sizeof(void*) + block_header;
constexpr std::size_t empty_deque_heap = 8 * sizeof(void*) + 512 + 2 * block_header;

std::size_t heap_of(std::string_view s) {
  return s.size() > inline_string ? s.size() + 1 + block_header : 0;
}

}  // namespace

std::size_t memory_backend::message_cost(const append_request& r) {
  return sizeof(stored_message) + heap_of(r.content) + (r.id ? heap_of(r.id->value) : 0);
}

std::size_t memory_backend::message_cost(const stored_message& m) {
  return sizeof(stored_message) + heap_of(m.content) + (m.id ? heap_of(m.id->value) : 0);
}

std::size_t memory_backend::inbox_cost() {
  // With room for its first device: a user with one device (most of them)
  // costs nothing more, so acknowledging never needs room.
  // and its entry in the expiry index (a vector's element, room to double).
  return sizeof(std::pair<const user_id, inbox>) + map_node_overhead + empty_deque_heap +
         sizeof(device_state) + 2 * sizeof(due_entry);
}

std::size_t memory_backend::dedup_cost(std::string_view id) {
  // The id is held twice: in the key and in the message (charged there);
  // the entry's record in the sweep's order is a deque's element.
  return sizeof(std::pair<const memory_shared::dedup_key, memory_shared::original>) +
         map_node_overhead + heap_of(id) + sizeof(memory_shared::dedup_record);
}

std::size_t memory_backend::devices_charge(std::size_t devices) {
  return devices > 1 ? (devices - 1) * device_cost() : 0;
}

std::size_t memory_backend::device_cost() {
  // A vector's element, with room for it to double.
  return 2 * sizeof(device_state);
}

std::size_t memory_backend::group_cost() {
  return sizeof(std::pair<const group_id, group_state>) + map_node_overhead;
}

std::size_t memory_backend::membership_cost() {
  // A node in each of two std::sets: three pointers and a colour, the value.
  return 2 * (4 * sizeof(void*) + sizeof(std::uint64_t) + block_header);
}

std::size_t memory_backend::user_groups_cost() {
  return sizeof(std::pair<const user_id, std::set<group_id>>) + map_node_overhead;
}

std::size_t memory_backend::notify_cost() {
  // A vector's element, with room for it to double.
  return 2 * sizeof(pending_notify);
}

// ---- memory_shared ----

namespace {
// Stripes of the dedup table with more than one partition: enough that two
// threads seldom want the same one.
constexpr std::size_t dedup_stripes = 64;
}  // namespace

memory_shared::memory_shared(std::size_t shards, backend_limits limits)
    : shards_(std::max<std::size_t>(shards, 1)), limits_(limits) {
  const std::size_t stripes = shards_ > 1 ? dedup_stripes : 1;
  for (std::size_t i = 0; i < stripes; ++i)
    stripes_.push_back(std::make_unique<stripe>());
  for (std::size_t i = 0; i < shards_; ++i)
    mailboxes_.push_back(std::make_unique<mailbox>());
}

// With one partition the count has one writer: a plain load and store,
// no locked instruction on every message and every cursor move.
bool memory_shared::reserve(std::size_t bytes) {
  const std::size_t bound = limits_.memory_store_bytes;
  std::size_t now = charged_.load(std::memory_order_relaxed);
  if (shards_ == 1) {
    if (bytes > bound - std::min(now, bound)) return false;
    charged_.store(now + bytes, std::memory_order_relaxed);
    return true;
  }
  do {
    if (bytes > bound - std::min(now, bound)) return false;
  } while (!charged_.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
  return true;
}

void memory_shared::charge(std::size_t bytes) {
  if (shards_ == 1) {
    charged_.store(charged_.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
    return;
  }
  charged_.fetch_add(bytes, std::memory_order_relaxed);
}

void memory_shared::release(std::size_t bytes) {
  // Saturating, as an estimate given back must never wrap the count.
  std::size_t now = charged_.load(std::memory_order_relaxed);
  if (shards_ == 1) {
    charged_.store(now - std::min(now, bytes), std::memory_order_relaxed);
    return;
  }
  while (
      !charged_.compare_exchange_weak(now, now - std::min(now, bytes), std::memory_order_relaxed)) {
  }
}

std::optional<std::size_t> memory_shared::claim(append_request& request) {
  const std::size_t home = memory_backend::home_of(request, shards_);
  if (!request.id || shards_ == 1) return home;
  stripe& s = stripe_of(request.sender);
  const std::lock_guard lock(s.lock);
  auto [entry, fresh] = s.entries.try_emplace(dedup_key{request.sender, request.id->value});
  original& o = entry->second;
  if (!fresh) {
    // A resend of a stored original, or a SEND with an id whose original is
    // on its way: answered where the original is, after it.
    if (o.state == claim_state::pending ||
        (o.state == claim_state::stored &&
         o.ts_ms >= window_start(request.ts_ms, limits_.dedup_window)))
      return o.shard;
    // Past its window, or its SEND refused: claimed again in place (it was
    // charged).
  } else {
    if (!reserve(memory_backend::dedup_cost(request.id->value))) {
      s.entries.erase(entry);
      return std::nullopt;
    }
    s.order.push_back(dedup_record{request.ts_ms, &*entry});
  }
  o = original{};
  o.ts_ms = request.ts_ms;
  o.state = claim_state::pending;
  o.shard = static_cast<std::uint32_t>(home);
  request.claimed = true;
  return home;
}

void memory_shared::unclaim(const append_request& request) {
  if (!request.claimed || !request.id) return;
  stripe& s = stripe_of(request.sender);
  const std::lock_guard lock(s.lock);
  const auto found = s.entries.find(dedup_key{request.sender, request.id->value});
  if (found != s.entries.end() && found->second.state == claim_state::pending)
    found->second.state = claim_state::dropped;
}

// ---- memory_backend ----

memory_backend::memory_backend(backend_limits limits)
    : memory_backend(limits, std::make_shared<memory_shared>(1, limits), 0) {}

memory_backend::memory_backend(backend_limits limits, std::shared_ptr<memory_shared> shared,
                               std::size_t shard)
    : limits_(limits), shared_(std::move(shared)), shard_(shard), outgoing_(shared_->shards()) {}

std::size_t memory_backend::home_of(const append_request& request, std::size_t shards) {
  return request.group != 0 ? group_shard : shard_of(request.receiver, shards);
}

// Nothing here can fail but an allocation, so there is no transaction to undo:
// the all-or-nothing promise only matters for backends with a disk. A message
// that would take the store past --memory-store-bytes is refused alone.
append_outcome memory_backend::append(std::span<const append_request> batch) {
  append_outcome outcome;
  outcome.results.reserve(batch.size());
  for (const append_request& request : batch) {
    clock_ms_ = std::max(clock_ms_, request.ts_ms);
    outcome.results.push_back(append_one(request, outcome));
  }
  // Before the worker sends a receipt: a group's copies are in their
  // members' mailboxes by the time its sender hears of it.
  hand_over();
  return outcome;
}

append_result memory_backend::append_one(const append_request& request, append_outcome& outcome) {
  if (!request.id) {
    return request.group != 0 ? append_group(request, 0, outcome)
                              : append_direct(request, 0, outcome);
  }
  using state = memory_shared::claim_state;
  // Held until the entry says what became of this SEND: no other partition
  // sees it half done.
  auto& stripe = shared_->stripe_of(request.sender);
  const auto lock = shared_->hold(stripe);
  const auto previous =
      stripe.entries.find(memory_shared::dedup_key{request.sender, request.id->value});
  const bool found = previous != stripe.entries.end();
  const bool mine = request.claimed && found && previous->second.state == state::pending;
  if (!mine) {
    if (found && previous->second.state == state::stored &&
        previous->second.ts_ms >= window_start(request.ts_ms, limits_.dedup_window)) {
      // An entry past its window that evict_expired() has not reached yet
      // counts as gone, so the answer does not depend on when eviction ran.
      const memory_shared::original& first = previous->second;
      append_result again{false, first.receiver, first.seq, first.ts_ms};
      again.group = first.group;
      again.gseq = first.gseq;
      return again;
    }
    // With partitions: a SEND that followed an original which was refused
    // (or has passed its window) meanwhile, or came while another SEND with
    // its id is on its way, and is not this partition's to store. Refused:
    // nothing stored, the client may send it again.
    if ((found && previous->second.state == state::pending) ||
        home_of(request, shared_->shards()) != shard_) {
      append_result refused;
      refused.refused = true;
      return refused;
    }
  }
  // A new entry is charged with the message, all or nothing; one claimed
  // at submission was charged then, and one past its window is replaced in
  // place.
  const std::size_t dedup_charge = found ? 0 : dedup_cost(request.id->value);
  append_result result = request.group != 0 ? append_group(request, dedup_charge, outcome)
                                            : append_direct(request, dedup_charge, outcome);
  if (result.refused || result.not_member) {
    if (mine) previous->second.state = state::dropped;
    return result;
  }
  memory_shared::original first{result.receiver,
                                result.seq,
                                request.ts_ms,
                                result.group,
                                result.gseq,
                                state::stored,
                                static_cast<std::uint32_t>(shard_)};
  if (found) {
    previous->second = first;
  } else {
    const auto entry =
        stripe.entries.emplace(memory_shared::dedup_key{request.sender, request.id->value}, first)
            .first;
    stripe.order.push_back(memory_shared::dedup_record{request.ts_ms, &*entry});
  }
  return result;
}

append_result memory_backend::append_direct(const append_request& request, std::size_t dedup_charge,
                                            append_outcome& outcome) {
  auto box_at = inboxes_.find(request.receiver);
  const bool notify = request.notify && request.id;
  const std::size_t cost = message_cost(request) + (box_at == inboxes_.end() ? inbox_cost() : 0) +
                           dedup_charge + (notify ? notify_cost() : 0);
  if (!shared_->reserve(cost)) {
    append_result refused;
    refused.refused = true;
    return refused;
  }
  if (box_at == inboxes_.end()) box_at = inboxes_.try_emplace(request.receiver).first;
  inbox& box = box_at->second;
  const seq_t seq = ++box.highest;
  hold(request.receiver, box,
       stored_message{seq, request.sender, request.receiver, request.content, request.ts_ms,
                      request.id});
  if (notify) {
    box.notify.push_back(pending_notify{seq, request.sender, request.ts_ms, false});
    expire_at(request.receiver, box, retained_until(request.ts_ms));
    drop_notify(box, [&](const pending_notify& p) {
      return notify_forgotten(p.seq, box.highest, limits_.inbox_limit);
    });
  }
  // At once rather than after the batch (as SQLite does): the same
  // messages go either way, the oldest ones, and what they free is free
  // for the rest of the batch.
  outcome.evicted += trim(box);
  return append_result{true, request.receiver, seq, request.ts_ms};
}

append_result memory_backend::append_group(const append_request& request, std::size_t dedup_charge,
                                           append_outcome& outcome) {
  append_result result;
  const auto found = groups_.find(request.group);
  if (found == groups_.end() || !found->second.members.contains(request.sender)) {
    result.stored = false;
    result.not_member = true;
    return result;
  }
  group_state& group = found->second;
  const std::size_t shards = shared_->shards();
  // All copies or none: the whole charge is reserved first. A member of
  // another partition may have no inbox yet: one is reserved for it, which
  // that partition gives back if it has one.
  std::size_t cost = dedup_charge;
  for (const user_id member : group.members) {
    if (member == request.sender) continue;
    const bool here = shard_of(member, shards) == shard_;
    cost += message_cost(request) + (here && inboxes_.contains(member) ? 0 : inbox_cost());
  }
  if (!shared_->reserve(cost)) {
    result.refused = true;
    return result;
  }
  result.group = request.group;
  result.gseq = ++group.gseq;
  result.ts_ms = request.ts_ms;
  result.first_copy = static_cast<std::uint32_t>(outcome.copies.size());
  for (const user_id member : group.members) {
    if (member == request.sender) continue;
    stored_message copy{0, request.sender, member, request.content, request.ts_ms, request.id};
    copy.group = request.group;
    copy.gseq = result.gseq;
    if (const std::size_t shard = shard_of(member, shards); shard != shard_) {
      // Numbered by the member's partition, in the order handed: every
      // member gets the group's messages in gseq order.
      hand(shard, std::move(copy), true);
      ++result.crossed;
      continue;
    }
    const seq_t seq = store_entry(inboxes_[member], std::move(copy), outcome.evicted);
    outcome.copies.push_back(group_copy{member, seq});
  }
  result.copies = static_cast<std::uint32_t>(outcome.copies.size()) - result.first_copy;
  return result;
}

seq_t memory_backend::store_entry(inbox& box, stored_message entry, std::uint64_t& evicted) {
  const seq_t seq = ++box.highest;
  entry.seq = seq;
  const user_id user = entry.receiver;
  hold(user, box, std::move(entry));
  evicted += trim(box);
  return seq;
}

void memory_backend::hand(std::size_t shard, stored_message entry, bool reserved) {
  outgoing_[shard].push_back(memory_shared::crossing{std::move(entry), reserved});
}

void memory_backend::hand_over() {
  for (std::size_t shard = 0; shard < outgoing_.size(); ++shard) {
    auto& entries = outgoing_[shard];
    if (entries.empty()) continue;
    auto& box = *shared_->mailboxes_[shard];
    bool was_empty = false;
    {
      const std::lock_guard lock(box.lock);
      was_empty = box.entries.empty();
      if (was_empty) {
        box.entries.swap(entries);
      } else {
        std::move(entries.begin(), entries.end(), std::back_inserter(box.entries));
      }
    }
    entries.clear();
    if (was_empty && shared_->wake_) shared_->wake_(shard);
  }
}

status_outcome memory_backend::take_crossed() {
  status_outcome out;
  std::vector<memory_shared::crossing> handed;
  {
    auto& box = *shared_->mailboxes_[shard_];
    const std::lock_guard lock(box.lock);
    handed.swap(box.entries);
  }
  out.statuses.reserve(handed.size());
  for (auto& [entry, reserved] : handed) {
    auto [box_at, fresh] = inboxes_.try_emplace(entry.receiver);
    if (reserved) {
      if (!fresh) shared_->release(inbox_cost());
    } else {
      // A STATUS: charged, never refused, as append_status() does.
      shared_->charge(message_cost(entry) + (fresh ? inbox_cost() : 0));
    }
    stored_message& stored = out.statuses.emplace_back(std::move(entry));
    stored.seq = store_entry(box_at->second, stored, out.evicted);
  }
  return out;
}

membership_change memory_backend::add_member(group_id group, user_id user) {
  auto found = groups_.find(group);
  if (found != groups_.end() && found->second.members.contains(user))
    return membership_change::done;
  const std::size_t size = found == groups_.end() ? 0 : found->second.members.size();
  if (size >= limits_.max_group_members) return membership_change::full;
  auto user_at = user_groups_.find(user);
  const std::size_t cost = membership_cost() + (found == groups_.end() ? group_cost() : 0) +
                           (user_at == user_groups_.end() ? user_groups_cost() : 0);
  if (!shared_->reserve(cost)) throw unavailable("memory store: --memory-store-bytes reached");
  if (found == groups_.end()) found = groups_.try_emplace(group).first;
  if (user_at == user_groups_.end()) user_at = user_groups_.try_emplace(user).first;
  found->second.members.insert(user);
  user_at->second.insert(group);
  return membership_change::done;
}

void memory_backend::remove_member(group_id group, user_id user) {
  const auto found = groups_.find(group);
  if (found == groups_.end() || found->second.members.erase(user) == 0) return;
  shared_->release(membership_cost());
  const auto user_at = user_groups_.find(user);
  if (user_at == user_groups_.end()) return;
  user_at->second.erase(group);
  if (user_at->second.empty()) {
    user_groups_.erase(user_at);
    shared_->release(user_groups_cost());
  }
}

std::vector<user_id> memory_backend::members(group_id group) {
  const auto found = groups_.find(group);
  if (found == groups_.end()) return {};
  return {found->second.members.begin(), found->second.members.end()};
}

std::vector<group_id> memory_backend::groups_of(user_id user) {
  const auto found = user_groups_.find(user);
  if (found == user_groups_.end()) return {};
  return {found->second.begin(), found->second.end()};
}

void memory_backend::drop_front(inbox& box) {
  const stored_message& m = box.held.front();
  box.bytes -= std::min(box.bytes, held_bytes(m.content));
  shared_->release(message_cost(m));
  box.held.pop_front();
}

std::uint64_t memory_backend::trim(inbox& box) {
  // Every held message is above the floor, so some device lacks it (or
  // none is remembered): each one dropped counts.
  std::uint64_t dropped = 0;
  while (box.held.size() > limits_.inbox_limit ||
         (box.bytes > limits_.inbox_bytes && box.held.size() > 1)) {
    drop_front(box);
    ++dropped;
  }
  return dropped;
}

memory_backend::device_state* memory_backend::find(inbox& box, const device_name& device) {
  for (auto& d : box.devices)
    if (d.name == device) return &d;
  return nullptr;
}

void memory_backend::settle(inbox& box) {
  if (box.devices.empty()) return;
  seq_t lowest = box.devices.front().cursor;
  for (const auto& d : box.devices)
    lowest = std::min(lowest, d.cursor);
  if (lowest <= box.floor) return;
  box.floor = lowest;
  while (!box.held.empty() && box.held.front().seq <= lowest)
    drop_front(box);
}

void memory_backend::forget_least_recent(inbox& box) {
  auto oldest = box.devices.end();
  for (auto it = box.devices.begin(); it != box.devices.end(); ++it)
    if (it->sessions == 0 && (oldest == box.devices.end() || it->seen_ms < oldest->seen_ms))
      oldest = it;
  if (oldest == box.devices.end()) return;  // every one has a session open
  box.devices.erase(oldest);
  shared_->release(devices_charge(box.devices.size() + 1) - devices_charge(box.devices.size()));
  settle(box);
}

user_position memory_backend::position(user_id user, const device_name& device) {
  const auto found = inboxes_.find(user);
  if (found == inboxes_.end()) return {};
  const device_state* d = find(found->second, device);
  return user_position{found->second.highest, d ? std::min(d->cursor, found->second.highest) : 0};
}

user_position memory_backend::open(user_id user, const device_name& device, std::int64_t now_ms) {
  clock_ms_ = std::max(clock_ms_, now_ms);
  auto box_at = inboxes_.find(user);
  if (box_at == inboxes_.end()) {
    // Over the bound the device is not remembered: it holds nothing back,
    // and its cursor does not move (it reads from 0 each time).
    if (!shared_->reserve(inbox_cost())) return {};
    box_at = inboxes_.try_emplace(user).first;
  }
  inbox& box = box_at->second;
  device_state* d = find(box, device);
  if (d == nullptr) {
    if (box.devices.size() >= limits_.max_devices_per_user) forget_least_recent(box);
    const std::size_t cost = box.devices.empty() ? 0 : device_cost();
    if (!shared_->reserve(cost)) return user_position{box.highest, 0};
    d = &box.devices.emplace_back(device_state{device, 0, now_ms, 0});
  } else if (d->sessions == 0 && device_forgotten(d->seen_ms, now_ms, limits_.device_ttl)) {
    // Forgotten, and the sweep has not reached it yet: it starts again.
    d->cursor = 0;
  }
  d->seen_ms = std::max(d->seen_ms, now_ms);
  ++d->sessions;
  return user_position{box.highest, std::min(d->cursor, box.highest)};
}

void memory_backend::close(user_id user, const device_name& device, std::int64_t now_ms) {
  clock_ms_ = std::max(clock_ms_, now_ms);
  const auto found = inboxes_.find(user);
  if (found == inboxes_.end()) return;
  device_state* d = find(found->second, device);
  if (d == nullptr) return;
  if (d->sessions > 0) --d->sessions;
  d->seen_ms = std::max(d->seen_ms, now_ms);
  if (d->sessions == 0) expire_at(user, found->second, remembered_until(d->seen_ms));
}

std::vector<stored_message> memory_backend::fetch(user_id user, seq_t after, std::size_t max_count,
                                                  std::size_t max_bytes) {
  std::vector<stored_message> messages;
  const auto found = inboxes_.find(user);
  if (found == inboxes_.end()) return messages;
  const std::deque<stored_message>& held = found->second.held;
  // held is in seq order but may have holes (retention), so search, not index.
  auto it = std::partition_point(held.begin(), held.end(),
                                 [after](const stored_message& m) { return m.seq <= after; });
  std::size_t bytes = 0;
  for (; it != held.end() && messages.size() < max_count; ++it) {
    bytes += held_bytes(it->content);
    // The first message goes whatever its size: a page always moves on.
    if (!messages.empty() && bytes > max_bytes) break;
    messages.push_back(*it);
  }
  return messages;
}

template <class Predicate>
void memory_backend::drop_notify(inbox& box, Predicate gone) {
  // From the front only, stopping at the first kept: every caller drops a
  // prefix (by seq, or by ts, which follows seq but for the few ms receive
  // times from different I/O threads may differ), so the entries that wait
  // for a READ are not walked on every SEND and cursor move.
  const auto end = std::find_if_not(box.notify.begin(), box.notify.end(), gone);
  const auto dropped = static_cast<std::size_t>(end - box.notify.begin());
  if (dropped == 0) return;
  box.notify.erase(box.notify.begin(), end);
  shared_->release(dropped * notify_cost());
}

void memory_backend::append_status(user_id owner, user_id about, status_state state, seq_t upto,
                                   std::int64_t ts_ms, status_outcome& out) {
  // Charged, never refused: the receiver's cursor has moved by now, and a
  // STATUS is smaller than the message it reports on.
  stored_message m;
  m.sender = about;
  m.receiver = owner;
  m.ts_ms = ts_ms;
  m.kind = entry_kind::status;
  m.state = state;
  m.upto = upto;
  // The owner's inbox is written by its own partition only: one of
  // another partition gets it there, after this call (hand_over).
  if (const std::size_t shard = shard_of(owner, shared_->shards()); shard != shard_)
    return hand(shard, std::move(m), false);
  auto [box_at, fresh] = inboxes_.try_emplace(owner);
  shared_->charge(message_cost(m) + (fresh ? inbox_cost() : 0));
  stored_message& stored = out.statuses.emplace_back(std::move(m));
  stored.seq = store_entry(box_at->second, stored, out.evicted);
}

void memory_backend::cover(user_id user, inbox& box, seq_t upto, std::int64_t ts_ms, bool read,
                           status_outcome& out) {
  // The senders to notify, each once, in the order of their first message
  // covered. Collected before appending: a user may send to itself.
  std::vector<user_id> delivered;
  std::vector<user_id> read_by;
  const auto add = [](std::vector<user_id>& senders, user_id sender) {
    if (std::find(senders.begin(), senders.end(), sender) == senders.end())
      senders.push_back(sender);
  };
  if (box.notify.empty()) return;  // most users: nothing to walk, on every cursor move
  drop_notify(box, [&](const pending_notify& p) {
    return notify_forgotten(p.seq, box.highest, limits_.inbox_limit);
  });
  // The delivered ones are a prefix (every move and READ covers a prefix,
  // and entries join at the back): a cursor move starts after it, so that
  // notify-messages waiting to be read are not walked again on every move.
  auto from = read ? box.notify.begin()
                   : std::partition_point(box.notify.begin(), box.notify.end(),
                                          [](const pending_notify& p) { return p.delivered; });
  for (; from != box.notify.end(); ++from) {
    pending_notify& p = *from;
    if (p.seq > upto) break;
    if (!p.delivered) {
      p.delivered = true;
      add(delivered, p.sender);
    }
    if (read) add(read_by, p.sender);
  }
  if (read) drop_notify(box, [upto](const pending_notify& p) { return p.seq <= upto; });
  for (const user_id sender : delivered)
    append_status(sender, user, status_state::delivered, upto, ts_ms, out);
  for (const user_id sender : read_by)
    append_status(sender, user, status_state::read, upto, ts_ms, out);
}

status_outcome memory_backend::advance_cursor(const cursor_move& move) {
  status_outcome out;
  const auto found = inboxes_.find(move.user);
  if (found == inboxes_.end()) return out;
  inbox& box = found->second;
  device_state* d = find(box, move.device);
  if (d == nullptr) {
    // Never opened (or not remembered, over the bound): see clock_ms_.
    if (box.devices.size() >= limits_.max_devices_per_user) forget_least_recent(box);
    const std::size_t cost = box.devices.empty() ? 0 : device_cost();
    if (!shared_->reserve(cost)) return out;
    d = &box.devices.emplace_back(device_state{move.device, 0, clock_ms_, 0});
    expire_at(move.user, box, remembered_until(clock_ms_));
  }
  const seq_t target = std::min(move.seq, box.highest);
  if (target <= d->cursor) return out;
  d->cursor = target;
  settle(box);
  cover(move.user, box, target, move.ts_ms, false, out);
  hand_over();
  return out;
}

status_outcome memory_backend::read(user_id user, seq_t seq, std::int64_t ts_ms) {
  status_outcome out;
  const auto found = inboxes_.find(user);
  if (found == inboxes_.end()) return out;
  inbox& box = found->second;
  const seq_t upto = std::min(seq, box.highest);
  if (upto == 0) return out;
  cover(user, box, upto, ts_ms, true, out);
  hand_over();
  return out;
}

namespace {
// t + span, or max when that is beyond what an int64 holds.
std::int64_t saturated_add(std::int64_t t, std::int64_t span) {
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  return t > max - span ? max : t + span;
}
// A window in ms as window_start() counts it: max when it never passes.
std::int64_t window_ms(std::chrono::seconds window) {
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  if (window.count() <= 0) return 0;
  if (window.count() > max / 1000) return max;
  return window.count() * 1000;
}
}  // namespace

std::int64_t memory_backend::retained_until(std::int64_t ts_ms) const {
  // ts < window_start(now, retention) exactly when now > ts + retention.
  return saturated_add(ts_ms, window_ms(limits_.retention));
}

std::int64_t memory_backend::remembered_until(std::int64_t seen_ms) const {
  // device_forgotten(seen, now) exactly when now > seen + device_forget_ms.
  return saturated_add(seen_ms, device_forget_ms(limits_.device_ttl));
}

void memory_backend::hold(user_id user, inbox& box, stored_message m) {
  if (m.ts_ms < box.newest_ts) {
    // Out of ts order: the front of `held` does not bound it. Entries for
    // messages gone (acknowledged, trimmed) are pruned here and by sweep().
    auto& early = early_[user];
    if (!box.held.empty()) {
      const seq_t front = box.held.front().seq;
      std::erase_if(early, [front](const early_message& e) { return e.seq < front; });
    }
    early.push_back(early_message{m.seq, m.ts_ms});
  } else {
    box.newest_ts = m.ts_ms;
  }
  box.bytes += held_bytes(m.content);
  expire_at(user, box, retained_until(m.ts_ms));
  box.held.push_back(std::move(m));
}

void memory_backend::expire_at(user_id user, inbox& box, std::int64_t at_ms) {
  if (at_ms >= box.due_ms) return;  // its entry comes up sooner
  box.due_ms = at_ms;
  due_.push(due_entry{at_ms, user});
}

std::uint64_t memory_backend::sweep(user_id user, inbox& box, std::int64_t now_ms) {
  const std::int64_t oldest_kept = window_start(now_ms, limits_.retention);
  // Devices past --device-ttl are forgotten, with what only they held. The
  // memory store records no sighting while a session is open (the durable
  // stores do, device_refresh_ms, for a server killed with sessions open:
  // this one forgets everything then anyway).
  const auto devices_before = box.devices.size();
  std::erase_if(box.devices, [&](const device_state& d) {
    return d.sessions == 0 && device_forgotten(d.seen_ms, now_ms, limits_.device_ttl);
  });
  if (box.devices.size() != devices_before) {
    shared_->release(devices_charge(devices_before) - devices_charge(box.devices.size()));
    settle(box);
  }
  // Every message held but the early ones has a ts at or above the front's:
  // once the front is kept, so are they.
  std::uint64_t evicted = 0;
  while (!box.held.empty() && box.held.front().ts_ms < oldest_kept) {
    drop_front(box);
    ++evicted;
  }
  std::int64_t next = std::numeric_limits<std::int64_t>::max();
  if (const auto early_at = early_.find(user); early_at != early_.end()) {
    std::erase_if(early_at->second, [&](const early_message& e) {
      if (box.held.empty() || e.seq < box.held.front().seq) return true;  // gone already
      if (e.ts_ms >= oldest_kept) {
        next = std::min(next, retained_until(e.ts_ms));
        return false;
      }
      const auto it = std::partition_point(box.held.begin(), box.held.end(),
                                           [&](const stored_message& m) { return m.seq < e.seq; });
      if (it != box.held.end() && it->seq == e.seq) {
        box.bytes -= std::min(box.bytes, held_bytes(it->content));
        shared_->release(message_cost(*it));
        box.held.erase(it);
        ++evicted;
      }
      return true;
    });
    if (early_at->second.empty()) early_.erase(early_at);
  }
  // A notify-message past --retention gets no STATUS any more.
  if (!box.notify.empty())
    drop_notify(box, [&](const pending_notify& p) { return p.ts_ms < oldest_kept; });

  // What comes up next: the front, an early message (above), the first
  // notify-message, a device without a session.
  if (!box.held.empty()) next = std::min(next, retained_until(box.held.front().ts_ms));
  if (!box.notify.empty()) next = std::min(next, retained_until(box.notify.front().ts_ms));
  for (const auto& d : box.devices)
    if (d.sessions == 0) next = std::min(next, remembered_until(d.seen_ms));
  box.due_ms = std::numeric_limits<std::int64_t>::max();
  if (next != box.due_ms) expire_at(user, box, next);
  return evicted;
}

void memory_backend::sweep_dedup(std::int64_t now_ms) {
  const std::int64_t oldest_remembered = window_start(now_ms, limits_.dedup_window);
  // Each partition sweeps its own share of the stripes.
  const std::size_t shards = shared_->shards();
  for (std::size_t i = shard_; i < shared_->stripes_.size(); i += shards) {
    auto& stripe = *shared_->stripes_[i];
    const auto lock = shared_->hold(stripe);
    auto& order = stripe.order;
    while (!order.empty() && order.front().ts_ms < oldest_remembered) {
      const memory_shared::dedup_record record = order.front();
      order.pop_front();
      const auto& entry = record.entry->second;
      if (entry.state == memory_shared::claim_state::pending) {
        // Its SEND is still queued: looked at again one window later.
        order.push_back(memory_shared::dedup_record{oldest_remembered, record.entry});
        continue;
      }
      if (entry.ts_ms >= oldest_remembered) {
        // Replaced in place by a later message with the same id: its time now.
        order.push_back(memory_shared::dedup_record{entry.ts_ms, record.entry});
        continue;
      }
      shared_->release(dedup_cost(record.entry->first.id));
      stripe.entries.erase(stripe.entries.find(record.entry->first));
    }
  }
}

std::uint64_t memory_backend::evict_expired(std::int64_t now_ms) {
  clock_ms_ = std::max(clock_ms_, now_ms);
  // Only the inboxes whose due time has passed: each entry is a lower
  // bound, and sweep() applies the exact rules (window_start,
  // device_forgotten) and indexes what it kept, all due after now_ms.
  std::uint64_t evicted = 0;
  while (!due_.empty() && due_.top().at_ms < now_ms) {
    const due_entry entry = due_.top();
    due_.pop();
    const auto found = inboxes_.find(entry.user);
    if (found == inboxes_.end() || found->second.due_ms != entry.at_ms) continue;  // stale
    ++inboxes_swept_;
    evicted += sweep(entry.user, found->second, now_ms);
  }
  sweep_dedup(now_ms);
  return evicted;
}

}  // namespace switchboard::store
