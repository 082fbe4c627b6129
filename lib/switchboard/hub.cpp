#include "switchboard/hub.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "switchboard/log.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/protocol.hpp"
#include "switchboard/spawn.hpp"

namespace switchboard {

namespace {
// Events waiting for the hub. Senders wait when it is full, which slows the
// store and the sessions down instead of growing memory without bound.
constexpr std::size_t mailbox_capacity = 8192;
// Events post()ed while the mailbox is full. Beyond it an event is dropped:
// only the cluster's subscriber posts, and the cluster repairs a dropped
// message from the inbox (a gap, or a resync).
constexpr std::size_t overflow_limit = 65536;
}  // namespace

// ---- hub: routes each event to its user's shard ----

namespace {
// A committed batch split by the receivers' shards, each part in commit
// order: one event per shard instead of one per message.
std::vector<std::vector<store::stored_message>> split_by_shard(
    std::vector<store::stored_message>& messages, std::size_t shards) {
  std::vector<std::vector<store::stored_message>> parts(shards);
  for (auto& part : parts)
    part.reserve(messages.size() / shards + messages.size() / 8 + 1);
  for (auto& m : messages)
    parts[shard_of(m.receiver, shards)].push_back(std::move(m));
  return parts;
}

std::vector<asio::any_io_executor> one(asio::any_io_executor executor) {
  std::vector<asio::any_io_executor> executors;
  executors.push_back(std::move(executor));
  return executors;
}
}  // namespace

hub::hub(std::vector<asio::any_io_executor> executors, std::size_t max_sessions_per_user,
         metrics& m)
    : overflow_(std::max<std::size_t>(1, executors.size())),
      overflow_draining_(overflow_.size(), false) {
  for (auto& executor : executors)
    shards_.push_back(std::make_unique<hub_shard>(executor, max_sessions_per_user, m));
}

hub::hub(asio::any_io_executor executor, std::size_t max_sessions_per_user, metrics& m)
    : hub(one(std::move(executor)), max_sessions_per_user, m) {}

asio::awaitable<void> hub::run() {
  for (std::size_t i = 1; i < shards_.size(); ++i)
    asio::co_spawn(shards_[i]->get_executor(), shards_[i]->run(), log_exception("hub shard"));
  co_await shards_.front()->run();
}

std::size_t hub::owner(const hub_message& message) const {
  const store::user_id user = std::visit(
      [](const auto& e) -> store::user_id {
        using event = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<event, hub_event::registered> ||
                      std::is_same_v<event, hub_event::unregistered> ||
                      std::is_same_v<event, hub_event::caught_up>)
          return e.session->user;
        else if constexpr (std::is_same_v<event, hub_event::inbox_at> ||
                           std::is_same_v<event, hub_event::replace> ||
                           std::is_same_v<event, hub_event::list>)
          return e.user;
        else
          return 0;  // committed and drain are split before
      },
      message);
  return shard_of(user, shards_.size());
}

asio::awaitable<void> hub::send(hub_message message) {
  if (shards_.size() == 1) {
    co_await shards_.front()->send(std::move(message));
    co_return;
  }
  if (auto* c = std::get_if<hub_event::committed>(&message)) {
    // A partition of the sharded memory store commits for its own users
    // only: the batch goes whole to their shard, on the same thread.
    const auto shard_of_receiver = [n = shards_.size()](const store::stored_message& m) {
      return shard_of(m.receiver, n);
    };
    if (!c->messages.empty()) {
      const std::size_t first = shard_of_receiver(c->messages.front());
      if (std::all_of(c->messages.begin(), c->messages.end(), [&](const store::stored_message& m) {
            return shard_of_receiver(m) == first;
          })) {
        hub_shard& shard = *shards_[first];
        co_await shard.send(std::move(message));
        co_return;
      }
    }
    auto parts = split_by_shard(c->messages, shards_.size());
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (parts[i].empty()) continue;
      hub_message part = hub_event::committed{std::move(parts[i])};
      co_await shards_[i]->send(std::move(part));
    }
    co_return;
  }
  if (auto* d = std::get_if<hub_event::drain>(&message)) {
    // Drained once every shard has no session left.
    struct countdown {
      std::atomic<std::size_t> left;
      std::function<void()> drained;
    };
    auto state = std::make_shared<countdown>();
    state->left = shards_.size();
    state->drained = std::move(d->drained);
    for (auto& shard : shards_) {
      hub_message part = hub_event::drain{[state] {
        if (state->left.fetch_sub(1, std::memory_order_acq_rel) == 1 && state->drained)
          state->drained();
      }};
      co_await shard->send(std::move(part));
    }
    co_return;
  }
  // Named first: the argument is moved from, and GCC 12 may evaluate it
  // before the shard's index (docs/debugging.md, "GCC 12 and coroutines").
  hub_shard& shard = *shards_[owner(message)];
  co_await shard.send(std::move(message));
}

