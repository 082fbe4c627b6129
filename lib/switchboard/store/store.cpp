#include "switchboard/store/store.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "switchboard/clock.hpp"
#include "switchboard/log.hpp"
#include "switchboard/log_throttle.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/spawn.hpp"
#include "switchboard/store/memory_backend.hpp"

namespace switchboard::store {

namespace {
// Requests waiting for the store thread; senders wait when it is full.
constexpr std::size_t request_capacity = 16384;
// Most requests taken off the channel for one round: the group commit size.
constexpr std::size_t max_round = 1024;
// Messages per replay page: the writer asks for the next page only after it
// wrote this one, so a replay never has more than one page queued. Bytes
// per page: worker_limits::replay_page_bytes.
constexpr std::size_t replay_page_size = 128;
// A fetch that found the store unavailable is tried again after this; the
// session waits (a replay never fails a session for an outage).
constexpr std::chrono::milliseconds retry_pause{500};

// An append's charge against --store-queue-bytes: its content and the
// request around it.
std::size_t queue_charge(const request::append& a) {
  return sizeof(store_request) + held_bytes(a.message.content);
}

}  // namespace

worker::worker(std::unique_ptr<async_backend> b, outcomes& out, metrics& m,
               std::chrono::seconds sweep_interval, worker_limits limits,
               asio::any_io_executor executor)
    : backend_(std::move(b)),
      out_(out),
      metrics_(m),
      sweep_interval_(sweep_interval),
      limits_(limits),
      own_thread_(!executor),
      executor_(executor ? executor : context_.get_executor()),
      requests_(executor_, request_capacity) {}

worker::~worker() {
  stop();
}

void worker::start() {
  // Names the queue in the trace preset's log (docs/debugging.md).
  SB_LOG(debug).field("channel", static_cast<const void*>(&requests_)) << "store queue";
  backend_->start();
  asio::co_spawn(executor_, run(), log_exception("store worker"));
  asio::co_spawn(executor_, sweep(), log_exception("store sweep"));
  if (own_thread_) thread_ = std::thread([this] { context_.run(); });
}

void worker::stop() {
  backend_->stop();
  if (!thread_.joinable()) return;
  // A sentinel, not close(): closing a channel drops what it buffers.
  requests_.async_send(boost::system::error_code{}, request::stop{}, asio::use_future).get();
  thread_.join();
}

bool worker::charge(store_request& r) {
  auto* a = std::get_if<request::append>(&r);
  if (a == nullptr) return true;
  const std::size_t bytes = queue_charge(*a);
  std::size_t queued = queued_bytes_.load(std::memory_order_relaxed);
  do {
    if (bytes > limits_.queue_bytes - std::min(queued, limits_.queue_bytes)) {
      out_.refused(a->sender, a->message.id);
      if (refused_) refused_(a->message);
      return false;
    }
  } while (!queued_bytes_.compare_exchange_weak(queued, queued + bytes, std::memory_order_relaxed));
  return true;
}

void worker::release(const request::append& a) {
  queued_bytes_.fetch_sub(queue_charge(a), std::memory_order_relaxed);
}

bool worker::try_submit(store_request& r) {
  if (!charge(r)) return true;  // answered: refused
  // try_send leaves the value alone when it fails.
  if (requests_.try_send(boost::system::error_code{}, std::move(r))) return true;
  if (auto* a = std::get_if<request::append>(&r)) release(*a);
  return false;
}

asio::awaitable<void> worker::submit(store_request r) {
  if (!charge(r)) co_return;  // answered: refused
  if (requests_.try_send(boost::system::error_code{}, std::move(r))) co_return;
  // The charge stays while the request waits for room: its bytes are held
  // all the same.
  co_await requests_.async_send(boost::system::error_code{}, std::move(r),
                                asio::as_tuple(asio::use_awaitable));
}

void worker::nudge() {
  // One wake in the queue at a time; a full queue needs none (a round is
  // coming, and every round starts with a look at nudged_).
  if (!nudged_.exchange(true, std::memory_order_acq_rel))
    requests_.try_send(boost::system::error_code{}, request::wake{});
}

asio::awaitable<void> worker::take_crossed() {
  auto outcome = co_await backend_->take_crossed();
  metrics_.messages_evicted_total.fetch_add(outcome.evicted, std::memory_order_relaxed);
  if (outcome.statuses.empty()) co_return;
  for (const auto& s : outcome.statuses)
    if (s.kind == entry_kind::status) metrics_.count_status(s.state == status_state::read);
  co_await out_.committed(std::move(outcome.statuses));
}

asio::awaitable<void> worker::run() {
  auto& round = round_;
  auto& group = group_;
  auto& moves = moves_;
  bool stopping = false;
  while (!stopping) {
    auto [ec, first] = co_await requests_.async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    round.clear();
    round.push_back(std::move(first));
    while (round.size() < max_round &&
           requests_.try_receive([&](boost::system::error_code, store_request r) {
             round.push_back(std::move(r));
           })) {
    }
    // What other partitions handed this one before this round.
    if (nudged_.exchange(false, std::memory_order_acq_rel)) co_await take_crossed();

    for (auto& r : round) {
      if (auto* a = std::get_if<request::append>(&r)) {
        release(*a);
        group.push_back(std::move(*a));
        continue;
      }
      if (auto* m = std::get_if<request::advance>(&r)) {
        // Cursor moves commute with appends, so they wait for the end of the
        // round and go in one transaction.
        moves.push_back({m->user, m->seq, m->device});
        continue;
      }
      if (std::holds_alternative<request::wake>(r)) continue;  // done above
      // An open or a fetch must see every append that came before it.
      if (!group.empty()) co_await commit(group);
      if (auto* o = std::get_if<request::open>(&r)) {
        // ...and an open every cursor move: a session that reconnects right
        // after its frames were written is not sent them again.
        if (!moves.empty()) co_await move_cursors(moves);
        co_await handle(*o);
      } else if (auto* f = std::get_if<request::fetch>(&r)) {
        co_await handle(*f);
      } else if (auto* rd = std::get_if<request::read>(&r)) {
        // After the cursor moves before it: a READ beyond the delivered
        // point then finds the messages those moves covered covered, and
        // sends "delivered" only for the rest (PROTOCOL.md section 11).
        if (!moves.empty()) co_await move_cursors(moves);
        co_await handle(*rd);
      } else if (auto* c = std::get_if<request::close>(&r)) {
        co_await handle(*c);
      } else if (auto* g = std::get_if<request::membership>(&r)) {
        co_await handle(*g);
      } else if (auto* b = std::get_if<request::barrier>(&r)) {
        if (!moves.empty()) co_await move_cursors(moves);
        if (b->done) b->done();
      } else {
        stopping = true;
      }
    }
    if (!group.empty()) co_await commit(group);
    if (!moves.empty()) co_await move_cursors(moves);
  }
  if (own_thread_) context_.stop();
}

asio::awaitable<void> worker::move_cursors(std::vector<cursor_move>& moves) {
  // The moves of one round were made together: one time for the STATUS
  // entries they bring ("when that state was reached").
  const std::int64_t now = unix_ms();
  for (auto& m : moves)
    m.ts_ms = now;
  status_outcome outcome;
  try {
    outcome = co_await backend_->advance_cursors(moves);
    moves.clear();
  } catch (const unavailable& e) {
    // Kept for the next round: a lost move under ack=auto would replay
    // what a client already has. Bounded: one entry per user is enough.
    if (moves.size() > request_capacity) {
      SB_LOG(warn) << "store: " << moves.size() << " cursor moves dropped: " << e.what();
      moves.clear();
    }
  } catch (const std::exception& e) {
    // The cursor stays behind: those messages are replayed once more,
    // which at-least-once delivery allows.
    SB_LOG(warn) << "store: cursor update failed: " << e.what();
    moves.clear();
  }
  co_await statuses_appended(std::move(outcome));
}

asio::awaitable<void> worker::handle(request::read& r) {
  status_outcome outcome;
  try {
    outcome = co_await backend_->read(r.user, r.seq, unix_ms());
  } catch (const std::exception& e) {
    // No STATUS this time; the next READ covering the same messages sends it.
    static log_throttle throttle(5, std::chrono::seconds(1));
    if (std::uint64_t held = 0; throttle.allow(held))
      SB_LOG(warn) << "store: READ of user " << r.user << " failed: " << e.what()
                   << held_back(held);
  }
  co_await statuses_appended(std::move(outcome));
}

asio::awaitable<void> worker::statuses_appended(status_outcome outcome) {
  metrics_.messages_evicted_total.fetch_add(outcome.evicted, std::memory_order_relaxed);
  if (outcome.statuses.empty()) co_return;
  for (const auto& s : outcome.statuses)
    metrics_.count_status(s.state == status_state::read);
  // A cluster publishes them from its script, like messages.
  if (backend_->routes_messages()) co_return;
  co_await out_.committed(std::move(outcome.statuses));
}

asio::awaitable<void> worker::commit(std::vector<request::append>& group) {
  std::vector<append_request> batch;
  batch.reserve(group.size());
  for (auto& a : group)
    batch.push_back(std::move(a.message));

  append_outcome outcome;
  try {
    outcome = co_await backend_->append(batch);
  } catch (const std::exception& e) {
    // Nothing of the group was stored: every sender hears so and may resend.
    static log_throttle throttle(5, std::chrono::seconds(1));
    if (std::uint64_t held = 0; throttle.allow(held))
      SB_LOG(warn) << "store: append of " << batch.size() << " messages failed: " << e.what()
                   << held_back(held);
    for (std::size_t i = 0; i < group.size(); ++i)
      out_.refused(group[i].sender, batch[i].id);
    group.clear();
    co_return;
  }

  metrics_.messages_evicted_total.fetch_add(outcome.evicted, std::memory_order_relaxed);
  const auto stored_at = std::chrono::steady_clock::now();
  const bool routed = backend_->routes_messages();
  std::vector<stored_message> committed;
  if (!routed) committed.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& result = outcome.results[i];
    auto& message = batch[i];
    if (result.refused) {
      out_.refused(group[i].sender, message.id);
      continue;
    }
    if (result.not_member) {
      out_.not_member(group[i].sender, message.id);
      continue;
    }
    metrics_.observe_store_append(
        std::chrono::duration<double>(stored_at - group[i].parsed_at).count());
    if (message.id) out_.receipt(group[i].sender, *message.id, result);
    if (!result.stored) continue;
    if (message.group != 0) {
      // One message per copy, each in its member's seq order (PROTOCOL.md
      // section 10); a cluster's copies come back through pub/sub instead.
      metrics_.group_messages_total.fetch_add(1, std::memory_order_relaxed);
      // With partitions, `crossed` copies are stored and reported by their
      // members' own.
      metrics_.group_copies_total.fetch_add(result.copies + result.crossed,
                                            std::memory_order_relaxed);
      metrics_.group_fanout.observe(result.copies + result.crossed);
      if (routed) continue;
      for (std::uint32_t c = 0; c < result.copies; ++c) {
        const group_copy& copy = outcome.copies[result.first_copy + c];
        stored_message m;
        m.seq = copy.seq;
        m.sender = message.sender;
        m.receiver = copy.member;
        m.content = message.content;
        m.ts_ms = message.ts_ms;
        m.id = message.id;
        m.group = message.group;
        m.gseq = result.gseq;
        committed.push_back(std::move(m));
      }
    } else if (!routed) {
      stored_message stored;
      stored.seq = result.seq;
      stored.sender = message.sender;
      stored.receiver = message.receiver;
      stored.content = std::move(message.content);
      stored.ts_ms = message.ts_ms;
      stored.id = std::move(message.id);
      committed.push_back(std::move(stored));
    }
  }
  group.clear();
  if (committed.empty()) co_return;
  co_await out_.committed(std::move(committed));
}

