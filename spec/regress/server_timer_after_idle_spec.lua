-- A connection accepted after the loop slept for longer than the header
-- timeout must get that timeout from its arrival, not from before the
-- sleep: the HTTP server armed its timers from loop->now, the time the
-- last poll returned, so the first connections after an idle spell were
-- dropped at once ("socket hang up" for a WebSocket client's first burst).
local aio = require "aio"
local H = require "helper"

describe("the HTTP server after the loop slept", function()
  it("times a new connection's header from its arrival", H.async(function()
    local server <close> = aio.http.listen(function() return "fresh" end,
      { port = 0, header_timeout = 0.5 })
    local out = os.tmpname()
    -- a client in another process, so that nothing in this one wakes the
    -- loop before the connection arrives
    os.execute(("(sleep 0.8; env -u LD_PRELOAD curl -s --max-time 20 http://127.0.0.1:%d/ > '%s'; touch '%s.done') &")
      :format(server.port, out, out))
    aio.sleep(1.5)                               -- one long poll
    -- then wait for curl to finish (it is slow to start under valgrind)
    local function finished()
      local f = io.open(out .. ".done")
      if f then f:close() end
      return f ~= nil
    end
    local waited = 0
    while not finished() and waited < 30 do
      aio.sleep(0.1)
      waited = waited + 0.1
    end
    os.remove(out .. ".done")
    local f = io.open(out)
    local body = f and f:read("a")
    if f then f:close() end
    os.remove(out)
    assert.are.equal("fresh", body)
  end))
end)