bool hub::post(hub_message message) {
  if (shards_.size() == 1) return post_to(0, std::move(message));
  if (auto* c = std::get_if<hub_event::committed>(&message)) {
    auto parts = split_by_shard(c->messages, shards_.size());
    bool all = true;
    for (std::size_t i = 0; i < parts.size(); ++i)
      if (!parts[i].empty()) all = post_to(i, hub_event::committed{std::move(parts[i])}) && all;
    return all;
  }
  // Only the cluster posts, and never a drain.
  const std::size_t shard = owner(message);
  return post_to(shard, std::move(message));
}

bool hub::post_to(std::size_t shard, hub_message message) {
  auto& overflow = overflow_[shard];
  if (overflow.empty() && shards_[shard]->try_send(message)) return true;
  if (overflow.size() >= overflow_limit) return false;
  overflow.push_back(std::move(message));
  if (!overflow_draining_[shard]) {
    overflow_draining_[shard] = true;
    asio::co_spawn(get_executor(), drain_overflow(shard), log_exception("hub overflow"));
  }
  return true;
}

asio::awaitable<void> hub::drain_overflow(std::size_t shard) {
  auto& overflow = overflow_[shard];
  auto& mailbox = shards_[shard]->mailbox_;
  while (!overflow.empty()) {
    auto message = std::move(overflow.front());
    overflow.pop_front();
    auto [ec] = co_await mailbox.async_send(boost::system::error_code{}, std::move(message),
                                            asio::as_tuple(asio::use_awaitable));
    if (ec) break;
  }
  overflow.clear();
  overflow_draining_[shard] = false;
}

void hub::close() {
  for (auto& shard : shards_)
    shard->close();
}

// ---- hub_shard: the registry and live delivery of its users ----

hub_shard::hub_shard(asio::any_io_executor executor, std::size_t max_sessions_per_user, metrics& m)
    : max_sessions_per_user_(max_sessions_per_user),
      metrics_(m),
      mailbox_(executor, mailbox_capacity) {}

asio::awaitable<void> hub_shard::run() {
  // Names the mailbox in the trace preset's log (docs/debugging.md).
  SB_LOG(debug).field("channel", static_cast<const void*>(&mailbox_)) << "hub mailbox";
  for (;;) {
    auto [ec, message] = co_await mailbox_.async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    std::visit([this](auto& e) { on(e); }, message);
  }
}

asio::awaitable<void> hub_shard::send(hub_message message) {
  if (mailbox_.try_send(boost::system::error_code{}, std::move(message))) co_return;
  // try_send leaves the value alone when it fails, so it can still be moved.
  co_await mailbox_.async_send(boost::system::error_code{}, std::move(message),
                               asio::as_tuple(asio::use_awaitable));
}

bool hub_shard::try_send(hub_message& message) {
  return mailbox_.try_send(boost::system::error_code{}, std::move(message));
}

void hub_shard::close() {
  mailbox_.close();
}

