-- aio.redis under load and faults: every task gets its own reply while
-- tasks are cancelled or time out around it, lost connections fail what
-- was in flight and reconnect (with back-off) for what comes later, and
-- the client recovers from a redis-server killed and restarted under load.
local aio = require "aio"
local H = require "helper"
local S = require "support.redis_server"
local wait = require "support.wait"

local describe_redis = S.available() and describe or pending

-- Awaits `t`: true if it finished, false if it was cancelled; any other
-- error fails the spec.
local function outcome(t)
  local ok, err = pcall(t.await, t)
  if ok then return true end
  assert(aio.is_error(err, "cancelled"), tostring(err))
  return false
end

describe_redis("aio.redis under faults and load", function()
  local srv

  setup(function() srv = S.start() end)
  teardown(function() S.stop(srv) end)

  it("gives every task its own reply among 1,000 tasks with random cancellations", H.async(function()
    local r <close> = aio.redis.connect(srv.url)
    local N, ROUNDS = H.SLOW and 300 or 1000, 12
    local wrong, sent = 0, 0
    local tasks = {}
    for i = 1, N do
      tasks[i] = aio.spawn(function()
        for j = 1, ROUNDS do
          local v = i .. ":" .. j
          sent = sent + 1
          if r:echo(v) ~= v then wrong = wrong + 1 end
          if j % 4 == 0 then
            r:set("k" .. i, v)
            if r:get("k" .. i) ~= v then wrong = wrong + 1 end
            local res = r:pipeline():echo(v):incr("n" .. i):echo(v .. "!"):execute()
            if res[1] ~= v or res[3] ~= v .. "!" then wrong = wrong + 1 end
          end
        end
      end)
    end
    math.randomseed(1515)
    local cancelled = 0
    for _ = 1, 60 do
      for _ = 1, 8 do
        if tasks[math.random(N)]:cancel("chaos") then cancelled = cancelled + 1 end
      end
      aio.sleep(math.random() < 0.5 and 0 or 0.001)
    end
    local finished = 0
    for _, t in ipairs(tasks) do
      if outcome(t) then finished = finished + 1 end
    end
    assert.are.equal(0, wrong)
    assert.is_true(cancelled > 100 and finished > N / 3, cancelled .. " " .. finished)
    -- the tombstones were read and dropped: the connection is in step
    assert.are.equal("last", r:echo("last"))
    assert.are.equal(0, r._conn:pending())
  end))

  it("drops the replies of commands that timed out", H.async(function()
    local r <close> = aio.redis.connect(srv.url, { timeout = 0.05 })
    local admin <close> = aio.redis.connect(srv.url)
    local sleeper = aio.spawn(function() return admin:call("DEBUG", "SLEEP", 0.3) end)
    aio.sleep(0.02)
    local tasks = {}
    for i = 1, 100 do
      tasks[i] = aio.spawn(function() return r:echo("old " .. i) end)
    end
    for _, t in ipairs(tasks) do
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "timeout"), tostring(e))
      assert.are.equal("read", e.phase)
      assert.are.equal("ECHO", e.command)
    end
    assert.are.equal("OK", sleeper:await())
    -- the 100 late replies arrive first and go nowhere
    for i = 1, 100 do
      tasks[i] = aio.spawn(function() return r:echo("new " .. i) end)
    end
    for i, t in ipairs(tasks) do assert.are.equal("new " .. i, t:await()) end
    assert.are.equal(0, r._conn:pending())
  end))

  it("fails the commands in flight with io and reconnects for later ones", H.async(function()
    local r <close> = aio.redis.connect(srv.url)
    local admin <close> = aio.redis.connect(srv.url)
    local id = r:client_id()
    admin:client_pause(2000, "WRITE")
    local inflight = aio.spawn(function() return r:set("k", "v") end)
    aio.sleep(0.05)
    admin:client_kill("ID", id)
    local ok, e = pcall(inflight.await, inflight)
    assert.is_false(ok)
    assert.is_true(aio.is_error(e, "io"), tostring(e))
    assert.matches("connection to 127.0.0.1:%d+ lost", e.message)
    admin:client_unpause()
    assert.are.equal("PONG", r:ping())
    assert.are_not.equal(id, r:client_id())
    -- an idle connection that is dropped is replaced without an error
    admin:client_kill("ID", r:client_id())
    aio.sleep(0.05)
    assert.are.equal("PONG", r:ping())
  end))

  it("recovers when the server is killed and restarted under load", H.async(function()
    local r <close> = aio.redis.connect(srv.url)
    local sub <close> = r:subscribe("alive")
    local kinds, stop, restarted = {}, false, false
    local after = {}
    local workers = {}
    for i = 1, 50 do
      workers[i] = aio.spawn(function()
        local n = 0
        while not stop do
          n = n + 1
          local v = i .. ":" .. n
          local ok, e = pcall(r.echo, r, v)
          if ok then
            assert(e == v, "a reply for another task")
            if restarted then after[i] = true end
          else
            assert(aio.is_error(e, "io") or aio.is_error(e, "connect"), tostring(e))
            kinds[e.kind] = (kinds[e.kind] or 0) + 1
          end
        end
      end)
    end
    aio.sleep(0.1)
    -- the server is busy when it dies: commands are surely in flight
    local busy = aio.spawn(function() return pcall(r.call, r, "DEBUG", "SLEEP", 2) end)
    aio.sleep(0.05)
    S.kill(srv)
    local ok, e = busy:await()
    assert.is_false(ok)
    assert.is_true(aio.is_error(e, "io"), tostring(e))
    aio.sleep(0.2)
    S.restart(srv)
    restarted = true
    wait(function()
      for i = 1, 50 do if not after[i] then return false end end
      return true
    end, H.SLOW and 30 or 10)
    stop = true
    for _, w in ipairs(workers) do w:await() end
    assert.is_true((kinds.io or 0) > 0, require("cjson").encode(kinds))
    -- the subscription lost its connection: it says so once, then
    -- subscribes again
    H.raises("io", sub.receive, sub)
    local got = aio.spawn(function() return sub:receive() end)
    wait(function() return r:publish("alive", "again") > 0 end)
    assert.are.equal("again", got:await().data)
  end))

  it("waits between reconnection attempts while the server is down", H.async(function()
    local r <close> = aio.redis.connect(srv.url)
    S.kill(srv)
    local attempts, t0 = 0, aio.now()
    while aio.now() - t0 < 0.5 do
      local ok, e = pcall(r.ping, r)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "io") or aio.is_error(e, "connect"), tostring(e))
      attempts = attempts + 1
    end
    -- back-off of 0.05, 0.1, 0.2, 0.4 s: a handful of attempts, not a spin
    assert.is_true(attempts >= 2 and attempts <= 12, "attempts: " .. attempts)
    -- a blocking command fails alike instead of hanging
    H.raises("connect", r.blpop, r, "q", 1)
    S.restart(srv)
    wait(function() return pcall(r.ping, r) end, 5)
    assert.are.equal("PONG", r:ping())
  end))

  it("cancels a task waiting for a reconnection without failing the others", H.async(function()
    local r <close> = aio.redis.connect(srv.url)
    S.kill(srv)
    pcall(r.ping, r)                  -- io (in flight) or connect
    pcall(r.ping, r)                  -- connect: the back-off starts
    local tasks = {}
    for i = 1, 10 do tasks[i] = aio.spawn(function() return r:echo("x" .. i) end) end
    aio.sleep(0)                      -- one waits out the back-off, the others for it
    tasks[3]:cancel()
    S.restart(srv)
    for i, t in ipairs(tasks) do
      local ok, e = pcall(t.await, t)
      if i == 3 then assert.is_true(aio.is_error(e, "cancelled"), tostring(e))
      elseif ok then assert.are.equal("x" .. i, e)
      else assert.is_true(aio.is_error(e, "connect"), tostring(e)) end
    end
    wait(function() return pcall(r.ping, r) end, 5)
  end))
end)