asio::awaitable<void> worker::handle(request::open& r) {
  user_position position;
  try {
    position =
        co_await backend_->open({r.session->user, r.session->id, r.session->device, unix_ms()});
  } catch (const std::exception& e) {
    static log_throttle throttle(5, std::chrono::seconds(1));
    if (std::uint64_t held = 0; throttle.allow(held))
      SB_LOG(warn) << "store: cannot open the inbox of user " << r.session->user << ": " << e.what()
                   << held_back(held);
    // The session waits for its welcome: a close ends that wait.
    r.session->post(event::close{close_reason::shutdown});
    co_return;
  }
  r.session->store_opened.store(true, std::memory_order_relaxed);
  // The hub hears of the session before the session hears its welcome:
  // the writer's first caught_up must find it registered. Nothing else can
  // come first: the hub sends a session nothing but answers to caught_up
  // until it went live, and a close, which the session accepts in place of
  // a welcome. No receipt can either: this session has sent nothing yet.
  // With nothing to replay, the session is live from the start: no commit
  // can fall between its registration and its first live frame, so it gets
  // every message stored after its welcome even if another session of the
  // user moves the cursor past it first (the store may drop what is at or
  // below the cursor). A `since` above the highest seq (the store was reset)
  // counts as the highest: new messages are delivered.
  const seq_t from = std::min(r.since.value_or(position.cursor), position.highest);
  const bool live = from == position.highest;
  auto session = r.session;
  co_await out_.registered(std::move(r.session), position, live);
  session->post(event::welcome{position, live});
}

