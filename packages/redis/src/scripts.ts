import type { Redis } from 'ioredis'

/**
 * Lua scripts: each runs atomically in Redis, so routing, settling and moving due messages never interleave with
 * another client's commands. Keys are built from the prefix passed as ARGV[1] (one Redis, not a cluster).
 *
 * Layout for prefix P: `P:v` bindings version, `P:bindings` set of "group\npattern", `P:q:<group>` the group's
 * stream (consumer group `herald`), `P:d:<group>` its delayed messages (sorted set of tokens by due time),
 * `P:dd:<group>` and `P:db:<group>` their fields and bodies, `P:a:<group>` deliveries made before an entry was
 * (re)added (stream entry id → count; absent when none), `P:dlq` the dead-letter stream.
 * A stream entry is: i (message id), t (topic), h (headers JSON), b (body), and after a failure ff (first failure,
 * epoch ms), le (last error JSON) and r (its count is in `P:a:<group>`). The count lives in Herald's own hash, not
 * in the entry, so a field written by another client can never change how often a message is tried.
 *
 * Every script that moves an entry writes its destination before it acks and deletes the source: Redis does not
 * roll a failed script back, so a failure part-way leaves the entry where it was (it is delivered again), never
 * nowhere. Due times are judged by the server's clock (TIME), never a consumer's.
 */

/** Shared Lua: is entry `id` of stream `key` pending for `consumer`? (A lost lease means another took it.) */
const owns = `
local function servernow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- An entry's fields, with what a damaged entry lacks filled in so that it can still be moved or dead-lettered.
local function movable(key, id)
  local e = redis.call('XRANGE', key, id, id)
  if #e == 0 then return nil end
  local f, m = e[1][2], {}
  for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
  m.i = m.i or id
  m.t = m.t or ''
  m.h = m.h or '{}'
  m.b = m.b or ''
  return m
end
local function owns(key, id, consumer)
  local p = redis.call('XPENDING', key, 'herald', id, id, 1, consumer)
  return #p == 1
end
local function fields(key, id)
  local e = redis.call('XRANGE', key, id, id)
  if #e == 0 then return nil end
  local f, m = e[1][2], {}
  for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
  return m
end

-- Per-key order (docs/decisions/0012): P:kc group -> per-key concurrency; P:ka:<group> key -> messages in play;
-- P:kh:<group> key -> the dead letter holding it; P:kw:<group>\\n<key> the messages waiting, in order (each
-- packed with cmsgpack: id, topic, headers, body); P:kn group -> how many wait.
local kc_cache = {}
local function kconc(P, group)
  local c = kc_cache[group]
  if c == nil then
    c = tonumber(redis.call('HGET', P .. ':kc', group) or '1') or 1
    kc_cache[group] = c
  end
  return c
end
local function waitkey(P, group, key) return P .. ':kw:' .. group .. '\\n' .. key end
-- A keyed message new to its group: into the stream while its key has room, else it waits behind the key.
local function admit(P, group, key, m, body)
  local active = tonumber(redis.call('HGET', P .. ':ka:' .. group, key) or '0') or 0
  if redis.call('HEXISTS', P .. ':kh:' .. group, key) == 0 and active < kconc(P, group) then
    redis.call('XADD', P .. ':q:' .. group, '*', 'i', m.i, 't', m.t, 'h', m.h, 'b', body, 'k', key)
    redis.call('HINCRBY', P .. ':ka:' .. group, key, 1)
  else
    -- One list element per waiting message: id, topic, headers and body packed together (binary-safe).
    redis.call('RPUSH', waitkey(P, group, key), cmsgpack.pack(m.i, m.t, m.h, body))
    redis.call('HINCRBY', P .. ':kn', group, 1)
  end
end
-- Puts waiting messages of a key in play while it has room; forgets the key when nothing of it is left.
local function admit_waiting(P, group, key)
  local akey, wkey = P .. ':ka:' .. group, waitkey(P, group, key)
  local active = tonumber(redis.call('HGET', akey, key) or '0') or 0
  if redis.call('HEXISTS', P .. ':kh:' .. group, key) == 0 then
    local c = kconc(P, group)
    local admitted = 0
    while active < c do
      local packed = redis.call('LINDEX', wkey, 0)
      if not packed then break end
      local ok, i, t, h, b = pcall(cmsgpack.unpack, packed)
      if ok and i and t and h and b then
        redis.call('XADD', P .. ':q:' .. group, '*', 'i', i, 't', t, 'h', h, 'b', b, 'k', key)
        active = active + 1
      end
      -- Written to the stream first, then taken off the list: a failure in between delivers it twice but never loses it.
      redis.call('LPOP', wkey)
      admitted = admitted + 1
    end
    if admitted > 0 then
      redis.call('HINCRBY', P .. ':kn', group, -admitted)
      if active > 0 then redis.call('HSET', akey, key, active) end
    end
  end
  if active <= 0 then redis.call('HDEL', akey, key) end
end
-- A keyed message was acked or dead-lettered: frees its place (or, with heldBy, holds the key), admits the next.
local function free_key(P, group, key, heldBy)
  local akey = P .. ':ka:' .. group
  local active = tonumber(redis.call('HGET', akey, key) or '0') or 0
  if active > 0 then redis.call('HSET', akey, key, active - 1) end
  if heldBy then redis.call('HSET', P .. ':kh:' .. group, key, heldBy) end
  admit_waiting(P, group, key)
end
`

