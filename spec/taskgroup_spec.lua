local aio = require "aio"
local H = require "helper"

describe("aio.TaskGroup", function()
  it("waits for every child when its scope ends", H.async(function()
    local done = {}
    do
      local g <close> = aio.TaskGroup()
      for i = 1, 3 do
        g:spawn(function() aio.sleep(0.01 * i) done[#done + 1] = i end)
      end
      assert.are.same({}, done)
    end
    assert.are.same({1, 2, 3}, done)
  end))

  it("cancels the siblings and the body when a child fails, and raises its error", H.async(function()
    local e = {}
    local log = {}
    local ok, err = pcall(function()
      local g <close> = aio.TaskGroup()
      g:spawn(function() aio.sleep(0.01) error(e) end)
      g:spawn(function()
        local ok2 = pcall(aio.sleep, 5)
        log[#log + 1] = ok2 and "sibling finished" or "sibling cancelled"
      end)
      local ok3 = pcall(aio.sleep, 5)
      log[#log + 1] = ok3 and "body finished" or "body cancelled"
    end)
    assert.is_false(ok)
    assert.are.equal(e, err)
    table.sort(log)
    assert.are.same({"body cancelled", "sibling cancelled"}, log)
  end))

  it("keeps every child error in group.errors", H.async(function()
    local g
    local ok, err = pcall(function()
      g = aio.TaskGroup()
      local guard <close> = g
      g:spawn(function() error("one", 0) end)
      g:spawn(function() error("two", 0) end)
    end)
    assert.is_false(ok)
    assert.are.equal("one", err)
    assert.are.same({"one", "two"}, g.errors)
  end))

  it("cancels the children first when the body raises, and keeps the body's error", H.async(function()
    local child
    local ok, err = pcall(function()
      local g <close> = aio.TaskGroup()
      child = g:spawn(aio.sleep, 5)
      aio.sleep(0)
      error("body broke", 0)
    end)
    assert.is_false(ok)
    assert.are.equal("body broke", err)
    assert.is_true(child:cancelled())
  end))

  it("waits explicitly with wait()", H.async(function()
    local g = aio.TaskGroup()
    local t = g:spawn(function() aio.sleep(0.01) return 5 end)
    g:wait()
    assert.are.equal(5, t:result())
    g:close()
    local err = H.raises("usage", g.spawn, g, function() end)
    assert.matches("closed", err.message)
  end))

  it("takes its children down when its task is cancelled", H.async(function()
    local child
    local outer = aio.spawn(function()
      local g <close> = aio.TaskGroup()
      child = g:spawn(aio.sleep, 5)
      aio.sleep(5)
    end)
    aio.sleep(0.01)
    outer:cancel()
    H.raises("cancelled", outer.await, outer)
    assert.is_true(child:cancelled())
  end))

  it("nests", H.async(function()
    local log = {}
    do
      local outer <close> = aio.TaskGroup()
      outer:spawn(function()
        local inner <close> = aio.TaskGroup()
        inner:spawn(function() aio.sleep(0.01) log[#log + 1] = "inner" end)
      end)
      outer:spawn(function() log[#log + 1] = "outer" end)
    end
    assert.are.same({"outer", "inner"}, log)
  end))

  it("raises usage outside a task", function()
    H.raises("usage", aio.TaskGroup)
  end)
end)
