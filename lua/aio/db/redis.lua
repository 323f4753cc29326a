--- aio.redis: a Redis client on the aio loop. Commands from every task
-- sharing a client are pipelined onto one connection: written together once
-- per round of the scheduler, their replies matched in order (see
-- src/db/redis_conn.c). Blocking commands, transactions that WATCH and
-- subscriptions get connections of their own. A lost connection fails the
-- commands in flight with `io`; later commands reconnect, with back-off.
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"
local dns = require "aio.io.dns"

local credis = core.redis
local Conn = credis.Conn
local cconnect = credis.connect
local command, commands, message = Conn.command, Conn.commands, Conn.message
local alive, conn_state = Conn.alive, Conn.state
local Error, is_error = core.Error, core.is_error
local sleep, now, timeout, Lock = core.sleep, core.now, core.timeout, core.Lock
local resolve = dns.resolve

local type, select, pairs, ipairs, error, pcall = type, select, pairs, ipairs, error, pcall
local getmetatable, setmetatable, rawset, tostring = getmetatable, setmetatable, rawset, tostring
local pack, unpack, concat, remove = table.pack, table.unpack, table.concat, table.remove
local tointeger, min, max = math.tointeger, math.min, math.max
local fmt = string.format

local M = {}

local DEFAULT_PORT = 6379
local BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2   -- seconds between reconnections
local MAX_IDLE = 8           -- idle connections kept for blocking commands
local DEFAULT_RETRIES = 10   -- transaction attempts after a WATCH conflict

local function closed_error(what)
  error(Error("closed", "attempt to use a closed " .. what), 0)
end

local function usage(msg) args.usage(msg) end


-- ---------------------------------------------------------------------
-- URLs and options
-- ---------------------------------------------------------------------

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function bad_url(msg) args.error(1, "connect", msg) end

-- "user:password", ":password" (no user).
local function userinfo(cfg, s)
  local user, pass = s:match("^([^:]*):(.*)$")
  if not user then bad_url("a user without a password in the URL") end
  cfg.username = user ~= "" and unescape(user) or nil
  cfg.password = unescape(pass)
end

local function database(v, n, fname)
  local db = tointeger(tonumber(v))
  if not db or db < 0 then args.error(n, fname, "database must be an integer from 0") end
  return db
end

-- ?db=2&password=...&username=...
local function query(cfg, q)
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = unescape(k), unescape(v)
    if k == "db" then cfg.db = database(v, 1, "connect")
    elseif k == "password" then cfg.password = v
    elseif k == "username" then cfg.username = v
    else bad_url("unknown URL parameter '" .. k .. "'") end
  end
end

