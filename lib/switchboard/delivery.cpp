#include "switchboard/delivery.hpp"

#include <utility>

#include <boost/asio/post.hpp>

#include "switchboard/hub.hpp"
#include "switchboard/log.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/protocol.hpp"

namespace switchboard {

namespace {
// A frame for the sender alone; a sender over --send-queue-bytes is closed.
void push_to(const session_ptr& session, std::string text) {
  if (!session->push(std::make_shared<const std::string>(std::move(text))))
    session->abort(close_reason::slow_consumer);
}
}  // namespace

asio::awaitable<void> delivery::registered(session_ptr session, store::user_position position,
                                           bool live) {
  hub_message registered = hub_event::registered{std::move(session), position, live};
  co_await hub_.send(std::move(registered));
}

asio::awaitable<void> delivery::committed(std::vector<store::stored_message> messages) {
  hub_message committed = hub_event::committed{std::move(messages)};
  co_await hub_.send(std::move(committed));
}

void delivery::receipt(const session_ptr& sender, const store::message_id& id,
                       const store::append_result& result) {
  if (result.group != 0) {
    push_to(sender, protocol::group_receipt_frame(id, result.group, result.gseq, result.ts_ms));
    return;
  }
  push_to(sender, protocol::receipt_frame(id, result.receiver, result.seq, result.ts_ms));
}

void delivery::not_member(const session_ptr& sender, const std::optional<store::message_id>& id) {
  metrics_.count_error("not_member");
  push_to(sender, protocol::error_frame(protocol::error_code::not_member,
                                        "not a member of this group", id));
}

void delivery::refused(const session_ptr& sender, const std::optional<store::message_id>& id) {
  metrics_.count_error("unavailable");
  push_to(sender, protocol::error_frame(protocol::error_code::unavailable,
                                        "the store cannot take messages now", id));
}

void delivery::message(store::stored_message m) {
  routed_.push_back(std::move(m));
  if (flush_posted_) return;
  // After the subscriber handled everything its last read brought.
  flush_posted_ = true;
  asio::post(hub_.get_executor(), [this] {
    flush_posted_ = false;
    flush_routed();
  });
}

void delivery::flush_routed() {
  if (routed_.empty()) return;
  // A drop is logged once per run of drops, not once per batch.
  const bool posted = hub_.post(hub_event::committed{std::exchange(routed_, {})});
  if (!posted && !dropping_)
    SB_LOG(warn) << "hub overflow: routed messages dropped; sessions catch up at the next one";
  dropping_ = !posted;
}

void delivery::inbox_at(store::user_id user, store::seq_t highest) {
  flush_routed();
  hub_.post(hub_event::inbox_at{user, highest});
}

void delivery::replaced(store::user_id user, std::string session_id) {
  flush_routed();
  hub_.post(hub_event::replace{user, std::move(session_id)});
}

}  // namespace switchboard
