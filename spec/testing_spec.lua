-- aio.testing.run: the virtual clock (jumps, what holds it, real I/O),
-- strict checks, the real-time limit; aio.busted's helpers.
local aio = require "aio"
local core = require "aio.core"
local H = require "helper"
-- test bodies as tasks on a virtual clock, with the suite's real-time limit
local async = require("aio.busted").with { timeout = H.DEADLINE }

-- Real seconds that fn() took.
local function real_time(fn, ...)
  local t0 = aio.testing.real_now()
  fn(...)
  return aio.testing.real_now() - t0
end

describe("aio.testing.run", function()
  it("starts the clock at 0 and jumps over sleeps at once", function()
    local secs = real_time(function()
      local stamps = aio.testing.run(function()
        local s = {aio.now()}
        aio.sleep(3600)
        s[#s + 1] = aio.now()
        aio.sleep(0.25)
        s[#s + 1] = aio.now()
        return s
      end)
      assert.are.same({0, 3600, 3600.25}, stamps)
    end)
    assert.is_true(secs < 5, "an hour of sleep took " .. secs .. " s")
  end)

  it("fires deadlines in order, equal ones FIFO, and timeouts on time", function()
    local log = aio.testing.run(function()
      local log = {}
      local g <close> = aio.TaskGroup()
      for _, d in ipairs({3, 1, 2, 1, 0.5}) do
        g:spawn(function() aio.sleep(d) log[#log + 1] = d .. "@" .. aio.now() end)
      end
      g:wait()
      local err = H.raises("timeout", aio.timeout, 7, aio.sleep, 60)
      log[#log + 1] = ("%g@%g"):format(err.seconds, aio.now())
      return log
    end)
    assert.are.same({"0.5@0.5", "1@1.0", "1@1.0", "2@2.0", "3@3.0", "7@10"}, log)
  end)

  it("fires a deadline due at time 0", function()
    local err = H.raises("timeout", aio.testing.run, function()
      aio.timeout(0, aio.sleep, 1)
    end, {timeout = 5})
    assert.are.equal(0, err.seconds)
  end)

  it("gives the same times on every run, whatever the work between", function()
    local function trial(spin)
      return aio.testing.run(function()
        local stamps = {}
        for i = 1, 5 do
          for _ = 1, spin do local _ = math.sqrt(i) end
          aio.sleep(i * 0.1)
          stamps[i] = aio.now()
        end
        return table.concat(stamps, " ")
      end)
    end
    assert.are.equal(trial(0), trial(200000))
  end)

  it("is back on the real clock after the run", function()
    aio.testing.run(function() aio.sleep(100) end)
    local t = aio.run(function() return aio.now() end)
    assert.is_true(t > 1000)   -- uv_hrtime: seconds since boot, not 0
    assert.is_true(aio.now() > 1000)
  end)

  it("keeps real time while a task waits on I/O", function()
    local log = {}
    local secs = real_time(function()
      aio.testing.run(function()
        local server = aio.tcp.listen("127.0.0.1", 0, function(s)
          aio.sleep(0.2)            -- virtual, but a client waits on I/O
          s:write("late\n")
          s:close()
        end)
        -- a sleeper beside the reader must not jump past the reply
        local sleeper = aio.spawn(function() aio.sleep(60) log[#log + 1] = "slept" end)
        local c <close> = aio.tcp.connect("127.0.0.1", server.port)
        log[#log + 1] = c:read_line()
        log[#log + 1] = aio.now() >= 0.2 and "0.2 s passed" or "too early " .. aio.now()
        sleeper:await()              -- nothing on I/O now: jumps to 60
        log[#log + 1] = aio.now() >= 60 and aio.now() < 61 and "at 60" or "at " .. aio.now()
        server:close()
      end)
    end)
    assert.are.same({"late", "0.2 s passed", "slept", "at 60"}, log)
    assert.is_true(secs >= 0.15, "the read took only " .. secs .. " s")
  end)

  it("times out a wait on I/O in real time", function()
    local secs = real_time(function()
      aio.testing.run(function()
        local server = aio.tcp.listen("127.0.0.1", 0, function(s) s:read() end)
        local c <close> = aio.tcp.connect("127.0.0.1", server.port)
        local t0 = aio.now()
        H.raises("timeout", aio.timeout, 0.3, c.read, c)
        assert.is_true(aio.now() - t0 >= 0.3)
        c:close()
        server:close()
      end)
    end)
    assert.is_true(secs >= 0.25, "a 0.3 s timeout on a read took " .. secs .. " s")
  end)

  it("holds the clock for thread-pool calls and child processes", function()
    local log = aio.testing.run(function()
      local log = {}
      -- (far enough that the real time of the calls cannot reach it)
      local sleeper = aio.spawn(function() aio.sleep(600) log[#log + 1] = "slept" end)
      aio.to_thread(function()
        local t = os.clock() + 0.05
        while os.clock() < t do end
      end)
      log[#log + 1] = "thread"
      aio.process.run({"sleep", "0.05"})
      log[#log + 1] = "process"
      sleeper:await()
      return log
    end)
    assert.are.same({"thread", "process", "slept"}, log)
  end)

  it("jumps only after autojump seconds of idleness", function()
    local secs = real_time(function()
      local t = aio.testing.run(function()
        for _ = 1, 3 do aio.sleep(100) end
        return aio.now()
      end, {autojump = 0.05})
      assert.are.equal(300, t)
    end)
    assert.is_true(secs >= 0.14, "three jumps took only " .. secs .. " s")
  end)

  it("jumps over a listening server and a signal watcher", function()
    local t = aio.testing.run(function()
      local server <close> = aio.tcp.listen("127.0.0.1", 0, function() end)
      local reg <close> = aio.signal("SIGUSR2", function() end)
      aio.sleep(3600)
      return aio.now()
    end, {timeout = 5})
    assert.are.equal(3600, t)
  end)

  it("reports a deadlock instead of waiting forever", function()
    local err = H.raises("usage", aio.testing.run, function()
      aio.Event():wait()
    end)
    assert.matches("deadlock", tostring(err))
    err = H.raises("usage", aio.testing.run, function() aio.sleep(1e12) end)
    assert.matches("deadlock", tostring(err))
  end)

  it("raises timeout when the real-time limit passes", function()
    local err = H.raises("timeout", aio.testing.run, function()
      local c = aio.tcp.listen("127.0.0.1", 0, function(s) s:read() end)
      local s = aio.tcp.connect("127.0.0.1", c.port)
      s:read()              -- both wait on I/O forever
    end, {timeout = 0.2})
    assert.are.equal(0.2, err.seconds)
    assert.matches("real time", err.message)
  end)

  it("is aio.run otherwise: results, errors, arguments", function()
    assert.are.same({1, nil, 3}, {aio.testing.run(function() return 1, nil, 3 end)})
    assert.has_error(function() aio.testing.run(function() error("boom", 0) end) end, "boom")
    assert.are.equal("real", aio.testing.run(function()
      return aio.now() > 1000 and "real" or "virtual"
    end, {clock = "real"}))
    assert.has_error(function() aio.testing.run(42) end)
    assert.has_error(function() aio.testing.run(print, {clock = "fast"}) end)
    assert.has_error(function() aio.testing.run(print, {autojump = -1, clock = "real"}) end)
    assert.has_error(function() aio.testing.run(print, {speed = 2}) end)
    assert.has_error(function() aio.testing.run(print, {timeout = "1"}) end)
    H.raises("usage", aio.run, function() aio.testing.run(print) end)
  end)

  describe("strict", function()
    it("fails when tasks are left running, and cancels them", function()
      local left
      local err = H.raises("usage", aio.testing.run, function()
        left = aio.spawn(function() aio.sleep(10) end)
        aio.sleep(1)
      end, {strict = true})
      assert.matches("left 1 task%(s%) running", err.message)
      assert.is_true(left:cancelled())
    end)

    it("fails when an error was never retrieved, and names the task", function()
      local err = H.raises("usage", aio.testing.run, function()
        local t = aio.spawn(function() error("lost", 0) end)
        t.name = "worker"
        local seen = aio.spawn(function() error("seen", 0) end)
        aio.sleep(1)
        assert.are.equal("seen", seen:error())
      end, {strict = true})
      assert.matches("task 'worker' failed and nobody retrieved its error: lost", err.message)
      assert.are.equal(1, #err.tasks)
    end)
  end)
end)

describe("aio.busted", function()
  it("runs a test body as a task on a virtual clock", async(function()
    assert.is_not_nil(aio.current())
    aio.sleep(60)
    assert.are.equal(60, aio.now())
  end))

  it("takes the clock options", async(function()
    assert.is_true(aio.now() > 1000)
  end, {clock = "real"}))

  async.it("registers tests with async.it", function()
    aio.sleep(1)
    assert.are.equal(1, aio.now())
  end)

  aio.testing.it("is reachable as aio.testing.it", function()
    assert.are.equal(0, aio.now())
  end)

  local real = async.with {clock = "real"}
  it("makes helpers with other defaults", real(function()
    assert.is_true(aio.now() > 1000)
  end))

  it("fails a test that leaves a task running or an error unretrieved", function()
    local body = async(function() aio.spawn(function() aio.sleep(1) end) end)
    assert.has_error(body)
    local ok, err = pcall(async(function()
      aio.spawn(function() error("forgotten", 0) end)
      aio.sleep(0.1)
    end))
    assert.is_false(ok)
    assert.matches("nobody retrieved its error: forgotten", tostring(err))
    assert.are.equal(1, #err.tasks)
  end)

  it("checks its arguments", function()
    assert.has_error(function() async(42) end)
    assert.has_error(function() async(print, {clock = "fast"}) end)
    assert.has_error(function() async.with(5) end)
    assert.has_error(function() async.it(5, print) end)
    assert.has_error(function() async.run(print, 5) end)
  end)

  it("leaves no unseen errors behind for the next run", function()
    assert.are.same({}, core.unretrieved())
  end)
end)
