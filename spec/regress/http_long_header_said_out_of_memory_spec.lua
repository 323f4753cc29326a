-- Regression: a response header line longer than curl takes (100 KiB),
-- or a header block over its 300 KiB, failed with `io: Out of memory` (or
-- `io: Too large response headers`): the server's fault reported as ours.
-- Both are `protocol` now.
local aio = require "aio"
local H = require "helper"
local U = require "support.server_util"

local function server_sending(head)
  return aio.tcp.listen("127.0.0.1", 0, function(s)
    U.read_head(s)
    pcall(s.write, s, "HTTP/1.1 200 OK\r\n" .. head .. "Content-Length: 2\r\n\r\nok")
  end)
end

describe("an HTTP response with headers too large", function()
  it("raises protocol for a 10 MB header line", H.async(function()
    local server <close> = server_sending("X-Big: " .. ("a"):rep(10e6) .. "\r\n")
    local url = ("http://127.0.0.1:%d/"):format(server.port)
    local err = H.raises("protocol", aio.http.get, url)
    assert.matches("header line is too long", err.message)
    H.raises("protocol", aio.http.get, url, { stream = true })
  end))

  it("raises protocol for a header block past curl's limit", H.async(function()
    local server <close> = server_sending(("X-Many: " .. ("a"):rep(10000) .. "\r\n"):rep(40))
    local url = ("http://127.0.0.1:%d/"):format(server.port)
    local err = H.raises("protocol", aio.http.get, url)
    assert.matches("[Tt]oo large", err.message)
  end))
end)