asio::awaitable<void> worker::handle(request::fetch& r) {
  try {
    auto messages = co_await backend_->fetch(r.session->user, r.after, replay_page_size,
                                             limits_.replay_page_bytes);
    if (!r.session->post(event::replay_page{std::move(messages)}))
      r.session->abort(close_reason::slow_consumer);
  } catch (const unavailable& e) {
    // The session keeps its place and waits; the outage is logged by the
    // backend, once.
    if (r.session->channel().is_open()) retry_later(std::move(r));
  } catch (const std::exception& e) {
    static log_throttle throttle(5, std::chrono::seconds(1));
    if (std::uint64_t held = 0; throttle.allow(held))
      SB_LOG(warn) << "store: replay for user " << r.session->user << " failed: " << e.what()
                   << held_back(held);
    r.session->abort(close_reason::shutdown);
  }
}

asio::awaitable<void> worker::handle(request::close& r) {
  try {
    co_await backend_->close({r.session->user, r.session->id, r.session->device, unix_ms()});
  } catch (const std::exception& e) {
    // A cluster forgets a session whose registration lapses (its lease).
    SB_LOG(debug) << "store: closing session " << r.session->id << ": " << e.what();
  }
}

asio::awaitable<void> worker::handle(request::membership& r) {
  using op = request::membership::op;
  request::membership::answer answer;
  try {
    switch (r.what) {
      case op::add:
        answer.change = co_await backend_->add_member(r.group, r.user);
        break;
      case op::remove:
        co_await backend_->remove_member(r.group, r.user);
        break;
      case op::members:
        answer.ids = co_await backend_->members(r.group);
        break;
      case op::groups_of:
        answer.ids = co_await backend_->groups_of(r.user);
        break;
    }
    answer.stored = true;
  } catch (const std::exception& e) {
    static log_throttle throttle(5, std::chrono::seconds(1));
    if (std::uint64_t held = 0; throttle.allow(held))
      SB_LOG(warn) << "store: membership request for group " << r.group << " failed: " << e.what()
                   << held_back(held);
  }
  if (r.done) r.done(std::move(answer));
}

