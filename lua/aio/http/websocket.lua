--- aio.http.websocket: WebSocket (RFC 6455) clients and server
-- connections. Framing is wslay's (src/http/ws_conn.c), heads are parsed
-- by http-parser; the handshake, I/O, heartbeat and close handshake are
-- aio's. `aio.http.ws_connect` is the client; a server handler upgrades
-- a request with `req:websocket()`. See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"
local tcp = require "aio.io.tcp"

local cws = core.ws
local wrap, parse_head, accept_key, new_key, key_ok =
  cws.wrap, cws.parse_head, cws.accept_key, cws.new_key, cws.key_ok
local Error, is_error, timeout = core.Error, core.is_error, core.timeout

local M = {}

local MAX_MESSAGE = 1024 * 1024      -- default opts.max_message
local HANDSHAKE_TIMEOUT = 10         -- default opts.timeout of ws_connect
local MAX_HEAD = 16 * 1024           -- longest handshake head accepted

---@class aio.http.WebSocket
---@field protocol string? the subprotocol agreed on, or nil
---@field close_code integer? the close code once closed (1006: no close frame)
---@field close_reason string? the close reason once closed
---@field closed boolean the connection is closing or closed
local WebSocket = core.WebSocket
M.WebSocket = WebSocket

--- Iterates over the messages until the connection closes:
--- `for data, kind in ws:messages() do ... end` (suspends).
---@return fun(): string?, string?
function WebSocket:messages()
  return WebSocket.receive, self
end

local argerror = args.error

-- The options common to both ends (argument `n` of `fname`): heartbeat,
-- close_timeout, max_message.
local function check_common(opts, n, fname)
  if opts.heartbeat ~= nil then args.duration(opts.heartbeat, n, fname, "heartbeat") end
  if opts.close_timeout ~= nil then args.duration(opts.close_timeout, n, fname, "close_timeout") end
  args.count(opts.max_message, n, fname, "max_message", 1)
end

-- A list of subprotocol names (a string or an array of them), or nil.
local function check_protocols(p, n, fname)
  if p == nil then return nil end
  if type(p) == "string" then p = { p } end
  if type(p) ~= "table" then argerror(n, fname, "protocols must be a string or an array of strings") end
  for _, name in ipairs(p) do
    if type(name) ~= "string" or not name:match("^[!#$%%&'*+%-.%^_`|~%w]+$") then
      argerror(n, fname, "invalid protocol name " .. tostring(name))
    end
  end
  return p
end

