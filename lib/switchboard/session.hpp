// One WebSocket session (PROTOCOL.md sections 2 to 4).
//
// The coroutine owns the stream. After the welcome it runs three children on
// the session's I/O thread in one parallel group, so that when one ends the others are
// cancelled and clean-up happens once, after all of them:
//   reader    reads frames, answers ERRORs, hands SENDs to the store;
//   writer    awaits the session's channel and is the only one that writes
//             frames: welcome, replay pages, live messages, receipts, CLOSE;
//   ticker    pings every --ping-interval and closes an idle session.
// An abort (slow_consumer) closes the socket at once from the handle's
// callback, even while the writer is blocked on it: the reader and the
// writer then fail.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "switchboard/net.hpp"
#include "switchboard/router.hpp"
#include "switchboard/services.hpp"
#include "switchboard/transport.hpp"

namespace switchboard {

// Runs a session on a connection whose WebSocket upgrade was accepted, until
// it ends. Must be spawned on the executor of the connection's I/O thread
// (io_threads.hpp). Beast did the upgrade; from here on the session reads
// and writes frames itself (ws_frames.hpp, transport.hpp).
asio::awaitable<void> run_session(transport io, session_request request, services& s);

}  // namespace switchboard
