// Where the store's outcomes become hub events and frames: the one place
// that knows both the store (store/store.hpp, store/async_backend.hpp) and
// the hub and the protocol above it. The store reports what happened
// (registered, committed, receipt, refused; in a cluster also what arrived
// from other nodes); this turns it into hub events and into the RECEIVE and
// ERROR frames of PROTOCOL.md section 2.
#pragma once

#include "switchboard/store/async_backend.hpp"
#include "switchboard/store/store.hpp"

namespace switchboard {

class hub;
class metrics;

class delivery final : public store::outcomes, public store::route_sink {
 public:
  delivery(hub& h, metrics& m) : hub_(h), metrics_(m) {}

  // store::outcomes, from the store worker.
  asio::awaitable<void> registered(session_ptr session, store::user_position position,
                                   bool live) override;
  asio::awaitable<void> committed(std::vector<store::stored_message> messages) override;
  void receipt(const session_ptr& sender, const store::message_id& id,
               const store::append_result& result) override;
  void refused(const session_ptr& sender, const std::optional<store::message_id>& id) override;
  void not_member(const session_ptr& sender, const std::optional<store::message_id>& id) override;

  // store::route_sink, from the cluster's subscriber (on the hub's thread).
  // Messages are handed to the hub in batches: those that arrive together
  // (one read of the subscriber's socket) make one hub event.
  void message(store::stored_message m) override;
  void inbox_at(store::user_id user, store::seq_t highest) override;
  void replaced(store::user_id user, std::string session_id) override;

 private:
  // Hands the routed messages gathered so far to the hub, before anything
  // else routed after them.
  void flush_routed();

  hub& hub_;
  metrics& metrics_;
  std::vector<store::stored_message> routed_;  // from pub/sub, not yet posted
  bool flush_posted_ = false;
  bool dropping_ = false;  // the last routed batch found the hub full
};

}  // namespace switchboard
