#include "switchboard/hub.hpp"

#include <algorithm>
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

hub::hub(asio::any_io_executor executor, std::size_t max_sessions_per_user, metrics& m)
    : max_sessions_per_user_(max_sessions_per_user),
      metrics_(m),
      mailbox_(executor, mailbox_capacity) {}

asio::awaitable<void> hub::run() {
  // Names the mailbox in the trace preset's log (docs/debugging.md).
  SB_LOG(debug).field("channel", static_cast<const void*>(&mailbox_)) << "hub mailbox";
  for (;;) {
    auto [ec, message] = co_await mailbox_.async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    std::visit([this](auto& e) { on(e); }, message);
  }
}

asio::awaitable<void> hub::send(hub_message message) {
  if (mailbox_.try_send(boost::system::error_code{}, std::move(message))) co_return;
  // try_send leaves the value alone when it fails, so it can still be moved.
  co_await mailbox_.async_send(boost::system::error_code{}, std::move(message),
                               asio::as_tuple(asio::use_awaitable));
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

bool hub::post(hub_message message) {
  if (overflow_.empty() && mailbox_.try_send(boost::system::error_code{}, std::move(message)))
    return true;
  if (overflow_.size() >= overflow_limit) return false;
  overflow_.push_back(std::move(message));
  if (!overflow_draining_) {
    overflow_draining_ = true;
    asio::co_spawn(mailbox_.get_executor(), drain_overflow(), log_exception("hub overflow"));
  }
  return true;
}

asio::awaitable<void> hub::drain_overflow() {
  while (!overflow_.empty()) {
    auto message = std::move(overflow_.front());
    overflow_.pop_front();
    auto [ec] = co_await mailbox_.async_send(boost::system::error_code{}, std::move(message),
                                             asio::as_tuple(asio::use_awaitable));
    if (ec) break;
  }
  overflow_.clear();
  overflow_draining_ = false;
}

void hub::close() {
  mailbox_.close();
}

void hub::on(hub_event::registered& e) {
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

void hub::on(hub_event::unregistered& e) {
  remove(e.session->user, e.session.get());
  notify_if_drained();
}

void hub::on(hub_event::committed& e) {
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

void hub::on(hub_event::inbox_at& e) {
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

void hub::on(hub_event::replace& e) {
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

void hub::catch_up(user_state& user) {
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

void hub::on(hub_event::caught_up& e) {
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

void hub::on(hub_event::drain& e) {
  draining_ = true;
  drained_ = std::move(e.drained);
  for (auto& [id, user] : users_)
    for (auto& m : user.sessions)
      if (!m.session->post(event::close{close_reason::shutdown}))
        m.session->abort(close_reason::shutdown);
  notify_if_drained();
}

void hub::on(hub_event::list& e) {
  const auto it = users_.find(e.user);
  e.reply(it == users_.end() ? std::vector<session_listing>{} : it->second.sessions);
}

void hub::remove(store::user_id user_id, const session_handle* session) {
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

void hub::notify_if_drained() {
  if (draining_ && registered_ == 0 && drained_) std::exchange(drained_, nullptr)();
}

}  // namespace switchboard
