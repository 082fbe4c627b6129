// One WebSocket session (PROTOCOL.md sections 2 to 4).
//
// A session is one object (session_state, session.cpp) that owns the
// transport, and coroutines only while there is something to await
// (docs/architecture.md, "An idle session holds no coroutine"):
//   reader    a readability handler: reads frames (ws_frames.hpp), answers
//             pings, ERRORs and close frames, hands SENDs to the store;
//             a coroutine only to await the store's queue or the close
//             handshake (over TLS, for the whole session);
//   writer    a coroutine spawned when the session's channel gets an event
//             and ended when it is empty: replay pages, live messages,
//             receipts, pings, CLOSE.
// An idle session waits for readability with a plain handler, and its
// writer is parked on its handle's flag. Clean-up happens once, after both
// ended. Pings and idleness come from one sweeper per I/O thread. An abort
// (slow_consumer) works on the session's state on its thread, whether the
// writer runs or is parked.
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

// Opens a session on a connection whose WebSocket upgrade was accepted
// (the welcome), hands it to its reader and writer, and returns; the
// session then lives on its own and releases its --max-connections slot
// when it ends. Must be spawned on the executor of the connection's I/O
// thread (io_threads.hpp). Beast did the upgrade; from here on the session
// reads and writes frames itself (ws_frames.hpp, transport.hpp).
asio::awaitable<void> run_session(transport io, session_request request, services& s);

// What GET /api/sessions shows of the session, but for the hub's part
// (live, from). Only on the session's I/O thread (handle.executor());
// nullopt once the session ended.
std::optional<session_info> describe(const session_handle& handle);

}  // namespace switchboard
