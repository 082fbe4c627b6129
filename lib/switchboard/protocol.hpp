// The frames of PROTOCOL.md section 2: parsing and validating what a client
// sends, and building what the server sends. Pure code, no I/O: the session
// coroutine moves the bytes, this decides what they mean, so every rule here
// is unit-tested without a socket (test/unit/test_protocol.cpp).
//
// Readings of the protocol where PROTOCOL.md leaves room (for the docs):
// - Any text that is not exactly one JSON value (trailing data, comments,
//   trailing commas, invalid UTF-8), or is nested deeper than
//   max_json_depth, is `bad_json`; a JSON value that is not an object is too.
// - `type` must be a JSON integer: "1", 1.0, 1e0, true and null are
//   `bad_field`; any other integer than 1, 2, 3 in -2^63..2^64-1 (0, 4, 5,
//   negative, huge) is `unknown_type`; beyond that range a number can only be
//   read as a float, so it is `bad_field`.
// - A duplicated key counts once, with its last value.
// - "Unsigned integer" means a JSON number written without fraction or
//   exponent and in 0..2^64-1; anything else (1.0, 1e3, -1, 2^64, which is
//   only representable as a float) is `bad_field`. JSON `-0` reads as 0.
// - SEND checks, in this order, each failure stopping the check: `id`,
//   `receiver`, `content`, then `sender`. A malformed field is reported
//   before a sender mismatch, so `sender_mismatch` always means a
//   well-formed frame that claimed another user.
// - `receiver` may be the sender itself. `content` may be empty.
// - A SEND with both `receiver` and `group`, or neither, is `bad_field`
//   whatever their values; `group` is checked as `receiver` is (an id in
//   1..2^64-1), in the place of `receiver`. `notify` is not read here.
// - `sender` may be present and equal to the session's user; `null` is not
//   "absent", it is `bad_field`.
// - `id`: a string's length is counted in bytes of UTF-8 after JSON unescaping
//   ("\u00e9" is 2 bytes). A numeric id's canonical text is its decimal form,
//   so 17 and "17" are one id, while "017" is another id than 17. 0 is a
//   valid numeric id. Receipts, deliveries and errors echo the id in the form
//   the sender wrote it (number or string).
// - An ERROR echoes `id` whenever the frame was a JSON object holding a valid
//   `id`, whatever else was wrong with it (bad `type` included); an invalid
//   `id` is never echoed. Only SEND uses `id`; other types ignore it, even
//   when invalid.
// - RECEIVE `seq` may be 0 (it changes nothing).
// - SEND `notify` (section 11) must be true or false (anything else,
//   null included, is `bad_field`, checked after `content` and before
//   `sender`); true without an `id` is accepted and means nothing.
// - READ (type 6) `seq` is read as RECEIVE's: an unsigned integer, else
//   `bad_field`; 0 changes nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "switchboard/store/types.hpp"

namespace switchboard::protocol {

using store::message_id;
using store::seq_t;
using store::user_id;

// A frame nests a few levels at most; a bound keeps a hostile frame from
// costing parser stack and memory out of proportion to its size.
inline constexpr std::size_t max_json_depth = 32;

// The longest string `id` a client may give, in bytes.
inline constexpr std::size_t max_id_bytes = 64;

enum class error_code {
  bad_json,
  binary,
  unknown_type,
  bad_field,
  sender_mismatch,
  rate_limited,
  unavailable,
  not_member
};

// The code as it appears in ERROR frames and metric labels.
std::string_view to_string(error_code code);

struct send_frame {
  user_id receiver = 0;       // 0 for a group SEND
  store::group_id group = 0;  // a group SEND (section 10), 0 for a direct one
  std::string content;
  std::optional<message_id> id;
  bool notify = false;  // "notify":true with an id (section 11); false without an id
};

struct receive_frame {
  seq_t seq = 0;
};

// READ (6): the user has seen its inbox up to `seq` (section 11).
struct read_frame {
  seq_t seq = 0;
};

struct close_frame {};

// A refused frame: the session answers with error_frame(code, message, id).
struct frame_error {
  error_code code;
  std::string message;
  std::optional<message_id> id;  // echoed when it could be read
  bool is_send = false;          // a refused SEND still counts in messages_received_total
};

using client_frame = std::variant<send_frame, receive_frame, close_frame, read_frame, frame_error>;

// Parses one text frame from the session of user `self`. Never throws on any
// input (short of running out of memory).
client_frame parse_client_frame(std::string_view text, user_id self);

// Server-to-client frames, each a complete JSON text with "type" first.

// CONNECT (0): the first frame of every session.
// `device`: the session's device, "" for the default one (section 9).
std::string welcome_frame(user_id self, seq_t highest, std::string_view session_id,
                          std::string_view device = {});

// SEND (1): a delivered message, direct or a copy of a group message
// (m.group set, section 10); its id, if any, as the sender wrote it.
std::string deliver_frame(const store::stored_message& m);

// STATUS (5): a STATUS entry (section 11), as the owner of its inbox gets it.
std::string status_frame(const store::stored_message& m);

// An inbox entry as its user gets it: deliver_frame for a message,
// status_frame for a STATUS.
inline std::string entry_frame(const store::stored_message& m) {
  return m.kind == store::entry_kind::status ? status_frame(m) : deliver_frame(m);
}

// RECEIVE (2): the receipt for a stored SEND that carried an id.
std::string receipt_frame(const message_id& id, user_id receiver, seq_t seq, std::int64_t ts_ms);
// RECEIVE (2) for a group SEND: {"type":2,"id":...,"group":G,"gseq":N,"ts":T}.
std::string group_receipt_frame(const message_id& id, store::group_id group, seq_t gseq,
                                std::int64_t ts_ms);

// CLOSE (3): {"type":3,"code":...,"content":...}, just before the close frame.
std::string close_frame_text(std::string_view code, std::string_view text);

// ERROR (4): the last frame was refused; id echoed when known.
std::string error_frame(error_code code, std::string_view text,
                        const std::optional<message_id>& id);

}  // namespace switchboard::protocol
