// The store worker: runs a backend on a thread of its own, so no disk I/O
// ever happens on an I/O thread (PROTOCOL.md section 3, issue 3). A backend
// that never blocks (memory:) runs on the main I/O thread instead:
// a message then never changes threads on its way, which is most of the cost
// of relaying it (docs/performance.md).
//
// Requests arrive on one bounded channel and are handled in arrival order.
// Appends that arrive together are grouped into one backend call (one
// transaction: group commit); a receipt goes out only after the group was
// committed, and committed messages go to the hub in commit order, which is
// seq order for every receiver.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <variant>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>

#include "switchboard/net.hpp"
#include "switchboard/session_handle.hpp"
#include "switchboard/store/backend.hpp"

namespace switchboard {
class hub;
class metrics;
}  // namespace switchboard

namespace switchboard::store {

namespace request {
struct append {
  append_request message;
  session_ptr sender;  // gets the receipt or the ERROR
  std::chrono::steady_clock::time_point parsed_at;
};
// A new session: read its position, send it the welcome, register it.
struct open {
  session_ptr session;
  std::optional<seq_t> since;  // the session's ?since=
};
// The next page of a session's replay.
struct fetch {
  session_ptr session;
  seq_t after;
};
struct advance {
  user_id user;
  seq_t seq;
};

// Sent by stop(): everything before it is handled, then the thread ends.
struct stop {};
}  // namespace request

using store_request =
    std::variant<request::append, request::open, request::fetch, request::advance, request::stop>;

class worker {
 public:
  // Without `executor`, the worker runs on a thread of its own.
  worker(std::unique_ptr<backend> b, switchboard::hub& h, metrics& m,
         std::chrono::seconds sweep_interval, asio::any_io_executor executor = {});
  ~worker();

  void start();
  // With a thread of its own: finishes what was already queued, then stops
  // the thread. On the I/O threads: nothing to do, the server's loop ended.
  void stop();

  // Waits while the queue is full. Safe from any thread.
  asio::awaitable<void> submit(store_request r);
  // Queues `r` unless the queue is full; `r` is left as it was then. The hot
  // path's way in: no coroutine frame per message (docs/performance.md).
  bool try_submit(store_request& r);

 private:
  asio::awaitable<void> run();
  asio::awaitable<void> sweep();
  asio::awaitable<void> commit(std::vector<request::append>& group);
  asio::awaitable<void> handle(request::open& r);
  void handle(request::fetch& r);

  using channel_type =
      asio::experimental::concurrent_channel<void(boost::system::error_code, store_request)>;

  std::unique_ptr<backend> backend_;
  switchboard::hub& hub_;
  metrics& metrics_;
  const std::chrono::seconds sweep_interval_;
  const bool own_thread_;
  asio::io_context context_{1};     // the store thread's own loop, if it has one
  asio::any_io_executor executor_;  // where run() and sweep() run
  channel_type requests_;           // every request, in arrival order
  std::thread thread_;
};

}  // namespace switchboard::store
