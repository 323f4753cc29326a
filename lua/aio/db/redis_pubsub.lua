--- aio.db.redis_pubsub: aio.redis subscriptions, each on a connection of
-- its own in pub/sub mode (messages queue in C: src/db/redis_conn.c).
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"
local base = require "aio.db.redis_conn"

local Conn = core.redis.Conn
local commands, message = Conn.commands, Conn.message
local alive, conn_state = Conn.alive, Conn.state
local is_error, Lock = core.is_error, core.Lock
local reopen, Guard, check_args = base.reopen, base.Guard, base.check_args
local closed_error = base.closed_error

local pairs, ipairs, error, pcall, setmetatable = pairs, ipairs, error, pcall, setmetatable
local pack, unpack, concat, sort = table.pack, table.unpack, table.concat, table.sort
local fmt = string.format

local M = {}

-- ---------------------------------------------------------------------
-- Pub/sub
-- ---------------------------------------------------------------------

---@class aio.redis.Subscription
local Subscription = { __name = "aio.redis.Subscription" }
local sub_methods = {}
Subscription.__index = sub_methods

local function keys_of(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  sort(list)
  return list
end

-- The subscription's connection; after a loss, a new one subscribed again
-- to everything it was subscribed to.
local function sub_conn(sub)
  local conn = sub._conn
  if conn and alive(conn) then return conn end
  local _ <close> = sub._lock:acquire()
  conn = sub._conn
  if conn and alive(conn) then return conn end
  if sub._closed then closed_error("subscription") end
  if conn and conn_state(conn) == "closed" then   -- by the end of its run
    sub._closed = true
    closed_error("subscription")
  end
  conn = reopen(sub._client)
  local guard <close> = setmetatable({ conn = conn }, Guard)
  conn:set_pubsub()
  local again, want = {}, 0
  for _, pair in ipairs({ { "SUBSCRIBE", sub._channels }, { "PSUBSCRIBE", sub._patterns } }) do
    local names = keys_of(pair[2])
    if #names > 0 then
      again[#again + 1] = pack(pair[1], unpack(names))
      want = want + #names
    end
  end
  if want > 0 then
    local replies, bad = commands(conn, again, want)
    if bad then error(replies[bad], 0) end
  end
  sub._conn = conn
  return conn
end

-- (P)SUBSCRIBE or (P)UNSUBSCRIBE `...` on `sub` (suspends until the server
-- confirmed each); the set of names follows the confirmations. Once
-- nothing is left, the connection closes and receive() returns nil.
local function change(sub, fname, cmd, set, adding, ...)
  args.self(sub, Subscription, fname)
  if sub._closed then closed_error("subscription") end
  local names = pack(...)
  check_args(fname, 2, ...)
  if names.n == 0 then
    if adding then args.error(2, fname, "a channel expected") end
    names = keys_of(set)
    names.n = #names
    if names.n == 0 then return end
  end
  local conn = sub_conn(sub)
  local replies, bad = commands(conn, { pack(cmd, unpack(names, 1, names.n)) }, names.n)
  if bad then error(replies[bad], 0) end
  for i = 1, replies.n do
    local r = replies[i]
    if adding then set[r[2]] = true else set[r[2]] = nil end
    sub._count = r[3]
  end
  if sub._count == 0 and sub._conn == conn then
    sub._conn = false
    conn:close()
  end
end

--- A new subscription of `client` (checked by the caller): `cmd`
--- ("SUBSCRIBE" or "PSUBSCRIBE") of `...` on a connection of its own
--- (suspends until the server confirmed). Raises what subscribing raised.
function M.subscribe(client, fname, cmd, ...)
  local sub = setmetatable({ _client = client, _conn = false, _channels = {}, _patterns = {},
    _count = 0, _closed = false, _lost = false, _lock = Lock() }, Subscription)
  client._subs[sub] = true
  local set = cmd == "SUBSCRIBE" and sub._channels or sub._patterns
  local ok, err = pcall(change, sub, fname, cmd, set, true, ...)
  if not ok then
    sub:close()
    error(err, 0)
  end
  return sub
end

--- Subscribes to more channels (suspends until confirmed).
function sub_methods:subscribe(...)
  change(self, "subscribe", "SUBSCRIBE", self._channels, true, ...)
end

--- Unsubscribes from channels (all of them when none is named).
function sub_methods:unsubscribe(...)
  change(self, "unsubscribe", "UNSUBSCRIBE", self._channels, false, ...)
end

--- Subscribes to more patterns (suspends until confirmed).
function sub_methods:psubscribe(...)
  change(self, "psubscribe", "PSUBSCRIBE", self._patterns, true, ...)
end

--- Unsubscribes from patterns (all of them when none is named).
function sub_methods:punsubscribe(...)
  change(self, "punsubscribe", "PUNSUBSCRIBE", self._patterns, false, ...)
end

--- The next message (suspends): `{kind = "message"|"pmessage", channel =,
--- data =, pattern = (pmessage)}`; nil once the subscription is closed or
--- subscribed to nothing. A lost connection raises `io` once; the next
--- call reconnects and subscribes again (messages meanwhile are lost).
---@return {kind: string, channel: string, data: string, pattern?: string}|nil
function sub_methods:receive()
  args.self(self, Subscription, "receive")
  if self._closed then return nil end
  local conn = self._conn
  if not conn then return nil end
  if not alive(conn) and self._lost == conn then conn = sub_conn(self) end
  local ok, msg = pcall(message, conn)
  if ok then return msg end
  if is_error(msg, "io") then self._lost = conn end
  error(msg, 0)
end

--- Iterator over the messages: `for msg in sub:messages() do … end` ends
--- when the subscription is closed or subscribed to nothing.
---@return fun(): table|nil
function sub_methods:messages()
  args.self(self, Subscription, "messages")
  return function() return self:receive() end
end

--- The channels and the patterns subscribed to (sorted arrays).
---@return string[] channels, string[] patterns
function sub_methods:subscriptions()
  args.self(self, Subscription, "subscriptions")
  return keys_of(self._channels), keys_of(self._patterns)
end

--- Closes the subscription and its connection; receive() returns nil.
--- Harmless when repeated.
function sub_methods:close()
  args.self(self, Subscription, "close")
  if self._closed then return end
  self._closed = true
  self._client._subs[self] = nil
  if self._conn then self._conn:close() end
end

Subscription.__close = sub_methods.close

function Subscription:__tostring()
  local chans, pats = keys_of(self._channels), keys_of(self._patterns)
  return fmt("aio.redis.Subscription (%s%s)", concat(chans, " ") ..
    (#pats > 0 and (#chans > 0 and " " or "") .. concat(pats, " ") or ""),
    self._closed and ", closed" or "")
end

return M