void worker::retry_later(store_request r) {
  asio::co_spawn(
      executor_,
      [this, r = std::move(r)]() mutable -> asio::awaitable<void> {
        asio::steady_timer pause(executor_, retry_pause);
        auto [ec] = co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        co_await submit(std::move(r));
      },
      log_exception("store retry"));
}

asio::awaitable<void> worker::sweep() {
  asio::steady_timer timer(executor_);
  for (;;) {
    timer.expires_after(sweep_interval_);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    try {
      const auto evicted = co_await backend_->evict_expired(unix_ms());
      metrics_.messages_evicted_total.fetch_add(evicted, std::memory_order_relaxed);
    } catch (const std::exception& e) {
      SB_LOG(warn) << "store: eviction failed: " << e.what();
    }
  }
}

// ---- workers ----

workers::workers(std::unique_ptr<worker> one) {
  workers_.push_back(std::move(one));
}

workers::workers(backend_limits backend, outcomes& out, metrics& m,
                 std::chrono::seconds sweep_interval, worker_limits limits,
                 const std::vector<asio::any_io_executor>& executors)
    : shared_(std::make_shared<memory_shared>(executors.size(), backend)), out_(&out) {
  for (std::size_t k = 0; k < executors.size(); ++k) {
    auto partition = std::make_unique<memory_backend>(backend, shared_, k);
    workers_.push_back(
        std::make_unique<worker>(std::make_unique<sync_adapter>(std::move(partition)), out, m,
                                 sweep_interval, limits, executors[k]));
    workers_.back()->on_refused(
        [shared = shared_](const append_request& a) { shared->unclaim(a); });
  }
  std::vector<worker*> all;
  for (auto& w : workers_)
    all.push_back(w.get());
  shared_->on_handed([all](std::size_t k) { all[k]->nudge(); });
}

