local aio = require "aio"
local H = require "helper"

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
