// The store worker: runs a backend on a thread of its own, so no disk I/O
// ever happens on an I/O thread (PROTOCOL.md section 3, issue 3). A backend
// that never blocks (memory:) runs on an I/O thread instead: with one, a
// message then never changes threads on its way, which is most of the cost
// of relaying it (docs/performance.md); with several, the memory store is
// one partition and one worker per thread (`workers`, below).
//
// Requests arrive on one bounded channel and are handled in arrival order.
// Appends that arrive together are grouped into one backend call (one
// transaction, or one pipelined round trip to Redis: group commit); a
// receipt goes out only after the group was committed, and committed
// messages go to the layer above in commit order, which is seq order for
// every receiver.
//
// The worker knows nothing of the hub or of frames: it reports typed
// outcomes (registered, committed, receipt, refused) to store::outcomes, which
// the layer above implements (delivery.hpp). A Redis backend runs on the main
// I/O thread like memory:, since it never blocks (it awaits the network).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <variant>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>

#include "switchboard/net.hpp"
#include "switchboard/session_handle.hpp"
#include "switchboard/store/async_backend.hpp"
#include "switchboard/store/types.hpp"

namespace switchboard {
class metrics;
}  // namespace switchboard

namespace switchboard::store {

namespace request {
struct append {
  append_request message;
  session_ptr sender;  // gets the receipt or the ERROR
  std::chrono::steady_clock::time_point parsed_at;
};
// A new session: read its position, send it the welcome, register it.
struct open {
  session_ptr session;
  std::optional<seq_t> since;  // the session's ?since=
};
// The next page of a session's replay.
struct fetch {
  session_ptr session;
  seq_t after;
};
struct advance {
  user_id user;
  seq_t seq;
  device_name device;  // whose cursor moves (PROTOCOL.md section 9)
};
// READ (PROTOCOL.md section 11): the user has seen its inbox up to `seq`.
struct read {
  user_id user;
  seq_t seq;
};
// A session that was opened ended: the cluster forgets it.
struct close {
  session_ptr session;
};

// A membership change or read (PROTOCOL.md section 10, the /api/ group
// endpoints). Handled in arrival order with the appends: a change applies
// to the SENDs the store takes after it. `done` is called on the store's
// thread with the answer once the change is stored.
struct membership {
  enum class op { add, remove, members, groups_of };
  struct answer {
    bool stored = false;  // false: the store could not do it (unavailable)
    membership_change change = membership_change::done;
    std::vector<std::uint64_t> ids;  // members or groups, ascending
  };
  op what = op::members;
  group_id group = 0;
  user_id user = 0;
  std::function<void(answer)> done;
};

// Calls `done` once everything submitted before it was handled (the
// shutdown waits so for the cluster to hear of every closed session).
struct barrier {
  std::function<void()> done;
};
// Sent by stop(): everything before it is handled, then the thread ends.
struct stop {};
// A sharded memory store: another partition handed this one entries to
// store (worker::nudge); they are taken at the start of the next round.
struct wake {};
}  // namespace request

using store_request = std::variant<request::append, request::open, request::fetch, request::advance,
                                   request::read, request::close, request::barrier,
                                   request::membership, request::stop, request::wake>;

// What the worker's requests came to, told to the layer above, which turns
// them into hub events and frames.
class outcomes {
 public:
  virtual ~outcomes() = default;
  // The session is known to the store; its welcome follows at once. Must
  // reach the hub before anything committed later does.
  virtual asio::awaitable<void> registered(session_ptr session, user_position position,
                                           bool live) = 0;
  // Messages stored, in seq order per receiver (not called when the
  // backend routes messages itself); also the STATUS entries that cursor
  // moves and READs appended (PROTOCOL.md section 11).
  virtual asio::awaitable<void> committed(std::vector<stored_message> messages) = 0;
  // The message of `sender` with `id` was stored (or was a resend).
  virtual void receipt(const session_ptr& sender, const message_id& id,
                       const append_result& result) = 0;
  // Nothing of the message was stored: ERROR unavailable.
  virtual void refused(const session_ptr& sender, const std::optional<message_id>& id) = 0;
  // A group SEND from a user who is not a member: ERROR not_member, nothing
  // stored.
  virtual void not_member(const session_ptr& sender, const std::optional<message_id>& id) = 0;
};

// The worker's own bounds on what clients make it hold.
struct worker_limits {
  // held_bytes() of one replay page, but for its first message, which goes
  // whatever its size (server.cpp: a quarter of --send-queue-bytes).
  std::size_t replay_page_bytes = std::size_t{256} << 10;
  // --store-queue-bytes: content bytes of the SENDs waiting in the request
  // queue. One that would go beyond is refused at once (ERROR unavailable,
  // nothing stored): the queue's count alone (request_capacity) would let
  // it hold 16384 largest messages, a GiB at the default --max-message-bytes.
  std::size_t queue_bytes = std::size_t{64} << 20;
};

class worker {
 public:
  // Without `executor`, the worker runs on a thread of its own.
  worker(std::unique_ptr<async_backend> b, outcomes& out, metrics& m,
         std::chrono::seconds sweep_interval, worker_limits limits,
         asio::any_io_executor executor = {});
  ~worker();

