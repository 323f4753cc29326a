--- aio.redis: a Redis client on the aio loop. Commands from every task
-- sharing a client are pipelined onto one connection: written together once
-- per round of the scheduler, their replies matched in order (see
-- src/db/redis_conn.c). Blocking commands, transactions that WATCH and
-- subscriptions get connections of their own (aio.db.redis_pubsub). A lost
-- connection fails the commands in flight with `io`; later commands
-- reconnect, with back-off (aio.db.redis_conn). See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"
local base = require "aio.db.redis_conn"
local pubsub = require "aio.db.redis_pubsub"

local Conn = core.redis.Conn
local command, commands = Conn.command, Conn.commands
local alive, conn_state = Conn.alive, Conn.state
local Error, is_error, Lock = core.Error, core.is_error, core.Lock
local config, open, reopen = base.config, base.open, base.reopen
local closed_error, check_args, set_args = base.closed_error, base.check_args, base.set_args
local words_of, command_name, method_cache = base.words_of, base.command_name, base.method_cache
local refuse, has_block = base.refuse, base.has_block
local BLOCKING, SHARED_FORBIDDEN, TX_FORBIDDEN = base.BLOCKING, base.SHARED_FORBIDDEN,
  base.TX_FORBIDDEN

local type, select, pairs, ipairs, error, pcall = type, select, pairs, ipairs, error, pcall
local getmetatable, setmetatable = getmetatable, setmetatable
local pack, unpack, remove = table.pack, table.unpack, table.remove
local fmt = string.format

local M = {}

local MAX_IDLE = 8           -- idle connections kept for blocking commands
local DEFAULT_RETRIES = 10   -- transaction attempts after a WATCH conflict


-- ---------------------------------------------------------------------
-- The client
-- ---------------------------------------------------------------------

---@class aio.redis.Client
local Client = { __name = "aio.redis.Client" }
local methods = {}
Client.__index = methods

-- The shared connection of `client`, after reconnecting if it was lost.
-- Tasks arriving while one reconnects wait for it and share its outcome.
local function reconnect(client)
  local seen = client._attempts
  local _ <close> = client._lock:acquire()
  if client._closed then closed_error("redis client") end
  local conn = client._conn
  if conn and alive(conn) then return conn end
  if client._attempts ~= seen and client._error then error(client._error, 0) end
  local ok, r = pcall(reopen, client)
  if not ok then
    if not is_error(r, "cancelled") then
      client._attempts, client._error = client._attempts + 1, r
    end
    error(r, 0)
  end
  client._attempts, client._error = client._attempts + 1, false
  client._conn = r
  return r
end

-- Is `client` closed (by close(), or by the end of the run that opened
-- its connection)?
local function is_closed(client)
  if not client._closed then
    local conn = client._conn
    if not alive(conn) and conn_state(conn) == "closed" then client._closed = true end
  end
  return client._closed
end

-- Checks the receiver of method `fname`: an open client.
local function check(client, fname)
  if getmetatable(client) ~= Client then args.self(client, Client, fname) end
  if is_closed(client) then closed_error("redis client") end
end

-- The slow path of every command: checks the client and reconnects.
local function shared(client, fname)
  check(client, fname)
  local conn = client._conn
  if alive(conn) then return conn end
  return reconnect(client)
end

-- A connection of its own for a blocking command or a transaction: an
-- idle one, or a new one.
local function take(client, fname)
  check(client, fname)
  local idle = client._idle
  while #idle > 0 do
    local conn = remove(idle)
    if alive(conn) then
      client._busy[conn] = true
      return conn
    end
  end
  local conn = reopen(client)
  client._busy[conn] = true
  return conn
end

