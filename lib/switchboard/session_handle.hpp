// What the hub and the store know of one session, and the events they send
// it. The session coroutine (session.hpp) owns the socket; everybody else
// reaches it only through the two channels of its handle, so no one ever
// touches another session's stream (STYLE.md, rule 5).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include "switchboard/net.hpp"
#include "switchboard/store/types.hpp"
#include "switchboard/ws_query.hpp"  // ack_mode

namespace switchboard {

// The CLOSE codes of PROTOCOL.md section 2 that the server decides.
enum class close_reason { bye, replaced, slow_consumer, idle, shutdown, too_large };
std::string_view to_string(close_reason reason);
// The CLOSE notice's `content`: what happened, in words for a person.
std::string_view describe(close_reason reason);
unsigned short websocket_close_code(close_reason reason);

namespace event {
// First event of every session, sent by the store when it opened the inbox.
struct welcome {
  store::user_position position;
  bool live = false;  // registered live: the writer has nothing to replay
};
// A frame to write as it is. seq != 0 marks a delivered message (type 1),
// which moves the cursor under ack=auto once written.
struct frame {
  std::shared_ptr<const std::string> text;
  store::seq_t seq = 0;
};
// One page of a replay, the answer to a fetch the writer asked for.
struct replay_page {
  std::vector<store::stored_message> messages;
};
// The hub's answer to caught_up when more was stored meanwhile.
struct replay_more {
  store::seq_t target = 0;
};
struct ping {};
// Write the CLOSE notice after everything queued before it, then close.
struct close {
  close_reason reason;
};
}  // namespace event

using session_event = std::variant<event::welcome, event::frame, event::replay_page,
                                   event::replay_more, event::ping, event::close>;
using session_channel =
    asio::experimental::concurrent_channel<void(boost::system::error_code, session_event)>;
class session_handle : public std::enable_shared_from_this<session_handle> {
 public:
  session_handle(asio::any_io_executor executor, store::user_id user, std::string id, ack_mode ack,
                 std::size_t queue_limit);

  const store::user_id user;
  const std::string id;  // the opaque session id of the welcome frame
  const ack_mode ack;
  // Set by the store worker once the store opened the session (and, in a
  // cluster, registered it): its end must then be told to the store.
  std::atomic<bool> store_opened{false};

  // Queues a frame for the writer unless that would put more than
  // --send-queue-bytes in the queue. Never blocks: false means the session is
  // a slow consumer and the caller must abort() it.
  bool push(std::shared_ptr<const std::string> text, store::seq_t seq = 0);

  // Queues an event that is not counted against the byte bound (welcome,
  // replay pages, control). False if the session is gone.
  bool post(session_event event);

  // The writer took a frame of `bytes` off the queue and wrote it.
  void written(std::size_t bytes) { queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed); }

  // Ends the session now, without a notice (slow_consumer): the session
  // closes its socket even while the writer is blocked on it. Safe from any
  // thread; runs the session's abort handler on its I/O thread.
  void abort(close_reason reason);

  // Set and cleared by the session, on its I/O thread.
  void on_abort(std::function<void(close_reason)> handler) { on_abort_ = std::move(handler); }

  session_channel& channel() { return channel_; }

 private:
  const std::size_t queue_limit_;
  std::atomic<std::size_t> queued_bytes_{0};    // bytes of frames pushed, not yet written
  asio::any_io_executor executor_;              // the session's I/O thread
  std::function<void(close_reason)> on_abort_;  // only touched on executor_
  session_channel channel_;                     // everything the writer writes
};

using session_ptr = std::shared_ptr<session_handle>;

}  // namespace switchboard
