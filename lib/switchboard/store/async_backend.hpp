// The store seam: what the store worker (store.hpp) asks of a backend, as
// coroutines, so that a backend may wait on the network (Redis) without a
// thread of its own. The memory and SQLite backends are synchronous
// (backend.hpp) and sit behind sync_adapter; the Redis backend
// (redis_backend.hpp) is asynchronous. The same behaviour tests run against
// all three (test/unit/test_store_backend.cpp).
//
// The store knows nothing of the hub or of frames. A backend that routes
// messages between nodes itself (the cluster, PROTOCOL.md section 7) reports
// what arrives from elsewhere to a route_sink, which the layer above turns
// into hub events; the worker reports its own outcomes to store::outcomes
// (store.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "switchboard/net.hpp"
#include "switchboard/store/backend.hpp"
#include "switchboard/store/types.hpp"

namespace switchboard::store {

// What a cluster backend learns from the other nodes, in the order it learnt
// it. Called on the backend's executor.
class route_sink {
 public:
  virtual ~route_sink() = default;
  // A message appended to an inbox this node subscribed to, on any node.
  virtual void message(stored_message m) = 0;
  // The inbox of `user` has reached at least `highest` (after a lost
  // subscription or a reconnection: fill any gap from the inbox).
  virtual void inbox_at(user_id user, seq_t highest) = 0;
  // The cluster closed this session: over --max-sessions-per-user on some
  // node, or its registration was lost.
  virtual void replaced(user_id user, std::string session_id) = 0;
};

// A session as the store sees it: whose inbox, a name unique in the
// cluster, its device (PROTOCOL.md section 9), and when it opened or
// closed (ms since the Unix epoch; a cluster uses Redis's clock instead).
struct session_key {
  user_id user = 0;
  std::string_view id;
  device_name device;
  std::int64_t now_ms = 0;
};

class async_backend {
 public:
  virtual ~async_backend() = default;

  // As backend::append. Throws unavailable when nothing of the batch was
  // stored.
  virtual asio::awaitable<append_outcome> append(std::span<const append_request> batch) = 0;

  // As backend's membership calls. Throw unavailable when nothing changed.
  virtual asio::awaitable<membership_change> add_member(group_id group, user_id user) = 0;
  virtual asio::awaitable<void> remove_member(group_id group, user_id user) = 0;
  virtual asio::awaitable<std::vector<user_id>> members(group_id group) = 0;
  virtual asio::awaitable<std::vector<group_id>> groups_of(user_id user) = 0;

  // A session opens: where its user's inbox stands for its device, which
  // the store now counts as seen (backend::open). A cluster backend also
  // registers the session cluster-wide (--max-sessions-per-user counts every
  // node) and starts routing the user's messages to this node before it
  // reads the position, so that nothing stored after the position is missed.
  virtual asio::awaitable<user_position> open(session_key session) = 0;
  // The session ended (always after a successful open).
  virtual asio::awaitable<void> close(session_key session) = 0;

  // As backend::fetch.
  virtual asio::awaitable<std::vector<stored_message>> fetch(user_id user, seq_t after,
                                                             std::size_t max_count,
                                                             std::size_t max_bytes) = 0;
  // As backend::advance_cursors and backend::read. A backend that routes
  // messages itself also routes the STATUS entries these append.
  virtual asio::awaitable<status_outcome> advance_cursors(std::span<const cursor_move> moves) = 0;
  virtual asio::awaitable<status_outcome> read(user_id user, seq_t seq, std::int64_t ts_ms) = 0;
  // Retention and dedup sweeps; a backend with TTLs does nothing here.
  virtual asio::awaitable<std::uint64_t> evict_expired(std::int64_t now_ms) = 0;
  // As backend::take_crossed.
  virtual asio::awaitable<status_outcome> take_crossed() { co_return status_outcome{}; }

  // True when committed messages reach the hub through route_sink (pub/sub)
  // rather than from the worker after each commit.
  virtual bool routes_messages() const { return false; }
  // Whether the backend can take writes now (/healthz, /metrics).
  virtual bool available() const { return true; }

  virtual void start() {}
  virtual void stop() {}
};

// A synchronous backend behind the asynchronous seam: each call runs to the
// end on the caller's thread (the store thread, or the main I/O thread for
// memory:).
class sync_adapter final : public async_backend {
 public:
  explicit sync_adapter(std::unique_ptr<backend> b) : backend_(std::move(b)) {}

  asio::awaitable<append_outcome> append(std::span<const append_request> batch) override {
    co_return backend_->append(batch);
  }
  asio::awaitable<membership_change> add_member(group_id group, user_id user) override {
    co_return backend_->add_member(group, user);
  }
  asio::awaitable<void> remove_member(group_id group, user_id user) override {
    backend_->remove_member(group, user);
    co_return;
  }
  asio::awaitable<std::vector<user_id>> members(group_id group) override {
    co_return backend_->members(group);
  }
  asio::awaitable<std::vector<group_id>> groups_of(user_id user) override {
    co_return backend_->groups_of(user);
  }
  asio::awaitable<user_position> open(session_key session) override {
    co_return backend_->open(session.user, session.device, session.now_ms);
  }
  asio::awaitable<void> close(session_key session) override {
    backend_->close(session.user, session.device, session.now_ms);
    co_return;
  }
  asio::awaitable<std::vector<stored_message>> fetch(user_id user, seq_t after,
                                                     std::size_t max_count,
                                                     std::size_t max_bytes) override {
    co_return backend_->fetch(user, after, max_count, max_bytes);
  }
  asio::awaitable<status_outcome> advance_cursors(std::span<const cursor_move> moves) override {
    co_return backend_->advance_cursors(moves);
  }
  asio::awaitable<status_outcome> read(user_id user, seq_t seq, std::int64_t ts_ms) override {
    co_return backend_->read(user, seq, ts_ms);
  }
  asio::awaitable<std::uint64_t> evict_expired(std::int64_t now_ms) override {
    co_return backend_->evict_expired(now_ms);
  }
  asio::awaitable<status_outcome> take_crossed() override { co_return backend_->take_crossed(); }

  backend& wrapped() { return *backend_; }

 private:
  std::unique_ptr<backend> backend_;
};

}  // namespace switchboard::store