-- Gives back a connection from take() that is clean (no state left).
local function give(client, conn)
  client._busy[conn] = nil
  local idle = client._idle
  if client._closed or not alive(conn) or #idle >= MAX_IDLE then
    conn:close()
    return
  end
  conn:set_timeout(client._cfg.timeout)
  idle[#idle + 1] = conn
end

-- Closes a connection from take() whose state is unknown.
local function drop(client, conn)
  client._busy[conn] = nil
  conn:close()
end

-- Runs a blocking command on a connection of its own, with no timeout
-- (the command has its own). Cancelling it closes that connection, so
-- the server stops serving it.
local function blocking(client, fname, ...)
  local conn = take(client, fname)
  conn:set_timeout(0)
  local ok, r = pcall(command, conn, ...)
  if ok or is_error(r, "redis") then give(client, conn) else drop(client, conn) end
  if not ok then error(r, 0) end
  return r
end

-- The method of command `name` on a client.
local function client_method(name)
  local w1, w2 = words_of(name)
  local why = SHARED_FORBIDDEN[w1] or (w2 and SHARED_FORBIDDEN[w1 .. " " .. w2])
  if why then return refuse(name, why) end
  if BLOCKING[w1] then
    return function(self, ...) return blocking(self, name, w1, ...) end
  end
  if w1 == "SET" then
    return function(self, ...)
      local conn = getmetatable(self) == Client and self._conn
      if not (conn and alive(conn)) then conn = shared(self, name) end
      return command(conn, "SET", set_args(...))
    end
  end
  if w1 == "XREAD" or w1 == "XREADGROUP" then
    return function(self, ...)
      if has_block(...) then return blocking(self, name, w1, ...) end
      local conn = getmetatable(self) == Client and self._conn
      if not (conn and alive(conn)) then conn = shared(self, name) end
      return command(conn, w1, ...)
    end
  end
  if w2 then
    return function(self, ...)
      local conn = getmetatable(self) == Client and self._conn
      if not (conn and alive(conn)) then conn = shared(self, name) end
      return command(conn, w1, w2, ...)
    end
  end
  return function(self, ...)
    local conn = getmetatable(self) == Client and self._conn
    if not (conn and alive(conn)) then conn = shared(self, name) end
    return command(conn, w1, ...)
  end
end

local client_commands = method_cache(client_method)
setmetatable(methods, { __index = client_commands })

--- Connects to a Redis server (suspends) and returns a Client. Commands
--- from all tasks sharing it are pipelined onto one connection.
--- url: `redis://[[user]:password@]host[:port][/db]` or `unix:/path?db=n`.
--- opts.timeout: seconds a command waits for its reply (raises `timeout`;
--- none by default), opts.connect_timeout (connecting and AUTH),
--- opts.username, opts.password, opts.db, opts.name (CLIENT SETNAME).
--- Raises `dns`, `connect`, `timeout` or `redis` (a refused AUTH).
---@param url string
---@param opts? aio.redis.ConnectOptions
---@return aio.redis.Client
function M.connect(url, opts)
  local cfg = config(url, opts)
  local conn = open(cfg)
  return setmetatable({
    _cfg = cfg, _conn = conn, _closed = false, _lock = Lock(),
    _attempts = 0, _error = false, _delay = 0, _retry_at = 0,
    _idle = {}, _busy = {}, _subs = setmetatable({}, { __mode = "k" }),
  }, Client)
end

--- Sends a command by name (suspends) and returns its reply:
--- `client:call("SET", "k", "v")`, `client:call("CONFIG GET", "maxmemory")`.
--- The same as the method of that name (`client:set("k", "v")`).
---@param cmd string
---@return any
function methods:call(cmd, ...)
  args.self(self, Client, "call")
  args.check(cmd, "string", 2, "call")
  local key = cmd:lower():gsub("%s+", "_")
  if command_name(key) then return client_commands[key](self, ...) end
  -- names that are not method names (module commands such as "JSON.GET")
  local words = {}
  for w in cmd:gmatch("%S+") do words[#words + 1] = w end
  if #words == 0 then args.error(2, "call", "command name expected") end
  local conn = shared(self, "call")
  local n, rest = #words, pack(...)
  for i = 1, rest.n do words[n + i] = rest[i] end
  return command(conn, unpack(words, 1, n + rest.n))
end

-- A subscription of the client to `...` with `cmd`.
local function subscription(client, fname, cmd, ...)
  check(client, fname)
  return pubsub.subscribe(client, fname, cmd, ...)
end

--- Subscribes to channels on a connection of their own (suspends until
--- the server confirmed) and returns the Subscription:
--- `for msg in sub:messages() do … end`.
---@param ... string channels
---@return aio.redis.Subscription
function methods:subscribe(...)
  return subscription(self, "subscribe", "SUBSCRIBE", ...)
end

--- Subscribes to channel patterns (`news.*`) like subscribe().
---@param ... string patterns
---@return aio.redis.Subscription
function methods:psubscribe(...)
  return subscription(self, "psubscribe", "PSUBSCRIBE", ...)
end

--- Closes the client: its connections, subscriptions and blocking
--- commands. Commands in flight raise `closed`. Harmless when repeated.
function methods:close()
  args.self(self, Client, "close")
  if self._closed then return end
  self._closed = true
  self._conn:close()
  for _, conn in ipairs(self._idle) do conn:close() end
  self._idle = {}
  for conn in pairs(self._busy) do conn:close() end
  for sub in pairs(self._subs) do sub:close() end
end

--- Is the client closed?
---@return boolean
function methods:closed()
  args.self(self, Client, "closed")
  return is_closed(self)
end

Client.__close = methods.close

function Client:__tostring()
  return fmt("aio.redis.Client (%s%s)", self._cfg.label, self._closed and ", closed" or "")
end


-- ---------------------------------------------------------------------
-- Pipelines
-- ---------------------------------------------------------------------

---@class aio.redis.Pipeline
local Pipeline = { __name = "aio.redis.Pipeline" }
local pipeline_methods = {}
Pipeline.__index = pipeline_methods

-- Queues a command (`nwords` words, then its arguments, which are checked
-- now for method `fname`) on pipeline or transaction `p`; returns `p`.
local function queue(p, fname, nwords, ...)
  check_args(fname, 2, select(nwords + 1, ...))
  local cmds = p._cmds
  cmds[#cmds + 1] = pack(...)
  return p
end

local function pipeline_method(name)
  local w1, w2 = words_of(name)
  local why = SHARED_FORBIDDEN[w1] or (w2 and SHARED_FORBIDDEN[w1 .. " " .. w2])
    or (BLOCKING[w1] and "it would block every task sharing the connection: call it on the client")
  if why then return refuse(name, why) end
  if w1 == "SET" then
    return function(self, ...)
      args.self(self, Pipeline, name)
      return queue(self, name, 1, "SET", set_args(...))
    end
  end
  if w2 then
    return function(self, ...)
      args.self(self, Pipeline, name)
      return queue(self, name, 2, w1, w2, ...)
    end
  end
  return function(self, ...)
    args.self(self, Pipeline, name)
    return queue(self, name, 1, w1, ...)
  end
end

setmetatable(pipeline_methods, { __index = method_cache(pipeline_method) })

--- A batch of commands written together: `p:set("a", 1):get("a")` queues
--- (each method returns the pipeline), `p:execute()` sends them.
---@return aio.redis.Pipeline
function methods:pipeline()
  args.self(self, Client, "pipeline")
  return setmetatable({ _client = self, _cmds = {} }, Pipeline)
end

-- Raises the error reply at `i` of `replies` with the batch attached.
local function raise_reply(replies, i, cmds, index)
  local e = replies[i]
  e.index = index or i
  e.replies = replies
  e.command = e.command or (cmds[index or i] or {})[1]
  error(e, 0)
end

--- Sends the queued commands (suspends) and returns their replies, in
--- order, as an array with `n`. An error reply raises it (`redis`) with
--- fields `index` and `replies` (all of them, errors as values). The
--- pipeline is empty again afterwards.
---@return table replies
function pipeline_methods:execute()
  args.self(self, Pipeline, "execute")
  local cmds = self._cmds
  if #cmds == 0 then return { n = 0 } end
  self._cmds = {}
  local conn = shared(self._client, "execute")
  local replies, bad = commands(conn, cmds)
  if bad then raise_reply(replies, bad, cmds) end
  return replies
end

--- The number of commands queued.
---@return integer
function pipeline_methods:size()
  args.self(self, Pipeline, "size")
  return #self._cmds
end

function Pipeline:__tostring()
  return fmt("aio.redis.Pipeline (%d queued)", #self._cmds)
end


-- ---------------------------------------------------------------------
-- Transactions
-- ---------------------------------------------------------------------

---@class aio.redis.Transaction
local Tx = { __name = "aio.redis.Transaction" }
local tx_methods = {}
Tx.__index = tx_methods

-- Leaving transaction()'s scope ends the transaction object.
function Tx:__close() self._finished = true end

local function check_tx(tx, fname)
  args.self(tx, Tx, fname)
  if tx._finished then args.usage("the transaction is over: use tx only inside the function") end
end

local function tx_method(name)
  local w1, w2 = words_of(name)
  local why = TX_FORBIDDEN[w1] or (w2 and TX_FORBIDDEN[w1 .. " " .. w2])
  if why then return refuse(name, why) end
  local set = w1 == "SET"
  return function(self, ...)
    check_tx(self, name)
    if self._queued then
      if set then return queue(self, name, 1, "SET", set_args(...)) end
      if w2 then return queue(self, name, 2, w1, w2, ...) end
      return queue(self, name, 1, w1, ...)
    end
    if set then return command(self._conn, "SET", set_args(...)) end
    if w2 then return command(self._conn, w1, w2, ...) end
    return command(self._conn, w1, ...)
  end
end

setmetatable(tx_methods, { __index = method_cache(tx_method) })

--- Ends the reading part of a transaction that watches keys: the
--- commands after it are queued and run atomically when fn returns.
function tx_methods:multi()
  check_tx(self, "multi")
  self._queued = true
  return self
end

-- MULTI, cmds, EXEC in one batch on `conn`: EXEC's results, or nil when a
-- watched key changed. A command refused while queued raises EXECABORT
-- (with `cause`, the refusal, and `index`); an error in the results raises
-- it with `index` and `replies`.
local function exec(conn, cmds)
  local batch = { { "MULTI" } }
  for i = 1, #cmds do batch[i + 1] = cmds[i] end
  batch[#batch + 1] = { "EXEC" }
  local replies, bad = commands(conn, batch)
  local result = replies[replies.n]
  if bad and bad < replies.n then
    local cause = replies[bad]
    cause.command = batch[bad][1]
    local e = is_error(result) and result or cause
    e.cause, e.index = cause, bad - 1
    error(e, 0)
  end
  if bad then error(result, 0) end
  if result == nil then return nil end
  for i = 1, result.n do
    if is_error(result[i]) then raise_reply(result, i, cmds) end
  end
  return result
end

-- One attempt of a transaction that watches `keys` on a connection of its
-- own: returns EXEC's results, or nil after a conflict.
local function watched(client, fn, keys)
  local conn = take(client, "transaction")
  local ok, r = pcall(function()
    command(conn, "WATCH", unpack(keys))
    local tx <close> = setmetatable({ _conn = conn, _cmds = {}, _queued = false }, Tx)
    fn(tx)
    return exec(conn, tx._cmds)
  end)
  if ok then give(client, conn) else drop(client, conn) end
  if not ok then error(r, 0) end
  return r
end

--- Runs `fn(tx)` as a transaction (suspends) and returns EXEC's results
--- (an array with `n`). The commands fn calls on `tx` are queued and sent
--- with MULTI/EXEC when fn returns, so they run atomically. With
--- opts.watch (a key or an array of keys) the keys are WATCHed first on a
--- connection of the transaction's own, and tx's commands run at once
--- (reads) until `tx:multi()`; if a watched key changes before EXEC, fn
--- runs again, up to opts.retries (10) more times, then `redis` with
--- prefix "WATCH" is raised. An error reply inside the results raises it
--- with `index` and `replies`. An error raised in fn abandons the
--- transaction (nothing queued is sent).
---@param fn fun(tx: aio.redis.Transaction)
---@param opts? {watch?: string|string[], retries?: integer}
---@return table results
function methods:transaction(fn, opts)
  args.self(self, Client, "transaction")
  args.callable(fn, 2, "transaction")
  opts = args.opts(opts, 3, "transaction", { watch = true, retries = true })
  local keys = opts.watch
  if keys == nil then
    local tx <close> = setmetatable({ _cmds = {}, _queued = true }, Tx)
    fn(tx)
    tx._finished = true
    return exec(shared(self, "transaction"), tx._cmds)
  end
  if type(keys) == "string" then keys = { keys } end
  if type(keys) ~= "table" or #keys == 0 then
    args.error(3, "transaction", "option 'watch' must be a key or an array of keys")
  end
  check_args("transaction", 1, unpack(keys))
  local retries = args.count(opts.retries, 3, "transaction", "option 'retries'", 0)
    or DEFAULT_RETRIES
  for _ = 0, retries do
    local result = watched(self, fn, keys)
    if result ~= nil then return result end
  end
  error(Error("redis", fmt("WATCH transaction aborted: a watched key changed, %d times",
    retries + 1), { prefix = "WATCH", command = "EXEC" }), 0)
end

function Tx:__tostring()
  return fmt("aio.redis.Transaction (%s)", self._finished and "over"
    or self._queued and #self._cmds .. " queued" or "watching")
end

return M
