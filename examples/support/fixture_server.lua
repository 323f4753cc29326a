--[[
support/fixture_server.lua: a small HTTP/1.1 server written with aio.tcp,
so that the HTTP examples work offline against something local. It runs in
the example's own loop (its connections are tasks like any other) and
understands just enough HTTP: a request line, headers, a Content-Length body,
keep-alive.

  local fixture = require "support.fixture_server"
  local server <close> = fixture.start(function(req)
    -- req.method, req.path, req.query (table), req.headers, req.body
    aio.sleep(0.5)                               -- handlers may suspend
    return 200, {["content-type"] = "text/plain"}, "ok"
  end)
  print(server.url)                              -- http://127.0.0.1:PORT

A handler returns status, headers, body; body may also be a function
called repeatedly for chunks until it returns nil (with a content-length
header given), for large responses.
]]
local aio = require "aio"

local M = {}

local REASONS = {
  [200] = "OK", [201] = "Created", [204] = "No Content", [301] = "Moved Permanently",
  [302] = "Found", [304] = "Not Modified", [400] = "Bad Request", [404] = "Not Found",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable",
}

local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q)
  local t = {}
  for k, v in (q or ""):gmatch("([^&=]+)=?([^&]*)") do t[unescape(k)] = unescape(v) end
  return t
end

-- Reads one request from the stream; nil when the client closed.
local function read_request(stream)
  local line = stream:read_line()
  if not line or line == "" then return nil end
  local method, target = line:match("^(%u+) (%S+) HTTP/1%.[01]$")
  if not method then return nil end
  local req = {method = method, headers = {}}
  req.path, req.query = target:match("^([^?]*)%??(.*)$")
  req.query = parse_query(req.query)
  while true do
    local h = stream:read_line()
    if not h or h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then req.headers[name:lower()] = value end
  end
  local len = tonumber(req.headers["content-length"] or "0")
  req.body = len > 0 and stream:read_exactly(len) or ""
  return req
end

local function respond(stream, status, headers, body)
  headers = headers or {}
  local chunks = type(body) == "function" and body or nil
  body = chunks and "" or tostring(body or "")
  local out = {("HTTP/1.1 %d %s\r\n"):format(status, REASONS[status] or "Status")}
  local has_length = false
  for k, v in pairs(headers) do
    out[#out + 1] = k .. ": " .. tostring(v) .. "\r\n"
    if k:lower() == "content-length" then has_length = true end
  end
  if not has_length then out[#out + 1] = "content-length: " .. #body .. "\r\n" end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body
  stream:write(table.concat(out))
  if chunks then
    for chunk in chunks do stream:write(chunk) end
  end
end

--- Starts the server on 127.0.0.1 (a free port) with `handler(req)`;
--- returns {url =, port =, requests = count so far, close = fn}, closeable
--- with <close>.
function M.start(handler)
  local server = {requests = 0}
  local listener = aio.tcp.listen("127.0.0.1", 0, function(stream)
    while true do
      local req = read_request(stream)
      if not req then return end
      server.requests = server.requests + 1
      local ok, status, headers, body = pcall(handler, req)
      if not ok then
        if aio.is_error(status, "cancelled") then error(status, 0) end
        status, headers, body = 500, {["content-type"] = "text/plain"}, tostring(status)
      end
      respond(stream, status, headers, body)
    end
  end)
  server.port = listener.port
  server.url = "http://127.0.0.1:" .. listener.port
  function server.close() listener:close() end
  return setmetatable(server, {__close = function() listener:close() end})
end

return M