workers::~workers() = default;

void workers::start() {
  for (auto& w : workers_)
    w->start();
}

void workers::stop() {
  for (auto& w : workers_)
    w->stop();
}

std::optional<std::size_t> workers::route(store_request& r) {
  const std::size_t n = workers_.size();
  if (auto* a = std::get_if<request::append>(&r)) {
    // A claimed SEND submitted again (its queue was full): claimed once.
    if (a->message.claimed) return memory_backend::home_of(a->message, n);
    const auto shard = shared_->claim(a->message);
    if (!shard) out_->refused(a->sender, a->message.id);  // no room for its dedup entry
    return shard;
  }
  if (auto* o = std::get_if<request::open>(&r)) return shard_of(o->session->user, n);
  if (auto* f = std::get_if<request::fetch>(&r)) return shard_of(f->session->user, n);
  if (auto* c = std::get_if<request::close>(&r)) return shard_of(c->session->user, n);
  if (auto* m = std::get_if<request::advance>(&r)) return shard_of(m->user, n);
  if (auto* rd = std::get_if<request::read>(&r)) return shard_of(rd->user, n);
  // Membership with the group SENDs, in their order: the group shard.
  return memory_backend::group_shard;
}

bool workers::try_submit(store_request& r) {
  if (workers_.size() == 1) return workers_.front()->try_submit(r);
  if (std::holds_alternative<request::barrier>(r)) return false;  // submit() passes it through all
  const auto k = route(r);
  if (!k) return true;
  return workers_[*k]->try_submit(r);
}

asio::awaitable<void> workers::submit(store_request r) {
  if (workers_.size() == 1) {
    co_await workers_.front()->submit(std::move(r));
    co_return;
  }
  if (auto* b = std::get_if<request::barrier>(&r)) {
    // Twice: what the first round handed to other partitions is in their
    // mailboxes before the second reaches them (handing over never hands
    // on further), and each takes its mailbox at the start of a round.
    co_await barrier_all(std::move(b->done), 2);
    co_return;
  }
  const auto k = route(r);
  if (!k) co_return;
  co_await workers_[*k]->submit(std::move(r));
}

asio::awaitable<void> workers::barrier_all(std::function<void()> done, int rounds) {
  auto left = std::make_shared<std::atomic<std::size_t>>(workers_.size());
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  for (auto& w : workers_) {
    store_request barrier = request::barrier{[this, left, shared_done, rounds] {
      if (left->fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      if (rounds > 1) {
        asio::co_spawn(workers_.front()->executor(),
                       barrier_all(std::move(*shared_done), rounds - 1),
                       log_exception("store barrier"));
      } else if (*shared_done) {
        (*shared_done)();
      }
    }};
    co_await w->submit(std::move(barrier));
  }
}

}  // namespace switchboard::store
