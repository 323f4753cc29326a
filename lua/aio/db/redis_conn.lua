--- aio.db.redis_conn: the internals aio.redis builds on: connection
-- settings from a URL and options, opening connections (authenticated, on
-- the right database, with back-off after failures), and the rules for
-- command names and arguments. See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"
local dns = require "aio.io.dns"

local Conn = core.redis.Conn
local cconnect = core.redis.connect
local commands = Conn.commands
local Error, is_error = core.Error, core.is_error
local sleep, now, timeout = core.sleep, core.now, core.timeout
local resolve = dns.resolve

local type, select, pairs, ipairs, error, pcall = type, select, pairs, ipairs, error, pcall
local setmetatable, rawset, tostring = setmetatable, rawset, tostring
local pack, unpack = table.pack, table.unpack
local tointeger, min, max = math.tointeger, math.min, math.max
local fmt = string.format

local M = {}

local DEFAULT_PORT = 6379
local BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2   -- seconds between reconnections

--- Raises `closed` for a closed `what`.
function M.closed_error(what)
  error(Error("closed", "attempt to use a closed " .. what), 0)
end
local closed_error = M.closed_error

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
function M.config(url, opts)
  args.carg(url, 1, "connect", "the URL")
  opts = args.opts(opts, 2, "connect", CONNECT_OPTS)
  local cfg = parse_url(url)
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
  cfg.label = cfg.address .. ((cfg.db and cfg.db ~= 0) and "/" .. cfg.db or "")
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
    local ok, conn = pcall(cconnect, ip, cfg.port, ip ~= cfg.host and cfg.address or nil)
    if ok then return conn end
    if not is_error(conn, "connect") then error(conn, 0) end
    last = conn
  end
  last.host = cfg.host
  error(last, 0)
end

-- Closes the connection it holds when its scope is left by an error.
M.Guard = { __close = function(g, err)
  if err ~= nil and g.conn then g.conn:close() end
end }

-- A new connection, authenticated, on the right database, named.
local function handshake(cfg)
  local guard <close> = setmetatable({}, M.Guard)
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
function M.open(cfg)
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
function M.reopen(client)
  local wait = client._retry_at - now()
  if wait > 0 then sleep(wait) end
  if client._closed then closed_error("redis client") end
  local ok, conn = pcall(M.open, client._cfg)
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
M.BLOCKING = { BLPOP = true, BRPOP = true, BRPOPLPUSH = true, BLMOVE = true,
  BLMPOP = true, BZPOPMIN = true, BZPOPMAX = true, BZMPOP = true, WAIT = true,
  WAITAOF = true }

-- Commands that change what every later reply on the shared connection
-- means, with what to use instead.
M.SHARED_FORBIDDEN = {
  MULTI = "use client:transaction(fn)", EXEC = "use client:transaction(fn)",
  DISCARD = "use client:transaction(fn)", WATCH = "use client:transaction(fn, {watch = keys})",
  UNWATCH = "use client:transaction(fn, {watch = keys})",
  SUBSCRIBE = "use client:subscribe(...)", PSUBSCRIBE = "use client:psubscribe(...)",
  UNSUBSCRIBE = "use subscription:unsubscribe(...)",
  PUNSUBSCRIBE = "use subscription:punsubscribe(...)",
  SSUBSCRIBE = "sharded pub/sub is not supported",
  SUNSUBSCRIBE = "sharded pub/sub is not supported",
  MONITOR = "MONITOR is not supported", SYNC = "replication is not supported",
  PSYNC = "replication is not supported", HELLO = "only RESP2 is supported",
  RESET = "RESET would undo the connection's AUTH and SELECT",
  SELECT = "choose the database in the URL (redis://host/2) or with opts.db",
  ["CLIENT REPLY"] = "replies are matched to commands in order",
}

-- In a transaction (a connection of its own): MULTI is tx:multi(), and
-- the transaction sends EXEC or DISCARD itself.
M.TX_FORBIDDEN = {
  MULTI = "use tx:multi()", EXEC = "the transaction sends EXEC when fn returns",
  DISCARD = "raise an error in fn to abandon the transaction",
}
for k, v in pairs(M.SHARED_FORBIDDEN) do
  if not M.TX_FORBIDDEN[k] and k ~= "WATCH" and k ~= "UNWATCH" then M.TX_FORBIDDEN[k] = v end
end

-- A method name as the words of a command: "get" -> "GET",
-- "config_get" -> "CONFIG", "GET", "client_no_evict" -> "CLIENT", "NO-EVICT".
function M.words_of(name)
  local first, rest = name:match("^([^_]+)_(.+)$")
  if not first then return name:upper() end
  return first:upper(), rest:upper():gsub("_", "-")
end

-- Names a method may have (lower case; "_" starts private fields).
function M.command_name(name)
  return type(name) == "string" and name:match("^[a-z][a-z0-9_]*$") ~= nil
end

-- The arguments of command `fname` must be strings or numbers.
function M.check_args(fname, first, ...)
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
function M.set_args(...)
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
function M.has_block(...)
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
function M.method_cache(make)
  return setmetatable({}, { __index = function(t, name)
    if not M.command_name(name) then return nil end
    local f = make(name)
    rawset(t, name, f)
    return f
  end })
end

-- A method that refuses its command with `why`.
function M.refuse(name, why)
  local what = name:upper():gsub("_", " ")
  return function() args.usage(fmt("%s cannot be used here: %s", what, why)) end
end

return M
