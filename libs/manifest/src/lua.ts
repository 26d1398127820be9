// Lua scripts: each one is a read-check-write on one user's keys that must not interleave with another gateway's.
// cjson encodes an empty Lua table as {}, so holder lists are always rebuilt as arrays via cjson.decode/encode of
// non-empty tables or the literal '[]'.

const within = `
local function within(path, prefix)
  if prefix == '/' or path == prefix then return true end
  return string.sub(path, 1, #prefix + 1) == prefix .. '/'
end
`;

// The caller's path lock: present, unexpired, and still the fence the caller was given. Every script that writes
// on a lock holder's behalf checks it, so a holder paused past the TTL (GC, SIGSTOP, a Redis hiccup) is refused.
const lockHeld = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function lock_held(locks_key, lock_path, fence)
  local raw = redis.call('HGET', locks_key, lock_path)
  if not raw then return false end
  local held = cjson.decode(raw)
  return tostring(held['fence']) == fence and held['exp'] > now_ms()
end
`;

// The user's next version: one more than the last, and never below the current time in milliseconds (13 digits:
// exact through Lua's and cjson's 14-digit number formatting). Redis that
// restarts without its last second (AOF everysec, a restore) would otherwise hand out numbers it already gave to
// lost changes, and an old tombstone or job would outrank a newer acknowledged write.
const nextVersion = `
local function next_version(key)
  local t = redis.call('TIME')
  local floor = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local v = redis.call('INCR', key)
  if v < floor then
    v = floor
    redis.call('SET', key, string.format('%.0f', v))
  end
  return v