  void start();
  async_backend& backend() { return *backend_; }
  // With a thread of its own: finishes what was already queued, then stops
  // the thread. On the I/O threads: nothing to do, the server's loop ended.
  void stop();

  // Waits while the queue is full. Safe from any thread. An append over
  // --store-queue-bytes is refused instead (outcomes::refused).
  asio::awaitable<void> submit(store_request r);
  // Queues `r` unless the queue is full; `r` is left as it was then. The hot
  // path's way in: no coroutine frame per message (docs/performance.md).
  // True also for an append refused over --store-queue-bytes (it was
  // answered: outcomes::refused).
  bool try_submit(store_request& r);

  // A sharded memory store: another partition handed this one something
  // (memory_shared::on_handed). Safe from any thread; wakes the worker if
  // it waits, once however often it is called before its next round.
  void nudge();
  // Told of every append refused before it was queued (over
  // --store-queue-bytes), after the sender was: a sharded memory store
  // lets the claim of its id lapse. Set before start().
  void on_refused(std::function<void(const append_request&)> f) { refused_ = std::move(f); }
  asio::any_io_executor executor() const { return executor_; }

 private:
  asio::awaitable<void> run();
  // Stores what other partitions handed this one and hands it to the layer
  // above like committed messages.
  asio::awaitable<void> take_crossed();
  asio::awaitable<void> sweep();
  asio::awaitable<void> commit(std::vector<request::append>& group);
  asio::awaitable<void> handle(request::open& r);
  asio::awaitable<void> handle(request::fetch& r);
  asio::awaitable<void> handle(request::close& r);
  asio::awaitable<void> handle(request::membership& r);
  asio::awaitable<void> move_cursors(std::vector<cursor_move>& moves);
  asio::awaitable<void> handle(request::read& r);
  // Counts the STATUS entries a cursor move or a READ appended and hands
  // them to the layer above like committed messages.
  asio::awaitable<void> statuses_appended(status_outcome outcome);
  // Submits `r` again after a pause: a fetch that found the store unavailable.
  void retry_later(store_request r);
  // An append's charge against --store-queue-bytes: false (and the sender
  // told) if it does not fit; release() gives it back.
  bool charge(store_request& r);
  void release(const request::append& a);

  using channel_type =
      asio::experimental::concurrent_channel<void(boost::system::error_code, store_request)>;

  std::unique_ptr<async_backend> backend_;
  outcomes& out_;
  metrics& metrics_;
  const std::chrono::seconds sweep_interval_;
  const worker_limits limits_;
  std::atomic<std::size_t> queued_bytes_{0};  // appends in requests_, against limits_.queue_bytes
  std::atomic<bool> nudged_{false};           // something was handed over since the last round
  std::function<void(const append_request&)> refused_;
  const bool own_thread_;
  asio::io_context context_{1};     // the store thread's own loop, if it has one
  asio::any_io_executor executor_;  // where run() and sweep() run
  channel_type requests_;           // every request, in arrival order
  std::thread thread_;
  // run()'s working set, members rather than locals so that a debugger
  // sees them (sb store): the requests of this round, the appends of the
  // group being committed (their content moved out while the backend has
  // it), and the cursor moves waiting for the end of the round.
  std::vector<store_request> round_;
  std::vector<request::append> group_;
  std::vector<cursor_move> moves_;
};

class memory_shared;

// The store as the server sees it: one worker, or for a memory store with
// --threads N, one worker and one memory partition per I/O thread, worker k
// on thread k with the hub's shard k (docs/architecture.md, "Step 2"). Each
// request goes to the worker of its user: an append to its receiver's (a
// group SEND to the group shard's), open, fetch, close, advance and read to
// the session's or user's, a membership request to the group shard's, a
// barrier to every one.
class workers {
 public:
  // One worker: SQLite, Redis, or memory with one I/O thread.
  explicit workers(std::unique_ptr<worker> one);
  // A memory store split over `executors`, one partition on each.
  workers(backend_limits backend, outcomes& out, metrics& m, std::chrono::seconds sweep_interval,
          worker_limits limits, const std::vector<asio::any_io_executor>& executors);
  ~workers();

  void start();
  void stop();
  // The first worker's backend (the only one but for a sharded memory store).
  async_backend& backend() { return workers_.front()->backend(); }
  std::size_t size() const { return workers_.size(); }

  // As worker::submit and worker::try_submit, to the request's worker. A
  // barrier's `done` is called once every worker handled what was
  // submitted before it, and what that handed to other partitions.
  asio::awaitable<void> submit(store_request r);
  bool try_submit(store_request& r);

 private:
  // The worker that takes `r`; nullopt if it was answered here (refused).
  std::optional<std::size_t> route(store_request& r);
  // Passes a barrier through every worker, `rounds` times over.
  asio::awaitable<void> barrier_all(std::function<void()> done, int rounds);

  std::shared_ptr<memory_shared> shared_;         // a sharded memory store only
  outcomes* out_ = nullptr;                       // for SENDs refused at their claim
  std::vector<std::unique_ptr<worker>> workers_;  // worker k on I/O thread k
};

}  // namespace switchboard::store