-- Appends the lines of extra `headers` (a table name -> value, option of
-- argument `n`) to `out`: raises `usage` for a CR, LF or NUL.
local function header_lines(headers, n, fname, out)
  args.option(headers, "table", n, fname, "headers")
  for k, v in pairs(headers or {}) do
    k, v = tostring(k), tostring(v)
    if k:find("[\r\n%z:]") or v:find("[\r\n%z]") then
      args.usage("header " .. ("%q"):format(k) .. " has a CR, LF or NUL")
    end
    out[#out + 1] = k .. ": " .. v .. "\r\n"
  end
  return out
end

-- Does the comma-separated header value `v` hold `token` (any case)?
local function has_token(v, token)
  if not v then return false end
  for t in v:gmatch("[^,]+") do
    if t:match("^%s*(.-)%s*$"):lower() == token then return true end
  end
  return false
end

-- Reads an HTTP head (up to its empty line) from `s`; nil at the end of
-- the stream before any byte.
local function read_head(s)
  local lines, size = {}, 0
  while true do
    local line = s:read_line()
    if line == nil then
      if #lines == 0 then return nil end
      error(Error("protocol", "the connection closed in the middle of the handshake"), 0)
    end
    if line == "" and #lines > 0 then break end
    if line ~= "" then
      size = size + #line + 2
      if size > MAX_HEAD then
        error(Error("protocol", "handshake head longer than " .. MAX_HEAD .. " bytes"), 0)
      end
      lines[#lines + 1] = line
    end
  end
  lines[#lines + 1] = "\r\n"
  return table.concat(lines, "\r\n")
end

-- ---------------------------------------------------------------------
-- Client
-- ---------------------------------------------------------------------

-- scheme, host, port, path (with query) of a ws:// or wss:// URL.
local function parse_url(url)
  args.check(url, "string", 1, "ws_connect")
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then
    argerror(1, "ws_connect", "a ws:// or wss:// URL expected")
  end
  if rest:find("#", 1, true) then argerror(1, "ws_connect", "a WebSocket URL has no fragment") end
  local authority, path = rest:match("^([^/?]*)(.*)$")
  if authority:find("@", 1, true) then
    argerror(1, "ws_connect", "credentials in the URL are not supported (use opts.headers)")
  end
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then argerror(1, "ws_connect", "no host in the URL") end
  port = tonumber(port) or (scheme == "wss" and 443 or 80)
  if port < 1 or port > 65535 then argerror(1, "ws_connect", "port out of range") end
  if path == "" then path = "/" elseif path:sub(1, 1) == "?" then path = "/" .. path end
  return scheme, host, math.tointeger(port), path, authority
end

local CLIENT_OPTS = {
  headers = true, protocols = true, timeout = true, max_message = true,
  heartbeat = true, verify = true, ca_file = true, close_timeout = true,
}

-- The opening handshake over the connected stream `s`; returns the
-- WebSocket.
local function client_handshake(s, url, authority, path, opts, protocols)
  local key = new_key()
  local req = {
    "GET ", path, " HTTP/1.1\r\n",
    "Host: ", authority, "\r\n",
    "Upgrade: websocket\r\nConnection: Upgrade\r\n",
    "Sec-WebSocket-Key: ", key, "\r\nSec-WebSocket-Version: 13\r\n",
  }
  if protocols then req[#req + 1] = "Sec-WebSocket-Protocol: " .. table.concat(protocols, ", ") .. "\r\n" end
  header_lines(opts.headers, 2, "ws_connect", req)
  req[#req + 1] = "\r\n"
  s:write(table.concat(req))
  local raw = read_head(s)
  if not raw then
    error(Error("protocol", "the server closed the connection without answering the handshake"), 0)
  end
  local head, why = parse_head(raw, "response")
  if not head then error(Error("protocol", "invalid handshake response: " .. why), 0) end
  local h = head.headers
  if head.status ~= 101 then
    local kind = head.status >= 400 and "http" or "protocol"
    error(Error(kind, ("the server answered the WebSocket handshake with %d"):format(head.status),
      { status = head.status, headers = h }), 0)
  end
  if (h.upgrade or ""):lower() ~= "websocket" or not has_token(h.connection, "upgrade") then
    error(Error("protocol", "the server did not upgrade to WebSocket"), 0)
  end
  if h["sec-websocket-accept"] ~= accept_key(key) then
    error(Error("protocol", "wrong Sec-WebSocket-Accept from the server"), 0)
  end
  if h["sec-websocket-extensions"] then
    error(Error("protocol", "the server chose an extension that was not offered: "
      .. h["sec-websocket-extensions"]), 0)
  end
  local protocol = h["sec-websocket-protocol"]
  if protocol then
    local offered = false
    for _, p in ipairs(protocols or {}) do offered = offered or p == protocol end
    if not offered then
      error(Error("protocol", "the server chose a subprotocol that was not offered: " .. protocol), 0)
    end
  end
  return wrap(s, false, opts.max_message or MAX_MESSAGE, opts.heartbeat, protocol, url,
    opts.close_timeout)
end

-- Connects and runs the handshake; closes the stream on failure.
local function connect(url, opts, protocols, scheme, host, port, path, authority)
  local tls = scheme == "wss" and { verify = opts.verify ~= false, ca_file = opts.ca_file } or nil
  local s = tcp.connect(host, port, { tls = tls })
  local ok, ws = pcall(client_handshake, s, url, authority, path, opts, protocols)
  if ok then return ws end
  s:close()
  error(ws, 0)
end

--- Opens a WebSocket connection to a ws:// or wss:// URL (suspends).
--- opts: headers (extra request headers), protocols (a subprotocol name
--- or an array of them, in order of preference), timeout (seconds for
--- connecting and the handshake, 10), max_message (bytes, 1 MiB: a
--- longer message closes the connection with 1009), heartbeat (seconds
--- between pings; no pong within half of it closes the connection, code
--- 1006), verify (true) and ca_file (wss:// as in aio.http),
--- close_timeout (seconds close() waits for the server, 5).
--- Raises `dns`, `connect`, `tls`, `timeout`, `http` (4xx/5xx answer,
--- with status) or `protocol` (not a valid upgrade); each carries `url`.
---@param url string
---@param opts? {headers?: table<string, string>, protocols?: string|string[], timeout?: number, max_message?: integer, heartbeat?: number, verify?: boolean, ca_file?: string, close_timeout?: number}
---@return aio.http.WebSocket
function M.ws_connect(url, opts)
  local scheme, host, port, path, authority = parse_url(url)
  opts = args.opts(opts, 2, "ws_connect", CLIENT_OPTS)
  local secs = opts.timeout ~= nil and args.duration(opts.timeout, 2, "ws_connect", "timeout")
    or HANDSHAKE_TIMEOUT
  check_common(opts, 2, "ws_connect")
  args.option(opts.ca_file, "string", 2, "ws_connect", "ca_file")
  local protocols = check_protocols(opts.protocols, 2, "ws_connect")
  local ok, r = pcall(timeout, secs, connect, url, opts, protocols, scheme, host, port, path,
    authority)
  if ok then return r end
  if is_error(r, "timeout") and r.seconds == secs then
    r = Error("timeout", ("WebSocket handshake with %s timed out after %g s"):format(url, secs),
      { phase = "connect", seconds = secs })
  end
  if is_error(r) then r.url = url end
  error(r, 0)
end

-- ---------------------------------------------------------------------
-- Server
-- ---------------------------------------------------------------------

-- Why a request head is not a valid WebSocket upgrade, or nil.
local function invalid_upgrade(head)
  local h = head.headers
  if head.method ~= "GET" then return "a WebSocket upgrade is a GET" end
  if head.http_version ~= "1.1" then return "a WebSocket upgrade needs HTTP/1.1" end
  if (h.upgrade or ""):lower() ~= "websocket" then return "no Upgrade: websocket" end
  if not has_token(h.connection, "upgrade") then return "no Connection: Upgrade" end
  if h["sec-websocket-version"] ~= "13" then return "unsupported Sec-WebSocket-Version" end
  local key = h["sec-websocket-key"]
  if not key or not key_ok(key) then return "invalid Sec-WebSocket-Key" end
  return nil
end

-- The first of the client's subprotocols (in its order) the server
-- supports, or nil.
local function choose_protocol(offered, supported)
  if not offered or not supported then return nil end
  for p in offered:gmatch("[^,%s]+") do
    for _, s in ipairs(supported) do
      if p == s then return p end
    end
  end
  return nil
end

local SERVER_OPTS = {
  protocols = true, max_message = true, heartbeat = true, headers = true,
  close_timeout = true,
}

-- Checks the options of req:websocket(opts) (argument `n` of `fname`);
-- returns them and the protocols.
local function check_server_opts(opts, n, fname)
  opts = args.opts(opts, n, fname, SERVER_OPTS)
  check_common(opts, n, fname)
  return opts, check_protocols(opts.protocols, n, fname)
end

-- The answer to an upgrade request `head` ({method=, http_version=,
-- headers=}): the 101 head and the protocol chosen, or nil and why not.
local function handshake(head, opts, protocols)
  local why = invalid_upgrade(head)
  if why then return nil, why end
  local h = head.headers
  local protocol = choose_protocol(h["sec-websocket-protocol"], protocols)
  local out = {
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    "Sec-WebSocket-Accept: ", accept_key(h["sec-websocket-key"]), "\r\n",
  }
  if protocol then out[#out + 1] = "Sec-WebSocket-Protocol: " .. protocol .. "\r\n" end
  header_lines(opts.headers, 1, "websocket", out)
  out[#out + 1] = "\r\n"
  return table.concat(out), protocol
end

-- The server end over `stream`, once the 101 head is written (bytes it
-- has buffered are the client's first frames); `name` for messages.
local function server_end(stream, opts, protocol, name)
  return wrap(stream, true, opts.max_message or MAX_MESSAGE, opts.heartbeat, protocol, name,
    opts.close_timeout)
end

local function not_upgrade(why)
  return Error("protocol", "not a WebSocket upgrade: " .. why, { response_status = 400 })
end

--- req:websocket([opts]) of the HTTP server (aio.http.listen): checks the
--- request is a valid upgrade (else raises `protocol` with
--- response_status = 400, which the server answers with 400), takes the
--- connection over, answers 101 and returns the WebSocket. Suspends.
---@param req aio.http.Request
---@param opts? aio.http.WebSocketServerOptions
---@return aio.http.WebSocket
function M.upgrade(req, opts)
  local protocols
  opts, protocols = check_server_opts(opts, 1, "websocket")
  local resp, protocol = handshake(req, opts, protocols)
  if not resp then error(not_upgrade(protocol), 0) end
  local name = req.remote_address
  local stream = req:_takeover()
  local ok, ws = pcall(function()
    stream:write(resp)
    return server_end(stream, opts, protocol, name)
  end)
  if not ok then
    stream:close()
    error(ws, 0)
  end
  rawset(req, "_ws", ws)          -- the server closes it when the handler returns
  return ws
end

--- Accepts a WebSocket on a raw TCP connection `stream` of aio.tcp.listen
--- (reads the upgrade request itself): answers 101 and returns the
--- WebSocket, or answers 400 and raises `protocol` (response_status =
--- 400). For WebSocket-only servers without HTTP routing.
---@param stream aio.tcp.Stream
---@param opts? aio.http.WebSocketServerOptions
---@return aio.http.WebSocket
function M.accept(stream, opts)
  local protocols
  opts, protocols = check_server_opts(opts, 2, "accept")
  local raw = read_head(stream)
  if not raw then error(Error("closed", "the client closed the connection before its request"), 0) end
  local head, why = parse_head(raw, "request")
  local resp, protocol
  if head then resp, protocol = handshake(head, opts, protocols) else protocol = why end
  if not resp then
    local body = "Bad Request: " .. protocol .. "\n"
    stream:write("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n",
      "Content-Length: ", #body, "\r\nConnection: close\r\n\r\n", body)
    error(not_upgrade(protocol), 0)
  end
  stream:write(resp)
  local host, port = stream:peer_address()
  return server_end(stream, opts, protocol, (host:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(host, port))
end

return M