/**
 * Publish a batch. ARGV: prefix, expected bindings version, token base, item count, then per item: due time
 * (0 = now), group count, groups..., message count, then 5 values per message: id, topic, headers, body, key
 * ('' for none). A keyed message due now is admitted to its key; a delayed one joins its key when due.
 * Returns -1 when the bindings changed (reload, retry), else the number of groups of each item.
 */
export const publishLua = `${owns}
local P = ARGV[1]
if (redis.call('GET', P .. ':v') or '0') ~= ARGV[2] then return -1 end
local routed = {}
local n = 0
local at = 5
for item = 1, tonumber(ARGV[4]) do
  local due = tonumber(ARGV[at])
  local ngroups = tonumber(ARGV[at + 1])
  local groups = at + 2
  local nmessages = tonumber(ARGV[groups + ngroups])
  local first = groups + ngroups + 1
  local last = first + 5 * nmessages - 1
  for g = groups, groups + ngroups - 1 do
    local group = ARGV[g]
    for m = first, last, 5 do
      local key = ARGV[m + 4]
      if due == 0 and key ~= '' then
        admit(P, group, key, { i = ARGV[m], t = ARGV[m + 1], h = ARGV[m + 2] }, ARGV[m + 3])
      elseif due == 0 then
        redis.call('XADD', P .. ':q:' .. group, '*', 'i', ARGV[m], 't', ARGV[m + 1], 'h', ARGV[m + 2],
          'b', ARGV[m + 3])
      else
        n = n + 1
        local token = ARGV[3] .. ':' .. n
        redis.call('ZADD', P .. ':d:' .. group, due, token)
        redis.call('HSET', P .. ':dd:' .. group, token,
          cjson.encode({ i = ARGV[m], t = ARGV[m + 1], h = ARGV[m + 2], a = '0', k = key ~= '' and key or nil }))
        redis.call('HSET', P .. ':db:' .. group, token, ARGV[m + 3])
      end
    end
  end
  routed[item] = ngroups
  at = last + 1
end
return routed
`

/**
 * Moves a group's due delayed messages into its stream, by the server's clock. ARGV: prefix, group, (unused),
 * limit. Returns the ms until the next one is due (-1 when none is waiting).
 */
export const moveDueLua = `${owns}
local P, group, now = ARGV[1], ARGV[2], servernow()
local zkey, dkey, bkey = P .. ':d:' .. group, P .. ':dd:' .. group, P .. ':db:' .. group
local due = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
for _, token in ipairs(due) do
  local data = redis.call('HGET', dkey, token)
  local body = redis.call('HGET', bkey, token)
  if data and body then
    local m = cjson.decode(data)
    local counted = tonumber(m.a) or 0
    if m.k and counted == 0 then
      -- A delayed keyed message joins its key now; a retry (counted) kept its place in play.
      admit(P, group, m.k, m, body)
    else
      local args = { P .. ':q:' .. group, '*', 'i', m.i, 't', m.t, 'h', m.h, 'b', body }
      if counted > 0 then table.insert(args, 'r'); table.insert(args, '1') end
      if m.ff then table.insert(args, 'ff'); table.insert(args, m.ff) end
      if m.le then table.insert(args, 'le'); table.insert(args, m.le) end
      if m.k then table.insert(args, 'k'); table.insert(args, m.k) end
      local added = redis.call('XADD', unpack(args))
      if counted > 0 then redis.call('HSET', P .. ':a:' .. group, added, counted) end
    end
  end
  redis.call('ZREM', zkey, token)
  redis.call('HDEL', dkey, token)
  redis.call('HDEL', bkey, token)
end
local next = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
if #next == 0 then return -1 end
return math.max(0, tonumber(next[2]) - now)
`

