local aio = require "aio"
local H = require "helper"

describe("aio.spawn and Task", function()
  it("starts tasks on a later turn, in spawn order, with their arguments", H.async(function()
    local log = {}
    for i = 1, 5 do
      aio.spawn(function(x) log[#log + 1] = x end, i)
    end
    assert.are.same({}, log)
    aio.sleep(0)
    assert.are.same({1, 2, 3, 4, 5}, log)
  end))

  it("returns every result from await, to every awaiter", H.async(function()
    local t = aio.spawn(function(a) aio.sleep(0.01) return a, nil, "c" end, "a")
    local seen = {}
    local waiters = {}
    for i = 1, 3 do
      waiters[i] = aio.spawn(function() seen[i] = table.pack(t:await()) end)
    end
    local r = table.pack(t:await())
    for i = 1, 3 do waiters[i]:await() end
    assert.are.same({n = 3, "a", nil, "c"}, r)
    for i = 1, 3 do assert.are.same(r, seen[i]) end
    -- awaiting a finished task returns at once
    assert.are.same(r, table.pack(t:await()))
    assert.are.same(r, table.pack(t:result()))
  end))

  it("raises the task's error value unchanged from await and result", H.async(function()
    local e = setmetatable({}, {__tostring = function() return "custom" end})
    local t = aio.spawn(function() aio.sleep(0) error(e) end)
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.are.equal(e, err)
    ok, err = pcall(t.result, t)
    assert.are.equal(e, err)
    assert.are.equal(e, t:error())
    assert.is_true(t:done())
    assert.is_false(t:cancelled())
  end))

  it("reports state through done, cancelled, result and error", H.async(function()
    local t = aio.spawn(aio.sleep, 0.01)
    assert.is_false(t:done())
    assert.is_nil(t:error())
    local err = H.raises("usage", t.result, t)
    assert.matches("not done", err.message)
    t:await()
    assert.is_true(t:done())
    assert.is_false(t:cancelled())
    assert.is_nil(t:error())
    assert.are.equal(0, select("#", t:result()))
  end))

  it("refuses to await itself", H.async(function()
    local me = aio.current()
    local err = H.raises("usage", me.await, me)
    assert.matches("itself", err.message)
  end))

  it("calls on_done callbacks from the loop with the task, even late", H.async(function()
    local calls = {}
    local t = aio.spawn(function() aio.sleep(0.001) return 7 end)
    assert.are.equal(t, t:on_done(function(task) calls[#calls + 1] = {"a", task:result()} end))
    t:on_done(function(task) calls[#calls + 1] = {"b", task:result()} end)
    t:await()
    aio.sleep(0)
    assert.are.same({{"a", 7}, {"b", 7}}, calls)
    t:on_done(function(task) calls[#calls + 1] = {"late", task == t} end)
    assert.are.equal(2, #calls)   -- never synchronously
    aio.sleep(0)
    assert.are.same({"late", true}, calls[3])
  end))

  it("keeps going when an on_done callback fails", H.async(function()
    local t = aio.spawn(function() end)
    local after = false
    t:on_done(function() error("callback broke") end)
    t:on_done(function() after = true end)
    t:await()
    aio.sleep(0)
    assert.is_true(after)
  end))

  it("has a default name, an assignable name and an id", H.async(function()
    local t = aio.spawn(function() end)
    assert.matches("^task%-%d+$", t.name)
    assert.are.equal("task-" .. t.id, t.name)
    t.name = "worker"
    assert.are.equal("worker", t.name)
    assert.matches("aio.Task%(worker, ", tostring(t))
    assert.has_error(function() t.name = 42 end)
    assert.has_error(function() t.other = 1 end)
    t:await()
  end))

  it("gives a traceback of where a task waits, or where it failed", H.async(function()
    local function waits_here() aio.sleep(10) end
    local t = aio.spawn(waits_here)
    aio.sleep(0)
    local tb = t:traceback()
    assert.matches("task_spec.lua:%d+: in", tb)
    assert.matches("sleep", tb)
    t:cancel()
    pcall(t.await, t)
    local f = aio.spawn(function() local x = nil; return x.field end)
    pcall(f.await, f)
    assert.matches("task_spec.lua:%d+", f:traceback())
    assert.is_nil(aio.spawn(function() end):await())
  end))

  it("knows the current task and the tasks alive", H.async(function()
    local me = aio.current()
    assert.is_not_nil(me)
    local inner
    local t = aio.spawn(function() inner = aio.current() aio.sleep(0.05) end)
    aio.sleep(0)
    assert.are.equal(t, inner)
    local alive = aio.tasks()
    local found = {}
    for _, x in ipairs(alive) do found[x] = true end
    assert.is_true(found[me])
    assert.is_true(found[t])
    t:await()
    for _, x in ipairs(aio.tasks()) do assert.are_not.equal(t, x) end
  end))

  it("returns nil from aio.current outside tasks", function()
    assert.is_nil(aio.current())
  end)

  it("refuses to spawn outside aio.run", function()
    local err = H.raises("usage", aio.spawn, function() end)
    assert.matches("aio.run", err.message)
  end)

  it("rejects bad arguments and foreign objects without crashing", H.async(function()
    assert.has_error(function() aio.spawn(42) end, "bad argument #1 to 'spawn' (function expected, got number)")
    local t = aio.spawn(function() end)
    local await = t.await
    assert.has_error(function() await(42) end)
    assert.has_error(function() await({}) end)
    assert.has_error(function() t.cancel(io.stdout) end)
    assert.has_error(function() t.on_done(t, 5) end)
    -- a callable table is a function
    local callable = setmetatable({}, {__call = function(_, x) return x end})
    assert.are.equal(9, aio.spawn(callable, 9):await())
    assert.are.equal("none", aio.spawn(setmetatable({}, {__call = function(_, x)
      return x == nil and "none" end})):await())
    -- arguments, nils included, reach the task when it starts
    local a, b, c, d = aio.spawn(function(...) return select("#", ...), ... end,
      nil, 2, nil):await()
    assert.are.same({3, nil, 2, nil}, {a, b, c, d})
    t:await()
  end))

  it("lets many tasks run and finish", H.async(function()
    local n, sum = 10000, 0
    local tasks = {}
    for i = 1, n do
      tasks[i] = aio.spawn(function() aio.sleep(0) sum = sum + i return i end)
    end
    for i = 1, n do assert.are.equal(i, tasks[i]:await()) end
    assert.are.equal(n * (n + 1) // 2, sum)
  end))
end)
