--- aio.db.pg (aio.pg): PostgreSQL on libpq's non-blocking API, driven by
-- the aio loop (src/db/pg_*.c). A Connection wraps the C connection; a
-- Pool is a Semaphore of `max` permits plus a free list of connections,
-- and gives each connection back only once it is idle and clean: what a
-- task left (an open transaction, settings, LISTEN, advisory locks, a
-- query cut short by a cancellation) is undone by a task of the pool's
-- own before anyone else gets the connection.
-- See LICENSE

local core = require "aio.core"
local cjson = require "cjson"
local args = require "aio.core.args"
local dns = require "aio.io.dns"

local cpg = core.pg
local cconnect, conninfo = cpg.connect, cpg.conninfo
local Error, is_error = core.Error, core.is_error
local spawn, current, now, sleep = core.spawn, core.current, core.now, core.sleep
local timeout, shield = core.timeout, core.shield
local Semaphore = core.Semaphore
local type, pairs, ipairs, error, pcall = type, pairs, ipairs, error, pcall
local setmetatable, getmetatable, tostring = setmetatable, getmetatable, tostring
local tonumber, next = tonumber, next
local fmt, concat = string.format, table.concat

cpg.set_json(cjson.encode, cjson.decode)

local M = {}

--- A NULL inside an array parameter (Lua arrays cannot hold nil): the
--- same value as cjson.null.
M.null = cjson.null

