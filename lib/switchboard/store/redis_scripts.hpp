// The cluster's server-side scripts (Lua, run by EVALSHA; loaded again by
// SCRIPT LOAD on every connection, since a restarted Redis forgets them).
// Each runs atomically in Redis: nothing is ever half-stored. Key layout and
// formats: redis_codec.hpp and docs/cluster.md.
//
// Numbers: user ids are up to 2^64-1, beyond Lua's exact integers (2^53), so
// the scripts keep them as strings; seqs are Redis integers (INCR), exact in
// Lua up to 2^53, which no inbox reaches. string.format('%d') writes them
// without an exponent.
#pragma once

namespace switchboard::store::redis_scripts {

// held_bytes() of an inbox entry, "<seq> <ts> <sender> <kind><id length>:<id>
// <content>" (redis_codec.hpp): the bytes after the id (none for a STATUS,
// whose point stands where the id would). Shared by the
// scripts that trim and page by bytes, so that they count as the other
// stores do.
#define SWITCHBOARD_LUA_CONTENT_BYTES                                                        \
  "local function content_bytes(entry)\n"                                                    \
  "  local _, colon, idlen = string.find(entry, '^%d+ %-?%d+ %d+ [g%d%.]*[%-nsdr](%d*):')\n" \
  "  if not colon then return 0 end\n"                                                       \
  "  return #entry - colon - (tonumber(idlen) or 0)\n"                                       \
  "end\n"

// The lowest cursor of the devices of a user still remembered (PROTOCOL.md
// section 9): what every one of them has passed, and may go. A device is
// remembered while its last sighting in {u:R}:seen is at most forget_ms
// old (a cursor without a sighting is the user's cursor from before
// devices, and counts); one seen without a cursor is at 0, and so is a
// user with no device remembered (everything is held for the next one).
// Forgotten devices are removed from both sets on the way.
#define SWITCHBOARD_LUA_LOWEST_CURSOR                                      \
  "local function lowest_cursor(cursors, seen, now_ms, forget_ms)\n"       \
  "  local limit = now_ms - forget_ms\n"                                   \
  "  for _, m in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. " \
  "string.format('%d', limit))) do\n"                                      \
  "    redis.call('ZREM', seen, m)\n"                                      \
  "    redis.call('ZREM', cursors, m)\n"                                   \
  "  end\n"                                                                \
  "  local lowest = nil\n"                                                 \
  "  local all = redis.call('ZRANGE', cursors, 0, -1, 'WITHSCORES')\n"     \
  "  for i = 1, #all, 2 do\n"                                              \
  "    local c = tonumber(all[i + 1])\n"                                   \
  "    if lowest == nil or c < lowest then lowest = c end\n"               \
  "  end\n"                                                                \
  "  for _, m in ipairs(redis.call('ZRANGE', seen, 0, -1)) do\n"           \
  "    if not redis.call('ZSCORE', cursors, m) then return 0 end\n"        \
  "  end\n"                                                                \
  "  return lowest or 0\n"                                                 \
  "end\n"

// One entry pushed to one user's inbox, with everything an append does to
// it: the seq (INCR), --inbox-bytes, the trims (acknowledged and expired
// entries every 16th append, then --inbox-limit and --inbox-bytes), the
// TTLs and the publish. Shared by the direct and the group append, so that
// a copy of a group message is held and evicted exactly as a direct one.
// `body` is the entry after its seq. Returns the seq and the count evicted.
#define SWITCHBOARD_LUA_PUSH                                                                  \
  "local function push(k_seq, k_inbox, k_cursors, k_bytes, k_seen, body, size, ts, now_ms,\n" \
  "                    limit, limit_bytes, retention_ms, grace_ms, forget_ms, channel)\n"     \
  "  local seq = redis.call('INCR', k_seq)\n"                                                 \
  "  local entry = string.format('%d ', seq) .. body\n"                                       \
  "  local len = redis.call('RPUSH', k_inbox, entry)\n"                                       \
  "  local counted = redis.call('INCRBY', k_bytes, size)\n"                                   \
  "  local bytes = counted - 1\n"                                                             \
  "  if counted == size or len == 1 then\n"                                                   \
  "    bytes = size\n"                                                                        \
  "    if len > 1 then\n"                                                                     \
  "      bytes = 0\n"                                                                         \
  "      for _, e in ipairs(redis.call('LRANGE', k_inbox, 0, -1)) do\n"                       \
  "        bytes = bytes + content_bytes(e)\n"                                                \
  "      end\n"                                                                               \
  "    end\n"                                                                                 \
  "  end\n"                                                                                   \
  "  local evicted = 0\n"                                                                     \
  "  local cursor = nil\n"                                                                    \
  "  if seq % 16 == 0 then\n"                                                                 \
  "    cursor = lowest_cursor(k_cursors, k_seen, now_ms, forget_ms)\n"                        \
  "    local expired = ts - tonumber(retention_ms)\n"                                         \
  "    local settled = ts - grace_ms\n"                                                       \
  "    while len > 1 do\n"                                                                    \
  "      local head = redis.call('LINDEX', k_inbox, 0)\n"                                     \
  "      local fseq, fts = string.match(head, '^(%d+) (%-?%d+) ')\n"                          \
  "      fseq, fts = tonumber(fseq), tonumber(fts)\n"                                         \
  "      if fts == nil or fseq == nil then break end\n"                                       \
  "      if fts < expired then\n"                                                             \
  "        if fseq > cursor then evicted = evicted + 1 end\n"                                 \
  "      elseif not (fseq <= cursor and fts < settled) then\n"                                \
  "        break\n"                                                                           \
  "      end\n"                                                                               \
  "      redis.call('LPOP', k_inbox)\n"                                                       \
  "      len = len - 1\n"                                                                     \
  "      bytes = bytes - content_bytes(head)\n"                                               \
  "    end\n"                                                                                 \
  "  end\n"                                                                                   \
  "  while len > limit or (bytes > limit_bytes and len > 1) do\n"                             \
  "    cursor = cursor or lowest_cursor(k_cursors, k_seen, now_ms, forget_ms)\n"              \
  "    local head = redis.call('LPOP', k_inbox)\n"                                            \
  "    len = len - 1\n"                                                                       \
  "    local _, colon, hseq, idlen = string.find(head, '^(%d+) %-?%d+ %d+ "                   \
  "[g%d%.]*[%-nsdr](%d*):')\n"                                                                \
  "    if colon then bytes = bytes - (#head - colon - (tonumber(idlen) or 0)) end\n"          \
  "    hseq = tonumber(hseq)\n"                                                               \
  "    if hseq == nil or hseq > cursor then evicted = evicted + 1 end\n"                      \
  "  end\n"                                                                                   \
  "  if bytes < 0 then bytes = 0 end\n"                                                       \
  "  redis.call('PEXPIRE', k_inbox, retention_ms)\n"                                          \
  "  if bytes + 1 ~= counted then\n"                                                          \
  "    redis.call('INCRBY', k_bytes, string.format('%d', bytes + 1 - counted))\n"             \
  "  end\n"                                                                                   \
  "  if counted == size or seq % 16 == 0 then\n"                                              \
  "    redis.call('PEXPIRE', k_bytes, string.format('%d', 2 * tonumber(retention_ms)))\n"     \
  "  end\n"                                                                                   \
  "  redis.call('PUBLISH', channel, 'm ' .. entry)\n"                                         \
  "  return seq, evicted\n"                                                                   \
  "end\n"

// The (sender, id) check of both appends, and its record once stored. A
// message with an id has its dedup entry at `key`: "<receiver> <seq> <ts>"
// for a direct one, "<group> <gseq> <ts> g" for a group one; a resend gets
// {0, receiver or group, seq or gseq, ts, 1 for a group else 0}. One
// without an id has its node's marker in the applied hash at `key`: {2}
// when a rerun finds it stored (see append).
#define SWITCHBOARD_LUA_RESEND                                                      \
  "local function resend(key, marker, counter, rerun, ts, window)\n"                \
  "  if marker then\n"                                                              \
  "    if rerun == '1' then\n"                                                      \
  "      local done = redis.call('HGET', key, marker)\n"                            \
  "      if done and tonumber(done) >= tonumber(counter) then return {2} end\n"     \
  "    end\n"                                                                       \
  "  elseif key then\n"                                                             \
  "    local prev = redis.call('GET', key)\n"                                       \
  "    if prev then\n"                                                              \
  "      local a, b, pts, g = string.match(prev, '^(%d+) (%d+) (%-?%d+)( ?g?)$')\n" \
  "      if pts and tonumber(pts) >= ts - window then\n"                            \
  "        if g == ' g' then return {0, a, b, pts, 1} end\n"                        \
  "        return {0, a, b, pts, 0}\n"                                              \
  "      end\n"                                                                     \
  "    end\n"                                                                       \
  "  end\n"                                                                         \
  "  return nil\n"                                                                  \
  "end\n"                                                                           \
  "local function remember(key, marker, counter, value, keep)\n"                    \
  "  if marker then\n"                                                              \
  "    if redis.call('HSET', key, marker, counter) == 1 and\n"                      \
  "       redis.call('HLEN', key) > 64 then\n"                                      \
  "      redis.call('DEL', key)\n"                                                  \
  "      redis.call('HSET', key, marker, counter)\n"                                \
  "    end\n"                                                                       \
  "    redis.call('PEXPIRE', key, keep)\n"                                          \
  "  elseif key then\n"                                                             \
  "    redis.call('SET', key, value, 'PX', keep)\n"                                 \
  "  end\n"                                                                         \
  "end\n"

// The start of both appends (ARGV as append's): past the deadline, {-1};
// a resend or a rerun already stored, resend()'s answer; else nil and what
// the rest needs: now (ms, Redis clock), the message's ts, the marker (nil
// for a message with an id). `key` is the dedup entry or the applied hash.
#define SWITCHBOARD_LUA_BEGIN_APPEND                                                              \
  "local function begin_append(key)\n"                                                            \
  "  local now = redis.call('TIME')\n"                                                            \
  "  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)\n"              \
  "  if now_ms > tonumber(ARGV[3]) then return {-1} end\n"                                        \
  "  local ts = tonumber(ARGV[2])\n"                                                              \
  "  local marker = ARGV[13]\n"                                                                   \
  "  if marker == '' then marker = nil end\n"                                                     \
  "  return resend(key, marker, ARGV[14], ARGV[15], ts, tonumber(ARGV[4])), now_ms, ts, marker\n" \
  "end\n"

// The cursors are a sorted set, {u:R}:cursors, a member per device
// (redis_codec.hpp, device_member), so that a move is one plain `ZADD ...
// GT`: it only ever goes forward, from any node, without a script. A cursor
// above the highest seq (a RECEIVE with a larger N) counts as the highest
// where it is read. Acknowledged below: under the lowest cursor of the
// devices remembered (SWITCHBOARD_LUA_LOWEST_CURSOR).
//
// One SEND. KEYS: seq, inbox, cursors, then for a message with an id its
// dedup entry, for one without the user's applied hash, then inbox_bytes,
// seen. ARGV: message (encoded), ts_ms, deadline_ms (Redis clock),
// dedup_window_ms, inbox_limit, retention_ms, channel, receiver, grace_ms,
// dedup_keep_ms, inbox_bytes (the bound), the content's held_bytes; for a
// message without an id marker, counter, rerun ("1" or "0"), for one with
// an id three empty strings; then device_forget_ms. Then (PROTOCOL.md
// section 11) KEYS[7], KEYS[8] the receiver's notify and unread sets, and
// ARGV[17] notify ("1": remember this notify-message), ARGV[18] sender.
// Returns {-1} past the deadline (nothing done: a call that waited in a
// paused Redis must not store what its sender was told failed), {0,
// receiver, seq, ts, is_group} for a resend within the window (nothing
// stored; is_group 1: the original was a group message, receiver and seq
// are its group and gseq), {2} for a rerun of a message without an id that
// the lost call had stored (nothing stored), or {1, seq, evicted}.
//
// Reruns: when the connection breaks or the deadline passes before a
// batch's replies came, Redis may have run a prefix of it. The node runs the
// batch again once none of the first call's scripts can still run (after
// their deadline): a message with an id finds its dedup entry, which is
// therefore kept at least dedup_keep_ms (longer than a rerun can take) and
// compared with the window by ts, so that a rerun (same ts) is always a
// resend and a window of 0 still lets a new SEND with the same id through.
// A message without an id has its node's marker (random per start) set to
// its counter, increasing per append; a rerun skips a message whose counter
// its marker already reached (one node's appends to a user run in order).
// One field per node start: a hash that collected many (a user who gets
// messages without pause across many restarts) starts again.
//
// --inbox-bytes: {u:R}:inbox_bytes holds 1 + the content bytes of the list,
// kept in step by every path that pushes or pops (push() alone). The
// 1 tells a missing counter from an empty inbox: INCRBY then answers
// exactly the new size, and the list is counted once (an inbox written by a
// node from before the counter, or whose counter expired first). One
// INCRBY per append, and one more only when something left the list: the
// counter's TTL, twice --retention, is renewed every 16th append rather
// than every time; it may outlive its list, and a list of one entry (the
// one just pushed) resets it. --inbox-limit and --inbox-bytes: the oldest
// go, acknowledged ones first (they are the oldest); the newest always
// stays. Only those above the cursor count as evicted.
//
inline constexpr const char* append = SWITCHBOARD_LUA_CONTENT_BYTES SWITCHBOARD_LUA_LOWEST_CURSOR
    SWITCHBOARD_LUA_PUSH SWITCHBOARD_LUA_RESEND SWITCHBOARD_LUA_BEGIN_APPEND R"lua(
local early, now_ms, ts, marker = begin_append(KEYS[4])
if early then return early end
local seq, evicted = push(KEYS[1], KEYS[2], KEYS[3], KEYS[5], KEYS[6], ARGV[1], tonumber(ARGV[12]),
                          ts, now_ms, tonumber(ARGV[5]), tonumber(ARGV[11]), ARGV[6],
                          tonumber(ARGV[9]), tonumber(ARGV[16]), ARGV[7])
remember(KEYS[4], marker, ARGV[14], ARGV[8] .. string.format(' %d ', seq) .. ARGV[2], ARGV[10])
if ARGV[17] == '1' then
  local member = string.format('%d ', seq) .. ARGV[18]
  redis.call('ZADD', KEYS[7], seq, member)
  redis.call('ZADD', KEYS[8], seq, member)
  redis.call('PEXPIRE', KEYS[7], ARGV[6])
  redis.call('PEXPIRE', KEYS[8], ARGV[6])
end
if ARGV[17] == '1' or seq % 16 == 0 then
  -- Forgotten once --inbox-limit newer seqs came (types.hpp, notify_forgotten).
  local forgotten = seq - tonumber(ARGV[5])
  if forgotten > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', string.format('%d', forgotten))
    redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', string.format('%d', forgotten))
  end
end
return {1, seq, evicted}
)lua";

