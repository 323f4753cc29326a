local aio = require "aio"
local H = require "helper"

local function getter(q, log, name)
  return aio.spawn(function()
    local v = q:get()
    log[#log + 1] = name .. "=" .. tostring(v)
    return v
  end)
end

describe("aio.Queue", function()
  it("is FIFO, with size, #, empty, full and maxsize", H.async(function()
    local q = aio.Queue(3)
    assert.are.equal(3, q.maxsize)
    assert.is_true(q:empty())
    for i = 1, 3 do q:put(i) end
    assert.are.equal(3, q:size())
    assert.are.equal(3, #q)
    assert.is_true(q:full())
    assert.are.same({1, 2, 3}, {q:get(), q:get(), q:get()})
    assert.is_true(q:empty())
    assert.are.equal(0, aio.Queue().maxsize)
    assert.is_false(aio.Queue():full())
  end))

  it("raises queue_full and queue_empty from the nowait forms", H.async(function()
    local q = aio.Queue(1)
    H.raises("queue_empty", q.get_nowait, q)
    q:put_nowait("x")
    local err = H.raises("queue_full", q.put_nowait, q, "y")
    assert.matches("maxsize 1", err.message)
    assert.are.equal("x", q:get_nowait())
  end))

  it("hands values to waiting getters in FIFO order", H.async(function()
    local q = aio.Queue()
    local log = {}
    local tasks = {getter(q, log, "a"), getter(q, log, "b"), getter(q, log, "c")}
    aio.sleep(0)
    q:put(1); q:put(2); q:put(3)
    for _, t in ipairs(tasks) do t:await() end
    assert.are.same({"a=1", "b=2", "c=3"}, log)
  end))

  it("lets waiting putters in in FIFO order as room frees", H.async(function()
    local q = aio.Queue(1)
    q:put("first")
    local p1 = aio.spawn(function() q:put("p1") end)
    local p2 = aio.spawn(function() q:put("p2") end)
    aio.sleep(0)
    assert.is_false(p1:done())
    assert.are.equal("first", q:get())
    assert.are.equal("p1", q:get())
    assert.are.equal("p2", q:get())
    p1:await(); p2:await()
  end))

  it("keeps a newcomer from taking a value handed to a waiting getter", H.async(function()
    local q = aio.Queue()
    local log = {}
    local g = getter(q, log, "g")
    aio.sleep(0)
    q:put("v")
    H.raises("queue_empty", q.get_nowait, q)
    g:await()
    assert.are.same({"g=v"}, log)
  end))

  it("lets a getter cancelled while waiting consume nothing", H.async(function()
    local q = aio.Queue()
    local log = {}
    local a, b = getter(q, log, "a"), getter(q, log, "b")
    aio.sleep(0)
    a:cancel()
    H.raises("cancelled", a.await, a)
    q:put("x")
    b:await()
    assert.are.same({"b=x"}, log)
  end))

  it("passes a value handed at the instant of cancellation to the next getter", H.async(function()
    local q = aio.Queue()
    local log = {}
    local a, b = getter(q, log, "a"), getter(q, log, "b")
    aio.sleep(0)
    q:put("x")     -- handed to a ...
    a:cancel()     -- ... cancelled before it runs
    H.raises("cancelled", a.await, a)
    b:await()
    assert.are.same({"b=x"}, log)
  end))

  it("puts a value handed at the instant of cancellation back at the front", H.async(function()
    local q = aio.Queue()
    local a = getter(q, {}, "a")
    aio.sleep(0)
    q:put("x")
    q:put("y")
    a:cancel()
    H.raises("cancelled", a.await, a)
    assert.are.same({"x", "y"}, {q:get_nowait(), q:get_nowait()})
  end))

  it("drops the value of a putter cancelled while waiting", H.async(function()
    local q = aio.Queue(1)
    q:put("a")
    local p = aio.spawn(function() q:put("b") end)
    aio.sleep(0)
    p:cancel()
    H.raises("cancelled", p.await, p)
    assert.are.equal("a", q:get())
    H.raises("queue_empty", q.get_nowait, q)
  end))

  it("completes a put accepted at the instant of cancellation", H.async(function()
    local q = aio.Queue(1)
    q:put("a")
    local after_put
    local p = aio.spawn(function()
      q:put("b")
      after_put = true
      aio.sleep(0)     -- the cancellation arrives here
    end)
    aio.sleep(0)
    assert.are.equal("a", q:get())   -- "b" moves in, p is woken
    p:cancel()
    H.raises("cancelled", p.await, p)
    assert.is_true(after_put)
    assert.are.equal("b", q:get_nowait())
  end))

  it("closes: put raises, get drains then returns nil, waiters are released", H.async(function()
    local q = aio.Queue(1)
    local log = {}
    local g1, g2 = getter(q, log, "g1"), getter(q, log, "g2")
    aio.sleep(0)
    q:close()
    g1:await(); g2:await()
    assert.are.same({"g1=nil", "g2=nil"}, log)
    H.raises("closed", q.put, q, 1)
    H.raises("closed", q.put_nowait, q, 1)

    local q2 = aio.Queue(1)
    q2:put("left")
    local p = aio.spawn(function() q2:put("blocked") end)
    aio.sleep(0)
    q2:close()
    local err = H.raises("closed", p.await, p)
    assert.matches("closed queue", err.message)
    assert.are.equal("left", q2:get())
    assert.is_nil(q2:get())
    assert.is_nil(q2:get_nowait())
    assert.is_true(q2:closed())
  end))

  it("iterates with items() until closed and drained", H.async(function()
    local q = aio.Queue(2)
    local producer = aio.spawn(function()
      for i = 1, 10 do q:put(i) end
      q:close()
    end)
    local got = {}
    for item in q:items() do got[#got + 1] = item end
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, got)
    producer:await()
  end))

  it("joins once every value put is marked done", H.async(function()
    local q = aio.Queue()
    for i = 1, 3 do q:put(i) end
    local joined = false
    local j = aio.spawn(function() q:join() joined = true end)
    aio.sleep(0)
    for _ = 1, 3 do
      assert.is_false(joined)
      q:get()
      q:task_done()
      aio.sleep(0)
    end
    j:await()
    assert.is_true(joined)
    q:join()   -- at once
    local err = H.raises("usage", q.task_done, q)
    assert.matches("more times than items were got", err.message)
  end))

  it("refuses nil values and bad sizes", H.async(function()
    local q = aio.Queue()
    assert.has_error(function() q:put(nil) end, "bad argument #1 to 'put' (nil cannot be put in a queue)")
    assert.has_error(function() q:put_nowait() end)
    assert.has_error(function() aio.Queue(-1) end, "bad argument #1 to 'Queue' (maxsize must not be negative)")
    assert.has_error(function() aio.Queue(2.5) end, "bad argument #1 to 'Queue' (maxsize must be an integer)")
    assert.has_error(function() aio.Queue("x") end)
    assert.has_error(function() q.get({}) end)
  end))

  it("raises usage when it would wait outside a task", function()
    local q = aio.Queue(1)
    H.raises("usage", q.get, q)
    q:put(1)
    H.raises("usage", q.put, q, 2)
    assert.are.equal(1, q:get())
  end)

  it("carries a million values through a small queue", H.async(function()
    local q = aio.Queue(8)
    local n, sum = 200000, 0
    local consumers = {}
    for k = 1, 3 do
      consumers[k] = aio.spawn(function()
        for v in q:items() do sum = sum + v end
      end)
    end
    for i = 1, n do q:put(i) end
    q:close()
    for _, c in ipairs(consumers) do c:await() end
    assert.are.equal(n * (n + 1) // 2, sum)
  end))
end)

describe("aio.LifoQueue", function()
  it("gets the last value put first", H.async(function()
    local q = aio.LifoQueue()
    for i = 1, 4 do q:put(i) end
    assert.are.same({4, 3, 2, 1}, {q:get(), q:get(), q:get(), q:get()})
    local q1 = aio.LifoQueue(1)
    q1:put("a")
    H.raises("queue_full", q1.put_nowait, q1, "b")
  end))
end)

describe("aio.PriorityQueue", function()
  it("gets the smallest first, equal ones in put order", H.async(function()
    local q = aio.PriorityQueue()
    for _, v in ipairs({5, 1, 4, 1, 3, 9, 2}) do q:put(v) end
    local got = {}
    while not q:empty() do got[#got + 1] = q:get() end
    assert.are.same({1, 1, 2, 3, 4, 5, 9}, got)
    local pq = aio.PriorityQueue(0, function(a, b) return a.p < b.p end)
    for i, p in ipairs({2, 1, 2, 1, 2}) do pq:put({p = p, i = i}) end
    local order = {}
    for _ = 1, 5 do order[#order + 1] = pq:get().i end
    assert.are.same({2, 4, 1, 3, 5}, order)
  end))

  it("orders by a custom less and keeps working after a failed compare", H.async(function()
    local q = aio.PriorityQueue(nil, function(a, b) return a > b end)
    for _, v in ipairs({1, 3, 2}) do q:put(v) end
    assert.are.same({3, 2, 1}, {q:get(), q:get(), q:get()})
    local plain = aio.PriorityQueue()
    plain:put(1)
    assert.has_error(function() plain:put({}) end)
    assert.is_true(plain:size() >= 1)
    assert.has_error(function() aio.PriorityQueue(0, 42) end)
  end))

  it("gives a value back to the front when its getter is cancelled", H.async(function()
    local q = aio.PriorityQueue()
    local g = getter(q, {}, "g")
    aio.sleep(0)
    q:put(5)
    g:cancel()
    q:put(5)
    q:put(1)
    H.raises("cancelled", g.await, g)
    assert.are.same({1, 5, 5}, {q:get(), q:get(), q:get()})
  end))
end)
