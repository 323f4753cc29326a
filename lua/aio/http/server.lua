--- aio.http.server: the HTTP server (aio.http.App, aio.http.listen).
-- The C side (src/http/server_*.c) reads and parses each connection,
-- hands each request head over once as a table and spawns a handler task
-- per request, and assembles and writes responses. This file is what
-- handlers see: App (router, middleware, static files), the Request
-- methods, the response a handler returns, and the Server object with
-- its graceful close. See LICENSE
--
-- Takeover (for WebSocket): req:_takeover() -> aio.Stream. Once a
-- handler has decided to leave HTTP on its connection (it writes its own
-- 101 head on the stream, or had the server send nothing yet), the
-- connection stops being parsed as HTTP and becomes a plain Stream (every
-- Stream method works; bytes that arrived after the request head are
-- read first). The server only counts it in stats() until it closes; a
-- graceful close neither waits for nor closes it; a client disconnect no
-- longer cancels the handler. The handler's return value is ignored; an
-- error of it is reported on stderr. When the handler ends (returns,
-- fails or is cancelled), `req._ws`, if set (the WebSocket of
-- req:websocket()), is closed with its close() under aio.shield; the
-- stream itself is left to whoever holds it.

local core = require "aio.core"
local args = require "aio.core.args"
local Event = require("aio.sync.primitives").Event

local chs = core.http_server
local clisten, cpeer, ctakeover = chs.listen, chs.peer, chs.takeover
local cread, cheader_list = chs.read, chs.header_list
local crespond, cstream, cwrite, cfinish = chs.respond, chs.stream, chs.write, chs.finish
local cstate, copen, csend_file = chs.response_state, chs.open_file, chs.send_file
local chttp_date, crealpath = chs.http_date, chs.realpath
local Error, is_error, spawn, current = core.Error, core.is_error, core.spawn, core.current
local ctimeout, cshield = core.timeout, core.shield
local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local setmetatable, rawget, rawset, error, pcall, xpcall = setmetatable, rawget, rawset, error, pcall, xpcall
local concat, sort = table.concat, table.sort
local fmt, char = string.format, string.char
local traceback = debug.traceback

local M = {}

local App   -- the App class (below)

local TEXT = "text/plain; charset=utf-8"
local JSON = "application/json"

local cjson = require "cjson"
local encode, decode = cjson.encode, cjson.decode


local argerror, typename, is_callable = args.error, args.typename, args.is_callable
local usage = args.usage


-- ---------------------------------------------------------------------
-- Request
-- ---------------------------------------------------------------------

---@class aio.http.Request
---@field method string "GET", "POST", ...
---@field path string the path, percent-decoded
---@field target string the request target as sent ("/a%20b?x=1")
---@field query table<string, string|string[]> the query string (repeated keys: arrays)
---@field headers table<string, string> lower-case names; repeated fields joined with ", "
---@field params table<string, string> what the route's {name} segments matched
---@field http_version string "1.1" or "1.0"
---@field remote_address string the client's IP address
local Request = {}