// One group SEND (PROTOCOL.md section 10): all copies or none, since a
// script runs whole. KEYS: the group's members set, its gseq, then for a
// message with an id its dedup entry, for one without the group's applied
// hash. ARGV: as append's, but ARGV[7] is the database number (each
// member's channel is named from it), ARGV[8] the sender, and ARGV[17] the
// group. The members' keys are named in the script from the members set:
// they are not in KEYS, which a single Redis allows and a Redis Cluster
// does not (docs/cluster.md, groups). Returns as append, {3} when the
// sender is not a member (nothing done), or {1, gseq, evicted, member,
// seq, member, seq...}, a (member, seq) per copy.
inline constexpr const char* append_group =
    SWITCHBOARD_LUA_CONTENT_BYTES SWITCHBOARD_LUA_LOWEST_CURSOR SWITCHBOARD_LUA_PUSH
        SWITCHBOARD_LUA_RESEND SWITCHBOARD_LUA_BEGIN_APPEND R"lua(
local early, now_ms, ts, marker = begin_append(KEYS[3])
if early then return early end
local sender = ARGV[8]
if redis.call('SISMEMBER', KEYS[1], sender) == 0 then return {3} end
local gseq = redis.call('INCR', KEYS[2])
local head, rest = string.match(ARGV[1], '^(%-?%d+ %d+ )(.*)$')
local body = head .. 'g' .. ARGV[17] .. string.format('.%d.', gseq) .. rest
local size = tonumber(ARGV[12])
local out = {1, gseq, 0}
local evicted = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if m ~= sender then
    local tag = '{u:' .. m .. '}:'
    local seq, ev = push(tag .. 'seq', tag .. 'inbox', tag .. 'cursors', tag .. 'inbox_bytes',
                         tag .. 'seen', body, size, ts, now_ms, tonumber(ARGV[5]),
                         tonumber(ARGV[11]), ARGV[6], tonumber(ARGV[9]), tonumber(ARGV[16]),
                         tag .. 'ch:' .. ARGV[7])
    evicted = evicted + ev
    out[#out + 1] = m
    out[#out + 1] = seq
  end
end
out[3] = evicted
remember(KEYS[3], marker, ARGV[14], ARGV[17] .. string.format(' %d ', gseq) .. ARGV[2] .. ' g',
         ARGV[10])
return out
)lua";

// Adds a member. KEYS: the group's members set, the user's groups set.
// ARGV: user, group, max members. Returns 1 (a member now, or already),
// 0 (full: not added).
inline constexpr const char* add_member = R"lua(
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
)lua";

