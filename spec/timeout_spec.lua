local aio = require "aio"
local H = require "helper"
-- test bodies as tasks on a virtual clock, with the suite's real-time limit
local async = require("aio.busted").with { timeout = H.DEADLINE }

describe("aio.timeout (function form)", function()
  it("returns the function's results when it finishes in time", H.async(function()
    assert.are.same({"a", nil, 3}, {aio.timeout(1, function(x) aio.sleep(0.001) return x, nil, 3 end, "a")})
  end))

  it("raises timeout at the deadline, after the function unwound", H.async(function()
    local log = {}
    local t0 = aio.now()
    local err = H.raises("timeout", aio.timeout, 0.02, function()
      local ok, e = pcall(aio.sleep, 5)
      log[#log + 1] = aio.is_error(e, "cancelled") and "inner saw cancelled" or tostring(e)
      -- level-triggered inside the scope: suspending again raises again
      local ok2, e2 = pcall(aio.sleep, 5)
      log[#log + 1] = ok2 and "slept" or "raised again"
      assert(not ok)
      error(e2)
    end)
    assert.is_true(aio.now() - t0 >= 0.02)
    assert.are.same({"inner saw cancelled", "raised again"}, log)
    assert.are.equal(0.02, err.seconds)
    assert.matches("timed out after 0.02 s", tostring(err))
    -- the task itself is not cancelled afterwards
    aio.sleep(0)
  end))

  it("attributes nested deadlines to the right scope", H.async(function()
    -- the inner deadline fires first: the inner timeout raises, the outer goes on
    local inner_err
    local r = aio.timeout(1, function()
      inner_err = H.raises("timeout", aio.timeout, 0.01, aio.sleep, 5)
      return "outer finished"
    end)
    assert.are.equal("outer finished", r)
    assert.are.equal(0.01, inner_err.seconds)
    -- the outer deadline fires first: the inner sees a cancellation, not a timeout
    local seen
    local err = H.raises("timeout", aio.timeout, 0.01, function()
      local ok, e = pcall(aio.timeout, 1, aio.sleep, 5)
      seen = e
      error(e)
    end)
    assert.are.equal(0.01, err.seconds)
    assert.is_true(aio.is_error(seen, "cancelled"))
  end))

  -- on a virtual clock (aio.busted): each deadline of a ladder fires at
  -- its exact time, and is attributed to its own scope
  it("fires a ladder of nested deadlines at their exact times", async(function()
    local log = {}
    local function rung(d, inner)
      local ok, e = pcall(aio.timeout, d, function()
        if inner then inner() else aio.sleep(1e6) end
      end)
      if aio.is_error(e, "timeout") then
        log[#log + 1] = ("timeout %g@%g"):format(e.seconds, aio.now())
      else
        log[#log + 1] = ("%s %g@%g"):format(ok and "ok" or "cancelled", d, aio.now())
        if not ok then error(e, 0) end
      end
    end
    -- innermost first: 10 inside 20 inside 30; each outer scope goes on
    rung(30, function() rung(20, function() rung(10) aio.sleep(5) end) aio.sleep(100) end)
    -- outermost first: 5 around 50: the inner one sees a cancellation
    pcall(rung, 5, function() rung(50) end)
    assert.are.same({
      "timeout 10@10", "ok 20@15", "timeout 30@30",
      "cancelled 50@35", "timeout 5@35",
    }, log)
  end))

  it("never turns an outside cancel into a timeout", H.async(function()
    local t = aio.spawn(function() aio.timeout(0.05, aio.sleep, 1) end)
    aio.sleep(0.01)
    t:cancel()
    H.raises("cancelled", t.await, t)
    -- both pending: the task's own cancellation wins
    local t2 = aio.spawn(function()
      aio.timeout(0.01, function()
        aio.shield(aio.sleep, 0.03)
        aio.sleep(1)
      end)
    end)
    aio.sleep(0.02)
    t2:cancel()
    H.raises("cancelled", t2.await, t2)
  end))

  it("lets aio.shield hold off an enclosing deadline", H.async(function()
    local log = {}
    local err = H.raises("timeout", aio.timeout, 0.01, function()
      aio.shield(function() aio.sleep(0.03) log[#log + 1] = "shielded work done" end)
      aio.sleep(1)
    end)
    assert.are.same({"shielded work done"}, log)
    assert.is_not_nil(err)
  end))

  it("returns normally if the function swallowed the deadline", H.async(function()
    local r = aio.timeout(0.01, function()
      pcall(aio.sleep, 1)
      return "swallowed"
    end)
    assert.are.equal("swallowed", r)
  end))

  it("passes other errors through untouched", H.async(function()
    local e = {}
    local ok, err = pcall(aio.timeout, 1, function() error(e) end)
    assert.is_false(ok)
    assert.are.equal(e, err)
  end))

  it("checks its arguments", H.async(function()
    assert.has_error(function() aio.timeout("x", function() end) end)
    assert.has_error(function() aio.timeout(0 / 0, function() end) end)
  end))

  it("raises usage outside a task", function()
    H.raises("usage", aio.timeout, 1, function() end)
    H.raises("usage", aio.shield, function() end)
  end)
end)
