--- aio.tcp: TCP connections (Streams) and servers on the aio loop.
-- Reading happens only while a task waits for data; writing returns once
-- the kernel took the bytes (backpressure). See LICENSE

local core = require "aio.core"
local background = require "aio.core.background"
local dns = require "aio.io.dns"

local ctcp = core.tcp
local cconnect, clisten = ctcp.connect, ctcp.listen
local tls_context = core.tls.context
local is_error, Error = core.is_error, core.Error
local spawn, current, timeout = core.spawn, core.current, core.timeout
local resolve = dns.resolve

local M = {}

---@class aio.Stream
---@field read fun(self: aio.Stream, n?: integer|"a"): string?
---@field read_line fun(self: aio.Stream): string?
---@field read_exactly fun(self: aio.Stream, n: integer): string
---@field write fun(self: aio.Stream, ...: string|number): aio.Stream
---@field shutdown fun(self: aio.Stream): aio.Stream
---@field close fun(self: aio.Stream): boolean
---@field peer_address fun(self: aio.Stream): string, integer
---@field local_address fun(self: aio.Stream): string, integer
---@field set_limit fun(self: aio.Stream, bytes: integer): aio.Stream
---@field set_timeout fun(self: aio.Stream, seconds?: number): aio.Stream
---@field tls_info fun(self: aio.Stream): {protocol: string, cipher: string, alpn?: string}?
M.Stream = core.Stream

-- `level` 3 (the default) blames the caller of the function that calls
-- argerror; the check_* helpers below pass 4 to skip themselves too.
local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

local function check_host(host, fname)
  if type(host) ~= "string" then
    argerror(1, fname, "string expected, got " .. (host == nil and "no value" or type(host)), 4)
  end
end

local function check_port(port, min, fname)
  if math.type(port) ~= "integer" or port < min or port > 65535 then
    argerror(2, fname, "port must be an integer from " .. min .. " to 65535", 4)
  end
end

local function check_opts(opts, n, fname)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(n, fname, "table expected, got " .. type(opts), 4)
  end
  return opts or {}
end

-- TLS client contexts, one per distinct configuration (verify, CA file,
-- ALPN list): loading the system's certificates is done once.
local contexts = {}

local TLS_KEYS = { server_name = true, verify = true, ca_file = true, alpn = true }

-- Checks opts.tls (true or a table) and returns {context=, server_name=,
-- verify=}, or nil for a plain connection.
local function tls_config(tls, n, fname)
  if tls == nil or tls == false then return nil end
  if tls == true then tls = {} end
  if type(tls) ~= "table" then
    argerror(n, fname, "tls must be true or a table", 4)
  end
  for k in pairs(tls) do
    if not TLS_KEYS[k] then argerror(n, fname, "unknown tls option '" .. tostring(k) .. "'", 4) end
  end
  local verify = tls.verify ~= false
  local ca_file, name, alpn = tls.ca_file, tls.server_name, tls.alpn
  if ca_file ~= nil and type(ca_file) ~= "string" then
    argerror(n, fname, "tls.ca_file must be a string", 4)
  end
  if name ~= nil and type(name) ~= "string" then
    argerror(n, fname, "tls.server_name must be a string", 4)
  end
  if type(alpn) == "string" then alpn = { alpn } end
  if alpn ~= nil then
    local good = type(alpn) == "table" and #alpn > 0
    for _, p in ipairs(good and alpn or {}) do
      if type(p) ~= "string" or #p == 0 or #p > 255 then good = false end
    end
    if not good then
      argerror(n, fname, "tls.alpn must be a protocol name or an array of them", 4)
    end
  end
  local key = ("%s\0%s\0%s"):format(verify, ca_file or "", alpn and table.concat(alpn, "\0") or "")
  local ctx = contexts[key]
  if not ctx then
    ctx = tls_context(verify, ca_file, alpn)
    contexts[key] = ctx
  end
  return { context = ctx, server_name = name, verify = verify }
end

-- The TLS handshake over a connected stream; a failure closes it.
local function starttls(s, tls, host, port)
  local ok, err = pcall(s._starttls, s, tls.context, tls.server_name or host, tls.verify)
  if ok then return s end
  s:close()
  if is_error(err) then
    err.host, err.port = host, port
  end
  error(err, 0)
end

-- Tries each address of `host` in turn; raises the last `connect` error.
-- With `tls`, runs the handshake on the first connection made.
local function connect(host, port, nodelay, family, tls)
  local last
  for _, ip in ipairs(resolve(host, family and { family = family })) do
    local ok, s = pcall(cconnect, ip, port, nodelay)
    if ok then
      if ip ~= host then s:_set_name(host .. ":" .. port) end
      if tls then return starttls(s, tls, host, port) end
      return s
    end
    if not is_error(s, "connect") then error(s, 0) end
    last = s
  end
  last.host = host
  error(last, 0)
end

