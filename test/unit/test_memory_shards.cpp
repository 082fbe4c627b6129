// The sharded memory store's partitions, driven directly (no worker, no
// thread): what docs/architecture.md, "Step 2", argues is exact, step by
// step, where the end-to-end tests (test_shards) can only hope a race
// shows it. Each case submits as store::workers does: memory_shared::claim
// picks the partition, which append()s; what a partition hands to another
// waits in that one's mailbox until its take_crossed().
#define BOOST_TEST_MODULE memory_shards
#include <boost/test/unit_test.hpp>

#include <memory>
#include <vector>

#include "switchboard/store/memory_backend.hpp"

using namespace switchboard::store;

namespace {

constexpr std::int64_t t0 = 1'000'000;

struct partitions {
  explicit partitions(std::size_t n = 2, backend_limits l = {})
      : limits(l), shared(std::make_shared<memory_shared>(n, l)) {
    for (std::size_t k = 0; k < n; ++k)
      parts.push_back(std::make_unique<memory_backend>(limits, shared, k));
    shared->on_handed([this](std::size_t k) { woken.push_back(k); });
  }

  // The `n`th user (from 0) of partition `shard`.
  user_id user_on(std::size_t shard, std::size_t n = 0) const {
    for (user_id u = 1;; ++u)
      if (shard_of(u, parts.size()) == shard && n-- == 0) return u;
  }

  // Claims `r` and returns the partition it goes to (nullopt: refused).
  std::optional<std::size_t> submit(append_request& r) { return shared->claim(r); }
  append_result append_at(std::size_t k, const append_request& r) {
    return parts[k]->append(std::span<const append_request>(&r, 1)).results.at(0);
  }
  // Claim and append at once (nothing else in between).
  append_result send(append_request r) {
    const auto k = submit(r);
    if (!k) {
      append_result refused;
      refused.refused = true;
      return refused;
    }
    return append_at(*k, r);
  }

  backend_limits limits;
  std::shared_ptr<memory_shared> shared;
  std::vector<std::unique_ptr<memory_backend>> parts;
  std::vector<std::size_t> woken;
};

append_request message(user_id sender, user_id receiver, std::string content,
                       std::optional<std::string> id = std::nullopt, std::int64_t ts = t0) {
  append_request r;
  r.sender = sender;
  r.receiver = receiver;
  r.content = std::move(content);
  r.ts_ms = ts;
  if (id) r.id = message_id{*id, false};
  return r;
}

}  // namespace

// Two SENDs with one id, to receivers of two partitions, both submitted
// before either is stored: the first submitted is the original, wherever
// it goes, and the second goes to the original's partition, behind it.
BOOST_AUTO_TEST_CASE(the_first_submitted_is_the_original_whatever_its_partition) {
  partitions p;
  const auto sender = p.user_on(0, 0);
  const auto first = p.user_on(1, 1);
  const auto second = p.user_on(0, 1);
  auto a = message(sender, first, "a", "x");
  auto b = message(sender, second, "b", "x");
  BOOST_TEST(p.submit(a).value() == 1u);
  BOOST_TEST(a.claimed);
  BOOST_TEST(p.submit(b).value() == 1u);  // follows the original
  BOOST_TEST(!b.claimed);
  const auto stored = p.append_at(1, a);
  BOOST_TEST(stored.stored);
  BOOST_TEST(stored.receiver == first);
  const auto again = p.append_at(1, b);
  BOOST_TEST(!again.stored);
  BOOST_TEST(again.receiver == first);
  BOOST_TEST(again.seq == stored.seq);
  BOOST_TEST(p.parts[0]->position(second).highest == 0u);
  // Later, from anywhere: the same.
  const auto later = p.send(message(sender, second, "c", "x"));
  BOOST_TEST(!later.stored);
  BOOST_TEST(later.receiver == first);
}

// The original refused (the budget): a SEND that followed it is not its
// partition's to store, and is refused too; sent again, it is an original.
BOOST_AUTO_TEST_CASE(a_follower_of_a_refused_original_is_refused_then_taken) {
  backend_limits limits;
  limits.memory_store_bytes = 64 * 1024;
  partitions p(2, limits);
  const auto sender = p.user_on(0, 0);
  const auto first = p.user_on(1, 1);
  const auto second = p.user_on(0, 1);
  auto big = message(sender, first, std::string(limits.memory_store_bytes, 'x'), "x");
  auto small = message(sender, second, "small", "x");
  BOOST_TEST(p.submit(big).value() == 1u);
  BOOST_TEST(p.submit(small).value() == 1u);
  BOOST_TEST(p.append_at(1, big).refused);
  BOOST_TEST(p.append_at(1, small).refused);
  const auto taken = p.send(message(sender, second, "small", "x"));
  BOOST_TEST(!taken.refused);
  BOOST_TEST(taken.stored);
  BOOST_TEST(taken.receiver == second);
}

// A claim whose SEND never reached its partition lapses.
BOOST_AUTO_TEST_CASE(an_unclaimed_id_is_free_again) {
  partitions p;
  const auto sender = p.user_on(0, 0);
  auto lost = message(sender, p.user_on(1, 1), "lost", "y");
  BOOST_TEST(p.submit(lost).value() == 1u);
  p.shared->unclaim(lost);
  const auto r = p.send(message(sender, p.user_on(0, 1), "kept", "y"));
  BOOST_TEST(!r.refused);
  BOOST_TEST(r.stored);
  BOOST_TEST(r.receiver == p.user_on(0, 1));
}

