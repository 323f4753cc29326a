local aio = require "aio"
local H = require "helper"

describe("aio.sleep", function()
  it("with 0 lets every other ready task run once", H.async(function()
    local log = {}
    for i = 1, 3 do
      aio.spawn(function()
        for round = 1, 2 do
          log[#log + 1] = i .. ":" .. round
          aio.sleep(0)
        end
      end)
    end
    aio.sleep(0)
    assert.are.same({"1:1", "2:1", "3:1"}, log)
    aio.sleep(0)
    assert.are.same({"1:1", "2:1", "3:1", "1:2", "2:2", "3:2"}, log)
    aio.sleep(0)
  end))

  it("waits at least the time asked", H.async(function()
    local t0 = aio.now()
    aio.sleep(0.05)
    local dt = aio.now() - t0
    assert.is_true(dt >= 0.05, "slept " .. dt)
    assert.is_true(dt < 1, "slept " .. dt)
  end))

  it("wakes sleepers in deadline order, FIFO for equal durations", H.async(function()
    local log = {}
    local tasks = {}
    for i, d in ipairs({0.03, 0.01, 0.02, 0.01, 0.03, 0.01}) do
      tasks[i] = aio.spawn(function() aio.sleep(d) log[#log + 1] = i end)
    end
    for _, t in ipairs(tasks) do t:await() end
    assert.are.same({2, 4, 6, 3, 1, 5}, log)
  end))

  it("treats negative durations as 0", H.async(function()
    local other = false
    aio.spawn(function() other = true end)
    aio.sleep(-5)
    assert.is_true(other)
  end))

  it("rejects NaN, strings and nil with argument errors", H.async(function()
    assert.has_error(function() aio.sleep(0 / 0) end, "bad argument #1 to 'sleep' (duration is NaN)")
    assert.has_error(function() aio.sleep("1") end, "bad argument #1 to 'sleep' (number expected, got string)")
    assert.has_error(function() aio.sleep() end, "bad argument #1 to 'sleep' (number expected, got no value)")
  end))

  it("raises usage outside a task", function()
    local err = H.raises("usage", aio.sleep, 0)
    assert.matches("aio.sleep suspends and must be called inside a task", err.message)
  end)

  it("keeps timers firing while another task spins on sleep(0)", H.async(function()
    local stop = false
    local spins = 0
    local spinner = aio.spawn(function()
      while not stop do spins = spins + 1 aio.sleep(0) end
    end)
    local t0 = aio.now()
    aio.sleep(0.02)
    local dt = aio.now() - t0
    stop = true
    spinner:await()
    assert.is_true(spins > 10)
    assert.is_true(dt < 0.5, "timer starved for " .. dt .. " s")
  end))

  it("keeps sockets served while another task spins on sleep(0)", H.async(function()
    local stop = false
    local spins = 0
    local spinner = aio.spawn(function()
      while not stop do spins = spins + 1 aio.sleep(0) end
    end)
    local server <close> = aio.tcp.listen("127.0.0.1", 0, function(stream)
      for line in function() return stream:read_line() end do stream:write(line, "\n") end
    end)
    local c <close> = aio.tcp.connect("127.0.0.1", server.port)
    local t0 = aio.now()
    for i = 1, 20 do
      c:write("ping " .. i .. "\n")
      assert.are.equal("ping " .. i, c:read_line())
    end
    local dt = aio.now() - t0
    stop = true
    spinner:await()
    assert.is_true(spins > 20, "the spinner ran only " .. spins .. " times")
    assert.is_true(dt < 2, "20 round trips took " .. dt .. " s")
    c:close()
  end))

  it("sleeps many tasks at once without a handle each", H.async(function()
    local core = require "aio.core"
    local base = core.stats().timers
    local tasks = {}
    for i = 1, 5000 do tasks[i] = aio.spawn(aio.sleep, 60) end
    aio.sleep(0)
    assert.are.equal(base + 5000, core.stats().timers)
    assert.are.equal(0, core.stats().handles)
    for _, t in ipairs(tasks) do t:cancel() end
    aio.settle(tasks)
    assert.are.equal(base, core.stats().timers)
  end))
end)

describe("aio.now", function()
  it("is monotonic seconds and advances", function()
    local a = aio.now()
    assert.is_number(a)
    local b = aio.now()
    assert.is_true(b >= a)
    aio.run(function() aio.sleep(0.01) end)
    assert.is_true(aio.now() - a >= 0.01)
  end)
end)
