--- aio.http.client (aio.http): an HTTP client on libcurl's multi interface,
-- driven by the aio loop (see src/http/client_multi.c). Sessions pool
-- connections; the module functions use a default session that aio.run
-- closes when it returns.
-- This file turns options into what the C engine takes (header lines, a
-- body string, a flat spec table) and gives Response its methods.
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"
local retry = require "aio.core.retry"

local Error, is_error = core.Error, core.is_error
local argerror, usage, option, count = args.error, args.usage, args.option, args.count
local cstring = args.cstring
local check = args.self
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local setmetatable, error, pcall = setmetatable, error, pcall
local concat, sort = table.concat, table.sort
local fmt = string.format

---@class aio.http
local http = {}

local cjson_mod
local function cjson()
  cjson_mod = cjson_mod or require "cjson"
  return cjson_mod
end

http.curl_version = core.http_curl_version

local DEFAULT_USER_AGENT = "lua-aio (libcurl/" .. core.http_curl_version .. ")"
local DEFAULT_TIMEOUT = { total = 300 }

-- Methods safe to repeat: only these are retried.
local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, PUT = true,
  DELETE = true, TRACE = true }
-- Methods that send a body (Content-Length: 0 when there is none).
local WITH_BODY = { POST = true, PUT = true, PATCH = true }
-- Failures a retry may cure.
local RETRY_KINDS = { connect = true, io = true, timeout = true }

local REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [406] = "Not Acceptable", [407] = "Proxy Authentication Required",
  [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
  [411] = "Length Required", [412] = "Precondition Failed",
  [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable",
  [417] = "Expectation Failed", [418] = "I'm a teapot",
  [421] = "Misdirected Request", [422] = "Unprocessable Content",
  [425] = "Too Early", [426] = "Upgrade Required",
  [428] = "Precondition Required", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large",
  [451] = "Unavailable For Legal Reasons",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
  [507] = "Insufficient Storage", [508] = "Loop Detected",
  [511] = "Network Authentication Required",
}


-- ---------------------------------------------------------------------
-- Options
-- ---------------------------------------------------------------------

-- A duration option: a number (negative means 0), or false/nil (none).
local function seconds(v, n, fname, label)
  if v == nil or v == false then return v end
  return args.duration(v, n, fname, label)
end

local TIMEOUT_KEYS = { total = true, connect = true, read = true }

-- timeout: a number (total seconds) or {total=, connect=, read=}; false
-- turns every timeout off. Returns {total=, connect=, read=} (false: off).
local function timeouts(v, n, fname)
  if v == false then return { total = false, connect = false, read = false } end
  if type(v) == "number" then
    return { total = args.duration(v, n, fname, "option 'timeout'") }
  end
  if type(v) ~= "table" then
    argerror(n, fname, "option 'timeout' must be a number or a table {total=, connect=, read=}")
  end
  args.keys(v, TIMEOUT_KEYS, n, fname, "timeout")
  return { total = seconds(v.total, n, fname, "option 'timeout.total'"),
           connect = seconds(v.connect, n, fname, "option 'timeout.connect'"),
           read = seconds(v.read, n, fname, "option 'timeout.read'") }
end

-- Raised inside the retry loop when a response has a status to retry.
local RETRY_STATUS = setmetatable({}, { __tostring = function() return "retry status" end })

-- What the retry loop retries: a status listed, or a failure a new
-- attempt may cure.
local function retry_on(err)
  return err == RETRY_STATUS or (is_error(err) and RETRY_KINDS[err.kind] == true)
end

local RETRIES_KEYS = { attempts = true, statuses = true, delay = true, factor = true,
  max_delay = true }

-- retries: {attempts=, statuses=, delay=, factor=, max_delay=} -> the
-- options of aio.core.retry's loop plus `statuses` (a set); false: none.
local function check_retries(v, n, fname)
  if v == nil or v == false then return false end
  if type(v) ~= "table" then
    argerror(n, fname, "option 'retries' must be a table {attempts=, statuses=}")
  end
  args.keys(v, RETRIES_KEYS, n, fname, "retries option")
  local statuses = {}
  for _, s in ipairs(option(v.statuses, "table", n, fname, "option 'retries.statuses'") or {}) do
    if math.type(s) ~= "integer" then
      argerror(n, fname, "option 'retries.statuses' must be an array of status codes")
    end
    statuses[s] = true
  end
  return { statuses = statuses,
    attempts = count(v.attempts, n, fname, "option 'retries.attempts'", 1) or 3,
    delay = seconds(v.delay, n, fname, "option 'retries.delay'") or 0.25,
    factor = option(v.factor, "number", n, fname, "option 'retries.factor'") or 2,
    max_delay = seconds(v.max_delay, n, fname, "option 'retries.max_delay'") or 30,
    jitter = false, retry_on = retry_on }
end


-- ---------------------------------------------------------------------
-- Encoding: headers, query strings, forms
-- ---------------------------------------------------------------------

local function escape(s)
  return (s:gsub("[^%w%-%._~ ]", function(c) return fmt("%%%02X", c:byte()) end)
           :gsub(" ", "+"))
end

local function scalar(v, what)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    return math.type(v) == "integer" and fmt("%d", v) or tostring(v)
  end
  usage(fmt("%s values must be strings or numbers, got %s", what, t))
end

-- {k = v | {v1, v2}} -> "k=v&k=v1&k=v2" (keys sorted, form encoding).
local function urlencode(t, what)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      usage(fmt("%s keys must be strings, got %s", what, type(k)))
    end
    keys[#keys + 1] = k
  end
  sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v, ek = t[k], escape(k)
    if type(v) == "table" then
      for _, x in ipairs(v) do parts[#parts + 1] = ek .. "=" .. escape(scalar(x, what)) end
    else
      parts[#parts + 1] = ek .. "=" .. escape(scalar(v, what))
    end
  end
  return concat(parts, "&")
end

local function with_query(url, query)
  local q = urlencode(query, "query")
  if q == "" then return url end
  local base, frag = url:match("^([^#]*)(#.*)$")
  base, frag = base or url, frag or ""
  return base .. (base:find("?", 1, true) and "&" or "?") .. q .. frag
end

local TOKEN = "^[%w!#$%%&'*+.^_`|~-]+$"

-- {Name = value | {values} | false} -> array of {lname=, line=} sorted by
-- name (false: no line; it only hides a session header of that name).
-- Names must be tokens; values must not hold CR, LF or NUL (`usage`).
local function header_entries(h)
  local list = {}
  for name, value in pairs(h) do
    if type(name) ~= "string" or not name:match(TOKEN) then
      usage(fmt("invalid header name %q: CR, LF, spaces, ':' and other "
        .. "separators are not allowed", tostring(name)))
    end
    local values = type(value) == "table" and value or { value }
    if value == false then
      values = {}
      list[#list + 1] = { lname = name:lower() }
    end
    for _, v in ipairs(values) do
      if type(v) == "number" then v = scalar(v, "header")
      elseif type(v) ~= "string" then
        usage(fmt("header '%s' must be a string or a number, got %s", name, type(v)))
      end
      if v:find("[\r\n%z]") then
        usage(fmt("header '%s' has a value with CR, LF or NUL in it "
          .. "(header injection refused)", name))
      end
      list[#list + 1] = { lname = name:lower(),
        line = v == "" and name .. ";" or name .. ": " .. v }
    end
  end
  sort(list, function(a, b) return a.lname < b.lname end)
  return list
end


-- ---------------------------------------------------------------------
-- Response
-- ---------------------------------------------------------------------

--- An HTTP response: `status`, `ok`, `headers` (lower-case names),
--- `url` (final), `http_version`, `method`, and `body` (a string) unless
--- streamed.
---@class aio.http.Response
---@field status integer
---@field ok boolean
---@field headers table<string, string>
---@field url string
---@field http_version string
---@field method string
---@field body string|nil
local Response = {}
Response.__index = Response
Response.__name = "aio.http.Response"
http.Response = Response

--- The headers as received, in order: an array of `{name, value}` (also
--- as fields `name` and `value`), repeated headers kept apart.
---@return {[1]: string, [2]: string, name: string, value: string}[]
function Response:header_list()
  check(self, Response, "header_list")
  local h, list = self._h, {}
  for i = 1, #h, 2 do
    list[#list + 1] = { h[i], h[i + 1], name = h[i], value = h[i + 1] }
  end
  return list
end

--- The whole body (suspends for a streamed response until it is read).
---@return string
function Response:read_all()
  check(self, Response, "read_all")
  if self.body ~= nil then return self.body end
  local req = self._req
  local parts, n = {}, 0
  while true do
    local chunk = req:read()
    if chunk == nil then break end
    n = n + 1
    parts[n] = chunk
  end
  local body = concat(parts)
  self.body = body
  return body
end

--- The body as text (Lua strings are bytes: no decoding).
---@return string
function Response:text()
  check(self, Response, "text")
  return self.body or self:read_all()
end

--- The body decoded as JSON (lua-cjson); invalid JSON raises `protocol`.
---@return any
function Response:json()
  check(self, Response, "json")
  local ok, v = pcall(cjson().decode, self:text())
  if not ok then
    error(Error("protocol", fmt("%s %s: the response body is not valid JSON: %s",
      self.method, self.url, tostring(v)),
      { url = self.url, method = self.method, status = self.status }), 2)
  end
  return v
end

--- Raises an `http` error (fields status, url, method, response) for a
--- 4xx/5xx status; returns the response otherwise.
---@return aio.http.Response
function Response:raise_for_status()
  check(self, Response, "raise_for_status")
  local s = self.status
  if s >= 400 then
    error(Error("http", fmt("%d %s (%s %s)", s, REASONS[s] or
      (s < 500 and "Client Error" or "Server Error"), self.method, self.url),
      { status = s, url = self.url, method = self.method, response = self }), 2)
  end
  return self
end

--- Iterates over the body in chunks (strings), suspending between chunks
--- of a streamed body; the transfer pauses while the consumer is behind.
--- `for chunk in resp:chunks() do ... end`
---@return fun(): string|nil
function Response:chunks()
  check(self, Response, "chunks")
  local req = self._req
  if req ~= nil and self.body == nil then
    return function() return req:read() end
  end
  local body = self.body
  return function()
    local b = body
    body = nil
    if b == "" then return nil end
    return b
  end
end

--- Closes the response: a streamed transfer that is not finished is
--- aborted and its connection freed. Also `local r <close> = ...`.
function Response:close()
  check(self, Response, "close")
  local req = self._req
  if req ~= nil then req:close() end
end

Response.__close = Response.close

-- Metatable of Response.headers: names are looked up case-insensitively
-- (the keys are lower-case).
local HeadersMT = {
  __index = function(t, k)
    if type(k) == "string" then
      local lk = k:lower()
      if lk ~= k then return rawget(t, lk) end
    end
  end,
}

function Response:__tostring()
  check(self, Response, "__tostring")
  return fmt("aio.http.Response(%d %s)", self.status, self.url)
end


-- ---------------------------------------------------------------------
-- Sessions
-- ---------------------------------------------------------------------

---@class aio.http.Session
local Session = {}
Session.__index = Session
Session.__name = "aio.http.Session"

local SESSION_OPTS = { base_url = true, headers = true, timeout = true,
  max_connections = true, max_per_host = true, cookies = true,
  user_agent = true, retries = true, verify = true, ca_file = true,
  auth = true, proxy = true, http_version = true, follow_redirects = true,
  max_redirects = true, max_body = true, decompress = true }

local REQUEST_OPTS = { headers = true, query = true, body = true, json = true,
  form = true, timeout = true, follow_redirects = true, max_redirects = true,
  verify = true, ca_file = true, auth = true, proxy = true, stream = true,
  max_body = true, http_version = true, decompress = true, retries = true }

-- Options that end up in the engine's spec table, and their spec names.
local SPEC_OPTS = { follow_redirects = true, max_redirects = true,
  verify = true, ca_file = true, auth = true, proxy = true, stream = true,
  max_body = true, http_version = true, decompress = true, timeout = true }

local default              -- the default session (of the current run)

-- Fills spec fields from options `o` (session or request options).
local function fill_spec(spec, o, n, fname)
  if o.follow_redirects ~= nil then spec.follow = not not o.follow_redirects end
  if o.max_redirects ~= nil then
    spec.max_redirects = count(o.max_redirects, n, fname, "option 'max_redirects'", 0) or 10
  end
  if o.verify ~= nil then spec.verify = not not o.verify end
  -- false turns a session's ca_file, proxy, max_body or auth off
  if o.ca_file ~= nil then
    spec.ca_file = o.ca_file ~= false and
      cstring(option(o.ca_file, "string", n, fname, "option 'ca_file'"), n, fname, "option 'ca_file'")
  end
  if o.proxy ~= nil then
    spec.proxy = o.proxy ~= false and
      cstring(option(o.proxy, "string", n, fname, "option 'proxy'"), n, fname, "option 'proxy'")
  end
  if o.stream ~= nil then spec.stream = not not o.stream end
  if o.decompress ~= nil then spec.decompress = not not o.decompress end
  if o.max_body ~= nil then
    spec.max_body = o.max_body ~= false and count(o.max_body, n, fname, "option 'max_body'", 0)
  end
  if o.http_version ~= nil then
    local v = o.http_version
    if type(v) == "number" then v = v == 2 and "2" or fmt("%.1f", v) end
    local c = core.http_versions[v]
    if not c then
      argerror(n, fname, fmt("option 'http_version' must be \"1.0\", \"1.1\", "
        .. "\"2\" or \"2-prior-knowledge\", got %s", tostring(o.http_version)))
    end
    spec.version = c
  end
  if o.auth == false then
    spec.user, spec.password = false, false
  elseif o.auth ~= nil then
    local a = o.auth
    local user, password
    if type(a) == "table" then
      user, password = a.user or a[1], a.password or a[2]
    end
    if type(user) ~= "string" or (password ~= nil and type(password) ~= "string") then
      argerror(n, fname, "option 'auth' must be {user, password} (strings)")
    end
    spec.user = cstring(user, n, fname, "option 'auth' (user)")
    spec.password = cstring(password or "", n, fname, "option 'auth' (password)")
  end
end

local function spec_timeouts(spec, t)
  spec.total = t.total or false
  spec.connect = t.connect or false
  spec.read = t.read or false
end

--- A new session: a connection pool, a DNS cache and (optionally) a
--- cookie jar shared by its requests.
---@param opts? {base_url?: string, headers?: table, timeout?: number|table, max_connections?: integer, max_per_host?: integer, cookies?: boolean, user_agent?: string, retries?: table, verify?: boolean, ca_file?: string, auth?: table, proxy?: string, http_version?: string, follow_redirects?: boolean, max_redirects?: integer, max_body?: integer, decompress?: boolean}
---@return aio.http.Session
function http.Session(opts)
  local fname = "Session"
  opts = args.opts(opts, 1, fname, SESSION_OPTS)
  local self = setmetatable({}, Session)
  if opts.base_url ~= nil then
    local b = option(opts.base_url, "string", 1, fname, "option 'base_url'")
    cstring(b, 1, fname, "option 'base_url'")
    local scheme = b:match("^(%a[%w+.-]*)://")
    if not scheme or (scheme:lower() ~= "http" and scheme:lower() ~= "https") then
      usage(fmt("base_url must be an absolute http or https URL, got '%s'", b))
    end
    self.base_url = b
  end
  self.max_connections = count(opts.max_connections, 1, fname, "option 'max_connections'", 0)
    or 100
  self.max_per_host = count(opts.max_per_host, 1, fname, "option 'max_per_host'", 0) or 0
  self.cookies = not not opts.cookies
  self._retries = check_retries(opts.retries, 1, fname)
  self._timeout = opts.timeout ~= nil and timeouts(opts.timeout, 1, fname)
    or DEFAULT_TIMEOUT
  local spec = {}
  fill_spec(spec, opts, 1, fname)
  spec_timeouts(spec, self._timeout)
  self._spec = spec
  self._spec_mt = { __index = spec }
  local headers = option(opts.headers, "table", 1, fname, "option 'headers'") or {}
  local ua = option(opts.user_agent, "string", 1, fname, "option 'user_agent'")
  local entries = {}
  for _, e in ipairs(header_entries(headers)) do
    if e.line then entries[#entries + 1] = e end
  end
  local has_ua = false
  for _, e in ipairs(entries) do has_ua = has_ua or e.lname == "user-agent" end
  if not has_ua then
    local extra = header_entries({ ["User-Agent"] = ua or DEFAULT_USER_AGENT })
    entries[#entries + 1] = extra[1]
  end
  self._headers = entries
  local lines, empty_body = {}, {}
  for i, e in ipairs(entries) do lines[i] = e.line; empty_body[i] = e.line end
  empty_body[#empty_body + 1] = "Content-Type:"
  self._lines = lines
  self._lines_nobody = empty_body
  return self
end

-- The engine of this session (made on first use; the end of the run that
-- made it closes it, and the session with it).
local function engine(self)
  local eng = self._eng
  if eng ~= nil then return eng end
  eng = core.http_engine({ max_connections = self.max_connections,
    max_per_host = self.max_per_host, cookies = self.cookies }, Response, HeadersMT)
  self._eng = eng
  return eng
end

-- Header lines and body for a request with options `o`.
local function prepare(self, method, o, n, fname)
  local entries = self._headers
  local present = {}
  local lines = {}
  local req
  if o.headers ~= nil then
    req = header_entries(option(o.headers, "table", n, fname, "option 'headers'"))
    for _, e in ipairs(req) do present[e.lname] = true end
  end
  for _, e in ipairs(entries) do
    if not present[e.lname] then lines[#lines + 1] = e.line end
  end
  if req then
    for _, e in ipairs(req) do
      if e.line then lines[#lines + 1] = e.line end
    end
  end
  local body, ctype
  local given = (o.body ~= nil and 1 or 0) + (o.json ~= nil and 1 or 0)
    + (o.form ~= nil and 1 or 0)
  if given > 1 then usage("give only one of the options body, json and form") end
  if o.body ~= nil then
    body = option(o.body, "string", n, fname, "option 'body'")
    ctype = "application/octet-stream"
  elseif o.json ~= nil then
    local ok, s = pcall(cjson().encode, o.json)
    if not ok then usage("cannot encode option 'json': " .. tostring(s)) end
    body, ctype = s, "application/json"
  elseif o.form ~= nil then
    body = urlencode(option(o.form, "table", n, fname, "option 'form'"), "form")
    ctype = "application/x-www-form-urlencoded"
  end
  if body ~= nil then
    if not present["content-type"] then lines[#lines + 1] = "Content-Type: " .. ctype end
    if not present["expect"] then lines[#lines + 1] = "Expect:" end
  elseif WITH_BODY[method] and not present["content-type"] then
    lines[#lines + 1] = "Content-Type:"
  end
  return lines, body
end

-- The absolute URL for `url` (relative to base_url) with `query` added.
-- Only http and https are allowed.
local function resolve(self, url, query)
  local scheme = url:find("^https?://") and "http" or url:match("^(%a[%w+.-]*):")
  if scheme then
    scheme = scheme:lower()
    if scheme ~= "http" and scheme ~= "https" then
      usage(fmt("only http and https URLs are allowed, not %s: (%s)", scheme, url))
    end
  else
    if not self.base_url then
      usage(fmt("'%s' is not an absolute URL (and the session has no base_url)", url))
    end
    url = core.http_urljoin(self.base_url, url)
  end
  if query ~= nil then
    if type(query) ~= "table" then usage("option 'query' must be a table") end
    url = with_query(url, query)
  end
  return url
end

-- Sends the request; an idempotent one with `retries` goes through the
-- retry loop (aio.retry's), which also retries the statuses listed until
-- the last attempt, whose response is returned whatever its status.
local function send(eng, method, url, lines, body, spec, retries)
  if not retries or not IDEMPOTENT[method] then
    return eng:request(method, url, lines, body, spec)
  end
  local attempt, statuses, last = 0, retries.statuses, retries.attempts
  return retry.loop(function()
    attempt = attempt + 1
    local res = eng:request(method, url, lines, body, spec)
    if attempt < last and statuses[res.status] then
      res:close()
      error(RETRY_STATUS, 0)
    end
    return res
  end, retries)
end

-- Valid methods seen so far -> their upper-case form (a few dozen at most).
local METHODS, nmethods = {}, 0

-- The body of every request function: `n` is the position of the method
-- argument in the caller's call (0 for the verb shortcuts).
local function request(self, fname, n, method, url, opts)
  local m = METHODS[method]
  if m == nil then
    if type(method) ~= "string" or not method:match(TOKEN) then
      argerror(n, fname, "method must be an HTTP token like \"GET\"")
    end
    m = method:upper()
    if nmethods < 64 then
      METHODS[method] = m
      nmethods = nmethods + 1
    end
  end
  method = m
  args.carg(url, n + 1, fname, "the URL")
  if opts ~= nil then args.check(opts, "table", n + 2, fname) end
  if core.current() == nil then
    usage(fmt("aio.http.%s suspends and must be called inside a task (a "
      .. "function run by aio.run or aio.spawn)", fname))
  end
  if self._closed then
    error(Error("closed", fmt("%s %s: the session is closed", method, url),
      { url = url, method = method }), 3)
  end
  local lines, body, spec, retries = self._lines, nil, self._spec, self._retries
  if opts == nil then
    url = resolve(self, url)
    if WITH_BODY[method] then lines = self._lines_nobody end
  else
    args.keys(opts, REQUEST_OPTS, n + 2, fname)
    url = resolve(self, url, opts.query)
    lines, body = prepare(self, method, opts, n + 2, fname)
    local custom
    for k in pairs(opts) do
      if SPEC_OPTS[k] then custom = true break end
    end
    if custom then
      spec = setmetatable({}, self._spec_mt)
      fill_spec(spec, opts, n + 2, fname)
      if opts.timeout ~= nil then
        local t, base = timeouts(opts.timeout, n + 2, fname), self._timeout
        if type(opts.timeout) == "number" then
          t.connect, t.read = base.connect, base.read
        elseif opts.timeout ~= false then
          for _, k in ipairs({ "total", "connect", "read" }) do
            if opts.timeout[k] == nil then t[k] = base[k] end
          end
        end
        spec_timeouts(spec, t)
      end
    end
    if opts.retries ~= nil then retries = check_retries(opts.retries, n + 2, fname) end
  end
  return send(self._eng or engine(self), method, url, lines, body, spec, retries)
end

--- Sends a request (suspends) and returns its Response.
---@param method string
---@param url string absolute, or relative to base_url
---@param opts? table see the module documentation
---@return aio.http.Response
function Session:request(method, url, opts)
  check(self, Session, "request")
  return request(self, "request", 1, method, url, opts)
end

local current, find = core.current, string.find

-- The verb methods. A plain call (no options, an absolute http(s) URL, no
-- retries) goes straight to the engine: a shallow call keeps the task's
-- stack small, which matters with thousands of requests in flight.
for _, verb in ipairs({ "get", "post", "put", "patch", "delete", "head" }) do
  local method = verb:upper()
  local nobody = WITH_BODY[method]
  Session[verb] = function(self, url, opts)
    check(self, Session, verb)
    if opts == nil and not self._retries and not self._closed and type(url) == "string"
       and find(url, "^https?://") and not find(url, "\0", 1, true) and current() then
      return (self._eng or engine(self)):request(method, url,
        nobody and self._lines_nobody or self._lines, nil, self._spec)
    end
    return request(self, verb, 0, method, url, opts)
  end
end

--- Closes the session: requests in flight raise `closed`, its pooled
--- connections close. Idempotent; also `local s <close> = Session()`.
function Session:close()
  check(self, Session, "close")
  self._closed = true
  local eng = self._eng
  if eng ~= nil then eng:close() end
end

Session.__close = Session.close

--- Is the session closed?
function Session:closed()
  check(self, Session, "closed")
  return self._closed == true or (self._eng ~= nil and self._eng:closed())
end

--- Counters of the session's engine (active, waiting, easy, spare, polls,
--- watched, hosts), for debugging and tests.
function Session:stats()
  check(self, Session, "stats")
  if self._eng == nil then
    return { active = 0, waiting = 0, easy = 0, spare = 0, polls = 0, watched = 0, hosts = 0 }
  end
  return self._eng:stats()
end

function Session:__tostring()
  check(self, Session, "__tostring")
  return fmt("aio.http.Session(%s)", self:closed() and "closed" or "open")
end


-- ---------------------------------------------------------------------
-- Module functions: the default session of the current run
-- ---------------------------------------------------------------------

--- The default session of the current run (made on first use, closed
--- when aio.run returns).
---@return aio.http.Session
function http.session()
  local s = default
  if s == nil or s._closed or (s._eng ~= nil and s._eng:closed()) then
    s = http.Session()
    default = s
  end
  return s
end

--- Sends a request with the default session (suspends).
---@param method string
---@param url string
---@param opts? table
---@return aio.http.Response
function http.request(method, url, opts)
  return request(http.session(), "request", 1, method, url, opts)
end

for _, verb in ipairs({ "get", "post", "put", "patch", "delete", "head" }) do
  local call = Session[verb]
  http[verb] = function(url, opts)
    return call(http.session(), url, opts)
  end
end

return http