/**
 * Takes back entries idle past the lease (their consumer died or froze) and returns them with their delivery
 * counts. ARGV: prefix, group, consumer, min idle ms, count. Entries deleted meanwhile are acked.
 * Returns a flat list: id, delivery count, field list, deliveries before the entry, ...
 */
export const reclaimLua = `${owns}
local key = ARGV[1] .. ':q:' .. ARGV[2]
local r = redis.call('XAUTOCLAIM', key, 'herald', ARGV[3], ARGV[4], '0-0', 'COUNT', ARGV[5])
local out = {}
for _, e in ipairs(r[2]) do
  local p = redis.call('XPENDING', key, 'herald', e[1], e[1], 1)
  table.insert(out, e[1])
  table.insert(out, p[1][4])
  table.insert(out, e[2])
  table.insert(out, redis.call('HGET', ARGV[1] .. ':a:' .. ARGV[2], e[1]) or '0')
end
if r[3] then for _, id in ipairs(r[3]) do redis.call('XACK', key, 'herald', id) end end
return out
`

/** Acks and deletes entries this consumer holds. ARGV: prefix, group, consumer, ids... Returns the count. */
export const ackLua = `
local key = ARGV[1] .. ':q:' .. ARGV[2]
-- One XPENDING over the batch's id range finds which entries this consumer still holds (a lost lease means
-- another consumer took the entry: its ack is not ours to give). ARGV[4], ARGV[5]: the lowest and highest id.
local held = {}
for _, entry in ipairs(redis.call('XPENDING', key, 'herald', ARGV[4], ARGV[5], 1000000, ARGV[3])) do
  held[entry[1]] = true
end
local owned = {}
for i = 6, #ARGV do
  if held[ARGV[i]] then owned[#owned + 1] = ARGV[i] end
end
if #owned > 0 then
  redis.call('XACK', key, 'herald', unpack(owned))
  redis.call('XDEL', key, unpack(owned))
  redis.call('HDEL', ARGV[1] .. ':a:' .. ARGV[2], unpack(owned))
end
return #owned
`

/** Resets the idle time of entries this consumer still holds (its lease). ARGV: prefix, group, consumer, ids... */
export const renewLua = `${owns}
local key = ARGV[1] .. ':q:' .. ARGV[2]
for i = 4, #ARGV do
  if owns(key, ARGV[i], ARGV[3]) then redis.call('XCLAIM', key, 'herald', ARGV[3], 0, ARGV[i], 'JUSTID') end
end
return 1
`

/**
 * Retry later: the entry leaves the stream for the delayed set with its delivery count kept, due `delay` ms from
 * now by the server's clock. ARGV: prefix, group, consumer, entry id, deliveries so far, delay ms, (unused),
 * error JSON, token. Returns the due time (server epoch ms), or 0 when the entry was not this consumer's.
 */
export const retryLua = `${owns}
local P, group = ARGV[1], ARGV[2]
local key = P .. ':q:' .. group
if not owns(key, ARGV[4], ARGV[3]) then return 0 end
local f = movable(key, ARGV[4])
if f then
  local now = servernow()
  local due = now + math.max(0, tonumber(ARGV[6]) or 0)
  local token = ARGV[9]
  redis.call('HSET', P .. ':dd:' .. group, token,
    cjson.encode({ i = f.i, t = f.t, h = f.h, a = tostring(math.max(1, tonumber(ARGV[5]) or 1)),
      ff = f.ff or tostring(now), le = ARGV[8], k = f.k }))
  redis.call('HSET', P .. ':db:' .. group, token, f.b)
  redis.call('ZADD', P .. ':d:' .. group, due, token)
  redis.call('XACK', key, 'herald', ARGV[4])
  redis.call('XDEL', key, ARGV[4])
  redis.call('HDEL', P .. ':a:' .. group, ARGV[4])
  return due
end
redis.call('XACK', key, 'herald', ARGV[4])
redis.call('HDEL', P .. ':a:' .. group, ARGV[4])
return 0
`

