#include "switchboard/store/memory_backend.hpp"

#include <algorithm>
#include <functional>
#include <limits>

namespace switchboard::store {

std::size_t memory_backend::dedup_key_hash::operator()(const dedup_key& key) const noexcept {
  const std::size_t h = std::hash<std::string>{}(key.id);
  return h ^ (std::hash<user_id>{}(key.sender) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

memory_backend::memory_backend(backend_limits limits) : limits_(limits) {}

// Nothing here can fail but an allocation, so there is no transaction to undo:
// the all-or-nothing promise only matters for backends with a disk.
append_outcome memory_backend::append(std::span<const append_request> batch) {
  append_outcome outcome;
  outcome.results.reserve(batch.size());
  std::vector<user_id> touched;
  for (const append_request& request : batch) {
    if (request.id) {
      // An entry past its window that evict_expired() has not reached yet
      // counts as gone, so the answer does not depend on when eviction ran.
      const auto found = dedup_.find(dedup_key{request.sender, request.id->value});
      if (found != dedup_.end() &&
          found->second.ts_ms >= window_start(request.ts_ms, limits_.dedup_window)) {
        const original& first = found->second;
        outcome.results.push_back(append_result{false, first.receiver, first.seq, first.ts_ms});
        continue;
      }
    }
    inbox& box = inboxes_[request.receiver];
    const seq_t seq = ++box.highest;
    box.held.push_back(stored_message{seq, request.sender, request.receiver, request.content,
                                      request.ts_ms, request.id});
    if (request.id) {
      dedup_.insert_or_assign(dedup_key{request.sender, request.id->value},
                              original{request.receiver, seq, request.ts_ms});
    }
    outcome.results.push_back(append_result{true, request.receiver, seq, request.ts_ms});
    touched.push_back(request.receiver);
  }
  // After the whole batch, as the SQLite backend does: the same messages go
  // either way, the oldest ones.
  for (const user_id user : touched) {
    inbox& box = inboxes_[user];
    while (box.held.size() > limits_.inbox_limit) {
      box.held.pop_front();
      ++outcome.evicted;
    }
  }
  return outcome;
}

user_position memory_backend::position(user_id user) {
  const auto found = inboxes_.find(user);
  if (found == inboxes_.end()) return {};
  return user_position{found->second.highest, found->second.cursor};
}

std::vector<stored_message> memory_backend::fetch(user_id user, seq_t after,
                                                  std::size_t max_count) {
  std::vector<stored_message> messages;
  const auto found = inboxes_.find(user);
  if (found == inboxes_.end()) return messages;
  const std::deque<stored_message>& held = found->second.held;
  // held is in seq order but may have holes (retention), so search, not index.
  auto first = std::partition_point(held.begin(), held.end(),
                                    [after](const stored_message& m) { return m.seq <= after; });
  const auto available = static_cast<std::size_t>(held.end() - first);
  const std::size_t count = std::min(available, max_count);
  messages.assign(first, first + static_cast<std::ptrdiff_t>(count));
  return messages;
}

void memory_backend::advance_cursor(user_id user, seq_t seq) {
  const auto found = inboxes_.find(user);
  if (found == inboxes_.end()) return;
  inbox& box = found->second;
  const seq_t target = std::min(seq, box.highest);
  if (target <= box.cursor) return;
  box.cursor = target;
  while (!box.held.empty() && box.held.front().seq <= target)
    box.held.pop_front();
}

std::uint64_t memory_backend::evict_expired(std::int64_t now_ms) {
  const std::int64_t oldest_kept = window_start(now_ms, limits_.retention);
  std::uint64_t evicted = 0;
  for (auto& [user, box] : inboxes_) {
    // Not just a pop from the front: receive times from different I/O
    // threads can reach the store slightly out of seq order.
    evicted += std::erase_if(
        box.held, [oldest_kept](const stored_message& m) { return m.ts_ms < oldest_kept; });
  }
  const std::int64_t oldest_remembered = window_start(now_ms, limits_.dedup_window);
  std::erase_if(dedup_, [oldest_remembered](const auto& entry) {
    return entry.second.ts_ms < oldest_remembered;
  });
  return evicted;
}

}  // namespace switchboard::store
