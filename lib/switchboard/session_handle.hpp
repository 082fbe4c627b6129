// What the hub and the store know of one session, and the events they send
// it. The session coroutine (session.hpp) owns the socket; everybody else
// reaches it only through the two channels of its handle, so no one ever
// touches another session's stream (STYLE.md, rule 5).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/experimental/channel_traits.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include "switchboard/net.hpp"
#include "switchboard/store/types.hpp"
#include "switchboard/ws_query.hpp"  // ack_mode

namespace switchboard {

// The CLOSE codes of PROTOCOL.md section 2 that the server decides.
enum class close_reason : std::uint8_t { bye, replaced, slow_consumer, idle, shutdown, too_large };
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
  bool status = false;  // a STATUS entry (section 11): not a type 1 frame in the metrics
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

// The session channel's queue: a std::deque that exists only while events
// wait. libstdc++'s deque allocates a 512-byte block and its map when it
// is built, and an idle session has nothing queued (issue 14: memory per
// idle session). The channel uses only these members.
template <class T>
class lazy_queue {
 public:
  std::size_t size() const { return queue_ ? queue_->size() : 0; }
  bool empty() const { return size() == 0; }
  void push_back(T&& value) { get().push_back(std::move(value)); }
  void push_back(const T& value) { get().push_back(value); }
  T& front() { return queue_->front(); }
  void pop_front() {
    queue_->pop_front();
    if (queue_->empty()) queue_.reset();
  }
  void clear() { queue_.reset(); }

 private:
  std::deque<T>& get() {
    if (!queue_) queue_ = std::make_unique<std::deque<T>>();
    return *queue_;
  }
  std::unique_ptr<std::deque<T>> queue_;  // null while empty
};

// Asio's channel traits with the queue above.
template <class... Signatures>
struct session_channel_traits : asio::experimental::channel_traits<Signatures...> {
  template <class... NewSignatures>
  struct rebind {
    using other = session_channel_traits<NewSignatures...>;
  };
  template <class Element>
  struct container {
    using type = lazy_queue<Element>;
  };
};

using session_channel =
    asio::experimental::basic_concurrent_channel<asio::any_io_executor, session_channel_traits<>,
                                                 void(boost::system::error_code, session_event)>;

// What the session coroutine shares between its reader, its writer and the
// sweeper (session.cpp). Only ever touched on the session's I/O thread.
struct session_state;
// Closes the session on its I/O thread (session.cpp): what abort() runs there.
void abort_session(session_state& st, close_reason reason);
// Starts the session's parked writer on its I/O thread (session.cpp): what
// a push or post to a parked writer runs there.
void wake_writer(session_state& st);

class session_handle : public std::enable_shared_from_this<session_handle> {
 public:
  session_handle(asio::any_io_executor executor, store::user_id user, std::string id, ack_mode ack,
                 std::size_t queue_limit, store::device_name device = {});

  const store::user_id user;
  const std::string id;  // the opaque session id of the welcome frame
  const ack_mode ack;
  const store::device_name device;  // its device (PROTOCOL.md section 9), "" the default
  const std::int64_t opened_ms;     // when the upgrade was accepted, ms since the Unix epoch
  // Set by the store worker once the store opened the session (and, in a
  // cluster, registered it): its end must then be told to the store.
  std::atomic<bool> store_opened{false};

  // Queues a frame for the writer unless that would hold more than
  // --send-queue-bytes for the session: the frames queued here plus the
  // bytes its transport holds and the kernel has not taken (pongs, replayed
  // messages, notices included; PROTOCOL.md section 4). Never blocks: false
  // means the session is a slow consumer (or already closing) and the
  // caller must abort() it. `seq`: the inbox entry's, 0 for other frames;
  // `status`: the entry is a STATUS (section 11).
  bool push(std::shared_ptr<const std::string> text, store::seq_t seq = 0, bool status = false);

  // Bytes held for the session against --send-queue-bytes: queued frames
  // and what the transport holds.
  std::size_t held_bytes() const {
    return queued_bytes_.load(std::memory_order_relaxed) +
           (transport_bytes_ ? transport_bytes_->load(std::memory_order_relaxed) : 0);
  }

