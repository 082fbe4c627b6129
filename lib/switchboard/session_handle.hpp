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

  // Queues a frame for the writer unless that would hold more than
  // --send-queue-bytes for the session: the frames queued here plus the
  // bytes its transport holds and the kernel has not taken (pongs, replayed
  // messages, notices included; PROTOCOL.md section 4). Never blocks: false
  // means the session is a slow consumer (or already closing) and the
  // caller must abort() it.
  bool push(std::shared_ptr<const std::string> text, store::seq_t seq = 0);

  // Whether `bytes` more may be held for the session (as push counts them).
  // A frame larger than the whole bound still goes out alone.
  bool has_room(std::size_t bytes) const;

  // Queues an event that is not counted against the byte bound (welcome,
  // replay pages, control). False if the session is gone.
  bool post(session_event event);

  // The writer took a frame of `bytes` off the queue (into the transport,
  // which counts it from now on).
  void taken(std::size_t bytes) { queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed); }

  // Bytes the session's transport holds (set once, before the handle is
  // shared: transport::held()).
  void watch_transport(std::shared_ptr<const std::atomic<std::size_t>> held) {
    transport_bytes_ = std::move(held);
  }

  // Closes the session (the first reason stands): its queued frames are
  // dropped, the CLOSE notice and close frame follow what the kernel holds,
  // and the connection is cut --handshake-timeout later if they cannot go
  // out. Works even while the writer is blocked on the socket. Safe from
  // any thread; runs the session's abort handler on its I/O thread once.
  void abort(close_reason reason);
  // Marks the session as closing, on its I/O thread (the abort handler does).
  void mark_aborted() { aborted_.store(true, std::memory_order_relaxed); }
  // Frames refused after the session was closing (counted, not logged).
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  // Set and cleared by the session, on its I/O thread.
  void on_abort(std::function<void(close_reason)> handler) { on_abort_ = std::move(handler); }

  session_channel& channel() { return channel_; }

 private:
  std::size_t held_bytes() const {
    return queued_bytes_.load(std::memory_order_relaxed) +
           (transport_bytes_ ? transport_bytes_->load(std::memory_order_relaxed) : 0);
  }

  const std::size_t queue_limit_;
  std::atomic<std::size_t> queued_bytes_{0};  // bytes of frames pushed, not yet taken
  std::atomic<bool> aborted_{false};          // abort() ran, or the session is closing
  std::atomic<std::uint64_t> dropped_{0};
  std::shared_ptr<const std::atomic<std::size_t>> transport_bytes_;
  asio::any_io_executor executor_;              // the session's I/O thread
  std::function<void(close_reason)> on_abort_;  // only touched on executor_
  session_channel channel_;                     // everything the writer writes
};

using session_ptr = std::shared_ptr<session_handle>;

}  // namespace switchboard