-- What a pool runs on a connection a task may have changed (asyncpg's).
local RESET_SQL = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL"
-- Seconds a pool gives a connection to become clean before closing it.
local RECOVER_SECONDS = 10
local DEFAULT_CACHE = 256
local DEFAULT_CONNECT_TIMEOUT = 30

local check, argerror, usage, self_of = args.check, args.error, args.usage, args.self

-- Options of connect (and Pool).
local CONNECT_OPTS = { decode_json = true, statement_cache = true, connect_timeout = true }
local POOL_OPTS = { dsn = true, min = true, max = true, acquire_timeout = true, max_idle = true,
  max_lifetime = true, reset = true, decode_json = true, statement_cache = true,
  connect_timeout = true }

-- ---------------------------------------------------------------------
-- Connecting
-- ---------------------------------------------------------------------

local function split(s)
  local list = {}
  for item in (s .. ","):gmatch("([^,]*),") do list[#list + 1] = item end
  return list
end

local function is_ip(h)
  return h:find("^%d+%.%d+%.%d+%.%d+$") ~= nil or h:find(":", 1, true) ~= nil
end

-- The options of `dsn` with every host name resolved by aio.dns into
-- hostaddr (libpq would resolve it blocking the loop): a host with
-- several addresses is listed once per address, so libpq still tries
-- them in turn. Returns keywords, values, and the options by name.
local function options(dsn, fname)
  local kw, vals = conninfo(dsn)
  if not kw then
    argerror(1, fname, "invalid connection string: " .. tostring(vals):gsub("%s+$", ""))
  end
  local o = {}
  for i, k in ipairs(kw) do o[k] = vals[i] end
  local host = o.host or os.getenv("PGHOST")
  if host and host ~= "" and not o.hostaddr and not os.getenv("PGHOSTADDR") then
    local hosts, ports = split(host), split(o.port or os.getenv("PGPORT") or "")
    local h2, a2, p2, any = {}, {}, {}, false
    for i, h in ipairs(hosts) do
      local port = ports[i] or ports[1] or ""
      local addrs
      if h == "" or h:sub(1, 1) == "/" or h:sub(1, 1) == "@" then
        addrs = { "" }
      elseif is_ip(h) then
        addrs = { h }
      else
        local ok, r = pcall(dns.resolve, h)
        if not ok then
          if is_error(r, "dns") then
            error(Error("connect", fmt("cannot connect to PostgreSQL at %s: %s", h, r.message),
              { host = h, code = r.code }), 0)
          end
          error(r, 0)
        end
        addrs, any = r, true
      end
      for _, a in ipairs(addrs) do
        h2[#h2 + 1], a2[#a2 + 1], p2[#p2 + 1] = h, a, port
      end
    end
    if any then
      o.host, o.hostaddr = concat(h2, ","), concat(a2, ",")
      if o.port or os.getenv("PGPORT") then o.port = concat(p2, ",") end
    end
  end
  kw, vals = {}, {}
  for k, v in pairs(o) do kw[#kw + 1], vals[#vals + 1] = k, v end
  return kw, vals, o
end

-- The error for libpq's message `msg` (its error verbosity is verbose
-- while connecting, so an error the server sent carries its SQLSTATE):
-- `db` for what the server refused (28P01 a wrong password, 3D000 no such
-- database, ...), `connect` for everything else, including the server
-- being unavailable (classes 08, 53 and 57: starting up, shutting down,
-- too many connections).
local function connect_error(msg, o)
  local lines = {}
  for line in tostring(msg):gmatch("[^\n]+") do
    if not line:find("^LOCATION:") then lines[#lines + 1] = line:gsub("^%s+", "") end
  end
  local text = concat(lines, " ")
  local severity, state, primary = text:match("(%u+):  (%w%w%w%w%w): ([^\n]*)")
  local fields = { host = o.host, port = tonumber(o.port) }
  if state and state:find("^[%dA-Z]+$") then
    primary = primary:gsub("%s+DETAIL:.*$", ""):gsub("%s+HINT:.*$", "")
    fields.sqlstate, fields.severity = state, severity
    fields.detail = text:match("DETAIL:  (.-)%s*%u*:  ") or text:match("DETAIL:  (.*)$")
    local class = state:sub(1, 2)
    if class ~= "08" and class ~= "53" and class ~= "57" then
      return Error("db", primary, fields)
    end
    return Error("connect", "cannot connect to PostgreSQL: " .. primary, fields)
  end
  text = text:gsub("(%u+):  (%w%w%w%w%w): ", "%1:  ")
  return Error("connect", "cannot connect to PostgreSQL: " .. text, fields)
end

-- Opens a C connection (suspends); raises `connect`, `db` or `timeout`.
local function open(dsn, cfg, fname)
  local kw, vals, o = options(dsn, fname)
  local secs = cfg.connect_timeout or tonumber(o.connect_timeout or "") or DEFAULT_CONNECT_TIMEOUT
  local function go()
    local c, msg = cconnect(kw, vals, cfg.statement_cache or DEFAULT_CACHE, cfg.decode_json)
    if not c then error(connect_error(msg, o), 0) end
    return c
  end
  if secs <= 0 then return go() end
  local ok, c = pcall(timeout, secs, go)
  if ok then return c end
  if is_error(c, "timeout") then
    error(Error("timeout", fmt("connecting to PostgreSQL timed out after %g s", secs),
      { phase = "connect", seconds = secs, host = o.host }), 0)
  end
  error(c, 0)
end

-- Options shared by connect and Pool: checked, as a table.
local function config(opts, n, fname)
  return {
    decode_json = args.option(opts.decode_json, "boolean", n, fname, "option 'decode_json'"),
    statement_cache = args.count(opts.statement_cache, n, fname, "option 'statement_cache'", 0),
    connect_timeout = opts.connect_timeout ~= nil
      and args.duration(opts.connect_timeout, n, fname, "option 'connect_timeout'") or nil,
  }
end

-- ---------------------------------------------------------------------
-- Connection
-- ---------------------------------------------------------------------

---@class aio.pg.Connection
local Connection = {}
Connection.__index = Connection
Connection.__name = "aio.pg.Connection"

-- The C connection of `self` (raises `closed` once closed or given back
-- to its pool).
local function raw(self, fname)
  if getmetatable(self) ~= Connection then self_of(self, Connection, fname) end
  local c = self._c
  if c == nil then
    error(Error("closed", self._pool and "attempt to use a connection given back to its pool"
      or "attempt to use a closed connection"), 0)
  end
  return c
end

local function wrap(c, rec, pool)
  return setmetatable({ _c = c, _rec = rec, _pool = pool }, Connection)
end

--- Connects to PostgreSQL (suspends): `dsn` is a libpq connection string
--- ("host=... dbname=...") or URI ("postgresql://user@host:port/db").
--- Host names are resolved without blocking the loop.
--- opts.decode_json: json/jsonb results decoded into Lua values;
--- opts.statement_cache: prepared statements kept (256; 0: none);
--- opts.connect_timeout: seconds (30, or the DSN's connect_timeout).
--- Raises `connect` (and `db` for what the server refuses, such as a
--- wrong password, sqlstate 28P01) or `timeout`.
---@param dsn string
---@param opts? {decode_json?: boolean, statement_cache?: integer, connect_timeout?: number}
---@return aio.pg.Connection
function M.connect(dsn, opts)
  args.carg(dsn, 1, "connect", "the connection string")
  local cfg = config(args.opts(opts, 2, "connect", CONNECT_OPTS), 2, "connect")
  local c = open(dsn, cfg, "connect")
  return wrap(c, { c = c, depth = 0 })
end

-- conn:query(sql, ...) -> rows (with `columns` and `count`),
-- conn:query_one -> the first row or nil, conn:query_value -> the first
-- value of the first row or nil, conn:execute -> the rows affected
-- (suspend): the C connection's methods, on the connection of `self`.
for _, name in ipairs({ "query", "query_one", "query_value", "execute" }) do
  local method = cpg.methods[name]
  Connection[name] = function(self, sql, ...)
    return method(raw(self, name), sql, ...)
  end
end

---@class aio.pg.Transaction
local Transaction = {}
Transaction.__index = Transaction
Transaction.__name = "aio.pg.Transaction"

local TX_OPTS = { isolation = true, readonly = true, deferrable = true }
local ISOLATION = {
  serializable = "SERIALIZABLE", ["repeatable read"] = "REPEATABLE READ",
  repeatable_read = "REPEATABLE READ", ["read committed"] = "READ COMMITTED",
  read_committed = "READ COMMITTED", ["read uncommitted"] = "READ UNCOMMITTED",
  read_uncommitted = "READ UNCOMMITTED",
}

--- Starts a transaction (suspends) and returns it: commit() makes it
--- last; closing it (`<close>`) or rollback() undoes it unless committed.
--- Inside another one it is a savepoint. opts (outermost only):
--- isolation ("serializable", "repeatable read", "read committed"),
--- readonly, deferrable.
---@param opts? {isolation?: string, readonly?: boolean, deferrable?: boolean}
---@return aio.pg.Transaction
function Connection:transaction(opts)
  local c = raw(self, "transaction")
  opts = args.opts(opts, 1, "transaction", TX_OPTS)
  local iso = opts.isolation
  if iso ~= nil and ISOLATION[type(iso) == "string" and iso:lower() or iso] == nil then
    argerror(1, "transaction", "option 'isolation' must be \"serializable\", "
      .. "\"repeatable read\", \"read committed\" or \"read uncommitted\"")
  end
  local readonly = args.option(opts.readonly, "boolean", 1, "transaction", "option 'readonly'")
  local deferrable = args.option(opts.deferrable, "boolean", 1, "transaction", "option 'deferrable'")
  local rec = self._rec
  local _, tx = c:state()
  local savepoint = rec.depth > 0 or tx ~= "idle"
  local depth = rec.depth + 1
  local name
  if savepoint then
    if next(opts) ~= nil then
      usage("transaction options apply to the outermost transaction only, not to a savepoint")
    end
    name = "aio_savepoint_" .. depth
    c:command("SAVEPOINT " .. name)
  else
    local sql = { "BEGIN" }
    if iso then sql[#sql + 1] = "ISOLATION LEVEL " .. ISOLATION[iso:lower()] end
    if readonly ~= nil then sql[#sql + 1] = readonly and "READ ONLY" or "READ WRITE" end
    if deferrable ~= nil then sql[#sql + 1] = deferrable and "DEFERRABLE" or "NOT DEFERRABLE" end
    c:command(concat(sql, " "))
  end
  rec.depth = depth
  return setmetatable({ _conn = self, _rec = rec, _c = c, depth = depth,
    savepoint = name, done = false }, Transaction)
end

local function tx_check(self, fname)
  self_of(self, Transaction, fname)
  if self.done then usage("the transaction is already " .. self.done) end
  if self._conn._c ~= self._c then
    error(Error("closed", "the transaction's connection was closed or given back to its pool"), 0)
  end
  if self._rec.depth ~= self.depth then
    usage("a transaction inside this one is still open: end it first")
  end
end

--- Commits (or releases the savepoint) (suspends). If a statement in
--- the transaction failed, the server rolled it back instead: raises `db`
--- with sqlstate 25P02.
function Transaction:commit()
  tx_check(self, "commit")
  local c = self._c
  self.done = "committed"
  self._rec.depth = self.depth - 1
  if self.savepoint then
    c:command("RELEASE SAVEPOINT " .. self.savepoint)
  elseif c:command("COMMIT") == "ROLLBACK" then
    self.done = "rolled back"
    error(Error("db", "the transaction was rolled back: a statement in it failed",
      { sqlstate = "25P02" }), 2)
  end
end

--- Rolls back (to the savepoint) (suspends).
function Transaction:rollback()
  tx_check(self, "rollback")
  local c = self._c
  self.done = "rolled back"
  self._rec.depth = self.depth - 1
  if self.savepoint then
    c:command(fmt("ROLLBACK TO SAVEPOINT %s; RELEASE SAVEPOINT %s", self.savepoint, self.savepoint))
  else
    c:command("ROLLBACK")
  end
end

--- `<close>`: rolls back unless committed. After a cancellation a pooled
--- connection is rolled back by its pool; a lone one here, shielded.
function Transaction:__close(err)
  if self.done or getmetatable(self) ~= Transaction then return end
  local c = self._c
  if self._conn._c ~= c or c:closed() then
    self.done = "rolled back"
    return
  end
  local cancelled = err ~= nil and is_error(err, "cancelled")
  if cancelled and self._conn._pool then
    self.done = "rolled back"
    self._rec.depth = self.depth - 1
    return
  end
  if err == nil then return self:rollback() end
  -- an error is on its way: it matters more than a failed rollback
  if cancelled then pcall(shield, self.rollback, self)
  else pcall(self.rollback, self) end
  self.done = "rolled back"
end

function Transaction:__tostring()
  return fmt("aio.pg.Transaction (%s%s)", self.savepoint and "savepoint" or "transaction",
    self.done and ", " .. self.done or "")
end

--- Listens on `channel` (suspends); see notifications().
function Connection:listen(channel)
  local c = raw(self, "listen")
  args.carg(channel, 1, "listen", "the channel")
  c:command("LISTEN " .. c:escape_identifier(channel))
end

--- Stops listening on `channel`, or on every channel without one
--- (suspends).
function Connection:unlisten(channel)
  local c = raw(self, "unlisten")
  if channel == nil then return (c:command("UNLISTEN *")) end
  args.carg(channel, 1, "unlisten", "the channel")
  c:command("UNLISTEN " .. c:escape_identifier(channel))
end

--- Sends a notification on `channel` (suspends).
function Connection:notify(channel, payload)
  local c = raw(self, "notify")
  check(channel, "string", 1, "notify")
  args.option(payload, "string", 2, "notify")
  c:query("SELECT pg_notify($1, $2)", channel, payload or "")
end

--- An iterator over the notifications of the channels listened to:
--- `for n in conn:notifications() do ... end` with n.channel, n.payload,
--- n.pid. Each step suspends until one arrives; the loop ends when the
--- connection is closed, or after opts.timeout seconds without one.
--- Other tasks may run queries on the connection meanwhile.
---@param opts? {timeout?: number}
---@return fun(): {channel: string, payload: string, pid: integer}?
function Connection:notifications(opts)
  raw(self, "notifications")
  opts = args.opts(opts, 1, "notifications", { timeout = true })
  local secs = opts.timeout ~= nil
    and args.duration(opts.timeout, 1, "notifications", "option 'timeout'") or nil
  return function()
    local c = self._c
    if c == nil then return nil end
    return c:notification(secs)
  end
end

--- Copies rows into a table with `sql` ("COPY t (a, b) FROM STDIN")
--- (suspends) and returns how many: `rows` is an array of rows (each an
--- array of values: nil is NULL, tables become JSON), a function
--- returning one row per call until nil, or a string of COPY text data.
--- Rows are encoded in C and sent in chunks of about 64 KiB.
function Connection:copy_in(sql, rows)
  local c = raw(self, "copy_in")
  check(sql, "string", 1, "copy_in")
  local kind = type(rows)
  if kind ~= "table" and kind ~= "function" and kind ~= "string" then
    argerror(2, "copy_in", "table, function or string expected, got " .. args.typename(rows))
  end
  c:copy_in(sql)
  local ok, err = pcall(function()
    if kind == "string" then
      c:copy_put(rows)
    elseif kind == "table" then
      local i, n = 1, #rows
      while i <= n do i = c:copy_put(rows, i, n) end
    else
      local batch, k = {}, 0
      for row in rows do
        k = k + 1
        batch[k] = row
        if k == 1024 then
          local i = 1
          while i <= k do i = c:copy_put(batch, i, k) end
          k = 0
        end
      end
      local i = 1
      while i <= k do i = c:copy_put(batch, i, k) end
    end
  end)
  if not ok then
    c:copy_abort()
    error(err, 0)
  end
  return c:copy_end()
end

--- An iterator over the rows of `sql` ("COPY t TO STDOUT", any format),
--- each a string as the server sent it (a line, "\n" included):
--- `for line in conn:copy_out(sql) do ... end`. The COPY starts at once
--- (suspends); leaving the loop early cancels it.
function Connection:copy_out(sql)
  local c = raw(self, "copy_out")
  check(sql, "string", 1, "copy_out")
  c:copy_out(sql)
  local done = false
  local closer = setmetatable({}, { __close = function()
    if not done then
      done = true
      c:copy_abort()
    end
  end })
  return function()
    if done then return nil end
    local ok, line = pcall(c.copy_get, c)
    if not ok then
      done = true
      error(line, 0)
    end
    if line == nil then done = true end
    return line
  end, nil, nil, closer
end

--- Quotes `name` as an SQL identifier ("my table" -> "\"my table\"").
function Connection:quote_identifier(name)
  local c = raw(self, "quote_identifier")
  check(name, "string", 1, "quote_identifier")
  return c:escape_identifier(name)
end

--- Quotes `s` as an SQL string literal.
function Connection:quote_literal(s)
  local c = raw(self, "quote_literal")
  check(s, "string", 1, "quote_literal")
  return c:escape_literal(s)
end

--- The server process serving this connection (pg_backend_pid()).
function Connection:pid()
  return raw(self, "pid"):pid()
end

--- The server's version as an integer (150004 for 15.4).
function Connection:server_version()
  return raw(self, "server_version"):server_version()
end

--- The transaction status: "idle", "intrans" (in a transaction),
--- "inerror" (in a failed transaction) or "active".
function Connection:transaction_status()
  local _, tx = raw(self, "transaction_status"):state()
  return tx
end

--- Closes the connection; a connection from a pool goes back to it.
--- Harmless when repeated.
function Connection:close()
  self_of(self, Connection, "close")
  local c = self._c
  if c == nil then return end
  self._c = nil
  local pool = self._pool
  if pool then pool:_put(self._rec) else c:close() end
end

Connection.__close = Connection.close

--- Is the connection closed (or given back to its pool)?
function Connection:closed()
  self_of(self, Connection, "closed")
  return self._c == nil or self._c:closed()
end

function Connection:__tostring()
  local c = self._c
  if c == nil or c:closed() then return "aio.pg.Connection (closed)" end
  return fmt("aio.pg.Connection (pid %d%s)", c:pid(), self._pool and ", pooled" or "")
end

-- ---------------------------------------------------------------------
-- Pool
-- ---------------------------------------------------------------------

---@class aio.pg.Pool
local Pool = {}
Pool.__index = Pool
Pool.__name = "aio.pg.Pool"

local function pool_check(self, fname)
  if getmetatable(self) ~= Pool then self_of(self, Pool, fname) end
end

-- Forgets and closes connection record `rec`.
local function discard(self, rec)
  if self._all[rec] then
    self._all[rec] = nil
    self._size = self._size - 1
  end
  rec.c:close()
end

local function expired(self, rec, t)
  return self.max_lifetime ~= nil and t - rec.created >= self.max_lifetime
end

local reap

-- Puts `rec` on the free list (newest last) and wakes the reaper.
local function push_free(self, rec)
  rec.released = now()
  local n = self._nfree + 1
  self._free[n] = rec
  self._nfree = n
  if self.max_idle and not self._reaper and self._size > self.min then
    self._reaper = spawn(reap, self)
    self._reaper.name = "aio.pg pool reaper"
  end
end

-- Closes idle connections beyond `min` once idle for max_idle seconds.
function reap(self)
  while not self._closed and self._nfree > 0 and self._size > self.min do
    local oldest = self._free[1]
    local t = now()
    local due = oldest.released + self.max_idle
    if due <= t then
      table.remove(self._free, 1)
      self._nfree = self._nfree - 1
      discard(self, oldest)
    else
      sleep(due - t)
    end
  end
  self._reaper = nil
end

-- Opens a connection for the pool (the caller holds a permit).
local function pool_open(self)
  self._connecting = self._connecting + 1
  local ok, c = pcall(open, self.dsn, self._cfg, "acquire")
  self._connecting = self._connecting - 1
  if not ok then error(c, 0) end
  local rec = { c = c, created = now(), released = 0, depth = 0 }
  if self._closed then
    c:close()
    error(Error("closed", "attempt to use a closed pool"), 0)
  end
  self._all[rec] = true
  self._size = self._size + 1
  return rec
end

-- Takes a permit (FIFO; suspends while none is free) and a connection:
-- the most recently used free one that is still good, else a new one.
local function get(self)
  if self._closed then error(Error("closed", "attempt to use a closed pool"), 0) end
  local sem = self._sem
  local secs = self.acquire_timeout
  if secs then
    local ok, e = pcall(timeout, secs, sem.acquire, sem)
    if not ok then
      if is_error(e, "timeout") then
        error(Error("timeout", fmt("no connection of the pool came free within %g s", secs),
          { phase = "acquire", seconds = secs }), 0)
      end
      error(e, 0)
    end
  else
    sem:acquire()
  end
  if self._closed then
    sem:release()
    error(Error("closed", "attempt to use a closed pool"), 0)
  end
  local free, n = self._free, self._nfree
  while n > 0 do
    local rec = free[n]
    free[n] = nil
    n = n - 1
    self._nfree = n
    if rec.c:check() and not (self.max_lifetime and expired(self, rec, now())) then
      self._busy = self._busy + 1
      return rec
    end
    discard(self, rec)
  end
  local ok, rec = pcall(pool_open, self)
  if not ok then
    sem:release()
    error(rec, 0)
  end
  self._busy = self._busy + 1
  return rec
end

-- Brings a connection a task left unclean back (in its own task, holding
-- the permit): drains an interrupted query (after its cancel request),
-- then rolls back and resets the session in one round trip; closes it if
-- that fails.
local function recover(self, rec)
  rec.started = true
  local c = rec.c
  local ok = pcall(timeout, RECOVER_SECONDS, function()
    c:drain()
    local _, tx, dirty = c:state()
    local sql = {}
    if tx ~= "idle" then sql[1] = "ROLLBACK" end
    if self.reset and (dirty or self.reset == "always") then sql[#sql + 1] = RESET_SQL end
    if #sql > 0 then c:command(concat(sql, "; ")) end
    c:set_clean()
  end)
  local state, tx = c:state()
  if ok and not self._closed and state == "ready" and tx == "idle" and not expired(self, rec, now()) then
    push_free(self, rec)
  else
    discard(self, rec)
  end
end

-- The end of a recovery task (also one that never ran: the run ended):
-- its permit goes back.
local function recovered(self, rec, t)
  self._tasks[t] = nil
  self._recovering = self._recovering - 1
  if not rec.started then discard(self, rec) end
  rec.started = nil
  self._sem:release()
end

-- Takes back connection `rec` after use (never suspends): clean ones go
-- straight to the free list; others are recovered first, or closed.
function Pool:_put(rec)
  local c = rec.c
  rec.depth = 0
  self._busy = self._busy - 1
  if self._closed or (self.max_lifetime and expired(self, rec, now())) then
    discard(self, rec)
    self._sem:release()
  elseif c:clean() and self.reset ~= "always" then  -- the common case
    push_free(self, rec)
    self._sem:release()
  else
    local state, tx = c:state()
    if state == "ready" and tx == "idle" and not self.reset then
      push_free(self, rec)          -- reset = false: the session as it is
      self._sem:release()
      return
    end
    local ok, t = false, nil
    if state ~= "broken" and state ~= "closed" then ok, t = pcall(spawn, recover, self, rec) end
    if ok then
      self._recovering = self._recovering + 1
      t.name = "aio.pg pool recovery"
      self._tasks[t] = true
      t:on_done(function() recovered(self, rec, t) end)
    else
      discard(self, rec)
      self._sem:release()
    end
  end
end

local put = Pool._put

--- A pool of connections to `dsn` shared by every task (asyncpg's pool).
--- opts: dsn (required), min (0: connections kept open), max (10: open at
--- most), acquire_timeout (seconds to wait for a connection; none by
--- default), max_idle (300: seconds before an idle connection beyond
--- `min` is closed; false: never), max_lifetime (seconds a connection is
--- used at most), reset ("auto": undo what a task changed in the session
--- only when it may have — SET, LISTEN, advisory locks, cursors —;
--- "always": asyncpg's reset on every release; false: only roll back),
--- and connect's decode_json, statement_cache, connect_timeout.
---@param opts {dsn: string, min?: integer, max?: integer, acquire_timeout?: number, max_idle?: number|false, max_lifetime?: number, reset?: "auto"|"always"|false, decode_json?: boolean, statement_cache?: integer, connect_timeout?: number}
---@return aio.pg.Pool
function M.Pool(opts)
  check(opts, "table", 1, "Pool")
  args.keys(opts, POOL_OPTS, 1, "Pool")
  if type(opts.dsn) ~= "string" then argerror(1, "Pool", "option 'dsn' must be a string") end
  args.cstring(opts.dsn, 1, "Pool", "option 'dsn'")
  local min = args.count(opts.min, 1, "Pool", "option 'min'", 0) or 0
  local max = args.count(opts.max, 1, "Pool", "option 'max'", 1) or 10
  if min > max then argerror(1, "Pool", "option 'min' must not exceed option 'max'") end
  local function seconds(k)
    local v = opts[k]
    if v == nil then return nil end
    v = args.number(v, 1, "Pool", "option '" .. k .. "'")
    if v <= 0 then argerror(1, "Pool", "option '" .. k .. "' must be positive") end
    return v
  end
  local max_idle = opts.max_idle
  if max_idle ~= false then max_idle = seconds("max_idle") or 300 end
  local reset = opts.reset
  if reset == nil then reset = "auto" end
  if reset ~= "auto" and reset ~= "always" and reset ~= false then
    argerror(1, "Pool", "option 'reset' must be \"auto\", \"always\" or false")
  end
  local self = setmetatable({
    dsn = opts.dsn, min = min, max = max,
    acquire_timeout = opts.acquire_timeout ~= nil
      and args.duration(opts.acquire_timeout, 1, "Pool", "option 'acquire_timeout'") or nil,
    max_idle = max_idle,
    max_lifetime = seconds("max_lifetime"),
    reset = reset,
    _cfg = config(opts, 1, "Pool"),
    _sem = Semaphore(max),
    _free = {}, _nfree = 0, _all = {}, _tasks = {},
    _size = 0, _busy = 0, _recovering = 0, _connecting = 0,
    _closed = false,
  }, Pool)
  options(opts.dsn, "Pool")     -- a bad DSN fails here, not at first use
  if min > 0 and current() then self:_fill() end
  return self
end

-- Opens connections (in a task) until `min` are open.
function Pool:_fill()
  if self._filler then return end
  self._filler = spawn(function()
    while not self._closed and self._size + self._connecting < self.min do
      local permit = self._sem:try_acquire()
      if not permit then break end
      local ok, rec = pcall(pool_open, self)
      if ok then push_free(self, rec) end
      self._sem:release()
      if not ok then break end
    end
    self._tasks[current()] = nil
    self._filler = nil
  end)
  self._filler.name = "aio.pg pool filler"
  self._tasks[self._filler] = true
end

--- Takes a connection (suspends while all `max` are in use: first come,
--- first served); closing it (`<close>`) gives it back.
---@return aio.pg.Connection
function Pool:acquire()
  pool_check(self, "acquire")
  if self.min > 0 and not self._filler and self._size < self.min then self:_fill() end
  local rec = get(self)
  return wrap(rec.c, rec, self)
end

-- pool:query, query_one, query_value, execute (suspend): the connection's
-- method on a connection of the pool, given back at once.
for _, name in ipairs({ "query", "query_one", "query_value", "execute" }) do
  local method = cpg.methods[name]
  Pool[name] = function(self, sql, ...)
    if getmetatable(self) ~= Pool then pool_check(self, name) end
    local rec = get(self)
    local ok, r = pcall(method, rec.c, sql, ...)
    put(self, rec)
    if ok then return r end
    error(r, 0)
  end
end

--- {size=, idle=, in_use=, recovering=, connecting=, waiting=, min=,
--- max=, closed=}: connections open, free, taken by tasks, being cleaned
--- after use, being opened; tasks waiting for one.
function Pool:stats()
  pool_check(self, "stats")
  return {
    size = self._size, idle = self._nfree, in_use = self._busy,
    recovering = self._recovering, connecting = self._connecting,
    waiting = self._sem:waiting(), min = self.min, max = self.max,
    closed = self._closed,
  }
end

--- Closes the pool: idle connections now, those in use when given back;
--- tasks waiting for a connection raise `closed`. From a task it also
--- waits for the pool's own tasks (cleaning connections) to end.
function Pool:close()
  pool_check(self, "close")
  if self._closed then return end
  self._closed = true
  for i = 1, self._nfree do discard(self, self._free[i]) end
  self._free, self._nfree = {}, 0
  self._sem:release()               -- each waiter wakes the next one
  local tasks = {}
  for t in pairs(self._tasks) do tasks[#tasks + 1] = t end
  if self._reaper then tasks[#tasks + 1] = self._reaper end
  for _, t in ipairs(tasks) do t:cancel("pool closed") end
  local me = current()
  if me and coroutine.isyieldable() then
    for _, t in ipairs(tasks) do
      if t ~= me and not t:done() then pcall(t.await, t) end
    end
  end
end

Pool.__close = Pool.close

function Pool:__tostring()
  return fmt("aio.pg.Pool (%d open, %d idle, max %d%s)", self._size, self._nfree,
    self.max, self._closed and ", closed" or "")
end

return M