asio::awaitable<std::vector<session_listing>> hub::sessions_of(store::user_id user) {
  // The answer crosses back from the hub's thread through a channel.
  using reply_channel = asio::experimental::concurrent_channel<void(boost::system::error_code,
                                                                    std::vector<session_listing>)>;
  const auto executor = co_await asio::this_coro::executor;
  auto reply = std::make_shared<reply_channel>(executor, 1);
  hub_message ask =
      hub_event::list{user, [reply](std::vector<session_listing> sessions) {
                        reply->try_send(boost::system::error_code{}, std::move(sessions));
                      }};
  co_await send(std::move(ask));
  auto [ec, sessions] = co_await reply->async_receive(asio::as_tuple(asio::use_awaitable));
  co_return std::move(sessions);
}

void hub_shard::on(hub_event::registered& e) {
  // A session that ended before its registration arrived closed its channel
  // first, then sent `unregistered`, which found nothing: skip it.
  if (!e.session->channel().is_open()) return;
  auto& user = users_[e.session->user];
  user.highest = std::max(user.highest, e.position.highest);
  if (draining_) {
    // Registered after the broadcast: it gets its shutdown notice too.
    if (!e.session->post(event::close{close_reason::shutdown}))
      e.session->abort(close_reason::shutdown);
  }
  while (max_sessions_per_user_ != 0 && user.sessions.size() >= max_sessions_per_user_) {
    // One session too many: the oldest of the same device goes if that
    // device has one, else the user's oldest (PROTOCOL.md section 9);
    // never the one just opened.
    auto victim = std::find_if(user.sessions.begin(), user.sessions.end(), [&](const member& m) {
      return m.session->device == e.session->device;
    });
    if (victim == user.sessions.end()) victim = user.sessions.begin();
    auto oldest = std::move(victim->session);
    user.sessions.erase(victim);
    --registered_;
    SB_LOG(debug)
            .field("session", oldest->id)
            .field("user", oldest->user)
            .field("close", "replaced")
            .field("close_code", websocket_close_code(close_reason::replaced))
        << "session " << oldest->id << " of user " << oldest->user << " replaced";
    if (!oldest->post(event::close{close_reason::replaced})) oldest->abort(close_reason::replaced);
  }
  user.sessions.push_back(member{std::move(e.session), e.live, e.position.highest});
  ++registered_;
}

void hub_shard::on(hub_event::unregistered& e) {
  remove(e.session->user, e.session.get());
  notify_if_drained();
}

void hub_shard::on(hub_event::committed& e) {
  for (auto& message : e.messages) {
    auto it = users_.find(message.receiver);
    if (it == users_.end()) continue;  // offline: the inbox holds it for the next session
    auto& user = it->second;
    // A repeat (this node's own publish, or a seq a replay covers): every
    // session has it or will read it from the inbox.
    if (message.seq <= user.highest) continue;
    if (message.seq != user.highest + 1) {
      // A jump: pub/sub lost what lies between. The inbox has it.
      user.highest = message.seq;
      catch_up(user);
      if (user.sessions.empty()) users_.erase(it);
      continue;
    }
    user.highest = message.seq;
    std::shared_ptr<const std::string> text;  // serialised once, shared by all sessions
    for (std::size_t i = 0; i < user.sessions.size();) {
      auto& m = user.sessions[i];
      if (!m.live || message.seq <= m.from) {
        ++i;
        continue;
      }
      if (!text) text = std::make_shared<const std::string>(protocol::entry_frame(message));
      if (m.session->push(text, message.seq, message.kind == store::entry_kind::status)) {
        ++i;
        continue;
      }
      // Over --send-queue-bytes (or closing): close it without blocking this
      // sender. Its unwritten messages stay in the inbox for its next
      // session. The session logs its close, once.
      m.session->abort(close_reason::slow_consumer);
      user.sessions.erase(user.sessions.begin() + static_cast<std::ptrdiff_t>(i));
      --registered_;
    }
    if (user.sessions.empty()) users_.erase(it);
  }
  notify_if_drained();
}

