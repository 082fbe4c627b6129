// The `redis://` store: every node pointed at the same Redis is one
// Switchboard (PROTOCOL.md section 7, docs/cluster.md).
//
// Redis is the sequencer and the store: one script per SEND does the
// de-duplication check, the seq, the append and the publish atomically
// (redis_scripts.hpp), and a batch of SENDs is one pipelined round trip.
// Routing is pub/sub only: a node subscribes to the channel of every user
// with a session on it, before it reads that user's position, and hands
// what arrives to the hub (route_sink), which fills any gap from the inbox.
// Sessions are registered per user with a lease that their node renews, so
// that --max-sessions-per-user counts the whole cluster and a dead node's
// sessions are forgotten once their lease lapses.
//
// Everything runs on one executor, the main I/O thread's, with the hub: no
// thread ever waits on Redis, and what the subscriber hands on is ordered
// with the store's own events (see open()).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include <boost/asio/any_io_executor.hpp>

#include "switchboard/store/async_backend.hpp"

namespace switchboard {
class metrics;
}

namespace switchboard::store {

struct redis_settings {
  std::string host;
  std::uint16_t port = 6379;
  std::string user;                     // ACL user, empty for the default one
  std::optional<std::string> password;  // AUTH
  unsigned db = 0;
  std::string node_id;
  backend_limits limits;
  std::size_t max_sessions_per_user = 4;
  std::chrono::milliseconds session_lease{30000};
  // Every Redis call, connecting included; a script still queued in Redis
  // after half of it refuses to run (redis_scripts::append).
  std::chrono::milliseconds deadline{3000};
  // A SEND is answered within this (PROTOCOL.md section 7: 10 s, less a
  // margin): a batch whose reply was lost is run again only while the rerun
  // can still answer in time, else refused.
  std::chrono::milliseconds answer_budget{9500};
};

class redis_backend final : public async_backend {
 public:
  redis_backend(asio::any_io_executor executor, redis_settings settings, route_sink& sink,
                metrics& stats);
  ~redis_backend() override;

  asio::awaitable<append_outcome> append(std::span<const append_request> batch) override;
  asio::awaitable<membership_change> add_member(group_id group, user_id user) override;
  asio::awaitable<void> remove_member(group_id group, user_id user) override;
  asio::awaitable<std::vector<user_id>> members(group_id group) override;
  asio::awaitable<std::vector<group_id>> groups_of(user_id user) override;
  asio::awaitable<user_position> open(session_key session) override;
  asio::awaitable<void> close(session_key session) override;
  asio::awaitable<std::vector<stored_message>> fetch(user_id user, seq_t after,
                                                     std::size_t max_count,
                                                     std::size_t max_bytes) override;
  asio::awaitable<status_outcome> advance_cursors(std::span<const cursor_move> moves) override;
  asio::awaitable<status_outcome> read(user_id user, seq_t seq, std::int64_t ts_ms) override;
  asio::awaitable<std::uint64_t> evict_expired(std::int64_t now_ms) override;

  bool routes_messages() const override { return true; }
  bool available() const override;
  void start() override;
  void stop() override;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;  // shared with its coroutines, which may outlive stop()
};

}  // namespace switchboard::store
