-- spec/helper.lua itself: H.run fails a test that leaves something behind.
local aio = require "aio"
local H = require "helper"

describe("spec helper", function()
  it("fails a test that leaves a task running", function()
    local ok, err = pcall(H.run, function() aio.spawn(aio.sleep, 10) end)
    assert.is_false(ok)
    assert.matches("test left 1 task%(s%) running", err)
  end)

  it("fails a test that leaves a deadline armed, not counting its own", function()
    assert.are.equal(42, H.run(function() return aio.timeout(5, function() return 42 end) end))
    -- a generator abandoned inside aio.timeout keeps that deadline armed
    local ok, err = pcall(H.run, function()
      local gen = coroutine.wrap(function()
        aio.timeout(5, function() coroutine.yield() end)
      end)
      gen()
    end)
    assert.is_false(ok)
    assert.matches("test left 1 timer%(s%) armed", err)
    collectgarbage()
    collectgarbage()
  end)
end)
