-- Regression: cancelling tasks whose requests waited for admission (past
-- a session's max_connections) connected them anyway: each cancelled
-- request that ended freed a slot, and admission started the next queued
-- request, whose task was cancelled too. 3,000 cancelled gets made 2,103
-- connections; with 10,000 the connects stalled the loop for seconds. A
-- request nobody waits for is never started now.
local aio = require "aio"
local H = require "helper"

describe("a session with queued requests", function()
  it("makes no connection for requests whose tasks were cancelled", H.async(function()
    local conns = 0
    local server <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
      conns = conns + 1
      s:read()                          -- holds the request: no answer
      s:read()
    end)
    local url = ("http://127.0.0.1:%d/"):format(server.port)
    local session <close> = aio.http.Session({ max_connections = 10 })
    local tasks = {}
    for i = 1, 300 do tasks[i] = aio.spawn(function() return session:get(url) end) end
    local t0 = aio.now()
    while conns < 10 do
      assert(aio.now() - t0 < 10, "the first requests never connected")
      aio.sleep(0.01)
    end
    for i = 1, #tasks do tasks[i]:cancel() end
    for i = 1, #tasks do
      local ok, err = pcall(tasks[i].await, tasks[i])
      assert.is_false(ok)
      assert.is_true(aio.is_error(err, "cancelled"), tostring(err))
    end
    aio.sleep(0.1)                      -- connections would land meanwhile
    assert.are.equal(10, conns)
    local stats = session:stats()
    assert.are.equal(0, stats.active)
    assert.are.equal(0, stats.waiting)
  end))
end)