--- Connects to `host`:`port` (suspends) and returns the Stream. A name is
--- resolved first and each of its addresses tried in turn.
--- opts.timeout: seconds for resolving, connecting and the TLS handshake
--- (raises `timeout` with phase "connect"); opts.nodelay (true:
--- TCP_NODELAY); opts.family ("inet" or "inet6").
--- opts.tls: true or {server_name=, verify= (true), ca_file=, alpn=}: the
--- Stream is over TLS (OpenSSL): the certificate chain (system store, or
--- ca_file) and the host name (server_name, default `host`; also sent as
--- SNI) are verified unless verify = false; alpn is a protocol name or
--- an array of them to offer (see stream:tls_info()).
--- Raises `dns`, `connect` (code, address, port, host) or `tls` (peer,
--- host, port; code "CERTIFICATE_VERIFY_FAILED" with verify_code and
--- verify_message when the certificate is refused).
---@param host string
---@param port integer
---@param opts? {timeout?: number, nodelay?: boolean, family?: "inet"|"inet6", tls?: boolean|{server_name?: string, verify?: boolean, ca_file?: string, alpn?: string|string[]}}
---@return aio.Stream
function M.connect(host, port, opts)
  check_host(host, "connect")
  check_port(port, 1, "connect")
  opts = check_opts(opts, 3, "connect")
  local nodelay = opts.nodelay ~= false
  local secs = opts.timeout
  local tls = tls_config(opts.tls, 3, "connect")
  if secs == nil then return connect(host, port, nodelay, opts.family, tls) end
  if type(secs) ~= "number" or secs ~= secs then
    argerror(3, "connect", "timeout must be a number")
  end
  local ok, r = pcall(timeout, secs, connect, host, port, nodelay, opts.family, tls)
  if ok then return r end
  if is_error(r, "timeout") then
    error(Error("timeout", ("connecting to %s:%d timed out after %g s")
      :format(host, port, secs),
      { host = host, port = port, phase = "connect", seconds = secs }), 0)
  end
  error(r, 0)
end

---@class aio.Server
---@field port integer the port it listens on (the real one when 0 was asked)
---@field host string the address it listens on
local Server = {}
Server.__index = Server

-- Leaving a connection's scope: closes the stream, counts it served.
local Served = {
  __close = function(self)
    self.stream:close()
    self.listener:leave()
  end,
}

-- A connection's task: the handler, then the stream is closed.
local function serve(listener, handler, stream)
  local _ <close> = setmetatable({ stream = stream, listener = listener }, Served)
  return handler(stream)
end

-- The server's accepting task: a task per connection until it is closed.
local function acceptor(listener, handler, name)
  local accept, enter = listener.accept, listener.enter
  while true do
    local ok, s = pcall(accept, listener)
    if ok then
      enter(listener)
      spawn(serve, listener, handler, s)
    elseif is_error(s, "closed") then
      return
    elseif is_error(s, "io") then
      io.stderr:write("aio.tcp: server ", name, ": ", tostring(s), "\n")
    else
      error(s, 0)
    end
  end
end

--- Listens on `host`:`port` (0: any free port, see server.port) and runs
--- `handler(stream)` in a new task for each connection; the stream is
--- closed when the handler returns or fails (a failure is reported like
--- any task's). A host name is resolved first (suspends).
--- opts.backlog (1024), opts.nodelay (true). Raises `io` (code
--- "EADDRINUSE", ...).
---@param host string an address such as "127.0.0.1", "0.0.0.0", "::"
---@param port integer
---@param handler fun(stream: aio.Stream)
---@param opts? {backlog?: integer, nodelay?: boolean}
---@return aio.Server
function M.listen(host, port, handler, opts)
  check_host(host, "listen")
  check_port(port, 0, "listen")
  if type(handler) ~= "function" and not (getmetatable(handler) or {}).__call then
    argerror(3, "listen", "function expected, got " .. type(handler))
  end
  opts = check_opts(opts, 4, "listen")
  local backlog = opts.backlog
  if backlog ~= nil and math.type(backlog) ~= "integer" then
    argerror(4, "listen", "backlog must be an integer")
  end
  local literal = host:find(":", 1, true) or host:find("^%d+%.%d+%.%d+%.%d+$")
  local ip = literal and host or resolve(host)[1]
  local listener = clisten(ip, port, backlog, opts.nodelay ~= false)
  local addr, real = listener:address()
  local name = (addr:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(addr, real)
  local srv = setmetatable({ host = addr, port = real, _listener = listener, _name = name }, Server)
  srv._task = spawn(acceptor, listener, handler, name)
  srv._task.name = "server " .. name
  return srv
end

--- Stops accepting connections (connections being served go on; see
--- wait_closed). In a task, also waits for the accepting task to end.
--- Harmless when repeated.
local function stop(srv) srv._listener:close() end

function Server:close()
  background.close(self, stop)
end

--- Suspends until every connection being served has ended (their handlers
--- returned). With close(), the whole server has stopped.
function Server:wait_closed()
  self._listener:wait_idle()
end

--- <close>: close(), then (when it may suspend) wait_closed().
function Server:__close()
  self:close()
  if current() and coroutine.isyieldable() then self:wait_closed() end
end

--- Suspends until the server is closed (by another task); cancelling the
--- caller closes the server.
function Server:serve_forever()
  local ok, err = pcall(self._task.await, self._task)
  if not ok then
    self:close()
    error(err, 0)
  end
end

--- The address and port the server listens on.
---@return string host, integer port
function Server:address()
  return self.host, self.port
end

function Server:__tostring()
  return ("aio.Server (%s%s)"):format(self._name, self._closed and ", closed" or "")
end

return M
