// The cluster's formats in Redis, as pure code (no I/O; test/unit/
// test_redis_codec.cpp): key and channel names, and how a message is kept
// in an inbox stream and published. docs/cluster.md has the whole layout.
//
// Every key of one user carries the user in a hash tag, `{u:42}:...`, so
// that on a Redis Cluster they share one hash slot and one script may touch
// them all; the user's pub/sub channel has the same tag, for sharded pub/sub.
//
// A message is one string, the same in the inbox list and in the publish:
//
//   <seq> <ts_ms> <sender> <id kind><id length>:<id><content>
//
// id kind is `-` (no id, length and id empty), `n` (a number) or `s` (a
// string). A member's copy of a group message (PROTOCOL.md section 10) has
// `g<group>.<gseq>.` just before the id kind: the group script puts it
// there (it assigns the gseq); the node encodes a group message as any
// other. The content runs to the end, so it may hold any byte. The node
// encodes everything after the seq; the append script puts the seq in front
// (it assigns it) and reads only seq, ts and the content's size (trimming,
// --inbox-bytes). A publish is the entry behind `m `; a session the cluster
// closes is published as `k <session id>`.
//
// A STATUS entry (PROTOCOL.md section 11) has the kind `d` (delivered) or
// `r` (read), the receiver's point `upto` in decimal where the id goes, and
// no content: `<seq> <ts_ms> <receiver> d<length>:<upto>`; its sender is
// the user it is about (stored_message).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "switchboard/store/types.hpp"

namespace switchboard::store::redis_codec {

std::string seq_key(user_id user);     // {u:U}:seq       highest seq assigned (INCR)
std::string cursor_key(user_id user);  // {u:U}:cursors   sorted set: device member -> cursor
// {u:U}:seen: sorted set, device member -> its last sighting (ms, Redis
// clock): the end of a session's lease while one is open (PROTOCOL.md
// section 9)
std::string seen_key(user_id user);
// A device's member in {u:U}:cursors and {u:U}:seen: "-" for the default
// device (the user's cursor before devices), "d:<name>" for the others.
std::string device_member(const device_name& device);
std::string inbox_key(user_id user);     // {u:U}:inbox     list of entries, in seq order
std::string sessions_key(user_id user);  // {u:U}:sessions  hash: session id -> lease
// {u:U}:inbox_bytes: held_bytes() of the entries of {u:U}:inbox
// (--inbox-bytes), kept in step with the list by the append script
std::string inbox_bytes_key(user_id user);
std::string dedup_key(user_id sender, const message_id& id);  // {u:S}:dedup:<id>
// hash: a node's (boot's) marker -> the counter of its last append to U of a
// message without an id (what a rerun after a lost reply checks)
std::string applied_key(user_id user);  // {u:U}:applied
// Groups (PROTOCOL.md section 10), under the group's own tag:
std::string group_members_key(group_id group);  // {g:G}:members  set of user ids
std::string group_seq_key(group_id group);      // {g:G}:gseq     last gseq given (INCR)
// {g:G}:applied: as applied_key, for group messages without an id
std::string group_applied_key(group_id group);
// {u:U}:groups: set of the user's group ids, kept in step with the
// members sets by the membership script
std::string user_groups_key(user_id user);
// Sorted sets of U's notify-messages (PROTOCOL.md section 11), score the
// seq, member "<seq> <sender>": those no "delivered" STATUS covered yet,
// and those no "read" STATUS covered yet (a superset).
std::string notify_key(user_id user);  // {u:U}:notify
std::string unread_key(user_id user);  // {u:U}:unread
// Pub/sub is not per database: the database number keeps two clusters on
// one Redis apart.
std::string channel(user_id user, unsigned db);  // {u:U}:ch:<db>
// The user of a channel name, nullopt if it is not one of ours for `db`.
std::optional<user_id> channel_user(std::string_view channel, unsigned db);

std::string encode_message(std::int64_t ts_ms, user_id sender, const std::optional<message_id>& id,
                           std::string_view content);
// A STATUS entry without its seq (the scripts write them; tests use this).
std::string encode_status(std::int64_t ts_ms, user_id about, status_state state, seq_t upto);
// nullopt if `text` is not an encoded message.
std::optional<stored_message> decode_message(std::string_view text, seq_t seq, user_id receiver);
// An inbox entry, "<seq> <message>"; nullopt if malformed.
std::optional<stored_message> decode_entry(std::string_view entry, user_id receiver);

// What arrives on a user's channel.
struct published_message {
  stored_message message;
};
struct published_kick {
  std::string session_id;
};
using published = std::variant<std::monostate, published_message, published_kick>;
// monostate: not a payload of ours (ignored, counted by the caller).
published decode_published(std::string_view payload, user_id receiver);

// Decimal text of an unsigned number, nullopt if not exactly one.
std::optional<std::uint64_t> parse_u64(std::string_view text);

}  // namespace switchboard::store::redis_codec