-- redis://[[user]:password@]host[:port][/db][?query] and
-- unix:/path, unix:///path, unix://[[user]:password@]/path, with ?db=.
local function parse_url(url)
  local cfg = {}
  local rest = url:match("^unix:(.*)$")
  if rest then
    local path, q = rest:match("^([^?]*)%??(.*)$")
    if path:sub(1, 2) == "//" then
      local auth, p = path:sub(3):match("^([^/]*)(/.*)$")
      if not auth then bad_url("no socket path in the URL") end
      if auth ~= "" then
        userinfo(cfg, auth:match("^(.*)@$") or bad_url("invalid unix: URL"))
      end
      path = p
    end
    if path == "" then bad_url("no socket path in the URL") end
    cfg.path = unescape(path)
    cfg.address = "unix:" .. cfg.path
    query(cfg, q)
    return cfg
  end
  local body = url:match("^redis://(.*)$")
  if not body then
    if url:match("^rediss://") then bad_url("rediss:// (TLS) is not supported yet") end
    bad_url("URL must start with redis:// or unix:")
  end
  local authority, path, q = body:match("^([^/?]*)([^?]*)%??(.*)$")
  local auth, hostport = authority:match("^(.*)@(.*)$")
  if auth then userinfo(cfg, auth) else hostport = authority end
  local host, port = hostport:match("^%[(.*)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]*):?(%d*)$") end
  if not host then bad_url("invalid host in the URL") end
  cfg.host = host ~= "" and unescape(host) or "localhost"
  cfg.port = port ~= "" and tointeger(tonumber(port)) or DEFAULT_PORT
  if cfg.port < 1 or cfg.port > 65535 then bad_url("port out of range") end
  if path ~= "" and path ~= "/" then cfg.db = database(path:sub(2), 1, "connect") end
  cfg.address = (cfg.host:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(cfg.host, cfg.port)
  query(cfg, q)
  return cfg
end

local CONNECT_OPTS = { timeout = true, connect_timeout = true, username = true,
  password = true, db = true, name = true }

-- The connection settings of redis.connect(url, opts).
local function config(url, opts)
  args.check(url, "string", 1, "connect")
  opts = args.opts(opts, 2, "connect", CONNECT_OPTS)
  local cfg = parse_url(url)
  local label
  cfg.timeout = opts.timeout ~= nil and args.duration(opts.timeout, 2, "connect", "timeout") or 0
  if opts.connect_timeout ~= nil then
    cfg.connect_timeout = args.duration(opts.connect_timeout, 2, "connect", "connect_timeout")
  end
  cfg.username = args.option(opts.username, "string", 2, "connect", "username") or cfg.username
  cfg.password = args.option(opts.password, "string", 2, "connect", "password") or cfg.password
  if opts.db ~= nil then cfg.db = database(opts.db, 2, "connect") end
  cfg.name = args.option(opts.name, "string", 2, "connect", "name")
  -- what every new connection sends first
  local hello = {}
  if cfg.password then
    hello[#hello + 1] = cfg.username and { "AUTH", cfg.username, cfg.password }
      or { "AUTH", cfg.password }
  end
  if cfg.db and cfg.db ~= 0 then hello[#hello + 1] = { "SELECT", cfg.db } end
  if cfg.name then hello[#hello + 1] = { "CLIENT", "SETNAME", cfg.name } end
  cfg.hello = #hello > 0 and hello or nil
  label = cfg.address .. ((cfg.db and cfg.db ~= 0) and "/" .. cfg.db or "")
  cfg.label = label
  return cfg
end


-- ---------------------------------------------------------------------
-- Connections
-- ---------------------------------------------------------------------

-- Connects to the server of `cfg` (each address of a name in turn).
local function dial(cfg)
  if cfg.path then return cconnect(cfg.path) end
  local last
  for _, ip in ipairs(resolve(cfg.host)) do
    local ok, conn = pcall(cconnect, ip, cfg.port)
    if ok then
      if ip ~= cfg.host then conn:_set_name(cfg.address) end
      return conn
    end
    if not is_error(conn, "connect") then error(conn, 0) end
    last = conn
  end
  last.host = cfg.host
  error(last, 0)
end

-- Closes the connection it holds when its scope is left by an error.
local Guard = { __close = function(g, err)
  if err ~= nil and g.conn then g.conn:close() end
end }

-- A new connection, authenticated, on the right database, named.
local function handshake(cfg)
  local guard <close> = setmetatable({}, Guard)
  local conn = dial(cfg)
  guard.conn = conn
  conn:set_timeout(cfg.timeout)
  if cfg.hello then
    local replies, bad = commands(conn, cfg.hello)
    if bad then
      local e = replies[bad]
      e.command = cfg.hello[bad][1]
      e.address = cfg.address
      error(e, 0)
    end
  end
  return conn
end

-- handshake() within cfg.connect_timeout.
local function open(cfg)
  local secs = cfg.connect_timeout
  if not secs then return handshake(cfg) end
  local ok, r = pcall(timeout, secs, handshake, cfg)
  if ok then return r end
  if is_error(r, "timeout") then
    error(Error("timeout", fmt("connecting to redis at %s timed out after %g s", cfg.address, secs),
      { address = cfg.address, phase = "connect", seconds = secs }), 0)
  end
  error(r, 0)
end

-- A new connection for `client`, not before the back-off after a failed
-- attempt has passed; failures lengthen the back-off, a success resets it.
local function reopen(client)
  local wait = client._retry_at - now()
  if wait > 0 then sleep(wait) end
  if client._closed then closed_error("redis client") end
  local ok, conn = pcall(open, client._cfg)
  if ok then
    client._delay, client._retry_at = 0, 0
    if client._closed then
      conn:close()
      closed_error("redis client")
    end
    return conn
  end
  if not is_error(conn, "cancelled") and not is_error(conn, "closed") then
    client._delay = min(max(client._delay * 2, BACKOFF_FIRST), BACKOFF_MAX)
    client._retry_at = now() + client._delay
  end
  error(conn, 0)
end


-- ---------------------------------------------------------------------
-- Command names and arguments
-- ---------------------------------------------------------------------

-- Commands that block their connection: each runs on one of its own.
local BLOCKING = { BLPOP = true, BRPOP = true, BRPOPLPUSH = true, BLMOVE = true,
  BLMPOP = true, BZPOPMIN = true, BZPOPMAX = true, BZMPOP = true, WAIT = true,
  WAITAOF = true }

-- Commands that change what every later reply on the shared connection
-- means, with what to use instead.
local SHARED_FORBIDDEN = {
  MULTI = "use client:transaction(fn)", EXEC = "use client:transaction(fn)",
  DISCARD = "use client:transaction(fn)", WATCH = "use client:transaction(fn, {watch = keys})",
  UNWATCH = "use client:transaction(fn, {watch = keys})",
  SUBSCRIBE = "use client:subscribe(...)", PSUBSCRIBE = "use client:psubscribe(...)",
  UNSUBSCRIBE = "use subscription:unsubscribe(...)",
  PUNSUBSCRIBE = "use subscription:punsubscribe(...)",
  SSUBSCRIBE = "sharded pub/sub is not supported", SUNSUBSCRIBE = "sharded pub/sub is not supported",
  MONITOR = "MONITOR is not supported", SYNC = "replication is not supported",
  PSYNC = "replication is not supported", HELLO = "only RESP2 is supported",
  RESET = "RESET would undo the connection's AUTH and SELECT",
  SELECT = "choose the database in the URL (redis://host/2) or with opts.db",
  ["CLIENT REPLY"] = "replies are matched to commands in order",
}

-- In a transaction (a connection of its own): MULTI is tx:multi(), and
-- the transaction sends EXEC or DISCARD itself.
local TX_FORBIDDEN = {
  MULTI = "use tx:multi()", EXEC = "the transaction sends EXEC when fn returns",
  DISCARD = "raise an error in fn to abandon the transaction",
}
for k, v in pairs(SHARED_FORBIDDEN) do
  if not TX_FORBIDDEN[k] and k ~= "WATCH" and k ~= "UNWATCH" then TX_FORBIDDEN[k] = v end
end

-- A method name as the words of a command: "get" -> "GET",
-- "config_get" -> "CONFIG", "GET", "client_no_evict" -> "CLIENT", "NO-EVICT".
local function words_of(name)
  local first, rest = name:match("^([^_]+)_(.+)$")
  if not first then return name:upper() end
  return first:upper(), rest:upper():gsub("_", "-")
end

-- Names a method may have (lower case; "_" starts private fields).
local function command_name(name)
  return type(name) == "string" and name:match("^[a-z][a-z0-9_]*$") ~= nil
end

-- The arguments of command `fname` must be strings or numbers.
local function check_args(fname, first, ...)
  local n = select("#", ...)
  local t = n > 8 and pack(...) or { ... }
  for i = 1, n do
    local v = t[i]
    local tv = type(v)
    if tv ~= "string" and (tv ~= "number" or v ~= v) then
      args.error(first + i - 1, fname, tv == "number" and "number is NaN"
        or "string or number expected, got " .. (v == nil and "nil" or args.typename(v)))
    end
  end
end

local SET_FLAGS = { nx = "NX", xx = "XX", keepttl = "KEEPTTL", get = "GET" }
local SET_TIMES = { ex = "EX", px = "PX", exat = "EXAT", pxat = "PXAT" }

-- set(key, value, {ex=, px=, exat=, pxat=, nx=, xx=, keepttl=, get=}):
-- the options as SET's words; other arguments pass as they are.
local function set_args(...)
  local key, value, opts = ...
  if type(opts) ~= "table" then return ... end
  if select("#", ...) > 3 then args.error(5, "set", "no arguments after the options table") end
  local out = { key, value }
  for k, v in pairs(opts) do
    if SET_TIMES[k] then
      out[#out + 1] = SET_TIMES[k]
      out[#out + 1] = args.count(v, 4, "set", "option '" .. k .. "'", 0)
    elseif SET_FLAGS[k] then
      if args.option(v, "boolean", 4, "set", "option '" .. k .. "'") then
        out[#out + 1] = SET_FLAGS[k]
      end
    else
      args.error(4, "set", "unknown option '" .. tostring(k) .. "'")
    end
  end
  return unpack(out)
end

-- Does XREAD / XREADGROUP get the BLOCK option (before STREAMS)?
local function has_block(...)
  for i = 1, select("#", ...) do
    local a = select(i, ...)
    if type(a) == "string" then
      local u = a:upper()
      if u == "BLOCK" then return true end
      if u == "STREAMS" then return false end
    end
  end
  return false
end

-- A table whose missing string keys are made by `make(name)` and kept:
-- the command methods of a class, made on first use.
local function method_cache(make)
  return setmetatable({}, { __index = function(t, name)
    if not command_name(name) then return nil end
    local f = make(name)
    rawset(t, name, f)
    return f
  end })
end

-- A method that refuses its command with `why`.
local function refuse(name, why)
  local what = name:upper():gsub("_", " ")
  return function() usage(fmt("%s cannot be used here: %s", what, why)) end
end


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

-- The slow path of every command: checks the client and reconnects.
local function shared(client, fname)
  if getmetatable(client) ~= Client then args.self(client, Client, fname) end
  if client._closed then closed_error("redis client") end
  local conn = client._conn
  if conn then
    if alive(conn) then return conn end
    if conn_state(conn) == "closed" then       -- by the end of its run
      client._closed = true
      closed_error("redis client")
    end
  end
  return reconnect(client)
end

-- A connection of its own for a blocking command or a transaction: an
-- idle one, or a new one.
local function take(client, fname)
  if getmetatable(client) ~= Client then args.self(client, Client, fname) end
  if client._closed then closed_error("redis client") end
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
---@param opts? {timeout?: number, connect_timeout?: number, username?: string, password?: string, db?: integer, name?: string}
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
  if getmetatable(self) ~= Client then args.self(self, Client, "call") end
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

--- Closes the client: its connections, subscriptions and blocking
--- commands. Commands in flight raise `closed`. Harmless when repeated.
function methods:close()
  if getmetatable(self) ~= Client then args.self(self, Client, "close") end
  if self._closed then return end
  self._closed = true
  if self._conn then self._conn:close() end
  for _, conn in ipairs(self._idle) do conn:close() end
  self._idle = {}
  for conn in pairs(self._busy) do conn:close() end
  for sub in pairs(self._subs) do sub:close() end
end

--- Is the client closed?
---@return boolean
function methods:closed()
  if getmetatable(self) ~= Client then args.self(self, Client, "closed") end
  return self._closed
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

-- Queues command `w1 [w2] ...` on pipeline or transaction `p`.
local function queue(p, ...)
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
      check_args(name, 2, set_args(...))
      return queue(self, "SET", set_args(...))
    end
  end
  if w2 then
    return function(self, ...)
      args.self(self, Pipeline, name)
      check_args(name, 2, ...)
      return queue(self, w1, w2, ...)
    end
  end
  return function(self, ...)
    args.self(self, Pipeline, name)
    check_args(name, 2, ...)
    return queue(self, w1, ...)
  end
end

setmetatable(pipeline_methods, { __index = method_cache(pipeline_method) })

--- A batch of commands written together: `p:set("a", 1):get("a")` queues
--- (each method returns the pipeline), `p:execute()` sends them.
---@return aio.redis.Pipeline
function methods:pipeline()
  if getmetatable(self) ~= Client then args.self(self, Client, "pipeline") end
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
  if tx._finished then usage("the transaction is over: use tx only inside the function") end
end

local function tx_method(name)
  local w1, w2 = words_of(name)
  local why = TX_FORBIDDEN[w1] or (w2 and TX_FORBIDDEN[w1 .. " " .. w2])
  if why then return refuse(name, why) end
  local set = w1 == "SET"
  return function(self, ...)
    check_tx(self, name)
    if self._queued then
      if set then
        check_args(name, 2, set_args(...))
        return queue(self, "SET", set_args(...))
      end
      check_args(name, 2, ...)
      if w2 then return queue(self, w1, w2, ...) end
      return queue(self, w1, ...)
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
  if getmetatable(self) ~= Client then args.self(self, Client, "transaction") end
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
  local retries = args.count(opts.retries, 3, "transaction", "option 'retries'", 0) or DEFAULT_RETRIES
  for _ = 0, retries do
    local result = watched(self, fn, keys)
    if result ~= nil then return result end
  end
  error(Error("redis", fmt("WATCH transaction aborted: a watched key changed, %d times", retries + 1),
    { prefix = "WATCH", command = "EXEC" }), 0)
end

function Tx:__tostring()
  return fmt("aio.redis.Transaction (%s)", self._finished and "over"
    or self._queued and #self._cmds .. " queued" or "watching")
end


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
  table.sort(list)
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

local function new_subscription(client, fname)
  if getmetatable(client) ~= Client then args.self(client, Client, fname) end
  if client._closed then closed_error("redis client") end
  local sub = setmetatable({ _client = client, _conn = false, _channels = {}, _patterns = {},
    _count = 0, _closed = false, _lost = false, _lock = Lock() }, Subscription)
  client._subs[sub] = true
  return sub
end

--- Subscribes to channels on a connection of their own (suspends until
--- the server confirmed) and returns the Subscription:
--- `for msg in sub:messages() do … end`.
---@param ... string channels
---@return aio.redis.Subscription
function methods:subscribe(...)
  local sub = new_subscription(self, "subscribe")
  local ok, err = pcall(change, sub, "subscribe", "SUBSCRIBE", sub._channels, true, ...)
  if not ok then
    sub:close()
    error(err, 0)
  end
  return sub
end

--- Subscribes to channel patterns (`news.*`) like subscribe().
---@param ... string patterns
---@return aio.redis.Subscription
function methods:psubscribe(...)
  local sub = new_subscription(self, "psubscribe")
  local ok, err = pcall(change, sub, "psubscribe", "PSUBSCRIBE", sub._patterns, true, ...)
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
