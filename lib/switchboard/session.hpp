// One WebSocket session (PROTOCOL.md sections 2 to 4).
//
// The coroutine owns the transport. After the welcome it spawns the reader
// and runs the writer itself, both on the session's I/O thread; clean-up
// happens once, after both ended:
//   reader    reads frames (ws_frames.hpp), answers pings, ERRORs and close
//             frames, hands SENDs to the store;
//   writer    awaits the session's channel and writes the frames: replay
//             pages, live messages, receipts, pings, CLOSE.
// Pings and idleness come from one sweeper per I/O thread. An abort
// (slow_consumer) closes the socket at once from the handle's callback, even
// while the writer is blocked on it: the reader and the writer then fail.
#pragma once

#include <optional>

#include <boost/asio/awaitable.hpp>

#include "switchboard/net.hpp"
#include "switchboard/router.hpp"
#include "switchboard/services.hpp"
#include "switchboard/session_handle.hpp"
#include "switchboard/session_info.hpp"
#include "switchboard/transport.hpp"

namespace switchboard {

// Runs a session on a connection whose WebSocket upgrade was accepted, until
// it ends. Must be spawned on the executor of the connection's I/O thread
// (io_threads.hpp). Beast did the upgrade; from here on the session reads
// and writes frames itself (ws_frames.hpp, transport.hpp).
asio::awaitable<void> run_session(transport io, session_request request, services& s);

// What GET /api/sessions shows of the session, but for the hub's part
// (live, from). Only on the session's I/O thread (handle.executor());
// nullopt once the session ended.
std::optional<session_info> describe(const session_handle& handle);

}  // namespace switchboard
