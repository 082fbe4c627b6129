// The Redis pub/sub connection. In RESP2 a connection in subscribe mode
// takes only (UN)SUBSCRIBE, PING and QUIT, so it is separate from the
// command connection (connection.hpp, which also says how threads and
// lifetime work here: the same rules apply).
//
// Pub/sub is at-most-once: whatever is published while this connection is
// down is lost. So on every (re)connect it AUTHs, SUBSCRIBEs every channel of
// its set in one write, waits for every confirmation, and only then calls
// on_connected: the owner resyncs from the store there. Messages that arrive
// between the first confirmation and on_connected are delivered too (the
// resync that follows covers them again).
//
// A Redis that hangs (SIGSTOP) keeps the TCP connection open and says
// nothing: the subscriber sends PING every deadline/3 while up, and when
// nothing at all (pong, message or confirmation) came back within the
// deadline of the oldest unanswered PING it closes and reconnects.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "switchboard/net.hpp"
#include "switchboard/redis/connection.hpp"

namespace switchboard::redis {

class subscriber {
 public:
  subscriber(asio::any_io_executor ex, endpoint ep, options opt, counters& c);
  ~subscriber();  // stop()
  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;

  void start();  // once; after stop() it does nothing
  // Closes, no more reconnects; a pending subscribe throws unavailable. No
  // callback is called from here on, not even on_state for this change.
  void stop();
  bool connected() const;  // every channel confirmed, on_connected called, not failed since

  // The callbacks are optional and must not throw (an exception from one
  // ends the connection, which then reconnects). on_message's views are valid
  // during the call only.
  std::function<void(std::string_view channel, std::string_view payload)> on_message;
  std::function<void()> on_connected;  // after all channels are confirmed, every (re)connect
  std::function<void(bool up)> on_state;

  // Adds `channel` to the set (reference counted: N subscribes need N
  // unsubscribes). Completes once Redis has confirmed the subscription
  // (at once if it already was). Throws unavailable if not connected, if the
  // connection drops first, or if no confirmation comes within the deadline
  // (then Redis is taken for hung: the connection is closed and reconnects).
  // Whenever it throws, its count is rolled back: the caller, who saw it
  // fail, must not unsubscribe, and the set never keeps a channel nobody
  // holds. Await it on the subscriber's executor.
  asio::awaitable<void> subscribe(std::string channel);
  // Count - 1; at 0 the channel leaves the set and UNSUBSCRIBE is sent (if a
  // connection is open: otherwise the next one just does not subscribe it).
  // Unknown channels are ignored.
  void unsubscribe(const std::string& channel);

 private:
  struct impl;
  std::shared_ptr<impl> impl_;  // shared with the background coroutines
};

}  // namespace switchboard::redis
