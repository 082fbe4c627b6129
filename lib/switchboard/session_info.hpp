// What can be seen of one open session from outside it: GET /api/sessions
// (PROTOCOL.md section 10) and the debugger's `sb sessions` (tools/gdb)
// show the same fields (docs/debugging.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "switchboard/store/types.hpp"

namespace switchboard {

// What a session's reader or writer is suspended on. Set by each before it
// awaits; plain bytes of the session's state, read on its I/O thread.
enum class session_wait : std::uint8_t {
  running,          // not suspended, or not started
  socket_readable,  // reader: the client's next bytes
  store_queue,      // room in the store worker's queue (a SEND, a fetch, a cursor move)
  hub_mailbox,      // room in the hub's mailbox (writer: caught up)
  session_queue,    // writer: the next frame for the session
  socket_write,     // writer: the kernel taking what the transport holds
  other_handlers,   // a turn: yielded to the thread's other handlers
  close_handshake,  // the client's close, after ours (finish)
};
std::string_view to_string(session_wait wait);

struct session_info {
  std::string session;
  store::user_id user = 0;
  std::string device;  // "" for the default device (PROTOCOL.md section 9)
  std::int64_t opened_ms = 0;
  long thread = 0;  // the I/O thread's kernel id (gdb's LWP, top -H)
  bool manual_ack = false;
  // Bytes held against --send-queue-bytes: the queue's and the transport's.
  std::size_t queued_bytes = 0;
  // The frames waiting in the session's queue, and the messages among them.
  std::size_t queued_frames = 0;
  std::size_t queue_bytes = 0;
  std::optional<store::seq_t> first_seq, last_seq;
  // The transport: appended and not yet in a socket write, in the write in
  // flight, and the coroutines waiting for the write to end.
  std::size_t pending_bytes = 0;
  std::size_t writing_bytes = 0;
  bool write_in_flight = false;
  std::size_t flush_waiters = 0;
  // The hub's view (filled in by the hub's listing): live, or replaying
  // from the inbox; live frames go out above `from`.
  bool live = false;
  store::seq_t from = 0;
  session_wait reader = session_wait::running;
  session_wait writer = session_wait::running;
  std::optional<std::string_view> closing;  // the close reason once closing
};

}  // namespace switchboard
