local aio = require "aio"
local H = require "helper"

describe("suspending inside nested coroutines", function()
  it("lets a coroutine.wrap generator call aio.sleep", H.async(function()
    local function counter(n)
      return coroutine.wrap(function()
        for i = 1, n do
          aio.sleep(0.001)
          coroutine.yield(i)
        end
      end)
    end
    local got = {}
    for v in counter(4) do got[#got + 1] = v end
    assert.are.same({1, 2, 3, 4}, got)
  end))

  it("lets other tasks run while a generator waits", H.async(function()
    local ticks = 0
    local ticker = aio.spawn(function()
      for _ = 1, 5 do aio.sleep(0) ticks = ticks + 1 end
    end)
    local gen = coroutine.wrap(function() aio.sleep(0.01) coroutine.yield("page") end)
    assert.are.equal("page", gen())
    assert.are.equal(5, ticks)
    ticker:await()
  end))

  it("passes suspensions through coroutine.resume and several levels", H.async(function()
    local inner = coroutine.create(function(a)
      aio.sleep(0.001)
      local b = coroutine.yield(a + 1)
      aio.sleep(0)
      return b * 2
    end)
    local outer = coroutine.wrap(function()
      local ok, v = coroutine.resume(inner, 1)
      assert(ok, v)
      coroutine.yield(v)
      local ok2, w = coroutine.resume(inner, 10)
      assert(ok2, w)
      return w
    end)
    assert.are.equal(2, outer())
    assert.are.equal(20, outer())
    assert.are.equal("dead", coroutine.status(inner))
  end))

  it("keeps plain coroutine behaviour", H.async(function()
    local co = coroutine.create(function(a, b)
      local c = coroutine.yield(a + b)
      error("boom " .. c, 0)
    end)
    assert.are.same({true, 3}, {coroutine.resume(co, 1, 2)})
    assert.are.same({false, "boom x"}, {coroutine.resume(co, "x")})
    assert.are.same({false, "cannot resume dead coroutine"}, {coroutine.resume(co)})
    local w = coroutine.wrap(function() error("in wrap") end)
    local ok, err = pcall(w)
    assert.is_false(ok)
    assert.matches("coroutine_spec.lua:%d+: in wrap", err)
    assert.has_error(function() coroutine.resume(42) end)
    assert.has_error(function() coroutine.wrap(42) end)
  end))

  it("delivers a cancellation to a task waiting inside a generator", H.async(function()
    local closed = false
    local t = aio.spawn(function()
      local gen = coroutine.wrap(function()
        local g <close> = setmetatable({}, {__close = function() closed = true end})
        aio.sleep(10)
        coroutine.yield(1)
      end)
      gen()
    end)
    aio.sleep(0)
    t:cancel()
    H.raises("cancelled", t.await, t)
    assert.is_true(closed)
  end))

  it("raises usage for coroutine.yield in a task's own coroutine", H.async(function()
    local err = H.raises("usage", coroutine.yield, 1)
    assert.matches("aio.sleep%(0%)", err.message)
  end))

  it("raises usage instead of hanging where a yield cannot pass", H.async(function()
    local err = H.raises("usage", table.sort, {3, 1, 2}, function(a, b)
      aio.sleep(0)
      return a < b
    end)
    assert.matches("cannot suspend here", err.message)
    -- through a coroutine resumed from a non-yieldable place
    local co = coroutine.wrap(function() aio.sleep(0) return "ok" end)
    local ok, e = pcall(string.gsub, "a", "a", function() return co() end)
    assert.is_false(ok)
    assert.is_true(aio.is_error(e, "usage"), tostring(e))
    aio.sleep(0)
  end))

  it("keeps a generator's timeout with the generator between yields", H.async(function()
    local gen = coroutine.wrap(function()
      aio.timeout(0.05, function()
        coroutine.yield("first")
        aio.sleep(1)
      end)
    end)
    assert.are.equal("first", gen())
    -- outside the generator, its deadline does not apply
    aio.sleep(0.08)
    -- back inside, the expired deadline fires at the next suspension
    local err = H.raises("timeout", gen)
    assert.are.equal(0.05, err.seconds)
  end))
end)
