local aio = require "aio"
local H = require "helper"

-- Spawns a task that acquires `sem` and logs `name` once it holds it.
local function acquirer(sem, log, name, hold)
  return aio.spawn(function()
    sem:acquire()
    log[#log + 1] = name
    if hold then aio.sleep(hold) end
    sem:release()
  end)
end

describe("aio.Semaphore", function()
  it("hands permits out in FIFO order", H.async(function()
    local sem = aio.Semaphore(1)
    sem:acquire()
    local log = {}
    local tasks = {}
    for _, name in ipairs({"a", "b", "c"}) do
      tasks[#tasks + 1] = acquirer(sem, log, name)
      aio.sleep(0)
    end
    assert.are.equal(3, sem:waiting())
    sem:release()
    for _, t in ipairs(tasks) do t:await() end
    assert.are.same({"a", "b", "c"}, log)
    assert.are.equal(1, sem:available())
  end))

  it("never lets a newcomer barge past a waiter", H.async(function()
    local sem = aio.Semaphore(1)
    sem:acquire()
    local log = {}
    local waiter = acquirer(sem, log, "waiter")
    aio.sleep(0)
    sem:release()          -- handed to the waiter, which has not run yet
    assert.is_nil(sem:try_acquire())
    assert.are.equal(0, sem:available())
    local newcomer = acquirer(sem, log, "newcomer")
    waiter:await()
    newcomer:await()
    assert.are.same({"waiter", "newcomer"}, log)
  end))

  it("lets a waiter cancelled while waiting consume nothing", H.async(function()
    local sem = aio.Semaphore(1)
    sem:acquire()
    local log = {}
    local a = acquirer(sem, log, "a")
    local b = acquirer(sem, log, "b")
    aio.sleep(0)
    a:cancel()
    H.raises("cancelled", a.await, a)
    sem:release()
    b:await()
    assert.are.same({"b"}, log)
    assert.are.equal(1, sem:available())
  end))

  it("passes a permit handed at the instant of cancellation to the next waiter", H.async(function()
    local sem = aio.Semaphore(1)
    sem:acquire()
    local log = {}
    local a = acquirer(sem, log, "a")
    local b = acquirer(sem, log, "b")
    aio.sleep(0)
    sem:release()          -- the permit goes to a ...
    a:cancel()             -- ... which is cancelled before it runs
    H.raises("cancelled", a.await, a)
    b:await()
    assert.are.same({"b"}, log)
    assert.are.equal(1, sem:available())
  end))

  it("returns a permit handed at the instant of cancellation when nobody waits", H.async(function()
    local sem = aio.Semaphore(1)
    sem:acquire()
    local a = acquirer(sem, {}, "a")
    aio.sleep(0)
    sem:release()
    a:cancel()
    H.raises("cancelled", a.await, a)
    assert.are.equal(1, sem:available())
  end))

  it("gives a permit that releases once when closed", H.async(function()
    local sem = aio.Semaphore(2)
    do
      local p <close> = sem:acquire()
      assert.are.equal(1, sem:available())
    end
    assert.are.equal(2, sem:available())
    local ok = pcall(function()
      local p <close> = sem:acquire()
      error("body failed")
    end)
    assert.is_false(ok)
    assert.are.equal(2, sem:available())
    assert.are.equal(sem, sem:try_acquire())
    assert.are.equal(1, sem:available())
    sem:release()
  end))

  it("checks its size", function()
    assert.has_error(function() aio.Semaphore(-1) end, "bad argument #1 to 'Semaphore' (must not be negative)")
    assert.has_error(function() aio.Semaphore(1.5) end, "bad argument #1 to 'Semaphore' (number has no integer representation)")
    assert.has_error(function() aio.Semaphore("2") end, "bad argument #1 to 'Semaphore' (integer expected, got string)")
    assert.are.equal(1, aio.Semaphore():available())
    assert.are.equal(0, aio.Semaphore(0):available())
  end)

  it("raises usage when it would wait outside a task", function()
    local sem = aio.Semaphore(0)
    H.raises("usage", sem.acquire, sem)
    local free = aio.Semaphore(1)
    assert.are.equal(free, free:acquire())   -- no wait: fine
  end)

  it("rejects calls on other objects", function()
    local sem = aio.Semaphore(1)
    assert.has_error(function() sem.release({}) end)
    assert.has_error(function() sem.acquire(aio.Event()) end)
    assert.has_error(function() sem.available(io.stdout) end)
  end)
end)

describe("aio.BoundedSemaphore", function()
  it("raises usage when released above its size", H.async(function()
    local sem = aio.BoundedSemaphore(2)
    sem:acquire()
    sem:release()
    local err = H.raises("usage", sem.release, sem)
    assert.matches("released more times", err.message)
    assert.are.equal(2, sem:available())
  end))
end)

describe("aio.Lock", function()
  it("excludes, in FIFO order", H.async(function()
    local lock = aio.Lock()
    local inside, max_inside, order = 0, 0, {}
    local tasks = {}
    for i = 1, 5 do
      tasks[i] = aio.spawn(function()
        local guard <close> = lock:acquire()
        inside = inside + 1
        max_inside = math.max(max_inside, inside)
        order[#order + 1] = i
        aio.sleep(0.001)
        inside = inside - 1
      end)
    end
    for _, t in ipairs(tasks) do t:await() end
    assert.are.equal(1, max_inside)
    assert.are.same({1, 2, 3, 4, 5}, order)
    assert.is_false(lock:locked())
  end))

  it("raises usage when released while unlocked", H.async(function()
    local lock = aio.Lock()
    local err = H.raises("usage", lock.release, lock)
    assert.matches("unlocked Lock", err.message)
    assert.are.equal(lock, lock:try_acquire())
    assert.is_true(lock:locked())
    assert.is_nil(lock:try_acquire())
    lock:release()
    assert.is_false(lock:locked())
  end))

  it("passes the lock on when its new owner is cancelled before running", H.async(function()
    local lock = aio.Lock()
    lock:acquire()
    local log = {}
    local a = acquirer(lock, log, "a")
    local b = acquirer(lock, log, "b")
    aio.sleep(0)
    lock:release()
    a:cancel()
    b:await()
    assert.are.same({"b"}, log)
    assert.is_false(lock:locked())
    H.raises("cancelled", a.await, a)
  end))
end)

describe("aio.Event", function()
  it("wakes every waiter when set, and stays set until cleared", H.async(function()
    local ev = aio.Event()
    assert.is_false(ev:is_set())
    local woken = 0
    local tasks = {}
    for i = 1, 3 do tasks[i] = aio.spawn(function() assert.is_true(ev:wait()) woken = woken + 1 end) end
    aio.sleep(0)
    assert.are.equal(0, woken)
    ev:set()
    for _, t in ipairs(tasks) do t:await() end
    assert.are.equal(3, woken)
    assert.is_true(ev:is_set())
    assert.is_true(ev:wait())   -- at once
    ev:clear()
    assert.is_false(ev:is_set())
    local late = aio.spawn(function() ev:wait() end)
    aio.sleep(0.01)
    assert.is_false(late:done())
    ev:set()
    late:await()
  end))

  it("lets a cancelled waiter go without affecting the others", H.async(function()
    local ev = aio.Event()
    local a = aio.spawn(function() ev:wait() end)
    local b = aio.spawn(function() ev:wait() return "b" end)
    aio.sleep(0)
    a:cancel()
    H.raises("cancelled", a.await, a)
    ev:set()
    assert.are.equal("b", b:await())
  end))

  it("raises usage when waited on outside a task", function()
    H.raises("usage", aio.Event().wait, aio.Event())
    assert.has_error(function() aio.Event().set({}) end)
  end)
end)

describe("aio.Condition", function()
  it("waits for notify with the lock released, and holds it again after", H.async(function()
    local cond = aio.Condition()
    local items = {}
    local consumer = aio.spawn(function()
      local guard <close> = cond:acquire()
      local v = cond:wait_for(function() return items[1] end)
      assert.is_true(cond:locked())
      return v
    end)
    aio.sleep(0)
    do
      local guard <close> = cond:acquire()   -- possible: the waiter released it
      items[1] = "ready"
      cond:notify()
    end
    assert.are.equal("ready", consumer:await())
    assert.is_false(cond:locked())
  end))

  it("notifies n waiters in FIFO order, or all of them", H.async(function()
    local cond = aio.Condition()
    local log = {}
    local tasks = {}
    for i = 1, 4 do
      tasks[i] = aio.spawn(function()
        local guard <close> = cond:acquire()
        cond:wait()
        log[#log + 1] = i
      end)
    end
    aio.sleep(0)
    cond:acquire(); cond:notify(2); cond:release()
    aio.sleep(0.01)
    assert.are.same({1, 2}, log)
    cond:acquire(); cond:notify_all(); cond:release()
    for _, t in ipairs(tasks) do t:await() end
    assert.are.same({1, 2, 3, 4}, log)
  end))

  it("passes a notification on when the notified waiter is cancelled", H.async(function()
    local cond = aio.Condition()
    local log = {}
    local function waiter(name)
      return aio.spawn(function()
        local guard <close> = cond:acquire()
        cond:wait()
        log[#log + 1] = name
      end)
    end
    local a, b = waiter("a"), waiter("b")
    aio.sleep(0)
    cond:acquire(); cond:notify(1); cond:release()
    a:cancel()
    H.raises("cancelled", a.await, a)
    b:await()
    assert.are.same({"b"}, log)
    assert.is_false(cond:locked())
  end))

  it("raises usage for wait and notify without the lock", H.async(function()
    local cond = aio.Condition()
    H.raises("usage", cond.wait, cond)
    H.raises("usage", cond.notify, cond)
    H.raises("usage", cond.notify_all, cond)
    assert.has_error(function() aio.Condition(aio.Semaphore(1)) end)
    local lock = aio.Lock()
    local shared = aio.Condition(lock)
    shared:acquire()
    assert.is_true(lock:locked())
    shared:release()
  end))
end)
