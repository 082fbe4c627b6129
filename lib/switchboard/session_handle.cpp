#include "switchboard/session_handle.hpp"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "switchboard/clock.hpp"

namespace switchboard {

namespace {
// The channel's count bound must never trip before the byte bound: no frame
// is smaller than this, so this many events always hold more than the limit.
constexpr std::size_t smallest_frame_bytes = 16;
constexpr std::size_t min_channel_events = 64;
}  // namespace

std::string_view to_string(close_reason reason) {
  switch (reason) {
    case close_reason::bye:
      return "bye";
    case close_reason::replaced:
      return "replaced";
    case close_reason::slow_consumer:
      return "slow_consumer";
    case close_reason::idle:
      return "idle";
    case close_reason::shutdown:
      return "shutdown";
    case close_reason::too_large:
      return "too_large";
  }
  return "unknown";
}

std::string_view describe(close_reason reason) {
  switch (reason) {
    case close_reason::bye:
      return "closed at the client's request";
    case close_reason::replaced:
      return "too many sessions of this user: this one was the oldest";
    case close_reason::slow_consumer:
      return "the client reads too slowly";
    case close_reason::idle:
      return "no frame from the client within the idle timeout";
    case close_reason::shutdown:
      return "the server is shutting down";
    case close_reason::too_large:
      return "message over the size limit";
  }
  return "";
}

unsigned short websocket_close_code(close_reason reason) {
  switch (reason) {
    case close_reason::bye:
      return 1000;
    case close_reason::replaced:
      return 4001;
    case close_reason::slow_consumer:
      return 1008;
    case close_reason::idle:
    case close_reason::shutdown:
      return 1001;
    case close_reason::too_large:
      return 1009;
  }
  return 1011;
}

session_handle::session_handle(asio::any_io_executor executor, store::user_id user, std::string id,
                               ack_mode ack, std::size_t queue_limit, store::device_name device)
    : user(user),
      id(std::move(id)),
      ack(ack),
      device(device),
      opened_ms(unix_ms()),
      queue_limit_(queue_limit),
      executor_(executor),
      channel_(executor, std::max(min_channel_events, queue_limit / smallest_frame_bytes)) {}

bool session_handle::push(std::shared_ptr<const std::string> text, store::seq_t seq, bool status) {
  if (aborted_.load(std::memory_order_relaxed)) return false;
  const std::size_t bytes = text->size();
  const std::size_t before = queued_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  const std::size_t held =
      before + (transport_bytes_ ? transport_bytes_->load(std::memory_order_relaxed) : 0);
  // A frame larger than the whole bound still goes out when nothing else is
  // held, so a --send-queue-bytes below --max-message-bytes cannot wedge a
  // session.
  if ((held != 0 && held + bytes > queue_limit_) ||
      !channel_.try_send(boost::system::error_code{}, event::frame{std::move(text), seq, status})) {
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    return false;
  }
  queued_frames_.fetch_add(1, std::memory_order_relaxed);
  if (seq != 0) pushed_seq_.store(seq, std::memory_order_relaxed);
  wake_if_parked();
  return true;
}

// After an event was queued. The load is enough to see a park that came
// before the try_send (the channel's mutex orders them); the exchange makes
// one side, this one or the writer's park_writer(), start the writer.
void session_handle::wake_if_parked() {
  if (!writer_parked_.load(std::memory_order_relaxed) ||
      !writer_parked_.exchange(false, std::memory_order_acq_rel))
    return;
  asio::post(executor_, [self = shared_from_this()] {
    if (self->state_ != nullptr) wake_writer(*self->state_);
  });
}

session_handle::queue_view session_handle::queued() const {
  queue_view view;
  view.frames = queued_frames_.load(std::memory_order_relaxed);
  view.bytes = queued_bytes_.load(std::memory_order_relaxed);
  // The hub pushes a session's messages in seq order, and the writer takes
  // them in that order: what waits lies between the last taken and the
  // last pushed.
  const auto taken = taken_seq_.load(std::memory_order_relaxed);
  const auto pushed = pushed_seq_.load(std::memory_order_relaxed);
  if (view.frames != 0 && pushed > taken) {
    view.first = taken + 1;
    view.last = pushed;
  }
  return view;
}

std::optional<close_reason> session_handle::abort_reason() const {
  if (!abort_called_.load(std::memory_order_acquire)) return std::nullopt;
  return abort_reason_.load(std::memory_order_relaxed);
}

bool session_handle::has_room(std::size_t bytes) const {
  const std::size_t held = held_bytes();
  return held == 0 || held + bytes <= queue_limit_;
}

bool session_handle::post(session_event event) {
  if (!channel_.try_send(boost::system::error_code{}, std::move(event))) return false;
  wake_if_parked();
  return true;
}

void session_handle::abort(close_reason reason) {
  // Once: a flood of refused frames must not become a flood of posts (or
  // log lines).
  if (aborted_.exchange(true, std::memory_order_relaxed)) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  abort_reason_.store(reason, std::memory_order_relaxed);
  abort_called_.store(true, std::memory_order_release);
  asio::post(executor_, [self = shared_from_this(), reason] {
    if (self->state_ != nullptr) abort_session(*self->state_, reason);
  });
}

}  // namespace switchboard
