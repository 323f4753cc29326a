local aio = require "aio"
local core = require "aio.core"
local H = require "helper"

describe("aio.run", function()
  it("returns the main function's results, nils included", function()
    local a, b, c, d = aio.run(function(x, y) return x + y, nil, "z", nil end, 1, 2)
    assert.are.equal(3, a)
    assert.is_nil(b)
    assert.are.equal("z", c)
    assert.is_nil(d)
    assert.are.equal(4, select("#", aio.run(function() return 1, nil, 3, nil end)))
  end)

  it("re-raises the main task's error with its value unchanged", function()
    local e = {code = 42}
    local ok, err = pcall(aio.run, function() aio.sleep(0) error(e) end)
    assert.is_false(ok)
    assert.are.equal(e, err)
    ok, err = pcall(aio.run, function() error("plain", 0) end)
    assert.is_false(ok)
    assert.are.equal("plain", err)
  end)

  it("raises usage when called while a loop is running", function()
    aio.run(function()
      local err = H.raises("usage", aio.run, function() end)
      assert.matches("while a loop is running", err.message)
    end)
  end)

  it("can be called again after it returned", function()
    for i = 1, 3 do
      assert.are.equal(i, aio.run(function() aio.sleep(0.001) return i end))
    end
    assert.is_false(core.stats().running)
  end)

  it("rejects a non-function with a bad argument error", function()
    local ok, err = pcall(aio.run, 42)
    assert.is_false(ok)
    assert.matches("bad argument #1", err)
    assert.is_false(core.stats().running)
  end)

  it("cancels the tasks still alive at the end and lets them clean up", function()
    local log = {}
    aio.run(function()
      aio.spawn(function()
        local guard <close> = setmetatable({}, {__close = function() log[#log + 1] = "closed" end})
        local ok, err = pcall(aio.sleep, 10)
        log[#log + 1] = aio.is_error(err, "cancelled") and "cancelled" or tostring(err)
        assert(not ok)
        -- clean-up that must suspend runs under shield
        aio.shield(function() aio.sleep(0.001) end)
        log[#log + 1] = "shielded sleep done"
      end)
      aio.sleep(0.001)
    end)
    assert.are.same({"cancelled", "shielded sleep done", "closed"}, log)
    assert.are.equal(0, core.stats().tasks)
  end)

  it("cancels tasks that never started without running them", function()
    local ran = false
    aio.run(function() aio.spawn(function() ran = true end) end)
    assert.is_false(ran)
  end)

  it("leaves no timer, task or handle behind", function()
    aio.run(function()
      for _ = 1, 10 do aio.spawn(aio.sleep, 5) end
      aio.spawn(function() aio.timeout(5, aio.sleep, 6) end)
      aio.sleep(0.001)
    end)
    local s = core.stats()
    assert.are.equal(0, s.tasks)
    assert.are.equal(0, s.timers)
    assert.are.equal(0, s.handles)
    assert.are.equal(0, s.ready)
  end)

  it("raises interrupted when SIGINT arrives, after the main task unwound", function()
    local cleaned = false
    local ok, err = pcall(aio.run, function()
      local guard <close> = setmetatable({}, {__close = function() cleaned = true end})
      -- system() ignores SIGINT while it waits, so the kill runs detached
      os.execute("(sleep 0.05; kill -INT " .. H.pid() .. ") &")
      aio.sleep(5)
    end)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "interrupted"), tostring(err))
    assert.is_true(cleaned)
  end)

  it("interrupts a task that blocks the loop at the second SIGINT", function()
    local out = H.lua_child_sigint([[
      local aio = require "aio"
      io.stdout:setvbuf("no")
      local ok, err = pcall(aio.run, function()
        print("started")
        local ok2, e2 = pcall(function() while true do end end)
        print("inner:", tostring(e2))
        aio.sleep(5)
      end)
      print("run:", tostring(err))
    ]], 2, H.SLOW and 1.5 or 0.3)
    assert.matches("started", out)
    assert.matches("inner:%s+interrupted: interrupted by SIGINT while blocking the loop", out)
    assert.matches("run:%s+interrupted: interrupted by SIGINT", out)
  end)

  it("reports a failed task whose error nobody retrieved on stderr", function()
    local out = H.lua_child([[
      local aio = require "aio"
      aio.run(function()
        local t = aio.spawn(function() error("nobody looks at me") end)
        t.name = "lonely"
        aio.sleep(0.01)
      end)
      io.stdout:write("after run\n")
    ]])
    assert.matches("task 'lonely' failed and nobody retrieved its error", out)
    assert.matches("nobody looks at me", out)
    assert.matches("stack traceback", out)
    -- at the latest when aio.run returns
    assert.is_true(out:find("nobody looks at me", 1, true) < out:find("after run", 1, true))
  end)

  it("does not report errors that were retrieved", function()
    local out = H.lua_child([[
      local aio = require "aio"
      aio.run(function()
        local t = aio.spawn(function() error("seen") end)
        aio.sleep(0.01)
        assert(not pcall(t.await, t))
        local t2 = aio.spawn(function() error("seen too") end)
        aio.sleep(0.01)
        assert(t2:error():match("seen too"))
        local t3 = aio.spawn(function() aio.sleep(1) end)
        aio.sleep(0)
        t3:cancel()
        aio.sleep(0.01)
      end)
      io.stdout:write("clean\n")
    ]])
    assert.are.equal("clean\n", out)
  end)

  it("turns a deadlock into a usage error instead of hanging", function()
    local err = H.raises("usage", aio.run, function()
      local never = aio.spawn(function() aio.sleep(math.huge) end)
      never:cancel()
      local waiter = aio.spawn(function() end)
      waiter:await()
      -- an awaited task that can never finish: await ourselves through a
      -- chain of two tasks waiting on each other
      local a, b
      a = aio.spawn(function() aio.sleep(0) b:await() end)
      b = aio.spawn(function() aio.sleep(0) a:await() end)
      a:await()
    end)
    assert.matches("deadlock", err.message)
  end)
end)
