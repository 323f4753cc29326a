-- Malformed requests and request smuggling shapes over raw TCP: each gets
-- its error status and a closed connection, and never reaches a handler
-- (nor lets a second request through).
local aio = require "aio"
local H = require "helper"
local U = require "support.server_util"

local function server()
  local hits = {}
  local app = aio.http.App()
  app:route("*", "/{any...}", function(req)
    hits[#hits + 1] = req.method .. " " .. req.path
    local ok, body = pcall(req.body, req)
    return ok and ("body=" .. body) or error(body, 0)
  end)
  local srv = aio.http.listen(app, { port = 0, max_header_size = 4096 })
  return srv, hits
end

-- Sends `data` and returns the status of the answer (nil if none), whether
-- the server closed, and everything received.
local function exchange(port, data)
  local out = U.raw(port, data, 5)
  return tonumber(out:match("^HTTP/1%.1 (%d%d%d)")), out
end

local function req(head, body)
  return head:gsub("\n", "\r\n") .. (body or "")
end

local BAD = {
  { "Content-Length with Transfer-Encoding",
    req("POST / HTTP/1.1\nHost: x\nContent-Length: 5\nTransfer-Encoding: chunked\n\n", "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n") },
  { "Transfer-Encoding with Content-Length",
    req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: 5\n\n", "0\r\n\r\n") },
  { "duplicate Content-Length",
    req("POST / HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 3\n\n", "abc") },
  { "differing Content-Lengths",
    req("POST / HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 30\n\n", "abc") },
  { "signed Content-Length", req("POST / HTTP/1.1\nHost: x\nContent-Length: +3\n\n", "abc") },
  { "negative Content-Length", req("POST / HTTP/1.1\nHost: x\nContent-Length: -3\n\n", "abc") },
  { "Content-Length list", req("POST / HTTP/1.1\nHost: x\nContent-Length: 3, 3\n\n", "abc") },
  { "Content-Length with spaces inside", req("POST / HTTP/1.1\nHost: x\nContent-Length: 3 3\n\n", "abc") },
  { "obs-fold", req("GET / HTTP/1.1\nHost: x\nX-A: a\n b\n\n") },
  { "obs-fold with a tab", req("GET / HTTP/1.1\nHost: x\nX-A: a\n\tb\n\n") },
  { "first header line folded", req("GET / HTTP/1.1\n Host: x\n\n") },
  { "bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n" },
  { "bare LF inside a head", "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n" },
  { "bare LF ending the head", "GET / HTTP/1.1\r\nHost: x\r\n\n" },
  { "bare CR", "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n" },
  { "whitespace before the colon", req("GET / HTTP/1.1\nHost: x\nContent-Length : 3\n\n", "abc") },
  { "tab before the colon", req("GET / HTTP/1.1\nHost: x\nX-A\t: b\n\n") },
  { "NUL in a header value", req("GET / HTTP/1.1\nHost: x\nX-A: a\0b\n\n") },
  { "control byte in a header value", req("GET / HTTP/1.1\nHost: x\nX-A: a\1b\n\n") },
  { "invalid header name", req("GET / HTTP/1.1\nHost: x\nX(A): b\n\n") },
  { "Transfer-Encoding: chunked, identity",
    req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked, identity\n\n", "3\r\nabc\r\n0\r\n\r\n") },
  { "Transfer-Encoding: identity", req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: identity\n\n", "abc") },
  { "Transfer-Encoding: gzip, chunked",
    req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: gzip, chunked\n\n", "3\r\nabc\r\n0\r\n\r\n") },
  { "Transfer-Encoding: xchunked", req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: xchunked\n\n", "3\r\nabc\r\n0\r\n\r\n") },
  { "two Transfer-Encoding fields",
    req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n", "3\r\nabc\r\n0\r\n\r\n") },
  { "Transfer-Encoding in HTTP/1.0",
    req("POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n", "3\r\nabc\r\n0\r\n\r\n") },
  { "HTTP/1.1 without Host", req("GET / HTTP/1.1\nX-A: b\n\n") },
  { "two Host fields", req("GET / HTTP/1.1\nHost: a\nHost: b\n\n") },
  { "a space in the target", req("GET /a b HTTP/1.1\nHost: x\n\n") },
  { "garbage request line", req("HELLO\n\n") },
}

-- Chunked bodies: the head is fine, so a handler reads the body and the
-- parser's error reaches the client as 400 (its read raises).
local BAD_CHUNKED = {
  { "non-hex chunk size", "zz\r\nabc\r\n0\r\n\r\n" },
  { "negative chunk size", "-3\r\nabc\r\n0\r\n\r\n" },
  { "whitespace after the chunk size", "3 \r\nabc\r\n0\r\n\r\n" },
  { "junk after the chunk size", "3 xyz\r\nabc\r\n0\r\n\r\n" },
  { "whitespace before the chunk size", " 3\r\nabc\r\n0\r\n\r\n" },
  { "chunk size overflow", "fffffffffffffffff\r\nabc\r\n0\r\n\r\n" },
  { "bare LF in chunk framing", "3\nabc\n0\n\n" },
  { "bare LF after chunk data", "3\r\nabc\n0\r\n\r\n" },
  { "chunk data longer than its size", "3\r\nabcd\r\n0\r\n\r\n" },
  { "oversize chunk extension", "3;" .. ("x"):rep(5000) .. "\r\nabc\r\n0\r\n\r\n" },
  { "folded trailer", "3\r\nabc\r\n0\r\nX: a\r\n b\r\n\r\n" },
}

describe("aio.http server against malformed input", function()
  for _, case in ipairs(BAD) do
    it("answers 400 and closes: " .. case[1], H.async(function()
      local srv <close>, hits = server()
      local status, out = exchange(srv.port, case[2])
      assert.are.equal(400, status, out)
      assert.matches("Connection: close\r\n", out)
      assert.are.same({}, hits)
    end))
  end

  for _, case in ipairs(BAD_CHUNKED) do
    it("answers 400 and closes for a chunked body with " .. case[1], H.async(function()
      local srv <close>, hits = server()
      local status, out = exchange(srv.port,
        req("POST /c HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n", case[2]) ..
        "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.are.equal(400, status, out)
      assert.matches("Connection: close\r\n", out)
      assert.is_nil(out:find("HTTP/1.1", 2, true), "a second response came: " .. out)
      assert.are.same({ "POST /c" }, hits)
    end))
  end

  it("accepts chunk extensions and trailers of sane size", H.async(function()
    local srv <close>, hits = server()
    local status, out = exchange(srv.port,
      req("POST /c HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nConnection: close\n\n",
          "3;name=value\r\nabc\r\n2;x\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"))
    assert.are.equal(200, status, out)
    assert.matches("body=abcde$", out)
    assert.are.same({ "POST /c" }, hits)
  end))

  it("accepts optional whitespace around header values and Content-Length", H.async(function()
    local srv <close> = server()
    local status, out = exchange(srv.port,
      req("POST /c HTTP/1.1\nHost:x\nContent-Length: \t3 \nConnection: close\n\n", "abc"))
    assert.are.equal(200, status, out)
    assert.matches("body=abc$", out)
  end))

  it("answers 431 to a head larger than max_header_size", H.async(function()
    local srv <close>, hits = server()
    local status = exchange(srv.port, req("GET / HTTP/1.1\nHost: x\nX-Big: " .. ("b"):rep(5000) .. "\n\n"))
    assert.are.equal(431, status)
    status = exchange(srv.port, "GET /" .. ("u"):rep(5000) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(431, status)
    local many = { "GET / HTTP/1.1\r\nHost: x\r\n" }
    for i = 1, 120 do many[#many + 1] = "X-" .. i .. ": y\r\n" end
    many[#many + 1] = "\r\n"
    assert.are.equal(431, (exchange(srv.port, table.concat(many))))
    assert.are.same({}, hits)
  end))

  it("answers 505 to other HTTP versions and 417 to unknown expectations", H.async(function()
    local srv <close>, hits = server()
    assert.are.equal(505, (exchange(srv.port, req("GET / HTTP/2.0\nHost: x\n\n"))))
    assert.are.equal(417, (exchange(srv.port, req("POST / HTTP/1.1\nHost: x\nExpect: 200-ok\nContent-Length: 1\n\n", "a"))))
    assert.are.same({}, hits)
  end))

  it("never lets a smuggled request through after CL+TE", H.async(function()
    local srv <close>, hits = server()
    local s <close> = aio.tcp.connect("127.0.0.1", srv.port)
    s:write(req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: 4\n\n",
      "1\r\nZ\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n"))
    local r = U.read_response(s)
    assert.are.equal(400, r.status)
    assert.is_true(U.closes(s))
    assert.are.same({}, hits)
  end))

  it("survives random garbage", H.async(function()
    local srv <close>, hits = server()
    math.randomseed(7)
    for _ = 1, 30 do
      local bytes = {}
      for i = 1, math.random(1, 400) do bytes[i] = string.char(math.random(0, 255)) end
      local out = U.raw(srv.port, table.concat(bytes), 5)
      assert.is_true(out == "" or out:match("^HTTP/1%.1 4%d%d") ~= nil, out)
    end
    assert.are.same({}, hits)
    assert.are.equal("body=", aio.http.get(srv.url .. "/ok").body)
  end))
end)
