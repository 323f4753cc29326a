-- Regression: the read timeout (the longest silence while receiving)
-- counted only what curl handed over: whole header lines. A server
-- sending a header one byte at a time, each well within the timeout,
-- failed with `timeout` (phase "read") once a line took longer than the
-- timeout, while the same trickle in the body passed. Any byte arriving
-- on the request's connection is a sign of life now.
local aio = require "aio"
local H = require "helper"
local U = require "support.server_util"

-- A server that sends the status line at once, then a header line one
-- byte every `gap` s, then the rest of the response.
local function trickler(gap)
  return aio.tcp.listen("127.0.0.1", 0, function(s)
    U.read_head(s)
    s:write("HTTP/1.1 200 OK\r\n")
    for c in ("X-Slow: abcdefghij\r\n"):gmatch(".") do
      s:write(c)
      aio.sleep(gap)
    end
    s:write("Content-Length: 2\r\nConnection: close\r\n\r\nok")
  end)
end

describe("the HTTP read timeout", function()
  it("counts every byte of a header line as a sign of life", H.async(function()
    local server <close> = trickler(0.05)
    local url = ("http://127.0.0.1:%d/"):format(server.port)
    -- the line takes ~1 s to arrive; no silence is longer than 0.05 s
    local r = aio.http.get(url, { timeout = { read = 0.4 } })
    assert.are.equal(200, r.status)
    assert.are.equal("abcdefghij", r.headers["x-slow"])
    assert.are.equal("ok", r.body)
  end))

  it("still fails a server that goes silent in the middle of a line", H.async(function()
    local server <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
      U.read_head(s)
      s:write("HTTP/1.1 200 OK\r\nX-Slow: ab")
      s:read()
    end)
    local url = ("http://127.0.0.1:%d/"):format(server.port)
    local err = H.raises("timeout", aio.http.get, url, { timeout = { read = 0.2 } })
    assert.are.equal("read", err.phase)
  end))
end)
