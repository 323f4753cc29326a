local aio = require "aio"
local H = require "helper"
-- test bodies as tasks on a virtual clock, with the suite's real-time limit
local async = require("aio.busted").with { timeout = H.DEADLINE }

describe("aio.retry", function()
  it("calls again until the function succeeds", H.async(function()
    local calls = 0
    local v, w = aio.retry(function()
      calls = calls + 1
      if calls < 3 then error("flaky " .. calls, 0) end
      return "ok", calls
    end, {attempts = 5, delay = 0.001})
    assert.are.equal("ok", v)
    assert.are.equal(3, w)
  end))

  it("raises the last error after the attempts", H.async(function()
    local calls = 0
    local ok, err = pcall(aio.retry, function()
      calls = calls + 1
      error("fail " .. calls, 0)
    end, {attempts = 3, delay = 0.001})
    assert.is_false(ok)
    assert.are.equal("fail 3", err)
    assert.are.equal(3, calls)
  end))

  it("backs off exponentially", H.async(function()
    local stamps = {}
    pcall(aio.retry, function()
      stamps[#stamps + 1] = aio.now()
      error("x")
    end, {attempts = 3, delay = 0.02, factor = 2, jitter = false})
    assert.are.equal(3, #stamps)
    assert.is_true(stamps[2] - stamps[1] >= 0.02)
    assert.is_true(stamps[3] - stamps[2] >= 0.04)
  end))

  -- on a virtual clock (aio.busted): an hour of back-off, to the second
  it("backs off exponentially up to max_delay, to the exact second", async(function()
    local stamps = {}
    local err = H.raises("io", aio.retry, function()
      stamps[#stamps + 1] = aio.now()
      error(aio.Error("io", "down"))
    end, {attempts = 8, delay = 60, factor = 2, max_delay = 900, jitter = false})
    assert.are.same({0, 60, 180, 420, 900, 1800, 2700, 3600}, stamps)
    assert.are.equal("down", err.message)
  end))

  it("keeps each jittered delay between half and all of the back-off", async(function()
    local stamps = {}
    pcall(aio.retry, function()
      stamps[#stamps + 1] = aio.now()
      error("x")
    end, {attempts = 6, delay = 10, factor = 3, max_delay = 200})
    local d = 10
    for i = 2, #stamps do
      local gap = stamps[i] - stamps[i - 1]
      local want = math.min(d, 200)
      assert.is_true(gap >= want / 2 and gap < want, ("gap %d: %g for %g"):format(i, gap, want))
      d = d * 3
    end
  end))

  it("stops backing off when its task is cancelled mid-sleep", async(function()
    local calls = 0
    local t = aio.spawn(aio.retry, function()
      calls = calls + 1
      error("x")
    end, {attempts = 10, delay = 3600, max_delay = 1e6, jitter = false})
    aio.sleep(5400)            -- after the first back-off, inside the second
    assert.are.equal(2, calls)
    t:cancel()
    H.raises("cancelled", t.await, t)
    assert.are.equal(5400, aio.now())
  end))

  it("never retries cancelled or usage errors, nor what retry_on refuses", H.async(function()
    local calls = 0
    local err = H.raises("usage", aio.retry, function()
      calls = calls + 1
      error(aio.Error("usage", "misuse"))
    end, {delay = 0.001})
    assert.are.equal(1, calls)
    calls = 0
    local ok = pcall(aio.retry, function()
      calls = calls + 1
      error({fatal = calls == 1})
    end, {delay = 0.001, retry_on = function(e) return not e.fatal end})
    assert.is_false(ok)
    assert.are.equal(1, calls)
    local t = aio.spawn(function()
      aio.retry(function() aio.sleep(5) end, {delay = 0.001})
    end)
    aio.sleep(0)
    t:cancel()
    H.raises("cancelled", t.await, t)
    assert.is_not_nil(err)
  end))

  it("checks its options", H.async(function()
    assert.has_error(function() aio.retry(42) end)
    assert.has_error(function() aio.retry(function() end, {attempts = 0}) end)
    assert.has_error(function() aio.retry(function() end, {delay = -1}) end)
    assert.has_error(function() aio.retry(function() end, {retry_on = 5}) end)
  end))
end)
