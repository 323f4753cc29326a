-- aio.pg.Pool and what cancellations and faults do to connections, against
-- a real PostgreSQL 15 (spec/support/pg_server.lua, one server for this
-- file): limits and fairness under 1,000 tasks, the reset on release,
-- broken connections replaced, cancellation storms, a server restart.
local aio = require "aio"
local H = require "helper"
local PG = require "examples.support.pg_server"
local eventually = require "support.wait"

if not PG.available() then
  describe("aio.pg.Pool", function()
    pending("PostgreSQL is not installed (" .. PG.BIN .. ")")
  end)
  return
end

local pg = aio.pg

describe("aio.pg.Pool", function()
  local env
  setup(function() env = PG.start() end)
  teardown(function() PG.stop(env) end)

  -- A DSN whose backends are told apart by application_name.
  local function dsn(app)
    return env.dsn .. "?application_name=" .. app
  end

  -- Backends of `app` in pg_stat_activity (as `state` if given).
  local function backends(app, state)
    local c <close> = pg.connect(dsn("checker"))
    if state then
      return c:query_value([[SELECT count(*) FROM pg_stat_activity
        WHERE application_name = $1 AND state = $2]], app, state)
    end
    return c:query_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app)
  end

  it("runs queries on connections it opens as needed", H.async(function()
    local pool <close> = pg.Pool{dsn = dsn("basic"), max = 3}
    assert.are.same({size = 0, idle = 0, in_use = 0, recovering = 0, connecting = 0,
      waiting = 0, min = 0, max = 3, closed = false}, pool:stats())
    assert.are.equal(5, pool:query_value("SELECT $1::int + 3", 2))
    assert.are.same({a = 1}, pool:query_one("SELECT 1 AS a"))
    assert.are.equal(2, #pool:query("SELECT 1 UNION ALL SELECT 2"))
    assert.are.equal(0, pool:execute("SELECT 1 WHERE false"))
    local s = pool:stats()
    assert.are.equal(1, s.size)
    assert.are.equal(1, s.idle)
    local e = H.raises("db", pool.query, pool, "SELECT * FROM nowhere")
    assert.are.equal("42P01", e.sqlstate)
    assert.are.equal(1, pool:stats().idle)
    assert.matches("^aio.pg.Pool %(1 open, 1 idle, max 3%)$", tostring(pool))
  end))

  it("hands out connections that go back when closed", H.async(function()
    local pool <close> = pg.Pool{dsn = dsn("lease"), max = 2}
    local pid
    do
      local conn <close> = pool:acquire()
      pid = conn:pid()
      assert.are.equal(1, pool:stats().in_use)
      assert.matches("pooled", tostring(conn))
    end
    assert.are.equal(0, pool:stats().in_use)
    local conn = pool:acquire()
    assert.are.equal(pid, conn:pid())               -- the same one, reused
    conn:close()
    conn:close()
    local e = H.raises("closed", conn.query, conn, "SELECT 1")
    assert.matches("given back to its pool", e.message)
    assert.is_true(conn:closed())
  end))

  it("keeps to max and serves 1,000 tasks first come, first served", H.async(function()
    local MAX = 5
    local pool <close> = pg.Pool{dsn = dsn("fair"), max = MAX}
    local warm = {}
    for i = 1, MAX do warm[i] = function() return pool:query_value("SELECT pg_sleep(0.01)") end end
    aio.gather(warm)
    assert.are.equal(MAX, pool:stats().idle)
    local order, inuse, peak = {}, 0, 0
    local tasks = {}
    for i = 1, 1000 do
      tasks[i] = aio.spawn(function()
        local conn <close> = pool:acquire()
        order[#order + 1] = i
        inuse = inuse + 1
        if inuse > peak then peak = inuse end
        assert(conn:query_value("SELECT $1::int", i) == i)
        inuse = inuse - 1
      end)
    end
    aio.sleep(0)                         -- each task has run once
    assert.are.equal(1000 - MAX, pool:stats().waiting)
    assert.is_true(backends("fair") <= MAX)
    for _, t in ipairs(tasks) do t:await() end
    assert.are.equal(1000, #order)
    for i = 1, 1000 do assert.are.equal(i, order[i]) end
    assert.are.equal(MAX, peak)
    local s = pool:stats()
    assert.is_true(s.size <= MAX)
    assert.are.equal(0, s.waiting)
    assert.is_true(backends("fair") <= MAX)
  end))

  it("serves 1,000 tasks running queries through pool:query", H.async(function()
    local pool <close> = pg.Pool{dsn = dsn("many"), max = 8}
    local fns = {}
    for i = 1, 1000 do
      fns[i] = function() return pool:query_value("SELECT $1::int * 2", i) end
    end
    local got = aio.gather(fns)
    for i = 1, 1000 do assert.are.equal(2 * i, got[i]) end
    assert.is_true(pool:stats().size <= 8)
  end))

  it("times out waiting for a connection after acquire_timeout", H.async(function()
    local pool <close> = pg.Pool{dsn = dsn("atimeout"), max = 1, acquire_timeout = 0.05}
    local held = pool:acquire()
    local t0 = aio.now()
    local e = H.raises("timeout", pool.acquire, pool)
    assert.are.equal("acquire", e.phase)
    assert.is_true(aio.now() - t0 >= 0.04)
    held:close()
    assert.are.equal(1, pool:query_value("SELECT 1"))
  end))

  it("opens min connections and closes idle ones beyond it", H.async(function()
    local pool <close> = pg.Pool{dsn = dsn("idle"), min = 1, max = 4, max_idle = 0.05}
    eventually(function() return pool:stats().size == 1 end)
    local held = {}
    for i = 1, 4 do held[i] = pool:acquire() end
    assert.are.equal(4, pool:stats().size)
    for i = 1, 4 do held[i]:close() end
    eventually(function() return pool:stats().size == 1 end)
    assert.are.equal(1, backends("idle"))
  end))

  it("replaces connections past max_lifetime", H.async(function()
    local pool <close> = pg.Pool{dsn = dsn("lifetime"), max = 1, max_lifetime = 0.05}
    local pid = pool:query_value("SELECT pg_backend_pid()")
    aio.sleep(0.1)
    assert.are_not.equal(pid, pool:query_value("SELECT pg_backend_pid()"))
    assert.are.equal(1, pool:stats().size)
  end))

  it("undoes what a task left before the next one gets the connection", H.async(function()
    local pool <close> = pg.Pool{dsn = dsn("reset"), max = 1}
    do
      local conn <close> = pool:acquire()
      conn:execute("SET statement_timeout = '5s'")
      conn:listen("chan")
      conn:query("SELECT pg_advisory_lock(42)")
      conn:execute("BEGIN")
      conn:execute("CREATE TEMP TABLE left_open (a int)")
    end
    local conn <close> = pool:acquire()
    assert.are.equal("idle", conn:transaction_status())
    assert.are.equal("0", conn:query_value("SHOW statement_timeout"))
    assert.are.equal(0, conn:query_value("SELECT count(*) FROM pg_listening_channels()"))
    assert.are.equal(0, conn:query_value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
    assert.are.equal(0, conn:query_value("SELECT count(*) FROM pg_class WHERE relname = 'left_open'"))
  end))

  it("keeps settings with reset = false, and resets every time with reset = 'always'", H.async(function()
    local keep <close> = pg.Pool{dsn = dsn("keep"), max = 1, reset = false}
    keep:execute("SET application_name = 'kept'")
    assert.are.equal("kept", keep:query_value("SHOW application_name"))
    -- a function that changes a setting out of sight: "auto" cannot tell
    local admin <close> = pg.connect(env.dsn)
    admin:execute([[CREATE OR REPLACE FUNCTION hidden_set() RETURNS text LANGUAGE sql
      AS $$ SELECT set_config('work_mem', '1MB', false) $$]])
    local auto <close> = pg.Pool{dsn = dsn("auto"), max = 1}
    auto:query_value("SELECT hidden_set()")
    assert.are.equal("1MB", auto:query_value("SHOW work_mem"))
    local always <close> = pg.Pool{dsn = dsn("always"), max = 1, reset = "always"}
    always:query_value("SELECT hidden_set()")
    assert.are.equal("4MB", always:query_value("SHOW work_mem"))
  end))

  it("replaces a connection the server ended while it was idle", H.async(function()
    local pool <close> = pg.Pool{dsn = dsn("killed"), max = 1}
    local pid = pool:query_value("SELECT pg_backend_pid()")
    local admin <close> = pg.connect(dsn("checker"))
    assert.is_true(admin:query_value("SELECT pg_terminate_backend($1)", pid))
    aio.sleep(0.1)
    local pid2 = pool:query_value("SELECT pg_backend_pid()")
    assert.are_not.equal(pid, pid2)
    assert.are.equal(1, pool:stats().size)
  end))

  it("raises io for a connection lost mid-query and replaces it", H.async(function()
    local pool <close> = pg.Pool{dsn = dsn("lost"), max = 1}
    local pid = pool:query_value("SELECT pg_backend_pid()")
    local t = aio.spawn(function() return pool:query("SELECT pg_sleep(10)") end)
    aio.sleep(0.1)
    local admin <close> = pg.connect(dsn("checker"))
    admin:query_value("SELECT pg_terminate_backend($1)", pid)
    local ok, e = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(aio.is_error(e, "io"), tostring(e))
    assert.are.equal("57P01", e.sqlstate, e.message)
    assert.are_not.equal(pid, pool:query_value("SELECT pg_backend_pid()"))
  end))

  it("closes: waiting tasks raise closed, idle connections go", H.async(function()
    local pool = pg.Pool{dsn = dsn("closing"), max = 1}
    local held = pool:acquire()
    local waiter = aio.spawn(function() return pool:acquire() end)
    aio.sleep(0.01)
    pool:close()
    local ok, e = pcall(waiter.await, waiter)
    assert.is_false(ok)
    assert.is_true(aio.is_error(e, "closed"))
    H.raises("closed", pool.query, pool, "SELECT 1")
    assert.are.equal(1, held:query_value("SELECT 1"))   -- usable until given back
    held:close()
    assert.are.equal(0, pool:stats().size)
    eventually(function() return backends("closing") == 0 end)
    pool:close()
  end))

  it("rejects bad options", function()
    assert.has_error(function() pg.Pool() end, "bad argument #1 to 'Pool' (table expected, got no value)")
    assert.has_error(function() pg.Pool{} end, "bad argument #1 to 'Pool' (option 'dsn' must be a string)")
    assert.has_error(function() pg.Pool{dsn = env.dsn, max = 0} end,
      "bad argument #1 to 'Pool' (option 'max' must be at least 1)")
    assert.has_error(function() pg.Pool{dsn = env.dsn, min = 3, max = 2} end,
      "bad argument #1 to 'Pool' (option 'min' must not exceed option 'max')")
    assert.has_error(function() pg.Pool{dsn = env.dsn, maxsize = 2} end,
      "bad argument #1 to 'Pool' (unknown option 'maxsize')")
    assert.has_error(function() pg.Pool{dsn = env.dsn, max_idle = -1} end,
      "bad argument #1 to 'Pool' (option 'max_idle' must be positive)")
    assert.has_error(function() pg.Pool{dsn = env.dsn, reset = "sometimes"} end)
    assert.has_error(function() pg.Pool{dsn = "host='unterminated"} end)
    assert.has_error(function() pg.Pool.query({}, "SELECT 1") end)
  end)

  describe("cancellation", function()
    it("cancels a query at a timeout without waiting for it", H.async(function()
      local conn <close> = pg.connect(dsn("cancel1"))
      local t0 = aio.now()
      H.raises("timeout", aio.timeout, 0.05, conn.query, conn, "SELECT pg_sleep(10)")
      assert.is_true(aio.now() - t0 < 2)
      assert.are.equal(7, conn:query_value("SELECT $1::int", 7))
      assert.is_true(aio.now() - t0 < 5)
      assert.are.equal(0, backends("cancel1", "active"))
    end))

    it("cancels a query of a pooled connection and cleans it up", H.async(function()
      local pool <close> = pg.Pool{dsn = dsn("cancel2"), max = 1}
      local t = aio.spawn(function()
        local conn <close> = pool:acquire()
        local tx <close> = conn:transaction()
        conn:execute("SET LOCAL work_mem = '2MB'")
        conn:query("SELECT pg_sleep(10)")
      end)
      aio.sleep(0.05)
      t:cancel()
      assert.has_error(function() t:await() end)
      local conn <close> = pool:acquire()              -- only once it is clean
      assert.are.equal("idle", conn:transaction_status())
      assert.are.equal(1, conn:query_value("SELECT 1"))
      assert.are.equal(1, pool:stats().size)
    end))

    it("survives a storm of 200 cancelled queries, leaving no stray backend", H.async(function()
      local MAX = 10
      local pool <close> = pg.Pool{dsn = dsn("storm"), max = MAX}
      local fns = {}
      for i = 1, 200 do
        fns[i] = function()
          local conn <close> = pool:acquire()
          local t0 = aio.now()
          local ok, e = pcall(aio.timeout, 0.02, conn.query, conn, "SELECT pg_sleep(5), $1::int", i)
          assert(not ok and aio.is_error(e, "timeout"),
            ("%s %s %s %s"):format(tostring(ok), tostring(e), require("cjson").encode(e), aio.now() - t0))
        end
      end
      aio.gather(fns)
      for i = 1, 20 do assert.are.equal(i, pool:query_value("SELECT $1::int", i)) end
      eventually(function() return pool:stats().recovering == 0 end, 20)
      local s = pool:stats()
      assert.is_true(s.size <= MAX and s.size >= 1)
      assert.are.equal(0, s.in_use)
      assert.are.equal(0, backends("storm", "active"))
      assert.is_true(backends("storm") <= MAX)
    end))

    it("never gives a task another task's results", H.async(function()
      local pool <close> = pg.Pool{dsn = dsn("mixup"), max = 4}
      local conn <close> = pg.connect(dsn("mixup"))
      local wrong, done = 0, 0
      local tasks = {}
      for i = 1, 300 do
        local target = i % 3 == 0 and conn or pool
        tasks[i] = aio.spawn(function()
          local v = target:query_value("SELECT $1::int FROM pg_sleep($2::float8)", i, (i % 7) / 1000)
          if v ~= i then wrong = wrong + 1 end
          done = done + 1
        end)
      end
      for i = 1, 300, 4 do
        aio.sleep(0.001)
        tasks[i]:cancel()
      end
      for _, t in ipairs(tasks) do pcall(t.await, t) end
      assert.are.equal(0, wrong)
      assert.is_true(done > 0)
      for i = 1, 10 do assert.are.equal(i, conn:query_value("SELECT $1::int", i)) end
      for i = 1, 10 do assert.are.equal(i, pool:query_value("SELECT $1::int", i)) end
    end))
  end)

  describe("a server restart", function()
    it("costs the queries in flight an io error, and the pool recovers", H.async(function()
      local pool <close> = pg.Pool{dsn = dsn("restart"), max = 5}
      local kinds, ok_after, stop = {}, 0, false
      local restarted = false
      local workers = {}
      for w = 1, 10 do
        workers[w] = aio.spawn(function()
          local i = 0
          while not stop do
            i = i + 1
            local ok, e = pcall(pool.query_value, pool, "SELECT $1::int FROM pg_sleep(0.001)", i)
            if ok then
              assert(e == i)
              if restarted then ok_after = ok_after + 1 end
            else
              kinds[e.kind] = (kinds[e.kind] or 0) + 1
              aio.sleep(0.01)
            end
          end
        end)
      end
      aio.sleep(0.2)
      local pid = env.pid
      local r = aio.process.run(PG.restart_command(env))
      assert.are.equal(0, r.code, r.stdout .. r.stderr)
      restarted = true
      eventually(function() return ok_after >= 50 end, 20)
      stop = true
      for _, t in ipairs(workers) do t:await() end
      assert.is_true((kinds.io or 0) >= 1)
      for k in pairs(kinds) do
        assert.is_true(k == "io" or k == "connect", k)
      end
      assert.are.equal(1, pool:query_value("SELECT 1"))
      assert.is_true(pool:stats().size <= 5)
      assert.are_not.equal(pid, PG.read_pid(env))
    end))
  end)
end)
