// Lua scripts: each one is a read-check-write on one user's keys that must not interleave with another gateway's.
// cjson encodes an empty Lua table as {}, so holder lists are always rebuilt as arrays via cjson.decode/encode of
// non-empty tables or the literal '[]'.

const within = `
local function within(path, prefix)
  if prefix == '/' or path == prefix then return true end
  return string.sub(path, 1, #prefix + 1) == prefix .. '/'
end
`;

const holdersJson = `
local function holders_json(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
end
`;

/**
 * KEYS: version, entries, users. ARGV: path, entry JSON without its version and without the opening brace, charmId.
 * Returns the new version.
 */
export const COMMIT_WRITE = `
local version = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], '{"v":' .. version .. ',' .. ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return version
`;

/**
 * KEYS: version, entries, users, sweeps. ARGV: path, holdersJson, atMs, charmId.
 * Records a tombstone at path and a sweep of the entries it covers (removed in chunks by SWEEP_COVERED, so a delete
 * of a large tree never blocks Redis for long); returns the new version. O(1) in the size of the tree.
 */
export const COMMIT_DELETE = `
local version = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], '{"k":"t","v":' .. version .. ',"at":' .. ARGV[3] .. ',"h":' .. ARGV[2] .. '}')
redis.call('HSET', KEYS[4], ARGV[1], version)
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
 * KEYS: entries. ARGV: path, version, backend, add ('1') or remove ('0').
 * Adds or removes a holder only while the path's entry is still that version. Returns 1 if applied.
 */
export const UPDATE_HOLDER = `
${holdersJson}
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

/**
 * KEYS: locks. ARGV: path, token, ttlMs. Takes the lock unless a live lock exists on a related path (the same
 * path, an ancestor or a descendant: a recursive delete and a write below it must not interleave). Returns 1/0.
 */
export const ACQUIRE_LOCK = `
${within}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local held = cjson.decode(all[i + 1])
  if held['exp'] <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif within(all[i], ARGV[1]) or within(ARGV[1], all[i]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({ token = ARGV[2], exp = now + tonumber(ARGV[3]) }))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
`;

/** KEYS: locks. ARGV: path, token, ttlMs. Extends the lock if still ours. Returns 1/0. */
export const RENEW_LOCK = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local held = cjson.decode(raw)
if held['token'] ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({ token = ARGV[2], exp = now + tonumber(ARGV[3]) }))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
`;

/** KEYS: locks. ARGV: path, token. Releases the lock if still ours. */
export const RELEASE_LOCK = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
if cjson.decode(raw)['token'] ~= ARGV[2] then return 0 end
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
