--- aio.tcp: TCP connections (Streams) and servers on the aio loop.
-- Reading happens only while a task waits for data; writing returns once
-- the kernel took the bytes (backpressure). See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"
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

-- Arguments 1 and 2 of connect and listen: a host and a port >= `min`.
local function check_address(host, port, min, fname)
  args.carg(host, 1, fname, "host")
  if math.type(port) ~= "integer" or port < min or port > 65535 then
    args.error(2, fname, "port must be an integer from " .. min .. " to 65535")
  end
end

-- TLS client contexts, one per distinct configuration (verify, CA file,
-- ALPN list): loading the system's certificates is done once.
local contexts = {}

local TLS_KEYS = { server_name = true, verify = true, ca_file = true, alpn = true }

-- Checks opts.tls (true or a table; argument `n` of `fname`) and returns
-- {context=, server_name=, verify=}, or nil for a plain connection.
local function tls_config(tls, n, fname)
  if tls == nil or tls == false then return nil end
  if tls == true then tls = {} end
  if type(tls) ~= "table" then args.error(n, fname, "tls must be true or a table") end
  args.keys(tls, TLS_KEYS, n, fname, "tls option")
  local verify = tls.verify ~= false
  local ca_file = args.option(tls.ca_file, "string", n, fname, "tls.ca_file")
  local name = args.option(tls.server_name, "string", n, fname, "tls.server_name")
  local alpn = tls.alpn
  if type(alpn) == "string" then alpn = { alpn } end
  if alpn ~= nil then
    local good = type(alpn) == "table" and #alpn > 0
    for _, p in ipairs(good and alpn or {}) do
      if type(p) ~= "string" or #p == 0 or #p > 255 then good = false end
    end
    if not good then
      args.error(n, fname, "tls.alpn must be a protocol name or an array of them")
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
  check_address(host, port, 1, "connect")
  opts = args.opts(opts, 3, "connect")
  local nodelay = opts.nodelay ~= false
  local secs = opts.timeout
  local tls = tls_config(opts.tls, 3, "connect")
  if secs == nil then return connect(host, port, nodelay, opts.family, tls) end
  secs = args.duration(secs, 3, "connect", "timeout")
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
Server.__name = "aio.Server"
local check = args.self

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
--- opts.backlog (1024), opts.nodelay (true), opts.reuse_port (false:
--- SO_REUSEPORT, for several processes on one port). Raises `io` (code
--- "EADDRINUSE", ...).
---@param host string an address such as "127.0.0.1", "0.0.0.0", "::"
---@param port integer
---@param handler fun(stream: aio.Stream)
---@param opts? {backlog?: integer, nodelay?: boolean, reuse_port?: boolean}
---@return aio.Server
function M.listen(host, port, handler, opts)
  check_address(host, port, 0, "listen")
  args.callable(handler, 3, "listen")
  opts = args.opts(opts, 4, "listen")
  local backlog = args.count(opts.backlog, 4, "listen", "backlog")
  local literal = host:find(":", 1, true) or host:find("^%d+%.%d+%.%d+%.%d+$")
  local ip = literal and host or resolve(host)[1]
  local listener = clisten(ip, port, backlog, opts.nodelay ~= false, opts.reuse_port == true)
  local addr, real = listener:address()
  local name = (addr:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(addr, real)
  local srv = setmetatable({ host = addr, port = real, _listener = listener, _name = name }, Server)
  return background.start(srv, "server " .. name, acceptor, listener, handler, name)
end

--- Stops accepting connections (connections being served go on; see
--- wait_closed). In a task, also waits for the accepting task to end.
--- Harmless when repeated.
Server.close = background.closer(Server, function(srv) srv._listener:close() end)

--- Suspends until every connection being served has ended (their handlers
--- returned). With close(), the whole server has stopped.
function Server:wait_closed()
  check(self, Server, "wait_closed")
  self._listener:wait_idle()
end

--- <close>: close(), then (when it may suspend) wait_closed().
function Server:__close()
  check(self, Server, "__close")
  self:close()
  if current() and coroutine.isyieldable() then self:wait_closed() end
end

--- Suspends until the server is closed (by another task); cancelling the
--- caller closes the server.
function Server:serve_forever()
  check(self, Server, "serve_forever")
  local ok, err = pcall(self._task.await, self._task)
  if not ok then
    self:close()
    error(err, 0)
  end
end

--- The address and port the server listens on.
---@return string host, integer port
function Server:address()
  check(self, Server, "address")
  return self.host, self.port
end

function Server:__tostring()
  check(self, Server, "__tostring")
  return ("aio.Server (%s%s)"):format(self._name, self._closed and ", closed" or "")
end

return M