// A group at the group partition (0) with members on both: the copies of
// partition 1's members are handed to it (woken once), stored there with
// its seqs, in gseq order; one reservation for all copies.
BOOST_AUTO_TEST_CASE(group_copies_cross_in_gseq_order_all_or_none) {
  backend_limits limits;
  limits.memory_store_bytes = 64 * 1024;
  partitions p(2, limits);
  const group_id group = 5;
  const auto sender = p.user_on(0, 0);
  const auto near = p.user_on(0, 1);
  const auto far = p.user_on(1, 0);
  for (const auto u : {sender, near, far})
    BOOST_TEST((p.parts[0]->add_member(group, u) == membership_change::done));
  BOOST_TEST(p.parts[0]->groups_of(far) == std::vector<group_id>{group});
  for (int i = 1; i <= 3; ++i) {
    auto r = message(sender, 0, "g" + std::to_string(i), "g" + std::to_string(i));
    r.group = group;
    BOOST_TEST(p.submit(r).value() == 0u);
    const auto outcome = p.parts[0]->append(std::span<const append_request>(&r, 1));
    const auto& result = outcome.results.at(0);
    BOOST_TEST(result.gseq == static_cast<seq_t>(i));
    BOOST_TEST(result.copies == 1u);   // near
    BOOST_TEST(result.crossed == 1u);  // far
  }
  BOOST_TEST(p.woken == std::vector<std::size_t>{1});  // once, while its mailbox waited
  const auto crossed = p.parts[1]->take_crossed();
  BOOST_TEST_REQUIRE(crossed.statuses.size() == 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    BOOST_TEST(crossed.statuses[i].receiver == far);
    BOOST_TEST(crossed.statuses[i].seq == i + 1);
    BOOST_TEST(crossed.statuses[i].gseq == i + 1);
    BOOST_TEST(crossed.statuses[i].group == group);
  }
  BOOST_TEST(p.parts[1]->position(far).highest == 3u);
  BOOST_TEST(p.parts[1]->take_crossed().statuses.empty());

  // Room for one copy but not two: refused whole, no gseq used.
  const std::size_t room = p.limits.memory_store_bytes - p.shared->charged();
  auto big = message(sender, 0, std::string(room / 2 + 64, 'x'), "big");
  big.group = group;
  BOOST_TEST(p.send(big).refused);
  BOOST_TEST(p.parts[0]->position(near).highest == 3u);
  BOOST_TEST(p.parts[1]->take_crossed().statuses.empty());
}

// A cursor move at the receiver's partition brings a STATUS for a sender of
// the other: stored in the sender's inbox by the sender's partition.
BOOST_AUTO_TEST_CASE(status_is_stored_by_the_senders_partition) {
  partitions p;
  const auto sender = p.user_on(1, 0);
  const auto receiver = p.user_on(0, 0);
  p.parts[0]->open(receiver, device_name{}, t0);
  auto r = message(sender, receiver, "hi", "n1");
  r.notify = true;
  BOOST_TEST(p.send(r).seq == 1u);
  const auto moved = p.parts[0]->advance_cursor(cursor_move{receiver, 1, device_name{}, t0 + 5});
  BOOST_TEST(moved.statuses.empty());  // not this partition's to store
  const auto read = p.parts[0]->read(receiver, 1, t0 + 6);
  BOOST_TEST(read.statuses.empty());
  const auto crossed = p.parts[1]->take_crossed();
  BOOST_TEST_REQUIRE(crossed.statuses.size() == 2u);
  BOOST_TEST((crossed.statuses[0].kind == entry_kind::status));
  BOOST_TEST((crossed.statuses[0].state == status_state::delivered));
  BOOST_TEST((crossed.statuses[1].state == status_state::read));
  BOOST_TEST(crossed.statuses[0].receiver == sender);
  BOOST_TEST(crossed.statuses[0].sender == receiver);
  BOOST_TEST(crossed.statuses[0].seq == 1u);
  BOOST_TEST(crossed.statuses[1].seq == 2u);
  BOOST_TEST(p.parts[1]->position(sender).highest == 2u);
}

// One budget for every partition: filled through one, the other refuses;
// freed through one, the other takes again. The dedup entries go back at
// the end of their window, swept by the partition owning their stripe.
BOOST_AUTO_TEST_CASE(one_budget_for_every_partition) {
  backend_limits limits;
  limits.memory_store_bytes = 64 * 1024;
  limits.dedup_window = std::chrono::seconds(1);
  partitions p(2, limits);
  const auto sender = p.user_on(0, 0);
  const auto full = p.user_on(1, 1);
  const auto other = p.user_on(0, 1);
  p.parts[1]->open(full, device_name{}, t0);
  int stored = 0;
  while (
      !p.send(message(sender, full, std::string(4096, 'm'), "m" + std::to_string(stored))).refused)
    ++stored;
  BOOST_TEST(stored > 10);
  BOOST_TEST(p.send(message(sender, other, std::string(4096, 'o'))).refused);
  p.parts[1]->advance_cursor(full, static_cast<seq_t>(stored));
  BOOST_TEST(!p.send(message(sender, other, std::string(4096, 'o'))).refused);
  const std::size_t with_dedup = p.shared->charged();
  for (auto& part : p.parts)
    part->evict_expired(t0 + 5000);
  BOOST_TEST(p.shared->charged() < with_dedup);
  // The ids are free again: a new original, at the other receiver.
  const auto again = p.send(message(sender, other, "again", "m0", t0 + 5000));
  BOOST_TEST(!again.refused);
  BOOST_TEST(again.stored);
  BOOST_TEST(again.receiver == other);
}
