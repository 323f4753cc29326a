--- spec/support/server_util.lua: helpers of the HTTP specs: raw TCP
-- exchanges (for malformed input), a raw one-shot server, reading a
-- request's head or a response off a stream, and
-- real clients run as child processes without blocking the loop (curl,
-- Python's aiohttp client in spec/support/aiohttp_client.py).
-- See LICENSE

local aio = require "aio"

local U = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
U.AIOHTTP_CLIENT = HERE .. "aiohttp_client.py"

-- Children run without the sanitizer runtime (it is for us only).
local CLEAN = { LD_PRELOAD = false, ASAN_OPTIONS = false, UBSAN_OPTIONS = false }

--- aio.http.listen on a free port of 127.0.0.1 (opts as listen's).
function U.serve(app, opts)
  opts = opts or {}
  opts.port = opts.port or 0
  return aio.http.listen(app, opts)
end

--- Runs argv as a child (suspends); returns its result table.
function U.run(argv, opts)
  opts = opts or {}
  opts.env = opts.env or CLEAN
  return aio.process.run(argv, opts)
end

--- Reads the head of a request off stream `s` (suspends): its lines up to
--- the blank one, or to the end of the stream.
function U.read_head(s)
  repeat local line = s:read_line() until line == nil or line == ""
end

--- A one-shot HTTP server on aio.tcp, on a free port of 127.0.0.1: answers
--- each request with 200 "ok" and closes the connection.
function U.ok_server()
  return aio.tcp.listen("127.0.0.1", 0, function(s)
    U.read_head(s)
    s:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
  end)
end

--- Reads one HTTP response from stream `s` (suspends): returns
--- {status=, reason=, headers= (lower-case), body=, raw_head=}, or nil if
--- the stream ended first. Handles Content-Length, chunked and
--- close-delimited bodies; `head_only` skips the body (HEAD).
function U.read_response(s, head_only)
  local line = s:read_line()
  if line == nil then return nil end
  local status, reason = line:match("^HTTP/1%.[01] (%d%d%d) ?(.*)$")
  assert(status, "not a status line: " .. line)
  local r = { status = tonumber(status), reason = reason, headers = {}, raw_head = line .. "\r\n" }
  while true do
    local h = assert(s:read_line(), "the stream ended in a head")
    r.raw_head = r.raw_head .. h .. "\r\n"
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    k = k:lower()
    r.headers[k] = r.headers[k] and (r.headers[k] .. ", " .. v) or v
  end
  if head_only or r.status == 204 or r.status == 304 or r.status < 200 then
    r.body = ""
    return r
  end
  if r.headers["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(assert(s:read_line()):match("^%x+"), 16)
      if size == 0 then
        assert(s:read_line() == "")
        break
      end
      parts[#parts + 1] = s:read_exactly(size)
      assert(s:read_line() == "")
    end
    r.body = table.concat(parts)
  elseif r.headers["content-length"] then
    r.body = s:read_exactly(tonumber(r.headers["content-length"]))
  else
    r.body = s:read("a")
  end
  return r
end

--- Connects to the server, writes `data` (a string or an array of
--- strings written one by one), reads everything until the server closes
--- (or `timeout` seconds, 5) and returns it.
function U.raw(port, data, timeout)
  local s <close> = aio.tcp.connect("127.0.0.1", port)
  return aio.timeout(timeout or 5, function()
    if type(data) == "table" then
      for _, d in ipairs(data) do s:write(d) end
    else
      s:write(data)
    end
    return s:read("a")
  end)
end

--- Does the server close the connection within `secs` after this, having
--- sent nothing more? Returns true, or false if the read timed out.
function U.closes(s, secs)
  local ok, r = pcall(aio.timeout, secs or 5, s.read, s)
  if not ok then
    if aio.is_error(r, "timeout") then return false end
    if aio.is_error(r, "io") then return true end
    error(r, 0)
  end
  return r == nil
end

--- curl (CLI) with `args` (suspends): returns stdout, the result table.
function U.curl(args)
  local argv = { "curl", "-s", "--max-time", "20" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r = U.run(argv, { timeout = 30 })
  return r.stdout, r
end

--- Python's aiohttp client: runs spec/support/aiohttp_client.py with a
--- JSON job (see that file) and returns its decoded JSON answer.
function U.aiohttp(job)
  local cjson = require "cjson"
  local r = U.run({ "/usr/bin/python3", U.AIOHTTP_CLIENT }, { input = cjson.encode(job), timeout = 60 })
  assert(r.code == 0, "aiohttp client failed: " .. tostring(r.stderr))
  return cjson.decode(r.stdout)
end

return U