/**
 * Hand back untouched (shutdown): re-added at the stream's end with the delivery not counted.
 * ARGV: prefix, group, consumer, entry id, deliveries before this one.
 */
export const releaseLua = `${owns}
local key = ARGV[1] .. ':q:' .. ARGV[2]
local counts = ARGV[1] .. ':a:' .. ARGV[2]
if not owns(key, ARGV[4], ARGV[3]) then return 0 end
local f = movable(key, ARGV[4])
if f then
  local counted = tonumber(ARGV[5]) or 0
  local args = { key, '*', 'i', f.i, 't', f.t, 'h', f.h, 'b', f.b }
  if counted > 0 then table.insert(args, 'r'); table.insert(args, '1') end
  if f.ff then table.insert(args, 'ff'); table.insert(args, f.ff) end
  if f.le then table.insert(args, 'le'); table.insert(args, f.le) end
  if f.k then table.insert(args, 'k'); table.insert(args, f.k) end
  local added = redis.call('XADD', unpack(args))
  if counted > 0 then redis.call('HSET', counts, added, counted) end
end
redis.call('XACK', key, 'herald', ARGV[4])
redis.call('XDEL', key, ARGV[4])
redis.call('HDEL', counts, ARGV[4])
return 1
`

/**
 * Dead-letter: the entry moves to the dead-letter stream with why, how often and the error.
 * ARGV: prefix, group, consumer, entry id, reason, attempts, now, error JSON ('' for none), '1' to hold a keyed
 * entry's key (ordering policy hold).
 */
export const deadLetterLua = `${owns}
local P, group = ARGV[1], ARGV[2]
local key = P .. ':q:' .. group
if not owns(key, ARGV[4], ARGV[3]) then return 0 end
local f = movable(key, ARGV[4])
if f then
  local args = { P .. ':dlq', '*', 'g', group, 'i', f.i, 't', f.t, 'h', f.h, 'b', f.b, 'r', ARGV[5],
    'n', tostring(tonumber(ARGV[6]) or 0), 'ff', f.ff or ARGV[7], 'lf', ARGV[7], 'at', ARGV[7], 'e', ARGV[8] }
  if f.k then table.insert(args, 'k'); table.insert(args, f.k) end
  redis.call('XADD', unpack(args))
end
redis.call('XACK', key, 'herald', ARGV[4])
redis.call('XDEL', key, ARGV[4])
redis.call('HDEL', P .. ':a:' .. group, ARGV[4])
if f and f.k then free_key(P, group, f.k, ARGV[9] == '1' and f.i or nil) end
return 1
`

/** Moves dead letters back to their groups' streams, deliveries reset. ARGV: prefix, dlq entry ids... */
export const redriveLua = `${owns}
local P = ARGV[1]
local n = 0
for i = 2, #ARGV do
  local f = fields(P .. ':dlq', ARGV[i])
  if f and f.k and redis.call('HGET', P .. ':kh:' .. f.g, f.k) == f.i then
    -- It holds its key: it goes first, and the key is in play again with it.
    redis.call('XADD', P .. ':q:' .. f.g, '*', 'i', f.i, 't', f.t, 'h', f.h, 'b', f.b, 'k', f.k)
    redis.call('HINCRBY', P .. ':ka:' .. f.g, f.k, 1)
    redis.call('HDEL', P .. ':kh:' .. f.g, f.k)
    redis.call('XDEL', P .. ':dlq', ARGV[i])
    n = n + 1
  elseif f and f.k then
    admit(P, f.g, f.k, f, f.b)
    redis.call('XDEL', P .. ':dlq', ARGV[i])
    n = n + 1
  elseif f then
    redis.call('XADD', P .. ':q:' .. f.g, '*', 'i', f.i, 't', f.t, 'h', f.h, 'b', f.b)
    redis.call('XDEL', P .. ':dlq', ARGV[i])
    n = n + 1
  end
end
return n
`

/** Acks keyed entries this consumer holds, freeing each key's place. ARGV: prefix, group, consumer, lowest id,
 * highest id, then pairs of entry id and key. Returns the count. */
