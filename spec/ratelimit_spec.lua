local aio = require "aio"
local H = require "helper"
-- test bodies as tasks on a virtual clock, with the suite's real-time limit
local async = require("aio.busted").with { timeout = H.DEADLINE }

describe("aio.RateLimiter", function()
  it("lets a burst through, then paces", H.async(function()
    local rl = aio.RateLimiter(4, 0.2, 2)   -- 20 per second, bursts of 2
    local t0 = aio.now()
    rl:acquire()
    rl:acquire()
    assert.is_true(aio.now() - t0 < 0.04)
    rl:acquire()          -- needs one new token: 0.05 s
    rl:acquire()
    local dt = aio.now() - t0
    assert.is_true(dt >= 0.09, "paced only " .. dt)
    assert.is_true(dt < 1)
  end))

  -- on a virtual clock (aio.busted): exact pacing
  it("paces to the exact second after the burst", async(function()
    local rl = aio.RateLimiter(10, 60)      -- 10 a minute, bursts of 10
    local stamps = {}
    for i = 1, 14 do
      rl:acquire()
      stamps[i] = aio.now()
    end
    assert.are.same({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 12, 18, 24}, stamps)
    rl:acquire(3)                           -- three tokens: 18 s more
    assert.are.equal(42, aio.now())
  end))

  it("shares the rate among waiters, first come first served", async(function()
    local rl = aio.RateLimiter(1, 1, 1)
    rl:acquire()
    local log = {}
    local g <close> = aio.TaskGroup()
    for i = 1, 4 do
      g:spawn(function()
        rl:acquire()
        log[#log + 1] = ("%d@%g"):format(i, aio.now())
      end)
    end
    g:wait()
    assert.are.same({"1@1", "2@2", "3@3", "4@4"}, log)
  end))

  it("refuses with try_acquire when the bucket is empty", H.async(function()
    local rl = aio.RateLimiter(1, 10)
    assert.is_true(rl:try_acquire())
    assert.is_false(rl:try_acquire())
    assert.is_true(rl:available() < 1)
  end))

  it("serves waiters in FIFO order and charges nothing to a cancelled one", H.async(function()
    local rl = aio.RateLimiter(100, 1, 1)
    rl:acquire()
    local log = {}
    local big = aio.spawn(function() rl:acquire(1) log[#log + 1] = "first" end)
    local cancelled = aio.spawn(function() rl:acquire(1) log[#log + 1] = "never" end)
    local small = aio.spawn(function() rl:acquire(0.5) log[#log + 1] = "second" end)
    aio.sleep(0)
    cancelled:cancel()
    H.raises("cancelled", cancelled.await, cancelled)
    big:await(); small:await()
    assert.are.same({"first", "second"}, log)
  end))

  it("checks its arguments", H.async(function()
    assert.has_error(function() aio.RateLimiter(0, 1) end)
    assert.has_error(function() aio.RateLimiter(1, -1) end)
    assert.has_error(function() aio.RateLimiter("1", 1) end)
    local rl = aio.RateLimiter(5, 1)
    H.raises("usage", rl.acquire, rl, 6)
    assert.has_error(function() rl:acquire(-1) end)
  end))
end)
