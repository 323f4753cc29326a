local aio = require "aio"
local H = require "helper"
local eventually = require "support.wait"
local F = require "support.fifo"

local thread = require "aio.io.thread"
local to_thread = aio.to_thread

-- A worker body: creates `marker`, then blocks reading `fifo` (a pool
-- thread held until the test writes to it); returns what it read.
local function marked_wait(marker, fifo)
  io.open(marker, "w"):close()
  local f = io.open(fifo, "r")
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function release(fifo)
  local w = assert(io.open(fifo, "w"))
  w:write("go")
  w:close()
end

describe("aio.to_thread", function()
  it("runs a function in another state and returns its results", H.async(function()
    local a, b, c = to_thread(function(x, y) return x + y, x .. y, nil end, 2, 3)
    assert.are.equal(5, a)
    assert.are.equal("23", b)
    assert.is_nil(c)
    assert.are.equal(3, select("#", to_thread(function() return 1, nil, 3 end)))
    assert.are.equal(0, select("#", to_thread(function() end)))
    -- a global of this state is not visible there
    _G.aio_spec_marker = 1
    assert.is_nil(to_thread(function() return aio_spec_marker end))   -- luacheck: ignore
    _G.aio_spec_marker = nil
  end))

  it("copies nil, booleans, numbers, strings and nested tables", H.async(function()
    local value = {
      1, 2.5, "three", true, false,
      nested = { deeper = { list = { 1, 2, 3 }, ["key with space"] = "v" } },
      [10] = math.maxinteger, [2.5] = "float key", [true] = "bool key",
      bytes = "a\0b\255", big = 2^60, nan = 0 / 0,
    }
    local back, n, f = to_thread(function(v, ...) return v, select("#", ...), select(2, ...) end,
      value, nil, 1.0, nil)
    assert.are.same(value.nested, back.nested)
    assert.are.equal("a\0b\255", back.bytes)
    assert.are.equal(math.maxinteger, back[10])
    assert.are.equal("float key", back[2.5])
    assert.are.equal("bool key", back[true])
    assert.are.equal("float", math.type(back[2]))
    assert.are.equal("integer", math.type(back[1]))
    assert.is_true(back.nan ~= back.nan)
    assert.are.equal(3, n)
    assert.are.equal("float", math.type(f))
    assert.are_not.equal(value, back)                 -- a copy
    local shared = { x = 1 }
    local two = to_thread(function(t) return t end, { a = shared, b = shared })
    assert.are.same({ x = 1 }, two.a)
    assert.are.same({ x = 1 }, two.b)
  end))

  it("refuses what it cannot copy or move, with usage", H.async(function()
    local up = 42
    local err = H.raises("usage", to_thread, function() return up end)
    assert.matches("upvalue 'up'", err.message)
    H.raises("usage", to_thread, print)
    local cyc = {}
    cyc.self = cyc
    err = H.raises("usage", to_thread, function(t) return t end, cyc)
    assert.matches("cycle", err.message)
    err = H.raises("usage", to_thread, function(t) return t end, { f = print })
    assert.matches("cannot copy a function", err.message)
    H.raises("usage", to_thread, function(t) return t end, coroutine.create(print))
    H.raises("usage", to_thread, function(t) return t end, io.stdout)
    local deep = {}
    for _ = 1, 150 do deep = { deep } end
    err = H.raises("usage", to_thread, function(t) return t end, deep)
    assert.matches("nested more than", err.message)
    err = H.raises("usage", to_thread, function() return print end)
    assert.matches("cannot copy the results back: cannot copy a function", err.message)
    err = H.raises("usage", to_thread, function() local t = {} t.t = t return t end)
    assert.matches("cycle", err.message)
    assert.has_error(function() to_thread(42) end)
  end))

  it("raises thread with the message, traceback and value of an error", H.async(function()
    local err = H.raises("thread", to_thread, function(x)
      local function inner() error("boom " .. x) end
      inner()
    end, 7)
    assert.matches("boom 7", err.message)
    assert.matches("thread_spec.lua:%d+: boom 7", tostring(err))
    assert.matches("stack traceback", err.traceback)
    assert.matches("'inner'", err.traceback)
    err = H.raises("thread", to_thread, function() error({ code = 5 }) end)
    assert.are.same({ code = 5 }, err.value)
    err = H.raises("thread", to_thread, function() error(setmetatable({}, { __tostring = function() return "custom" end })) end)
    assert.are.equal("custom", err.message)
    err = H.raises("thread", to_thread, function() return nil + 1 end)
    assert.matches("attempt to perform arithmetic on a nil value", err.message)
  end))

  it("keeps the loop ticking while a thread busy-loops", H.async(function()
    local ticks = 0
    local ticker = aio.spawn(function()
      while true do aio.sleep(0.005) ticks = ticks + 1 end
    end)
    local t0 = aio.now()
    local sum = to_thread(function(secs)
      local clock, x = os.clock, 0
      local stop = clock() + secs
      while clock() < stop do x = x + 1 end
      return x
    end, 0.3)
    local dt = aio.now() - t0
    ticker:cancel()
    pcall(ticker.await, ticker)
    assert.is_true(sum > 0)
    assert.is_true(dt >= 0.1, "the thread ran " .. dt .. " s")  -- CPU time
    -- (valgrind runs one thread at a time: the ticker cannot run then)
    if not H.VALGRIND then
      assert.is_true(ticks >= 10, "only " .. ticks .. " ticks in " .. dt .. " s")
    end
  end))

  it("reuses its Lua states from a pool", H.async(function()
    local key = "aio_spec_counter_" .. tostring(math.random(1e9))
    local last
    for _ = 1, 50 do
      last = to_thread(function(k) _G[k] = (_G[k] or 0) + 1 return _G[k] end, key)
    end
    assert.are.equal(50, last)
  end))

  it("runs at most limit() calls at once, the others in order", H.async(function()
    local dir = H.tmpdir()
    local saved = thread.limit()
    thread.limit(2)
    local tasks, fifos, markers = {}, {}, {}
    for i = 1, 5 do
      fifos[i] = F.make(dir .. "/fifo" .. i)
      markers[i] = dir .. "/started" .. i
      tasks[i] = aio.spawn(to_thread, marked_wait, markers[i], fifos[i])
    end
    local function started()
      local n = {}
      for i = 1, 5 do if exists(markers[i]) then n[#n + 1] = i end end
      return table.concat(n, ",")
    end
    eventually(function() return started() == "1,2" end)
    aio.sleep(0.1)
    assert.are.equal("1,2", started())
    release(fifos[1])
    assert.are.equal("go", tasks[1]:await())
    eventually(function() return started() == "1,2,3" end)
    release(fifos[2])
    release(fifos[3])
    eventually(function() return started() == "1,2,3,4,5" end)
    release(fifos[4])
    release(fifos[5])
    for i = 2, 5 do assert.are.equal("go", tasks[i]:await()) end
    thread.limit(saved)
    H.rmtree(dir)
  end))

  it("drops a call waiting for a slot when its task is cancelled", H.async(function()
    local dir = H.tmpdir()
    local saved = thread.limit()
    thread.limit(1)
    local fifo = F.make(dir .. "/fifo")
    local first = aio.spawn(to_thread, marked_wait, dir .. "/first", fifo)
    eventually(function() return exists(dir .. "/first") end)
    local second = aio.spawn(to_thread, marked_wait, dir .. "/second", fifo)
    aio.sleep(0.05)
    second:cancel()
    assert.is_false(pcall(second.await, second))
    release(fifo)
    assert.are.equal("go", first:await())
    aio.sleep(0.05)
    assert.is_false(exists(dir .. "/second"))
    thread.limit(saved)
    H.rmtree(dir)
  end))

  it("drops a call queued in the libuv pool with uv_cancel", H.async(function()
    local dir = H.tmpdir()
    local release_pool = F.hold_pool(dir, thread.pool_size)   -- every thread
    local t = aio.spawn(to_thread, function(m) io.open(m, "w"):close() end, dir .. "/ran")
    aio.sleep(0.05)
    assert.is_false(t:done())
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "cancelled"))
    release_pool()
    assert.are.equal(42, to_thread(function() return 42 end))   -- the pool is back
    assert.is_false(exists(dir .. "/ran"))
    H.rmtree(dir)
  end))

  it("lets a running call finish in its thread when cancelled", H.async(function()
    local dir = H.tmpdir()
    local fifo = F.make(dir .. "/fifo")
    local t = aio.spawn(to_thread, function(marker, f, done)
      io.open(marker, "w"):close()
      local h = io.open(f, "r")
      h:read("a")
      h:close()
      io.open(done, "w"):close()
    end, dir .. "/started", fifo, dir .. "/done")
    eventually(function() return exists(dir .. "/started") end)
    t:cancel()
    local ok, err = pcall(t.await, t)           -- at once, not at the end
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "cancelled"))
    assert.is_false(exists(dir .. "/done"))
    release(fifo)
    eventually(function() return exists(dir .. "/done") end)
    H.rmtree(dir)
  end))

  it("leaves a pool thread for files and DNS while threads are busy", H.async(function()
    local dir = H.tmpdir()
    local n = thread.limit() + 2
    local tasks, fifos = {}, {}
    for i = 1, n do
      fifos[i] = F.make(dir .. "/fifo" .. i)
      tasks[i] = aio.spawn(to_thread, marked_wait, dir .. "/m" .. i, fifos[i])
    end
    aio.sleep(0.05)
    aio.fs.write_file(dir .. "/file", "still served")
    assert.are.equal("still served", aio.fs.read_file(dir .. "/file"))
    assert.is_true(#aio.dns.resolve("localhost") >= 1)
    for i = 1, n do assert.is_false(tasks[i]:done()) end
    for i = 1, n do
      eventually(function() return exists(dir .. "/m" .. i) end)
      release(fifos[i])
    end
    for i = 1, n do assert.are.equal("go", tasks[i]:await()) end
    H.rmtree(dir)
  end))

  it("rejects a bad limit", function()
    assert.has_error(function() thread.limit(0) end, "bad argument #1 to 'limit' (limit must be at least 1)")
  end)

  it("raises usage outside a task", function()
    local err = H.raises("usage", to_thread, function() end)
    assert.matches("inside a task", err.message)
  end)
  it("lets a thread run an aio loop of its own (SIGINT stays with the main one)", H.async(function()
    local r = aio.to_thread(function()
      local a = require "aio"
      return a.run(function() a.sleep(0.01) return "inner run" end)
    end)
    assert.are.equal("inner run", r)
  end))
end)