export const ackKeyedLua = `${owns}
local P, group = ARGV[1], ARGV[2]
local key = P .. ':q:' .. group
local held = {}
for _, entry in ipairs(redis.call('XPENDING', key, 'herald', ARGV[4], ARGV[5], 1000000, ARGV[3])) do
  held[entry[1]] = true
end
local n = 0
for i = 6, #ARGV, 2 do
  local id = ARGV[i]
  if held[id] then
    redis.call('XACK', key, 'herald', id)
    redis.call('XDEL', key, id)
    redis.call('HDEL', P .. ':a:' .. group, id)
    free_key(P, group, ARGV[i + 1], nil)
    n = n + 1
  end
end
return n
`

/** Deletes dead letters; one that held its key lets the key go on. ARGV: prefix, dlq entry ids... */
export const purgeLua = `${owns}
local P = ARGV[1]
local n = 0
for i = 2, #ARGV do
  local f = fields(P .. ':dlq', ARGV[i])
  n = n + redis.call('XDEL', P .. ':dlq', ARGV[i])
  if f and f.k and redis.call('HGET', P .. ':kh:' .. f.g, f.k) == f.i then
    redis.call('HDEL', P .. ':kh:' .. f.g, f.k)
    admit_waiting(P, f.g, f.k)
  end
end
return n
`

/** Lets a held key go on. ARGV: prefix, group, key. Returns 1 when it was held. */
export const releaseKeyLua = `${owns}
local P, group, k = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HDEL', P .. ':kh:' .. group, k) == 0 then return 0 end
admit_waiting(P, group, k)
return 1
`

/** Drops a deleted group's key records and waiting messages. ARGV: prefix, group. */
export const dropKeysLua = `${owns}
local P, group = ARGV[1], ARGV[2]
for _, hash in ipairs({ P .. ':ka:' .. group, P .. ':kh:' .. group }) do
  for _, k in ipairs(redis.call('HKEYS', hash)) do redis.call('DEL', waitkey(P, group, k)) end
  redis.call('DEL', hash)
end
redis.call('HDEL', P .. ':kn', group)
redis.call('HDEL', P .. ':kc', group)
return 1
`

/**
 * Takes up to ARGV[3] tokens from the group's bucket (ARGV: prefix, group, max, per second), by the server's
 * clock: the bucket holds a tenth of a second's worth, so every process is held to the rate together. Returns
 * the tokens taken.
 */
export const rateTakeLua = `${owns}
local key, max, rate = ARGV[1] .. ':rate:' .. ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now, burst = servernow(), math.max(1, rate / 10)
local b = redis.call('HMGET', key, 'tokens', 'at')
local tokens = burst
if b[1] and b[2] then tokens = math.min(burst, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * rate / 1000) end
local take = math.max(0, math.min(max, math.floor(tokens)))
redis.call('HSET', key, 'tokens', tostring(tokens - take), 'at', tostring(now))
return take
`

/** Gives back tokens taken but not used. ARGV: prefix, group, count, per second. */
export const rateGiveLua = `
local key, n, rate = ARGV[1] .. ':rate:' .. ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens = tonumber(redis.call('HGET', key, 'tokens') or '0') or 0
redis.call('HSET', key, 'tokens', tostring(math.min(math.max(1, rate / 10), tokens + n)))
return 1
`

/** Defines every script on a connection: `run(name, args)` sends EVALSHA, falling back to EVAL once. */
export function withScripts(redis: Redis) {
  const scripts = {
    publish: publishLua,
    moveDue: moveDueLua,
    reclaim: reclaimLua,
    ack: ackLua,
    renew: renewLua,
    retry: retryLua,
    release: releaseLua,
    deadLetter: deadLetterLua,
    redrive: redriveLua,
    ackKeyed: ackKeyedLua,
    purge: purgeLua,
    releaseKey: releaseKeyLua,
    dropKeys: dropKeysLua,
    rateTake: rateTakeLua,
    rateGive: rateGiveLua,
  }
  for (const [name, lua] of Object.entries(scripts)) redis.defineCommand(`herald_${name}`, { numberOfKeys: 0, lua })
  // The Buffer variant keeps binary bodies intact in replies.
  return (
    name: keyof typeof scripts,
    args: readonly (string | number | Buffer)[],
    buffers = false,
  ): Promise<unknown> => {
    const method = `herald_${name}${buffers ? 'Buffer' : ''}`
    const command = (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method]
    if (command === undefined) throw new Error(`script ${name} not defined`)
    return command.call(redis, ...args)
  }
}

/** Runs one of Herald's scripts by name. */
export type RunScript = ReturnType<typeof withScripts>
