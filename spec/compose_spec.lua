local aio = require "aio"
local H = require "helper"

local function after(secs, v)
  return function() aio.sleep(secs) return v, "extra" end
end

local function fails_after(secs, e)
  return function() aio.sleep(secs) error(e, 0) end
end

describe("aio.gather", function()
  it("returns first results in input order, for varargs and arrays", H.async(function()
    assert.are.same({"a", "b", "c"}, {aio.gather(after(0.02, "a"), after(0.01, "b"), after(0, "c"))})
    local r = aio.gather({after(0.01, 1), after(0, nil), after(0.005, 3)})
    assert.are.same({n = 3, 1, nil, 3}, r)
    local t = aio.spawn(after(0.001, "task"))
    assert.are.same({"task", "fn"}, {aio.gather(t, after(0, "fn"))})
    assert.are.equal(0, select("#", aio.gather()))
    assert.are.same({n = 0}, aio.gather({}))
  end))

  it("cancels the others on the first error, waits for them, raises it", H.async(function()
    local e = {}
    local cleaned = {}
    local function slow(name)
      return function()
        local ok, err = pcall(aio.sleep, 5)
        cleaned[#cleaned + 1] = name
        error(err, 0)
      end
    end
    local ok, err = pcall(aio.gather, slow("x"), fails_after(0.01, e), slow("y"))
    assert.is_false(ok)
    assert.are.equal(e, err)
    table.sort(cleaned)
    assert.are.same({"x", "y"}, cleaned)   -- they unwound before gather raised
  end))

  it("cancels every child when the caller is cancelled", H.async(function()
    local children = {}
    local caller = aio.spawn(function()
      aio.gather(function() children[1] = aio.current() aio.sleep(5) end,
                 function() children[2] = aio.current() aio.sleep(5) end)
    end)
    aio.sleep(0.01)
    caller:cancel()
    H.raises("cancelled", caller.await, caller)
    assert.is_true(children[1]:cancelled())
    assert.is_true(children[2]:cancelled())
  end))

  it("rejects what is neither a function nor a task", H.async(function()
    assert.has_error(function() aio.gather(function() end, 42) end,
      "bad argument #2 to 'gather' (function or task expected, got number)")
    assert.has_error(function() aio.gather({"x"}) end)
  end))
end)

describe("aio.settle", function()
  it("waits for all and records each outcome", H.async(function()
    local e = {}
    local r = {aio.settle(after(0.01, "a"), fails_after(0, e), after(0, "c"))}
    assert.are.same({ok = true, value = "a"}, r[1])
    assert.are.same({ok = false, error = e}, r[2])
    assert.are.equal(e, r[2].error)
    assert.are.same({ok = true, value = "c"}, r[3])
    local arr = aio.settle({fails_after(0, "x")})
    assert.are.equal(1, arr.n)
    assert.is_false(arr[1].ok)
  end))
end)

describe("aio.wait", function()
  it("returns done and pending without cancelling anything", H.async(function()
    local a = aio.spawn(after(0.01, "a"))
    local b = aio.spawn(after(0.05, "b"))
    local done, pending = aio.wait({a, b}, {return_when = "first"})
    assert.are.same({a}, done)
    assert.are.same({b}, pending)
    assert.is_false(b:done())
    done, pending = aio.wait({a, b}, {timeout = 0.001})
    assert.are.same({a}, done)
    assert.are.same({b}, pending)
    done, pending = aio.wait({a, b})
    assert.are.equal(2, #done)
    assert.are.same({}, pending)
    assert.are.equal("b", b:result())
  end))

  it("stops at the first error with first_error", H.async(function()
    local bad = aio.spawn(fails_after(0.01, "boom"))
    local slow = aio.spawn(after(0.2, "slow"))
    local done, pending = aio.wait({slow, bad}, {return_when = "first_error"})
    assert.are.same({bad}, done)
    assert.are.same({slow}, pending)
    slow:cancel()
    pcall(slow.await, slow)
    assert.are.equal("boom", bad:error())
  end))

  it("checks its options", H.async(function()
    assert.has_error(function() aio.wait({}, {return_when = "some"}) end)
    assert.has_error(function() aio.wait({}, {timeout = "1"}) end)
    assert.has_error(function() aio.wait(42) end)
  end))
end)

describe("aio.as_completed", function()
  it("yields tasks in completion order", H.async(function()
    local tasks = {aio.spawn(after(0.03, 3)), aio.spawn(after(0.01, 1)), aio.spawn(after(0.02, 2))}
    local order = {}
    for t in aio.as_completed(tasks) do order[#order + 1] = t:await() end
    assert.are.same({1, 2, 3}, order)
  end))

  it("raises timeout when the time runs out first, leaving the tasks be", H.async(function()
    local slow = aio.spawn(after(1, "slow"))
    local fast = aio.spawn(after(0, "fast"))
    local got = {}
    local err = H.raises("timeout", function()
      for t in aio.as_completed({slow, fast}, 0.02) do got[#got + 1] = t:await() end
    end)
    assert.are.same({"fast"}, got)
    assert.are.equal(0.02, err.seconds)
    assert.is_false(slow:done())
    slow:cancel()
    pcall(slow.await, slow)
  end))

  it("releases a task iterating when another task closes the iteration", H.async(function()
    local slow = aio.spawn(after(5, "slow"))
    local _, _, _, watch = aio.as_completed({slow})
    local iterating = aio.spawn(function()
      for _ in aio.as_completed({slow}) do end
    end)
    local waiter = aio.spawn(function() return watch:next() end)
    aio.sleep(0)
    watch:close()
    H.raises("closed", waiter.await, waiter)
    iterating:cancel()
    slow:cancel()
    pcall(iterating.await, iterating)
    pcall(slow.await, slow)
  end))

  it("stops watching when the loop is left early", H.async(function()
    local tasks = {aio.spawn(after(0, 1)), aio.spawn(after(0.01, 2))}
    for _ in aio.as_completed(tasks) do break end
    for _, t in ipairs(tasks) do t:await() end
  end))
end)

describe("aio.first", function()
  it("returns the first success and its index, cancelling the rest", H.async(function()
    local slow
    local v, i = aio.first(fails_after(0, "nope"),
                           function() slow = aio.current() aio.sleep(5) end,
                           after(0.01, "winner"))
    assert.are.equal("winner", v)
    assert.are.equal(3, i)
    assert.is_true(slow:cancelled())
  end))

  it("raises the first error when all fail", H.async(function()
    local ok, err = pcall(aio.first, fails_after(0.02, "second"), fails_after(0.01, "first"))
    assert.is_false(ok)
    assert.are.equal("first", err)
    H.raises("usage", aio.first)
  end))
end)

describe("aio.timeout (task form)", function()
  it("returns the task's results in time", H.async(function()
    assert.are.same({"v", "extra"}, {aio.timeout(1, aio.spawn(after(0.01, "v")))})
  end))

  it("cancels the task at the deadline, waits for it and raises timeout", H.async(function()
    local unwound = false
    local t = aio.spawn(function()
      local g <close> = setmetatable({}, {__close = function()
        aio.shield(aio.sleep, 0.01)
        unwound = true
      end})
      aio.sleep(5)
    end)
    local err = H.raises("timeout", aio.timeout, 0.01, t)
    assert.is_true(unwound)
    assert.is_true(t:cancelled())
    assert.are.equal(0.01, err.seconds)
  end))

  it("raises the task's own error", H.async(function()
    local t = aio.spawn(fails_after(0, "own"))
    local ok, err = pcall(aio.timeout, 1, t)
    assert.is_false(ok)
    assert.are.equal("own", err)
  end))
end)

describe("aio.shield (task form)", function()
  it("raises in the cancelled caller at once but lets the task go on", H.async(function()
    local t = aio.spawn(after(0.03, "done anyway"))
    local caller = aio.spawn(function() return aio.shield(t) end)
    aio.sleep(0.005)
    caller:cancel()
    H.raises("cancelled", caller.await, caller)
    assert.is_false(t:done())
    assert.are.equal("done anyway", t:await())
    assert.are.same({"x", "extra"}, {aio.shield(aio.spawn(after(0, "x")))})
  end))
end)