void hub_shard::on(hub_event::inbox_at& e) {
  auto it = users_.find(e.user);
  if (it == users_.end()) return;
  auto& user = it->second;
  if (e.highest < user.highest) {
    // The store was reset (a Redis without persistence restarted): seqs
    // start again below what the sessions have. New messages must still
    // reach them, as a `since` above the highest does on a new session.
    user.highest = e.highest;
    for (auto& m : user.sessions)
      if (m.live) m.from = std::min(m.from, e.highest);
    return;
  }
  if (e.highest == user.highest) return;
  user.highest = e.highest;
  catch_up(user);
  if (user.sessions.empty()) users_.erase(it);
  notify_if_drained();
}

void hub_shard::on(hub_event::replace& e) {
  auto it = users_.find(e.user);
  if (it == users_.end()) return;
  auto& sessions = it->second.sessions;
  auto m = std::find_if(sessions.begin(), sessions.end(),
                        [&](const member& m) { return m.session->id == e.session_id; });
  if (m == sessions.end()) return;
  auto session = std::move(m->session);
  sessions.erase(m);
  --registered_;
  if (sessions.empty()) users_.erase(it);
  SB_LOG(debug)
          .field("session", session->id)
          .field("user", session->user)
          .field("close", "replaced")
          .field("close_code", websocket_close_code(close_reason::replaced))
      << "session " << session->id << " of user " << session->user << " replaced";
  if (!session->post(event::close{close_reason::replaced})) session->abort(close_reason::replaced);
  notify_if_drained();
}

void hub_shard::catch_up(user_state& user) {
  for (std::size_t i = 0; i < user.sessions.size();) {
    auto& m = user.sessions[i];
    if (!m.live) {
      // Replaying: its caught_up is compared with the new highest.
      ++i;
      continue;
    }
    m.live = false;
    if (m.session->post(event::replay_more{user.highest})) {
      ++i;
      continue;
    }
    m.session->abort(close_reason::slow_consumer);
    user.sessions.erase(user.sessions.begin() + static_cast<std::ptrdiff_t>(i));
    --registered_;
  }
}

void hub_shard::on(hub_event::caught_up& e) {
  auto it = users_.find(e.session->user);
  if (it == users_.end()) return;
  auto& user = it->second;
  auto m = std::find_if(user.sessions.begin(), user.sessions.end(),
                        [&](const member& m) { return m.session == e.session; });
  if (m == user.sessions.end() || m->live) return;
  if (e.seq >= user.highest) {
    // Everything stored so far was written by the replay; everything stored
    // from now on reaches the hub after this event, so it goes out live.
    m->live = true;
    m->from = e.seq;
    user.highest = e.seq;
  } else if (!m->session->post(event::replay_more{user.highest})) {
    m->session->abort(close_reason::slow_consumer);
  }
}

void hub_shard::on(hub_event::drain& e) {
  draining_ = true;
  drained_ = std::move(e.drained);
  for (auto& [id, user] : users_)
    for (auto& m : user.sessions)
      if (!m.session->post(event::close{close_reason::shutdown}))
        m.session->abort(close_reason::shutdown);
  notify_if_drained();
}

void hub_shard::on(hub_event::list& e) {
  const auto it = users_.find(e.user);
  e.reply(it == users_.end() ? std::vector<session_listing>{} : it->second.sessions);
}

void hub_shard::remove(store::user_id user_id, const session_handle* session) {
  auto it = users_.find(user_id);
  if (it == users_.end()) return;
  auto& sessions = it->second.sessions;
  auto m = std::find_if(sessions.begin(), sessions.end(),
                        [&](const member& m) { return m.session.get() == session; });
  if (m == sessions.end()) return;
  sessions.erase(m);
  --registered_;
  if (sessions.empty()) users_.erase(it);
}

void hub_shard::notify_if_drained() {
  if (draining_ && registered_ == 0 && drained_) std::exchange(drained_, nullptr)();
}

}  // namespace switchboard
