-- Regression: libuv's millisecond clock could fire the loop's timer a
-- fraction of a millisecond before the earliest deadline; the same uv_run
-- then blocked in the poll with no timer left, and the task sleeping on that
-- deadline hung forever (seen as fetch_many.lua hanging once in a few runs).
local aio = require "aio"
local H = require "helper"

describe("the loop timer", function()
  it("wakes sleepers whose deadline is a fraction of a millisecond away", H.async(function()
    math.randomseed(7)
    -- an open handle keeps libuv from returning early from an empty poll
    local server <close> = aio.tcp.listen("127.0.0.1", 0, function() end)
    local t0 = aio.now()
    for _ = 1, 3000 do aio.sleep(math.random() * 0.0015) end
    assert.is_true(aio.now() - t0 < 15)
  end, {timeout = 20}))
end)