local function unescape(s, plus)
  if plus then s = s:gsub("+", " ") end
  return (s:gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- "a=1&b=2&a=3" -> {a = {"1", "3"}, b = "2"}
local function parse_pairs(s)
  local t = {}
  for part in s:gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=(.*)$")
    if k == nil then k, v = part, "" end
    k, v = unescape(k, true), unescape(v, true)
    local old = t[k]
    if old == nil then t[k] = v
    elseif type(old) == "table" then old[#old + 1] = v
    else t[k] = { old, v } end
  end
  return t
end

local RequestMT = {
  __name = "aio.http.Request",
  __index = function(req, k)
    local m = Request[k]
    if m ~= nil then return m end
    if k == "query" then
      local q = rawget(req, "_q")
      local t = q and parse_pairs(q) or {}
      rawset(req, "query", t)
      return t
    elseif k == "params" then
      local t = {}
      rawset(req, "params", t)
      return t
    elseif k == "remote_address" then
      local host = cpeer(rawget(req, "_c"))
      rawset(req, "remote_address", host)
      return host
    end
    return nil
  end,
  __tostring = function(req)
    return fmt("aio.http.Request (%s %s)", req.method, req.target)
  end,
}
M.Request = Request

local function check_request(req, fname)
  args.self(req, RequestMT, fname)
end

--- The header fields in the order received, names as sent: an array of
--- {name, value} (also .name, .value).
---@return {name: string, value: string}[]
function Request:header_list()
  check_request(self, "header_list")
  return cheader_list(self._c, self._n)
end

--- The next chunk of the body (suspends), nil at its end: for
--- `for chunk in req:chunks() do ... end`. Reading starts when the
--- handler asks (a client waiting for "100 Continue" gets it then); a
--- body larger than max_body raises `http` (the client gets 413).
---@return fun(): string?
function Request:chunks()
  check_request(self, "chunks")
  local c, n = self._c, self._n
  if rawget(self, "_body") ~= nil then
    local body = self._body
    return function()
      local b = body
      body = nil
      return b ~= "" and b or nil
    end
  end
  return function() return cread(c, n) end
end

--- The whole body as a string (suspends; bounded by max_body, past
--- which it raises `http` and the client gets 413 unless handled).
---@return string
function Request:body()
  check_request(self, "body")
  local body = rawget(self, "_body")
  if body ~= nil then return body end
  local c, n = self._c, self._n
  local first = cread(c, n)
  if first == nil then
    body = ""
  else
    local second = cread(c, n)
    if second == nil then
      body = first
    else
      local parts, k = { first, second }, 2
      while true do
        local chunk = cread(c, n)
        if chunk == nil then break end
        k = k + 1
        parts[k] = chunk
      end
      body = concat(parts)
    end
  end
  rawset(self, "_body", body)
  return body
end

local function bad_request(msg)
  return Error("protocol", msg, { response_status = 400 })
end

--- The body decoded as JSON (suspends). Invalid JSON raises `protocol`
--- (the client gets 400 unless the handler catches it).
function Request:json()
  check_request(self, "json")
  local body = self:body()
  local ok, v = pcall(decode, body)
  if not ok then
    error(bad_request("invalid JSON in the request body: " .. tostring(v)), 2)
  end
  return v
end

--- The body decoded as an urlencoded form (suspends): a table, repeated
--- keys as arrays.
---@return table<string, string|string[]>
function Request:form()
  check_request(self, "form")
  return parse_pairs(self:body())
end


-- ---------------------------------------------------------------------
-- Streamed responses
-- ---------------------------------------------------------------------

---@class aio.http.ResponseWriter
local Writer = { __name = "aio.http.ResponseWriter" }
Writer.__index = Writer

--- Sends a chunk of the body (suspends while the client is slower:
--- backpressure). Raises `io` once the client is gone.
---@param chunk string
function Writer:write(chunk)
  args.self(self, Writer, "write")
  if type(chunk) == "number" then chunk = tostring(chunk)
  else args.check(chunk, "string", 1, "write") end
  cwrite(self._c, self._n, chunk)
  return self
end

--- Ends the body. Harmless when repeated; the handler's return closes a
--- writer left open.
function Writer:close()
  args.self(self, Writer, "close")
  if not self._closed then
    self._closed = true
    if cstate(self._c, self._n) == "streaming" then cfinish(self._c, self._n) end
  end
end

Writer.__close = Writer.close

function Writer:__tostring()
  return "aio.http.ResponseWriter" .. (self._closed and " (closed)" or "")
end

--- Starts a streamed response: sends the status and headers now and
--- returns a writer whose write(chunk) sends the body in chunks
--- (Transfer-Encoding: chunked; for an HTTP/1.0 client the connection
--- ends the body), for long responses and server-sent events.
--- Content-Type defaults to application/octet-stream.
---@param status? integer 200
---@param headers? table<string, string|string[]>
---@return aio.http.ResponseWriter
function Request:respond(status, headers)
  check_request(self, "respond")
  status = args.count(status, 1, "respond") or 200
  if headers ~= nil then args.check(headers, "table", 2, "respond") end
  cstream(self._c, self._n, status, headers, "application/octet-stream")
  return setmetatable({ _c = self._c, _n = self._n }, Writer)
end

--- Upgrades the request to a WebSocket (suspends): a request that is not
--- a valid upgrade raises `protocol` and the client gets 400; else the
--- connection leaves HTTP, the client gets 101 and the WebSocket is
--- returned, closed (code 1000) when the handler ends if still open.
--- opts: protocols, headers, max_message, heartbeat, close_timeout (see
--- lua/aio/http/websocket.lua).
---@param opts? aio.http.WebSocketServerOptions
---@return aio.http.WebSocket
function Request:websocket(opts)
  check_request(self, "websocket")
  return require("aio.http.websocket").upgrade(self, opts)
end

--- Internal (WebSocket): takes the connection out of HTTP and returns it
--- as an aio.Stream. See the top of this file.
---@return aio.Stream
function Request:_takeover()
  check_request(self, "_takeover")
  rawset(self, "_taken", true)
  return ctakeover(self._c, self._n)
end


-- ---------------------------------------------------------------------
-- Files
-- ---------------------------------------------------------------------

local CONTENT_TYPES = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", json = "application/json",
  txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  csv = "text/csv; charset=utf-8", xml = "application/xml",
  svg = "image/svg+xml", png = "image/png", jpg = "image/jpeg",
  jpeg = "image/jpeg", gif = "image/gif", webp = "image/webp",
  avif = "image/avif", ico = "image/x-icon", pdf = "application/pdf",
  zip = "application/zip", gz = "application/gzip", tar = "application/x-tar",
  wasm = "application/wasm", woff = "font/woff", woff2 = "font/woff2",
  ttf = "font/ttf", otf = "font/otf", mp3 = "audio/mpeg", ogg = "audio/ogg",
  wav = "audio/wav", mp4 = "video/mp4", webm = "video/webm",
  lua = "text/plain; charset=utf-8",
}
M.content_types = CONTENT_TYPES

local function content_type(path)
  local ext = path:match("%.([%w]+)$")
  return ext and CONTENT_TYPES[ext:lower()] or "application/octet-stream"
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7,
  Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Seconds since the epoch of an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37
-- GMT"), or nil.
local function parse_http_date(s)
  local d, mon, y, h, mi, sec = s:match("^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  local m = MONTHS[mon or ""]
  if not m then return nil end
  y, d = tonumber(y), tonumber(d)
  -- days from the civil date (Howard Hinnant's algorithm)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end
M._parse_http_date = parse_http_date

-- A single "bytes=" range of a file of `size` bytes: offset, length; or
-- false if unsatisfiable; or nil to send the whole file.
local function parse_range(spec, size)
  local a, b = spec:match("^bytes=(%d*)-(%d*)$")
  if a == nil or (a == "" and b == "") then return nil end
  local first, last
  if a == "" then                           -- the last b bytes
    local n = tonumber(b)
    if n == 0 then return false end
    first, last = size - n, size - 1
    if first < 0 then first = 0 end
  else
    first = tonumber(a)
    last = b == "" and size - 1 or tonumber(b)
    if last < first then return nil end
    if last > size - 1 then last = size - 1 end
  end
  if first >= size then return false end
  return first, last - first + 1
end

local function copy_headers(h)
  local t = {}
  if h then for k, v in pairs(h) do t[k] = v end end
  return t
end

local function has_header(h, lname)
  for k in pairs(h) do
    if k:lower() == lname then return true end
  end
  return false
end

local respond_status

-- Sends `path` (res.file) with sendfile: 404 if it is missing (or outside
-- res._root), Last-Modified / If-Modified-Since, a single Range.
local function send_file(req, res, status, headers)
  local path, root = res.file, res._root
  if type(path) ~= "string" then usage("the response's file must be a path string") end
  local ok, f, size, mtime = pcall(copen, path, root)
  if not ok and is_error(f, "io") and f.code == "EISDIR" and res._index then
    path = path:gsub("/*$", "/") .. "index.html"
    ok, f, size, mtime = pcall(copen, path, root)
  end
  if not ok then
    if is_error(f, "io") then
      local code = f.code
      if code == "ENOENT" or code == "ENOTDIR" or code == "EISDIR" or code == "ELOOP"
        or code == "ENAMETOOLONG" then
        return respond_status(req, 404)
      elseif code == "EACCES" or code == "EPERM" then
        return respond_status(req, 403)
      end
    end
    error(f, 0)
  end
  local h = copy_headers(headers)
  local lm = chttp_date(mtime)
  if not has_header(h, "last-modified") then h["Last-Modified"] = lm end
  h["Accept-Ranges"] = "bytes"
  local ctype = content_type(path)
  local rh = req.headers
  local method = req.method
  if status == 200 and (method == "GET" or method == "HEAD") then
    local ims = rh["if-modified-since"]
    local since = ims and parse_http_date(ims)
    if since and mtime <= since and rh["if-none-match"] == nil then
      f:close()
      return crespond(req._c, req._n, 304, h, nil, nil)
    end
    local range = rh.range
    if range and rh["if-range"] == nil then
      local off, len = parse_range(range, size)
      if off == false then
        f:close()
        h["Content-Range"] = "bytes */" .. size
        return crespond(req._c, req._n, 416, h, "Range Not Satisfiable\n", TEXT)
      elseif off then
        h["Content-Range"] = fmt("bytes %d-%d/%d", off, off + len - 1, size)
        return csend_file(req._c, req._n, 206, h, f, off, len, ctype)
      end
    end
  end
  return csend_file(req._c, req._n, status, h, f, 0, size, ctype)
end


-- ---------------------------------------------------------------------
-- Handler results
-- ---------------------------------------------------------------------

local REASONS = {
  [400] = "Bad Request", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout",
  [413] = "Content Too Large", [416] = "Range Not Satisfiable",
  [417] = "Expectation Failed", [500] = "Internal Server Error",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

function respond_status(req, status, headers, body)
  return crespond(req._c, req._n, status, headers,
                  body or ((REASONS[status] or "Error") .. "\n"), TEXT)
end

-- Sends what a handler returned.
local function send_result(req, res)
  local t = type(res)
  if t == "string" then
    return crespond(req._c, req._n, 200, nil, res, TEXT)
  elseif t == "table" then
    local status = res.status
    if status == nil then status = 200
    elseif math.type(status) ~= "integer" then usage("the response's status must be an integer") end
    local headers = res.headers
    if headers ~= nil and type(headers) ~= "table" then usage("the response's headers must be a table") end
    local json = res.json
    if json ~= nil then
      local ok, body = pcall(encode, json)
      if not ok then usage("cannot encode the response's json: " .. tostring(body)) end
      return crespond(req._c, req._n, status, headers, body, JSON)
    end
    if res.file ~= nil then return send_file(req, res, status, headers) end
    local body = res.body
    if body ~= nil and type(body) ~= "string" then
      if type(body) ~= "number" then usage("the response's body must be a string") end
      body = tostring(body)
    end
    return crespond(req._c, req._n, status, headers, body, body and TEXT)
  elseif res == nil then
    usage("the handler returned no response (a string or a table)")
  end
  usage("the handler returned a " .. t .. " (a string or a table expected)")
end

-- Keeps the traceback of a handler's error (cancellations need none).
local function msgh(e)
  if is_error(e, "cancelled") then return e end
  return { err = e, tb = traceback(tostring(e), 2) }
end

local function report(req, e, tb)
  io.stderr:write(fmt("aio.http: handler of %s %s failed: %s\n", tostring(req.method),
    tostring(req.target), tb or tostring(e)))
  io.stderr:flush()
end

-- The end of a handler that took its connection over: closes the
-- WebSocket it made, if any (see the top of this file).
local function taken_end(req)
  local ws = rawget(req, "_ws")
  if ws ~= nil then pcall(cshield, ws.close, ws) end
end

-- What a handler task does once its handler has failed (or its result
-- could not be sent): a cancellation goes on; an error becomes the status
-- its `response_status` field asks for, or 500 (reported on stderr with
-- its traceback).
local function failed(req, res)
  local taken = rawget(req, "_taken")
  if taken then taken_end(req) end
  if is_error(res, "cancelled") then error(res, 0) end
  local e, tb = res.err, res.tb
  if taken then return report(req, e, tb) end
  local status = is_error(e) and math.type(e.response_status) == "integer" and e.response_status
  if status then
    if cstate(req._c, req._n) == "none" then
      respond_status(req, status, nil, tostring(e.message) .. "\n")
    end
    return
  end
  report(req, e, tb)
  if cstate(req._c, req._n) == "none" then respond_status(req, 500) end
end

-- The body of a handler task: runs the handler and sends its result.
local function make_runner(handler)
  local chain_of
  if getmetatable(handler) == App then      -- skip App's __call
    local app = handler
    chain_of = function() return app._chain or app:_build() end
  end
  return function(req)
    local ok, res = xpcall(chain_of and chain_of() or handler, msgh, req)
    if ok then
      if rawget(req, "_taken") then return taken_end(req) end
      if type(res) == "string" then          -- the common case first
        local ok2, e2 = xpcall(crespond, msgh, req._c, req._n, 200, nil, res, TEXT)
        if ok2 then return end
        return failed(req, e2)
      end
      if res == nil then
        local state = cstate(req._c, req._n)
        if state == "streaming" then return cfinish(req._c, req._n) end
        if state ~= "none" then return end
      end
      local ok2, e2 = xpcall(send_result, msgh, req, res)
      if ok2 then return end
      res = e2
    end
    return failed(req, res)
  end
end


-- ---------------------------------------------------------------------
-- App: router, middleware, static files
-- ---------------------------------------------------------------------

---@class aio.http.App
App = { __name = "aio.http.App" }
App.__index = App

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true,
  HEAD = true, OPTIONS = true }

--- A new application: routes, middleware and static directories; pass it
--- to aio.http.listen (it is also callable as a handler: app(req)).
---@return aio.http.App
function M.App()
  return setmetatable({ _exact = {}, _patterns = {}, _mw = {}, _chain = false }, App)
end

local function check_app(app, fname)
  args.self(app, App, fname)
end

-- Compiles "/users/{id}/files/{rest...}" into a Lua pattern and the
-- names of its captures; nil for a pattern without {}.
local function compile(pattern, fname)
  if not pattern:find("{", 1, true) then return nil end
  local names, parts, pos = {}, { "^" }, 1
  while true do
    local s, e, name, rest = pattern:find("{([%a_][%w_]*)(%.?%.?%.?)}", pos)
    if not s then break end
    parts[#parts + 1] = pattern:sub(pos, s - 1):gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
    if rest == "..." then
      if e ~= #pattern then argerror(2, fname, "{" .. name .. "...} must end the pattern") end
      parts[#parts + 1] = "(.*)"
    elseif rest == "" then
      parts[#parts + 1] = "([^/]+)"
    else
      argerror(2, fname, "invalid segment in pattern '" .. pattern .. "'")
    end
    names[#names + 1] = name
    pos = e + 1
  end
  local tail = pattern:sub(pos)
  if tail:find("[{}]") then argerror(2, fname, "invalid segment in pattern '" .. pattern .. "'") end
  parts[#parts + 1] = tail:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  parts[#parts + 1] = "$"
  return concat(parts), names
end

local function add_route(app, method, pattern, handler, fname, first)
  args.check(method, "string", first, fname)
  method = method:upper()
  if method ~= "*" and not method:match("^[%w!#$%%&'*+.^_`|~-]+$") then
    argerror(first, fname, "invalid method '" .. method .. "'")
  end
  if type(pattern) ~= "string" or pattern:sub(1, 1) ~= "/" then
    argerror(first + 1, fname, "pattern must be a string starting with '/'")
  end
  args.callable(handler, first + 2, fname)
  local lpat, names = compile(pattern, fname)
  local route
  if lpat == nil then
    route = app._exact[pattern]
    if route == nil then
      route = { methods = {} }
      app._exact[pattern] = route
    end
  else
    for _, r in ipairs(app._patterns) do
      if r.pattern == pattern then route = r break end
    end
    if route == nil then
      route = { pattern = pattern, lua = lpat, names = names, methods = {} }
      app._patterns[#app._patterns + 1] = route
    end
  end
  route.methods[method] = handler
  return app
end

--- Adds a route: `handler(req)` answers `method` ("GET", ..., or "*" for
--- any) on paths matching `pattern`: literal segments, `{name}` (one
--- segment, in req.params.name) and a final `{name...}` (the rest of the
--- path). Unknown paths get 404, known paths with another method 405 with
--- Allow; HEAD is answered by the GET route when there is no HEAD route.
---@param method string
---@param pattern string
---@param handler fun(req: aio.http.Request): any
---@return aio.http.App
function App:route(method, pattern, handler)
  check_app(self, "route")
  self._chain = false
  return add_route(self, method, pattern, handler, "route", 2)
end

for m in pairs(METHODS) do
  local lower = m:lower()
  App[lower] = function(self, pattern, handler)
    check_app(self, lower)
    self._chain = false
    return add_route(self, m, pattern, handler, lower, 1)
  end
end

--- Adds a middleware, `fn(req, next)`, that runs around every request
--- (404s and 405s included) and returns what `next(req)` returns, or its
--- own response. The first added is the outermost.
---@param fn fun(req: aio.http.Request, next: fun(req: aio.http.Request): any): any
---@return aio.http.App
function App:use(fn)
  check_app(self, "use")
  args.callable(fn, 1, "use")
  self._mw[#self._mw + 1] = fn
  self._chain = false
  return self
end

local function allow_of(methods, allow)
  for m in pairs(methods) do
    if m ~= "*" then allow[m] = true end
    if m == "GET" then allow.HEAD = true end
  end
end

-- Finds the handler for req; fills req.params. Returns the handler, or
-- nil and a ready response (404, 405).
local function route(app, req)
  local method, path = req.method, req.path
  local r = app._exact[path]
  if r ~= nil then
    local ms = r.methods
    local h = ms[method] or ms["*"] or (method == "HEAD" and ms.GET)
    if h then return h end
  end
  local allow
  if r ~= nil then
    allow = {}
    allow_of(r.methods, allow)
  end
  for _, p in ipairs(app._patterns) do
    local caps = { path:match(p.lua) }
    if caps[1] ~= nil then
      local ms = p.methods
      local h = ms[method] or ms["*"] or (method == "HEAD" and ms.GET)
      if h then
        local params, names = {}, p.names
        for i = 1, #names do params[names[i]] = caps[i] end
        rawset(req, "params", params)
        return h
      end
      allow = allow or {}
      allow_of(ms, allow)
    end
  end
  if allow == nil then return nil, { status = 404, body = "Not Found\n" } end
  local list = {}
  for m in pairs(allow) do list[#list + 1] = m end
  sort(list)
  return nil, { status = 405, headers = { Allow = concat(list, ", ") }, body = "Method Not Allowed\n" }
end

-- The app's request handler: middleware around the router, rebuilt after
-- a change.
local function chain(app)
  local h = function(req)
    local handler, res = route(app, req)
    if handler then return handler(req) end
    return res
  end
  local mw = app._mw
  for i = #mw, 1, -1 do
    local fn, nxt = mw[i], h
    h = function(req) return fn(req, nxt) end
  end
  app._chain = h
  return h
end

function App:_build() return chain(self) end

function App:__call(req)
  local h = self._chain or chain(self)
  return h(req)
end

--- Serves the files under directory `dir` at `prefix` ("/static" serves
--- dir/a.css as /static/a.css) with GET and HEAD: sendfile, Content-Type
--- by extension, Last-Modified / If-Modified-Since, Range. A path never
--- leaves `dir`: ".." segments (also percent-encoded) and symlinks that
--- lead outside give 404, a NUL gives 400; a directory serves its
--- index.html.
---@param prefix string
---@param dir string
---@return aio.http.App
function App:static(prefix, dir)
  check_app(self, "static")
  if type(prefix) ~= "string" or prefix:sub(1, 1) ~= "/" then
    argerror(1, "static", "prefix must be a string starting with '/'")
  end
  args.check(dir, "string", 2, "static")
  local root, msg = crealpath(dir)
  if root == nil then
    error(Error("io", "cannot serve " .. dir .. ": " .. tostring(msg), { path = dir }), 2)
  end
  prefix = prefix:gsub("/+$", "")
  local function serve(req)
    local rel = req.params.path or ""
    if rel:find("\0", 1, true) then return { status = 400, body = "Bad Request\n" } end
    for seg in rel:gmatch("[^/]+") do
      if seg == ".." then return { status = 404, body = "Not Found\n" } end
    end
    return { file = root .. "/" .. rel, _root = root, _index = true }
  end
  self:get(prefix .. "/{path...}", serve)
  if prefix ~= "" then self:get(prefix, function(req)
    return { status = 308, headers = { Location = req.target:gsub("^([^?]*)", "%1/") }, body = "" }
  end) end
  return self
end

function App:__tostring()
  local n = 0
  for _ in pairs(self._exact) do n = n + 1 end
  return fmt("aio.http.App (%d routes)", n + #self._patterns)
end


-- ---------------------------------------------------------------------
-- Server
-- ---------------------------------------------------------------------

---@class aio.http.Server
---@field host string the address it listens on
---@field port integer the port (the real one when 0 was asked)
---@field url string "http://host:port"
local Server = { __name = "aio.http.Server" }
Server.__index = Server

local LISTEN_OPTS = { host = true, port = true, backlog = true, reuse_port = true,
  max_connections = true, max_header_size = true, max_body = true,
  header_timeout = true, idle_timeout = true, body_timeout = true, grace = true }

local function check_opts(opts)
  opts = args.opts(opts, 2, "listen", LISTEN_OPTS)
  args.option(opts.host, "string", 2, "listen", "host")
  local port = args.count(opts.port, 2, "listen", "port", 0)
  if port and port > 65535 then argerror(2, "listen", "port must be at most 65535") end
  local o = { host = opts.host, port = port, reuse_port = opts.reuse_port == true }
  o.backlog = args.count(opts.backlog, 2, "listen", "backlog", 1)
  o.max_connections = args.count(opts.max_connections, 2, "listen", "max_connections", 0)
  o.max_header_size = args.count(opts.max_header_size, 2, "listen", "max_header_size", 256)
  o.max_body = args.count(opts.max_body, 2, "listen", "max_body", 0)
  for _, k in ipairs({ "header_timeout", "idle_timeout", "body_timeout", "grace" }) do
    if opts[k] ~= nil then o[k] = args.duration(opts[k], 2, "listen", k) end
  end
  return o
end

--- Listens for HTTP on opts.host ("127.0.0.1") and opts.port (0: any
--- free port, see server.port) and serves each request with `app` (an
--- App, or a function handler(req)) in a task of its own. Starts
--- accepting at once. Options: backlog (1024), reuse_port (false),
--- max_connections (0: no limit), max_header_size (8192 -> 431),
--- max_body (1 MiB -> 413; 0: no limit), header_timeout (10 s -> 408),
--- idle_timeout (60 s, keep-alive), body_timeout (60 s of silence while
--- reading a body), grace (0: the default of server:close()).
---@param app aio.http.App|fun(req: aio.http.Request): any
---@param opts? table
---@return aio.http.Server
function M.listen(app, opts)
  if not is_callable(app) then argerror(1, "listen", "App or function expected, got " .. typename(app)) end
  opts = check_opts(opts)
  local host = opts.host or "127.0.0.1"
  local literal = host:find(":", 1, true) or host:find("^%d+%.%d+%.%d+%.%d+$")
  local ip = literal and host or require("aio.io.dns").resolve(host)[1]
  local limits = {
    backlog = opts.backlog, reuse_port = opts.reuse_port == true,
    max_connections = opts.max_connections, max_header_size = opts.max_header_size,
    max_body = opts.max_body or 1024 * 1024,
    header_timeout = opts.header_timeout or 10, idle_timeout = opts.idle_timeout or 60,
    body_timeout = opts.body_timeout or 60,
  }
  local c = clisten(ip, opts.port or 0, limits)
  local addr, port = c:address()
  local name = (addr:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(addr, port)
  local srv = setmetatable({
    host = addr, port = port, url = "http://" .. name,
    _c = c, _name = name, _grace = opts.grace or 0, _done = Event(),
  }, Server)
  local run = make_runner(app)
  srv._task = spawn(c.dispatch, c, spawn, run, RequestMT)
  srv._task.name = "http server " .. name
  return srv
end

local function check_server(srv, fname)
  args.self(srv, Server, fname)
end

local function can_wait()
  return current() ~= nil and coroutine.isyieldable()
end

-- The graceful close, under aio.shield: stop accepting and close idle
-- connections; wait up to `grace` for the requests in flight (answered
-- with Connection: close); cancel the handlers left and close their
-- connections; wait for them to unwind.
local function graceful(srv, grace)
  local c = srv._c
  c:shutdown()
  if grace > 0 then
    local ok, err = pcall(ctimeout, grace, c.wait_idle, c)
    if not ok and not is_error(err, "timeout") then error(err, 0) end
  end
  c:abort()
  c:wait_idle()
  c:close()
  local t = srv._task
  if t ~= current() and not t:done() then pcall(t.await, t) end
end

--- Stops the server: stops accepting, closes idle keep-alive connections,
--- lets the requests in flight finish for up to `grace` seconds (their
--- responses close their connections), then cancels the handlers left
--- and closes their connections. Suspends until done when called from a
--- task (the close runs shielded: cancelling the caller does not cut it
--- short). Harmless when repeated: a second call waits for the first.
---@param grace? number seconds (default: listen's opts.grace, 0)
function Server:close(grace)
  check_server(self, "close")
  grace = grace == nil and self._grace or args.duration(grace, 1, "close")
  if self._closing then
    if can_wait() and not self._done:is_set() then self._done:wait() end
    return
  end
  self._closing = true
  if not can_wait() then
    local c = self._c
    c:abort()
    c:close()
    self._done:set()
    return
  end
  local ok, err = pcall(cshield, graceful, self, grace)
  self._done:set()
  if not ok then error(err, 0) end
end

--- <close>: close() with the default grace.
function Server:__close()
  self:close()
end

--- Suspends until the server is closed (by close(), from another task).
function Server:wait()
  check_server(self, "wait")
  self._done:wait()
end

--- Counters: connections (open), requests (answered), in_flight (handler
--- tasks running), accepted (connections ever), taken_over (connections
--- that left HTTP, still open).
---@return {connections: integer, requests: integer, in_flight: integer, accepted: integer, taken_over: integer}
function Server:stats()
  check_server(self, "stats")
  return self._c:stats()
end

function Server:__tostring()
  return fmt("aio.http.Server (%s%s)", self._name, self._closing and ", closed" or "")
end

return M