// Removes a member. KEYS and ARGV as add_member's (no max).
inline constexpr const char* remove_member = R"lua(
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
)lua";

// A cursor move of one device, or a READ (PROTOCOL.md sections 3, 9 and
// 11), with the STATUS entries it brings. KEYS: the user's cursors, seq,
// notify, unread. ARGV: device member, seq (the move's or the READ's),
// ts_ms, mode ("d": a cursor move; "r": a READ, which moves no cursor),
// user, db, inbox_limit, retention_ms, device_forget_ms.
// The point is N = min(seq, highest): the cursor moves there (ZADD GT);
// each sender with a notify-message at or below N in `notify` gets a
// "delivered" STATUS upto N, and on a READ each one with one in `unread`
// then a "read" STATUS; the entries covered leave the sets.
// A STATUS is appended to the sender's own inbox like a message (its next
// seq, --inbox-limit, the retention TTL) and published on its channel. Those
// keys, `{u:S}:...`, are built here and not declared in KEYS: fine on one
// Redis, not on a Redis Cluster (docs/cluster.md says what that would need).
// Returns {evicted, sender, entry, sender, entry...}.
inline constexpr const char* mark =
    SWITCHBOARD_LUA_CONTENT_BYTES SWITCHBOARD_LUA_LOWEST_CURSOR R"lua(