  // Whether `bytes` more may be held for the session (as push counts them).
  // A frame larger than the whole bound still goes out alone.
  bool has_room(std::size_t bytes) const;

  // Queues an event that is not counted against the byte bound (welcome,
  // replay pages, control). False if the session is gone.
  bool post(session_event event);

  // The writer took a frame of `bytes` off the queue (into the transport,
  // which counts it from now on); `seq` as pushed.
  void taken(std::size_t bytes, store::seq_t seq) {
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    queued_frames_.fetch_sub(1, std::memory_order_relaxed);
    if (seq != 0) taken_seq_.store(seq, std::memory_order_relaxed);
  }

  // What waits in the queue (not yet in the transport), readable from any
  // thread (GET /api/sessions): its frames and bytes, and the messages
  // among them as a seq range (empty when first > last). Each number is exact; together they are a
  // snapshot only on the session's I/O thread.
  struct queue_view {
    std::size_t frames = 0;
    std::size_t bytes = 0;
    store::seq_t first = 1;
    store::seq_t last = 0;
  };
  queue_view queued() const;

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
  // Marks the session as closing, on its I/O thread (abort_session does).
  void mark_aborted() { aborted_.store(true, std::memory_order_relaxed); }
  bool closing() const { return aborted_.load(std::memory_order_relaxed); }
  // The reason abort() was first called with, if it was.
  std::optional<close_reason> abort_reason() const;
  // Frames refused after the session was closing (counted, not logged).
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  // The writer parks when its queue is empty (session.cpp; docs/architecture.md,
  // "An idle session holds no coroutine"). On the session's I/O thread:
  // marks the writer parked, then looks at the queue once more. False: an
  // event is queued and no wake was posted, the writer must go on. True: the
  // next push or post (or one already made) posts wake_writer().
  bool park_writer() {
    writer_parked_.store(true, std::memory_order_seq_cst);
    // A closed channel is "ready" too, but holds nothing: the session ends.
    if (!channel_.ready() || !channel_.is_open()) return true;
    return !writer_parked_.exchange(false, std::memory_order_acq_rel);
  }
  // The session ends with its writer parked: true if no wake is on its way.
  bool unpark_writer() { return writer_parked_.exchange(false, std::memory_order_acq_rel); }

  // The session's state, which abort() closes: set when the session
  // starts and cleared when it ends, on its I/O thread. Also where a
  // debugger goes from a handle to the session (tools/gdb).
  void attach(session_state* state) { state_ = state; }
  // Only on the session's I/O thread: null once the session ended.
  session_state* state() const { return state_; }
  const asio::any_io_executor& executor() const { return executor_; }

  session_channel& channel() { return channel_; }

 private:
  const std::size_t queue_limit_;
  std::atomic<std::size_t> queued_bytes_{0};  // bytes of frames pushed, not yet taken
  std::atomic<bool> aborted_{false};          // abort() ran, or the session is closing
  std::atomic<bool> abort_called_{false};     // abort() ran: abort_reason_ is set
  std::atomic<close_reason> abort_reason_{close_reason::bye};
  std::atomic<std::uint32_t> queued_frames_{0};  // frames pushed, not yet taken
  std::atomic<store::seq_t> pushed_seq_{0};      // the last message pushed
  std::atomic<store::seq_t> taken_seq_{0};       // the last message taken by the writer
  std::atomic<std::uint64_t> dropped_{0};
  // The writer is parked: the next event queued posts wake_writer(). Set on
  // the session's thread (park_writer), cleared by whoever takes it first.
  // The channel's mutex orders a sender's try_send before or after the
  // writer's last look at the queue, so no wake is lost.
  std::atomic<bool> writer_parked_{false};
  void wake_if_parked();
  std::shared_ptr<const std::atomic<std::size_t>> transport_bytes_;
  asio::any_io_executor executor_;  // the session's I/O thread
  session_state* state_ = nullptr;  // only touched on executor_
  session_channel channel_;         // everything the writer writes
};

using session_ptr = std::shared_ptr<session_handle>;

}  // namespace switchboard
