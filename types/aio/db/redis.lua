---@meta aio.db.redis

-- LuaLS definitions for aio.redis (`require "aio.db.redis"` is the same
-- table). Nothing here runs; the implementation is lua/aio/db/redis.lua
-- and src/db/redis_*.c.

---@class aio
---@field redis aio.redis

---A Redis client: commands from every task sharing a client are pipelined
---onto one connection (written together once per round of the loop,
---replies matched in order). Blocking commands, transactions that watch
---keys and subscriptions get connections of their own.
---@class aio.redis
local redis = {}

---Options of aio.redis.connect.
---@class aio.redis.ConnectOptions
---@field timeout? number seconds a command waits for its reply (raises `timeout`, phase "read"); none by default; not for blocking commands and subscription messages
---@field connect_timeout? number seconds for resolving, connecting, AUTH and SELECT (raises `timeout`, phase "connect")
---@field username? string ACL user (AUTH username password)
---@field password? string AUTH password
---@field db? integer the database (SELECT); overrides the URL's
---@field name? string the connection name (CLIENT SETNAME)

---A reply: status and bulk strings are strings, a nil bulk is nil,
---integers are integers, arrays are tables with `n` (nil elements keep
---their places), error replies inside arrays are aio.Error values.
---@alias aio.redis.Reply string|integer|aio.redis.Array|nil

---An array reply: elements 1..n, some possibly nil.
---@class aio.redis.Array: { [integer]: aio.redis.Reply|aio.Error }
---@field n integer the number of elements, nil ones included

---A pub/sub message.
---@class aio.redis.Message
---@field kind "message"|"pmessage"
---@field channel string the channel it was published to
---@field data string the message
---@field pattern? string the pattern that matched (pmessage only)

---Connects (suspends) and returns a Client. `url` is
---`redis://[[user]:password@]host[:port][/db]` or `unix:/path[?db=n]`.
---Raises `dns`, `connect`, `timeout` (phase "connect") or `redis` (AUTH
---refused: prefix "WRONGPASS").
---@async
---@param url string
---@param opts? aio.redis.ConnectOptions
---@return aio.redis.Client
function redis.connect(url, opts) end

---A Redis client. Every command is a method named after it in lower case
---(`client:get(k)`, `client:hset(h, f, v)`, `client:config_get(p)` for
---"CONFIG GET"); each suspends and returns the reply. Error replies raise
---`redis` with `prefix` ("WRONGTYPE", "ERR", …) and `command`; a lost
---connection raises `io` in the commands in flight, and later commands
---reconnect (with back-off).
---@class aio.redis.Client
---@field [string] async fun(self: aio.redis.Client, ...: string|number): aio.redis.Reply
local Client = {}

---Sends a command by name ("SET", "CONFIG GET", "JSON.GET") and returns
---its reply. (suspends)
---@async
---@param cmd string
---@param ... string|number
---@return aio.redis.Reply
function Client:call(cmd, ...) end

---SET with options: `client:set(k, v, {ex = 60, nx = true})`; returns "OK",
---nil when NX/XX prevented it, or the old value with `get = true`.
---(suspends)
---@async
---@param key string|number
---@param value string|number
---@param opts? {ex?: integer, px?: integer, exat?: integer, pxat?: integer, nx?: boolean, xx?: boolean, keepttl?: boolean, get?: boolean}
---@return string|nil
function Client:set(key, value, opts) end

---A batch of commands sent together by execute().
---@return aio.redis.Pipeline
function Client:pipeline() end

---Runs fn(tx) as a MULTI/EXEC transaction and returns EXEC's results.
---With opts.watch the keys are watched first and fn re-runs (up to
---opts.retries, 10) when one changes; then `redis` with prefix "WATCH".
---(suspends)
---@async
---@param fn async fun(tx: aio.redis.Transaction)
---@param opts? {watch?: string|string[], retries?: integer}
---@return aio.redis.Array
function Client:transaction(fn, opts) end

---Subscribes to channels on a connection of their own. (suspends)
---@async
---@param ... string
---@return aio.redis.Subscription
function Client:subscribe(...) end

---Subscribes to channel patterns on a connection of their own. (suspends)
---@async
---@param ... string
---@return aio.redis.Subscription
function Client:psubscribe(...) end

---Closes every connection of the client; commands in flight raise
---`closed`. Harmless when repeated.
function Client:close() end

---Is the client closed?
---@return boolean
function Client:closed() end

---To-be-closed: close().
function Client:__close() end

---A batch of commands: each command method queues it and returns the
---pipeline; execute() sends them together.
---@class aio.redis.Pipeline
---@field [string] fun(self: aio.redis.Pipeline, ...: string|number): aio.redis.Pipeline
local Pipeline = {}

---Sends the queued commands and returns their replies in order; the first
---error reply raises (`redis`, with `index` and `replies`). (suspends)
---@async
---@return aio.redis.Array
function Pipeline:execute() end

---The number of commands queued.
---@return integer
function Pipeline:size() end

---The `tx` of client:transaction(fn): commands are queued (and return tx),
---or, when keys are watched, run at once until tx:multi().
---@class aio.redis.Transaction
---@field [string] async fun(self: aio.redis.Transaction, ...: string|number): any
local Transaction = {}

---Starts queueing: the commands after it run atomically when fn returns.
---@return aio.redis.Transaction
function Transaction:multi() end

---A subscription on a connection of its own.
---@class aio.redis.Subscription
local Subscription = {}

---The next message, or nil once closed or subscribed to nothing; a lost
---connection raises `io` once, then the next call subscribes again.
---(suspends)
---@async
---@return aio.redis.Message?
function Subscription:receive() end

---`for msg in sub:messages() do … end`
---@return async fun(): aio.redis.Message?
function Subscription:messages() end

---Subscribes to more channels. (suspends)
---@async
---@param ... string
function Subscription:subscribe(...) end

---Unsubscribes from channels (all when none is named). (suspends)
---@async
---@param ... string
function Subscription:unsubscribe(...) end

---Subscribes to more patterns. (suspends)
---@async
---@param ... string
function Subscription:psubscribe(...) end

---Unsubscribes from patterns (all when none is named). (suspends)
---@async
---@param ... string
function Subscription:punsubscribe(...) end

---The channels and patterns subscribed to (sorted).
---@return string[] channels, string[] patterns
function Subscription:subscriptions() end

---Closes the subscription; receive() returns nil. Harmless when repeated.
function Subscription:close() end

---To-be-closed: close().
function Subscription:__close() end

return redis
