local aio = require "aio"
local H = require "helper"

describe("task:cancel", function()
  it("raises cancelled at the task's suspension point, with the reason", H.async(function()
    local caught
    local t = aio.spawn(function()
      local ok, err = pcall(aio.sleep, 10)
      caught = err
      assert(not ok)
    end)
    aio.sleep(0)
    assert.is_true(t:cancel("shutting down"))
    t:await()
    assert.is_true(aio.is_error(caught, "cancelled"))
    assert.are.equal("shutting down", caught.reason)
    assert.are.equal("cancelled: task cancelled: shutting down", tostring(caught))
    -- it swallowed the error and returned: a normal end
    assert.is_false(t:cancelled())
    assert.is_false(t:cancel())
  end))

  it("is level-triggered: every later suspension raises again", H.async(function()
    local raised = 0
    local t = aio.spawn(function()
      for _ = 1, 5 do
        local ok = pcall(aio.sleep, 1)
        if not ok then raised = raised + 1 end
      end
      aio.sleep(0)   -- not caught: the task ends cancelled
    end)
    aio.sleep(0)
    t:cancel()
    local err = H.raises("cancelled", t.await, t)
    assert.are.equal(5, raised)
    assert.is_true(t:cancelled())
    assert.are.equal(err, t:error())
  end))

  it("delivers a cancel requested while the task is ready at its next resume", H.async(function()
    local reached = false
    local t = aio.spawn(function()
      aio.sleep(0)
      reached = true
    end)
    aio.sleep(0)          -- t is now in sleep(0), ready again
    t:cancel()
    H.raises("cancelled", t.await, t)
    assert.is_false(reached)
  end))

  it("never runs a task cancelled before it started", H.async(function()
    local ran = false
    local t = aio.spawn(function() ran = true end)
    t:cancel()
    H.raises("cancelled", t.await, t)
    assert.is_false(ran)
    assert.is_true(t:cancelled())
  end))

  it("runs <close> handlers and pcall clean-up in the cancelled task", H.async(function()
    local log = {}
    local t = aio.spawn(function()
      local a <close> = setmetatable({}, {__close = function(_, e)
        log[#log + 1] = "close a: " .. (aio.is_error(e, "cancelled") and "cancelled" or tostring(e))
      end})
      local ok, err = pcall(function()
        local b <close> = setmetatable({}, {__close = function() log[#log + 1] = "close b" end})
        aio.sleep(10)
      end)
      log[#log + 1] = "pcall caught " .. err.kind
      error(err)
    end)
    aio.sleep(0)
    t:cancel()
    H.raises("cancelled", t.await, t)
    assert.are.same({"close b", "pcall caught cancelled", "close a: cancelled"}, log)
  end))

  it("lets a <close> handler suspend under aio.shield while unwinding", H.async(function()
    local closed_at
    local t = aio.spawn(function()
      local conn <close> = setmetatable({}, {__close = function()
        aio.shield(function() aio.sleep(0.01) end)
        closed_at = aio.now()
      end})
      aio.sleep(10)
    end)
    aio.sleep(0)
    local t0 = aio.now()
    t:cancel()
    H.raises("cancelled", t.await, t)
    assert.is_not_nil(closed_at)
    assert.is_true(closed_at - t0 >= 0.01)
  end))

  it("spreads from an awaiting task to the awaited one", H.async(function()
    local inner = aio.spawn(aio.sleep, 10)
    local outer = aio.spawn(function() inner:await() end)
    aio.sleep(0)
    outer:cancel()
    H.raises("cancelled", outer.await, outer)
    H.raises("cancelled", inner.await, inner)
    assert.is_true(inner:cancelled())
  end))

  it("stays out of a shielded task until the shield ends", H.async(function()
    local log = {}
    local t = aio.spawn(function()
      aio.shield(function()
        aio.sleep(0.02)
        log[#log + 1] = "shield finished"
      end)
      log[#log + 1] = "after shield"
      aio.sleep(0)
      log[#log + 1] = "not reached"
    end)
    aio.sleep(0)
    t:cancel()
    H.raises("cancelled", t.await, t)
    assert.are.same({"shield finished", "after shield"}, log)
  end))

  it("returns the shielded function's results and errors", H.async(function()
    assert.are.same({1, 2}, {aio.shield(function(a) return a, 2 end, 1)})
    local ok, err = pcall(aio.shield, function() error("inside", 0) end)
    assert.is_false(ok)
    assert.are.equal("inside", err)
  end))
end)