end
`;

const holdersJson = `
local function holders_json(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
end
`;

/** Refusal of a script run on behalf of a lock holder whose lock is gone, expired or taken by another holder. */
export const LOCK_LOST_REPLY = 'LOCK_LOST';

/**
 * KEYS: version, entries, users, locks, intents. ARGV: path, entry JSON without its version and without the
 * opening brace, charmId, lock path, fence. Returns the new version; clears the path's write intent (resolved).
 */
export const COMMIT_WRITE = `
${lockHeld}
${nextVersion}
if not lock_held(KEYS[4], ARGV[4], ARGV[5]) then return redis.error_reply('${LOCK_LOST_REPLY}') end
local version = next_version(KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], '{"v":' .. string.format('%.0f', version) .. ',' .. ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('HDEL', KEYS[5], ARGV[1])
return version
`;

/**
 * KEYS: version, entries, users, sweeps, locks, intents. ARGV: path, holdersJson, atMs, charmId, lock path, fence.
 * Records a tombstone at path and a sweep of the entries it covers (removed in chunks by SWEEP_COVERED, so a delete
 * of a large tree never blocks Redis for long), removes the write intents it covers, returns the new version. O(1)
 * in the size of the tree, O(n) in the open intents of the user.
 */
export const COMMIT_DELETE = `
${within}
${lockHeld}
${nextVersion}
if not lock_held(KEYS[5], ARGV[5], ARGV[6]) then return redis.error_reply('${LOCK_LOST_REPLY}') end
local intents = redis.call('HKEYS', KEYS[6])
for _, p in ipairs(intents) do
  if within(p, ARGV[1]) then redis.call('HDEL', KEYS[6], p) end
end
local version = next_version(KEYS[1])
local versionText = string.format('%.0f', version)
redis.call('HSET', KEYS[2], ARGV[1], '{"k":"t","v":' .. versionText .. ',"at":' .. ARGV[3] .. ',"h":' .. ARGV[2] .. '}')
redis.call('HSET', KEYS[4], ARGV[1], versionText)
redis.call('SADD', KEYS[3], ARGV[4])
return version
`;

/**
 * KEYS: entries. ARGV: sweep path, sweep version, then candidate paths (one chunk).
 * Removes each candidate strictly below the sweep path whose entry is older than the sweep (what the tombstone
 * covered); newer entries, written below it afterwards, stay. Returns how many were removed.
 */
export const SWEEP_COVERED = `
${within}
local version = tonumber(ARGV[2])
local removed = 0
for i = 3, #ARGV do
  local p = ARGV[i]
  if p ~= ARGV[1] and within(p, ARGV[1]) then
    local raw = redis.call('HGET', KEYS[1], p)
    if raw and tonumber(string.match(raw, '"v":(%d+)')) < version then
      redis.call('HDEL', KEYS[1], p)
      removed = removed + 1
    end
  end
end
return removed
`;

/** KEYS: sweeps. ARGV: path, version. Forgets a finished sweep, unless a newer delete at path replaced it. */
export const FINISH_SWEEP = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`;

/**
 * KEYS: entries, locks. ARGV: path, version, backend, add ('1') or remove ('0'), lock path, fence ('' = no lock).
 * Adds or removes a holder only while the path's entry is still that version, and, for a caller holding a lock
 * (a job that just wrote the bytes), only while it still holds it. Returns 1 if applied.
 */
export const UPDATE_HOLDER = `
${holdersJson}
${lockHeld}
if ARGV[6] ~= '' and not lock_held(KEYS[2], ARGV[5], ARGV[6]) then return redis.error_reply('${LOCK_LOST_REPLY}') end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local entry = cjson.decode(raw)
if tostring(entry['v']) ~= ARGV[2] then return 0 end
local list = {}
local found = false
if type(entry['h']) == 'table' then
  for _, h in ipairs(entry['h']) do
    if h == ARGV[3] then found = true end
    if not (h == ARGV[3] and ARGV[4] == '0') then table.insert(list, h) end
  end
end
if ARGV[4] == '1' and not found then table.insert(list, ARGV[3]) end
entry['h'] = nil
local encoded = cjson.encode(entry)
encoded = string.sub(encoded, 1, -2) .. ',"h":' .. holders_json(list) .. '}'
redis.call('HSET', KEYS[1], ARGV[1], encoded)
return 1
`;

// Takes the lock on path unless a live lock exists on a related path (the same path, an ancestor or a descendant:
// a recursive delete and a write below it must not interleave), with the user's next fencing token (monotonic, and
// like versions never below the current time in ms: Redis restored from an older copy would otherwise give a token
// a holder still uses to a second holder of the path), which the holder passes to every script that writes on its
// behalf. Returns {fence}, or {0, blocking path,
// blocking lock JSON} when blocked.
const acquireLock = `
local function acquire_lock(locks_key, fence_key, path, ttl_ms, owner)
  local now = now_ms()
  local all = redis.call('HGETALL', locks_key)
  for i = 1, #all, 2 do
    local held = cjson.decode(all[i + 1])
    if held['exp'] <= now then
      redis.call('HDEL', locks_key, all[i])
    elseif within(all[i], path) or within(path, all[i]) then
      return {0, all[i], all[i + 1]}
    end
  end
  local fence = next_version(fence_key)
  redis.call('HSET', locks_key, path, cjson.encode({ fence = fence, exp = now + tonumber(ttl_ms), owner = owner }))
  redis.call('PEXPIRE', locks_key, tonumber(ttl_ms) * 2)
  return {fence}
end
`;

/** KEYS: locks, fence. ARGV: path, ttlMs, owner. Takes the lock (see acquireLock): {fence} or {0, path, JSON}. */
export const ACQUIRE_LOCK = `
${within}
${lockHeld}
${nextVersion}
${acquireLock}
return acquire_lock(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
`;

/**
 * KEYS: locks, fence, entries, sweeps. ARGV: path, ttlMs, owner, then the paths to read (ancestorsOf).
 * A job's first step in one call: takes the lock (acquireLock) and, only when it got it, reads the entries and
 * sweeps at those paths. Returns {fence, entries, sweeps}, or {0, blocking path, blocking lock JSON}.
 */
export const LOCK_AND_READ = `
${within}
${lockHeld}
${nextVersion}
${acquireLock}
local taken = acquire_lock(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
if taken[1] == 0 then return taken end
local paths = {}
for i = 4, #ARGV do paths[#paths + 1] = ARGV[i] end
return {taken[1], redis.call('HMGET', KEYS[3], unpack(paths)), redis.call('HMGET', KEYS[4], unpack(paths))}
`;

/** KEYS: locks. ARGV: path, fence, ttlMs. Extends the lock while still ours and unexpired. Returns 1/0. */
export const RENEW_LOCK = `
${lockHeld}
if not lock_held(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
local held = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1]))
held['exp'] = now_ms() + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(held))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
`;

/** KEYS: locks. ARGV: path, fence. Returns 1 while the lock is still ours and unexpired. */
export const CHECK_LOCK = `
${lockHeld}
if lock_held(KEYS[1], ARGV[1], ARGV[2]) then return 1 end
return 0
`;

/**
 * KEYS: locks. ARGV: path, fence. Removes the lock if it is still that fence (release by its holder, or the break
 * of a lock whose holder process is known dead). Returns 1 if removed.
 */
export const RELEASE_LOCK = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
if tostring(cjson.decode(raw)['fence']) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`;

/** KEYS: seqFloors. ARGV: name, value. Raises the floor to value if higher; returns the floor. */
export const RAISE_SEQ_FLOOR = `
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local value = tonumber(ARGV[2])
if value > current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return value
end
return current
`;

/**
 * KEYS: entries. ARGV: path, version. Deletes the path's tombstone only while it is still that tombstone (a newer
 * write or delete replaced it otherwise). Returns 1 if deleted.
 */
export const REMOVE_TOMBSTONE = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local entry = cjson.decode(raw)
if entry['k'] ~= 't' or tostring(entry['v']) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`;

/**
 * KEYS: entries, sweeps, pending. ARGV: the path's ancestors and the path itself (ancestorsOf).
 * Read-only: the entries and sweeps at those paths, and the pending-marker fields: what a read needs, in one call.
 */
export const READ_ROUTE = `#!lua flags=no-writes
return { redis.call('HMGET', KEYS[1], unpack(ARGV)), redis.call('HMGET', KEYS[2], unpack(ARGV)), redis.call('HKEYS', KEYS[3]) }
`;

/**
 * KEYS: entries, sweeps, pending, intents, locks. ARGV: the path, then its ancestors and itself (ancestorsOf).
 * Read-only: READ_ROUTE's answer plus the path's write intent and whether its writer still holds the lock, so a
 * read learns all it needs from the manifest in one round trip.
 */
export const READ_PLAN = `#!lua flags=no-writes
${lockHeld}
local path = table.remove(ARGV, 1)
local intent = redis.call('HGET', KEYS[4], path)
local inFlight = 0
if intent then
  local decoded = cjson.decode(intent)
  if decoded['state'] ~= 'failed' and lock_held(KEYS[5], path, tostring(decoded['fence'])) then inFlight = 1 end
end
return { redis.call('HMGET', KEYS[1], unpack(ARGV)), redis.call('HMGET', KEYS[2], unpack(ARGV)), redis.call('HKEYS', KEYS[3]), intent, inFlight }
`;

// Records the write intent of the lock holder before any owner is touched: the previous acknowledged entry (the
// state a failed write rolls back to) and the backends the write may change. An intent left by an earlier failed
// write of the path is merged (its backends still need their roll-back). Returns the intent JSON.
const openIntent = `
local function open_intent(intents_key, entries_key, path, fence, at_ms, owner, touched_json)
  local touched = cjson.decode(touched_json)
  local seen = {}
  for _, b in ipairs(touched) do seen[b] = true end
  local old = redis.call('HGET', intents_key, path)
  if old then
    for _, b in ipairs(cjson.decode(old)['touched']) do
      if not seen[b] then seen[b] = true; table.insert(touched, b) end
    end
  end
  local prev = redis.call('HGET', entries_key, path) or ''
  local encoded = cjson.encode({ fence = tonumber(fence), at = tonumber(at_ms), owner = owner, prev = prev,
    state = 'writing', touched = touched })
  redis.call('HSET', intents_key, path, encoded)
  return encoded
end
`;

/** KEYS: locks, intents, entries. ARGV: path, fence, atMs, owner, touched backends JSON. See openIntent. */
export const OPEN_INTENT = `
${lockHeld}
${openIntent}
if not lock_held(KEYS[1], ARGV[1], ARGV[2]) then return redis.error_reply('${LOCK_LOST_REPLY}') end
return open_intent(KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
`;

/**
 * KEYS: locks, fence, intents, entries. ARGV: path, ttlMs, owner, atMs, touched backends JSON.
 * A write's first step in one call: takes the lock (acquireLock) and, only when it got it, records the write
 * intent under it (openIntent). Returns {fence, intent JSON}, or {0, blocking path, blocking lock JSON}.
 */
export const LOCK_AND_OPEN_INTENT = `
${within}
${lockHeld}
${nextVersion}
${acquireLock}
${openIntent}
local taken = acquire_lock(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
if taken[1] == 0 then return taken end
return {taken[1], open_intent(KEYS[3], KEYS[4], ARGV[1], taken[1], ARGV[4], ARGV[3], ARGV[5])}
`;

/**
 * KEYS: locks, intents. ARGV: path, fence, backend to add or '', state or '', backends to remove (JSON) or ''.
 * The lock holder adds a backend it is about to touch, drops backends its bytes provably never reached (the
 * connection was refused), or marks its intent failed (reads then stop trusting the touched backends at once).
 */
export const UPDATE_INTENT = `
${lockHeld}
if not lock_held(KEYS[1], ARGV[1], ARGV[2]) then return redis.error_reply('${LOCK_LOST_REPLY}') end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 0 end
local intent = cjson.decode(raw)
if ARGV[3] ~= '' then
  local found = false
  for _, b in ipairs(intent['touched']) do if b == ARGV[3] then found = true end end
  if not found then table.insert(intent['touched'], ARGV[3]) end
end
if ARGV[4] ~= '' then intent['state'] = ARGV[4] end
if ARGV[5] ~= '' then
  local drop = {}
  for _, b in ipairs(cjson.decode(ARGV[5])) do drop[b] = true end
  local kept = {}
  for _, b in ipairs(intent['touched']) do if not drop[b] then table.insert(kept, b) end end
  intent['touched'] = kept
end
local encoded = cjson.encode(intent)
if #intent['touched'] == 0 then encoded = string.gsub(encoded, '"touched":{}', '"touched":[]') end
redis.call('HSET', KEYS[2], ARGV[1], encoded)
return 1
`;

/**
 * KEYS: locks, intents. ARGV: path, caller's lock fence, the intent's fence. Removes a rolled-back intent, only
 * while the caller holds the path's lock and the intent is still the one it rolled back. Returns 1 if removed.
 */
export const CLEAR_INTENT = `
${lockHeld}
if not lock_held(KEYS[1], ARGV[1], ARGV[2]) then return redis.error_reply('${LOCK_LOST_REPLY}') end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 0 end
if tostring(cjson.decode(raw)['fence']) ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`;

/**
 * KEYS: fence, intents, entries. ARGV: path, the previous entry's version ('' when the path had none), atMs, owner,
 * touched backends JSON (non-empty), the previous entry as stored ('' when none). Puts a refused write back on
 * record when its intent was lost (Redis restored mid-request): state `failed`, a fresh fence, the entry the write
 * began over as `previous`. Only when no intent is open at the path and the path's own entry is no newer than that
 * one (Redis may have come back with an older entry still), so a newer acknowledged write is never rolled back.
 * Returns the intent JSON, or 0 when nothing was recorded.
 */
export const RECORD_FAILED_INTENT = `
${nextVersion}
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local raw = redis.call('HGET', KEYS[3], ARGV[1])
if raw and (ARGV[2] == '' or tonumber(cjson.decode(raw)['v']) > tonumber(ARGV[2])) then return 0 end
local fence = next_version(KEYS[1])
local encoded = cjson.encode({ fence = fence, at = tonumber(ARGV[3]), owner = ARGV[4], prev = ARGV[6],
  state = 'failed', touched = cjson.decode(ARGV[5]) })
redis.call('HSET', KEYS[2], ARGV[1], encoded)
return encoded
`;