local highest = tonumber(redis.call('GET', KEYS[2]) or '0')
local n = tonumber(ARGV[2])
if n > highest then n = highest end
local point = string.format('%d', n)
if ARGV[4] == 'd' then
  redis.call('ZADD', KEYS[1], 'GT', point, ARGV[1])
end
if n == 0 then return {0} end
local limit = tonumber(ARGV[7])
if highest > limit then
  local forgotten = string.format('%d', highest - limit)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', forgotten)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', forgotten)
end
-- The senders of the covered members, each once, in seq order.
local function covered(key)
  local members = redis.call('ZRANGEBYSCORE', key, '-inf', point)
  if #members == 0 then return {} end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', point)
  local senders, seen = {}, {}
  for _, m in ipairs(members) do
    local s = string.match(m, ' (%d+)$')
    if s and not seen[s] then
      seen[s] = true
      senders[#senders + 1] = s
    end
  end
  return senders
end
local delivered = covered(KEYS[3])
local read_by = {}
if ARGV[4] == 'r' then read_by = covered(KEYS[4]) end
if #delivered == 0 and #read_by == 0 then return {0} end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {0}
local function push(sender, state)
  local pre = '{u:' .. sender .. '}:'
  local seq = redis.call('INCR', pre .. 'seq')
  local entry = string.format('%d ', seq) .. ARGV[3] .. ' ' .. ARGV[5] .. ' ' .. state ..
                string.format('%d:', #point) .. point
  local inbox = pre .. 'inbox'
  local len = redis.call('RPUSH', inbox, entry)
  redis.call('PEXPIRE', inbox, ARGV[8])
  if len > limit then
    local cursor = lowest_cursor(pre .. 'cursors', pre .. 'seen', now_ms, tonumber(ARGV[9]))
    local freed = 0
    while len > limit do
      local head = redis.call('LPOP', inbox)
      len = len - 1
      freed = freed + content_bytes(head)
      local hseq = tonumber(string.match(head, '^(%d+) '))
      if hseq == nil or hseq > cursor then out[1] = out[1] + 1 end
    end
    -- The byte counter follows the list; a missing one is recounted by
    -- the next append (redis_scripts::append).
    if freed > 0 and redis.call('EXISTS', pre .. 'inbox_bytes') == 1 then
      redis.call('DECRBY', pre .. 'inbox_bytes', freed)
    end
  end
  redis.call('PUBLISH', pre .. 'ch:' .. ARGV[6], 'm ' .. entry)
  out[#out + 1] = sender
  out[#out + 1] = entry
end
for _, s in ipairs(delivered) do push(s, 'd') end
for _, s in ipairs(read_by) do push(s, 'r') end
return out
)lua";

// The held messages of one user above a seq. KEYS: seq, inbox. ARGV: after
// (decimal, may exceed 2^53), count, max_bytes. Returns the entries (see
// append), in seq order, starting with the first above `after`: at most
// count, and no more than max_bytes of content but for the first. Read 16
// at a time, so that a page cut short by bytes did not copy the rest.
inline constexpr const char* fetch = SWITCHBOARD_LUA_CONTENT_BYTES R"lua(
local len = redis.call('LLEN', KEYS[2])
if len == 0 then return {} end
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
local first = highest - len + 1
local start = tonumber(ARGV[1]) + 1 - first
if start < 0 then start = 0 end
if start >= len then return {} end
local count = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local out = {}
local bytes = 0
while #out < count and start < len do
  local chunk = redis.call('LRANGE', KEYS[2], start, start + math.min(16, count - #out) - 1)
  if #chunk == 0 then break end
  for _, e in ipairs(chunk) do
    bytes = bytes + content_bytes(e)
    if #out > 0 and bytes > budget then return out end
    out[#out + 1] = e
  end
  start = start + #chunk
end
return out
)lua";

// A session opens. KEYS: sessions, seq, cursors, seen. ARGV: session id,
// node, lease_ms, max_sessions, channel, device member, device_forget_ms,
// max_devices.
// Forgets sessions whose lease lapsed (their node died), registers this
// one, closes the oldest beyond max_sessions wherever they are (published
// as `k <id>` on the user's channel): the oldest of the same device if it
// has one, else the user's oldest (PROTOCOL.md section 9). The device is
// seen until the lease ends (renewed with it); one forgotten starts again
// at cursor 0. A device new to a user who has max_devices forgets the
// least recently seen one without a session (--max-devices-per-user).
// Returns {highest, the device's cursor}.
// Hash fields: session id -> "<order> <lease end ms> <device member>
// <node>"; "#" holds the order counter (oldest first, across the cluster).
inline constexpr const char* open = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
local member = ARGV[6]
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local field, value = all[i], all[i + 1]
  if field ~= '#' then
    local order, expires, device = string.match(value, '^(%d+) (%d+) (%S*)')
    if order == nil or tonumber(expires) < now then
      redis.call('HDEL', KEYS[1], field)
    else
      live[#live + 1] = {tonumber(order), field, device}
    end
  end
end
local order = redis.call('HINCRBY', KEYS[1], '#', 1)
redis.call('HSET', KEYS[1], ARGV[1],
           string.format('%d %d ', order, now + lease) .. member .. ' ' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease)
table.sort(live, function(a, b) return a[1] < b[1] end)
local excess = #live + 1 - tonumber(ARGV[4])
for _ = 1, excess do
  local victim = 1
  for j = 1, #live do
    if live[j][3] == member then victim = j break end
  end
  redis.call('HDEL', KEYS[1], live[victim][2])
  redis.call('PUBLISH', ARGV[5], 'k ' .. live[victim][2])
  table.remove(live, victim)
end
local seen = redis.call('ZSCORE', KEYS[4], member)
if seen and tonumber(seen) < now - tonumber(ARGV[7]) then
  redis.call('ZREM', KEYS[3], member)
end
if not seen and redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[8]) then
  local busy = {}
  for _, s in ipairs(live) do busy[s[3]] = true end
  for _, m in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    if not busy[m] then
      redis.call('ZREM', KEYS[4], m)
      redis.call('ZREM', KEYS[3], m)
      break
    end
  end
end
redis.call('ZADD', KEYS[4], 'GT', string.format('%d', now + lease), member)
local highest = tonumber(redis.call('GET', KEYS[2]) or '0')
local cursor = tonumber(redis.call('ZSCORE', KEYS[3], member) or '0')
if cursor > highest then cursor = highest end
return {string.format('%d', highest), string.format('%d', cursor)}
)lua";

// A session ended. KEYS: sessions, seen. ARGV: session id, device member.
// The cluster stops counting it; once its device has no session left, the
// device was last seen now (not at the end of the lease).
inline constexpr const char* close = R"lua(
redis.call('HDEL', KEYS[1], ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= '#' and string.match(all[i + 1], '^%d+ %d+ (%S*)') == ARGV[2] then return 0 end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], string.format('%d', now), ARGV[2])
return 1
)lua";

// A node renews the lease of one of its sessions. KEYS: sessions, seen.
// ARGV: session id, lease_ms. Returns 0 if the session is no longer
// registered (closed as replaced, or forgotten while its node could not
// reach Redis): the node closes it then. Its device is seen until the new
// lease ends.
inline constexpr const char* refresh = R"lua(
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local order, rest = string.match(value, '^(%d+) %d+ (.*)$')
local until_ms = string.format('%d', now + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d ', tonumber(order)) .. until_ms .. ' ' .. rest)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local member = string.match(rest, '^(%S*)')
if member and member ~= '' then redis.call('ZADD', KEYS[2], 'GT', until_ms, member) end
return 1
)lua";

#undef SWITCHBOARD_LUA_CONTENT_BYTES
#undef SWITCHBOARD_LUA_LOWEST_CURSOR
#undef SWITCHBOARD_LUA_PUSH
#undef SWITCHBOARD_LUA_RESEND
#undef SWITCHBOARD_LUA_BEGIN_APPEND

}  // namespace switchboard::store::redis_scripts
