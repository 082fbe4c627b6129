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

// The cursor is a sorted set, {u:R}:cursors, member "-" (the user's cursor;
// a cursor per device, PROTOCOL.md section 9, is a member per device), so
// that a move is one plain `ZADD ... GT`: it only ever goes forward, from
// any node, without a script. A cursor above the highest seq (a RECEIVE
// with a larger N) counts as the highest where it is read.
//
// One SEND. KEYS: seq, inbox, cursors, then for a message with an id its
// dedup entry, for one without the user's applied hash. ARGV: message
// (encoded), ts_ms, deadline_ms (Redis clock), dedup_window_ms, inbox_limit,
// retention_ms, channel, receiver, grace_ms, dedup_keep_ms; for a message
// without an id also marker, counter, rerun ("1" or "0").
// Returns {-1} past the deadline (nothing done: a call that waited in a
// paused Redis must not store what its sender was told failed), {0,
// receiver, seq, ts} for a resend within the window (nothing stored), {2}
// for a rerun of a message without an id that the lost call had stored
// (nothing stored), or {1, seq, evicted}.
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
//
inline constexpr const char* append = R"lua(
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[3]) then
  return {-1}
end
local ts = tonumber(ARGV[2])
local marker = ARGV[11]
if marker then
  if ARGV[13] == '1' then
    local done = redis.call('HGET', KEYS[4], marker)
    if done and tonumber(done) >= tonumber(ARGV[12]) then return {2} end
  end
elseif KEYS[4] then
  local prev = redis.call('GET', KEYS[4])
  if prev then
    local receiver, seq, pts = string.match(prev, '^(%d+) (%d+) (%-?%d+)$')
    if pts and tonumber(pts) >= ts - tonumber(ARGV[4]) then
      return {0, receiver, seq, pts}
    end
  end
end
local seq = redis.call('INCR', KEYS[1])
local entry = string.format('%d ', seq) .. ARGV[1]
local len = redis.call('RPUSH', KEYS[2], entry)
local evicted = 0
local cursor = nil
if seq % 16 == 0 then
  cursor = tonumber(redis.call('ZSCORE', KEYS[3], '-') or '0')
  local expired = ts - tonumber(ARGV[6])
  local settled = ts - tonumber(ARGV[9])
  while len > 1 do
    local fseq, fts = string.match(redis.call('LINDEX', KEYS[2], 0), '^(%d+) (%-?%d+) ')
    fseq, fts = tonumber(fseq), tonumber(fts)
    if fts == nil or fseq == nil then break end
    if fts < expired then
      if fseq > cursor then evicted = evicted + 1 end
    elseif not (fseq <= cursor and fts < settled) then
      break
    end
    redis.call('LPOP', KEYS[2])
    len = len - 1
  end
end
local limit = tonumber(ARGV[5])
if len > limit then
  cursor = cursor or tonumber(redis.call('ZSCORE', KEYS[3], '-') or '0')
  -- The entries dropped hold seqs first .. first + drop - 1.
  local drop = len - limit
  local first = seq - len + 1
  local last = first + drop - 1
  if last > cursor then evicted = evicted + last - math.max(cursor, first - 1) end
  redis.call('LTRIM', KEYS[2], drop, -1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if marker then
  -- One field per node start: a hash that collected many (a user who gets
  -- messages without pause across many restarts) starts again.
  if redis.call('HSET', KEYS[4], marker, ARGV[12]) == 1 and redis.call('HLEN', KEYS[4]) > 64 then
    redis.call('DEL', KEYS[4])
    redis.call('HSET', KEYS[4], marker, ARGV[12])
  end
  redis.call('PEXPIRE', KEYS[4], ARGV[10])
elseif KEYS[4] then
  redis.call('SET', KEYS[4], ARGV[8] .. string.format(' %d ', seq) .. ARGV[2], 'PX', ARGV[10])
end
redis.call('PUBLISH', ARGV[7], 'm ' .. entry)
return {1, seq, evicted}
)lua";

// The held messages of one user above a seq. KEYS: seq, inbox. ARGV: after
// (decimal, may exceed 2^53), count. Returns the entries (see append), in
// seq order, starting with the first above `after`.
inline constexpr const char* fetch = R"lua(
local len = redis.call('LLEN', KEYS[2])
if len == 0 then return {} end
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
local first = highest - len + 1
local start = tonumber(ARGV[1]) + 1 - first
if start < 0 then start = 0 end
if start >= len then return {} end
return redis.call('LRANGE', KEYS[2], start, start + tonumber(ARGV[2]) - 1)
)lua";

// A session opens. KEYS: sessions, seq, cursors. ARGV: session id, node,
// lease_ms, max_sessions, channel.
// Forgets sessions whose lease lapsed (their node died), registers this
// one, closes the oldest beyond max_sessions wherever they are (published
// as `k <id>` on the user's channel) and returns {highest, cursor}.
// Hash fields: session id -> "<order> <lease end ms> <node>"; "#" holds the
// order counter (oldest first, across the cluster).
inline constexpr const char* open = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local field, value = all[i], all[i + 1]
  if field ~= '#' then
    local order, expires = string.match(value, '^(%d+) (%d+) ')
    if order == nil or tonumber(expires) < now then
      redis.call('HDEL', KEYS[1], field)
    else
      live[#live + 1] = {tonumber(order), field}
    end
  end
end
local order = redis.call('HINCRBY', KEYS[1], '#', 1)
redis.call('HSET', KEYS[1], ARGV[1],
           string.format('%d %d ', order, now + lease) .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease)
table.sort(live, function(a, b) return a[1] < b[1] end)
local excess = #live + 1 - tonumber(ARGV[4])
for i = 1, excess do
  redis.call('HDEL', KEYS[1], live[i][2])
  redis.call('PUBLISH', ARGV[5], 'k ' .. live[i][2])
end
local highest = tonumber(redis.call('GET', KEYS[2]) or '0')
local cursor = tonumber(redis.call('ZSCORE', KEYS[3], '-') or '0')
if cursor > highest then cursor = highest end
return {string.format('%d', highest), string.format('%d', cursor)}
)lua";

// A node renews the lease of one of its sessions. KEYS: sessions. ARGV:
// session id, lease_ms. Returns 0 if the session is no longer registered
// (closed as replaced, or forgotten while its node could not reach Redis):
// the node closes it then.
inline constexpr const char* refresh = R"lua(
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local order, node = string.match(value, '^(%d+) %d+ (.*)$')
redis.call('HSET', KEYS[1], ARGV[1],
           string.format('%d %d ', tonumber(order), now + tonumber(ARGV[2])) .. node)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
)lua";

}  // namespace switchboard::store::redis_scripts
