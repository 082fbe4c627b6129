// The Hub: sole owner of the registry of open sessions (PROTOCOL.md section
// 4) and of live delivery (section 3).
//
// It is one shard per I/O thread (docs/architecture.md, "Shards"): each user
// is owned by the shard shard_of(user), which holds all of that user's
// sessions, wherever their sockets are, and its live delivery. `hub` is the
// one interface the rest of the server sees; it routes each event to its
// user's shard, splitting a batch of committed messages by receiver (one
// crossing per shard per batch, not per message).
//
// A shard is one coroutine that waits on one mailbox. Register, unregister,
// committed messages, caught-up notices and shutdown are all events on that
// mailbox, so their relative order is the order they were sent in: the store
// sends `registered` and `committed` from its single thread, which is what
// makes a replay racing with live sends gap-free (docs/architecture.md); the
// argument is per user, so it holds per shard. One mailbox rather than a
// select over several channels because cancelling the losing receive of a
// select can drop a value that was already taken.
//
// In a cluster (PROTOCOL.md section 7) messages also arrive from Redis
// pub/sub, which may lose some and repeats this node's own: the hub keeps
// per user the highest seq it has seen and delivers a message live only if
// it is the next one. A repeat is dropped; a jump (a lost publish) sends
// the user's live sessions back to the inbox to fill the gap, through the
// same replay that a new session uses (docs/cluster.md, "no gap").
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include "switchboard/net.hpp"
#include "switchboard/session_handle.hpp"
#include "switchboard/store/types.hpp"

namespace switchboard {

class metrics;

// One session of a user as the hub sees it (GET /api/sessions).
struct session_listing {
  session_ptr session;
  bool live = false;      // false while its writer replays from the store
  store::seq_t from = 0;  // live frames above this seq go to it
};

namespace hub_event {
// From the store, once it read the user's position and sent the welcome.
struct registered {
  session_ptr session;
  store::user_position position;
  bool live = false;  // nothing to replay: live above position.highest at once
};
struct unregistered {
  session_ptr session;
};
// From the store, in commit order.
struct committed {
  std::vector<store::stored_message> messages;
};
// From the cluster: the inbox of `user` has reached at least `highest`
// (after a lost subscription): sessions behind it catch up from the inbox.
struct inbox_at {
  store::user_id user;
  store::seq_t highest;
};
// From the cluster: close this session with `replaced` (it was the oldest
// over --max-sessions-per-user, maybe opened on another node).
struct replace {
  store::user_id user;
  std::string session_id;
};
// From a session's writer: it wrote everything up to `seq` from the inbox.
struct caught_up {
  session_ptr session;
  store::seq_t seq;
};
// Close every session with `shutdown`, now and for any that registers later;
// call `drained` once no session is left (on the thread of the shard that
// was the last to have none).
struct drain {
  std::function<void()> drained;
};
// From GET /api/sessions: `reply` gets the user's sessions, oldest first,
// on the thread of the user's shard.
struct list {
  store::user_id user;
  std::function<void(std::vector<session_listing>)> reply;
};
}  // namespace hub_event

using hub_message = std::variant<hub_event::registered, hub_event::unregistered,
                                 hub_event::committed, hub_event::inbox_at, hub_event::replace,
                                 hub_event::caught_up, hub_event::drain, hub_event::list>;

// The owner of `user` among `count` shards (store/types.hpp).
using store::shard_of;

// One shard of the hub: the registry and live delivery of the users it
// owns, on one executor (one I/O thread).
class hub_shard {
 public:
  // max_sessions_per_user 0: no local limit (a cluster enforces it
  // cluster-wide and sends `replace`).
  hub_shard(asio::any_io_executor executor, std::size_t max_sessions_per_user, metrics& m);

  // The shard's coroutine; runs until the mailbox is closed.
  asio::awaitable<void> run();
  // Sends an event, waiting while the mailbox is full. Safe from any thread.
  asio::awaitable<void> send(hub_message message);
  // Sends an event if the mailbox has room; `message` is left as it was if not.
  bool try_send(hub_message& message);
  void close();
  asio::any_io_executor get_executor() { return mailbox_.get_executor(); }

 private:
  friend class hub;
  using member = session_listing;
  struct user_state {
    store::seq_t highest = 0;
    std::vector<member> sessions;  // oldest first
  };

  void on(hub_event::registered& e);
  void on(hub_event::unregistered& e);
  void on(hub_event::committed& e);
  void on(hub_event::inbox_at& e);
  void on(hub_event::replace& e);
  void on(hub_event::caught_up& e);
  void on(hub_event::drain& e);
  void on(hub_event::list& e);
  void remove(store::user_id user, const session_handle* session);
  // Sends the live sessions of `user` back to the inbox up to its highest.
  void catch_up(user_state& user);
  void notify_if_drained();

  using mailbox_type =
      asio::experimental::concurrent_channel<void(boost::system::error_code, hub_message)>;

  const std::size_t max_sessions_per_user_;
  metrics& metrics_;
  mailbox_type mailbox_;                                  // every input of the shard
  std::function<void()> drained_;                         // set by drain, called once
  std::unordered_map<store::user_id, user_state> users_;  // the registry of its users
  std::size_t registered_ = 0;
  bool draining_ = false;
};

class hub {
 public:
  // One shard per executor, each run on it (one per I/O thread); the first
  // is the main one (thread 0: the cluster's subscriber posts from there).
  hub(std::vector<asio::any_io_executor> executors, std::size_t max_sessions_per_user, metrics& m);
  // One shard.
  hub(asio::any_io_executor executor, std::size_t max_sessions_per_user, metrics& m);

  // Starts every other shard on its executor and runs the first one here;
  // runs until close().
  asio::awaitable<void> run();

  // Sends an event to its user's shard (a `committed` batch split by
  // receiver, a `drain` to every shard), waiting while a mailbox is full.
  // Safe from any thread.
  asio::awaitable<void> send(hub_message message);

  // Sends an event without waiting, after every event post()ed before it:
  // what a mailbox cannot take at once waits in an overflow queue (one per
  // shard), drained in order. Only from the main executor (the cluster's
  // subscriber runs there). False if that overflow is full too
  // (overflow_limit events): the event was dropped, which a cluster repairs
  // from the inbox.
  bool post(hub_message message);

  // The sessions of `user` registered on this node (hub_event::list), from
  // any thread. Never completes if the hub has stopped (shutdown).
  asio::awaitable<std::vector<session_listing>> sessions_of(store::user_id user);

  void close();

  // The main executor (the first shard's): run() must be spawned on it.
  asio::any_io_executor get_executor() { return shards_.front()->get_executor(); }
  std::size_t shards() const { return shards_.size(); }

 private:
  // The shard an event goes to (not for committed or drain).
  std::size_t owner(const hub_message& message) const;
  bool post_to(std::size_t shard, hub_message message);
  asio::awaitable<void> drain_overflow(std::size_t shard);

  std::vector<std::unique_ptr<hub_shard>> shards_;  // shard k on I/O thread k
  // post()ed events waiting for room, in order, per shard; only touched on
  // the main executor.
  std::vector<std::deque<hub_message>> overflow_;
  std::vector<bool> overflow_draining_;
};

}  // namespace switchboard
