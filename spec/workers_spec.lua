-- aio.workers: two worker processes serving one port (reuse_port), a dead
-- worker restarted, SIGTERM stopping all gracefully with exit status 0.
-- The master is a process of its own (spec/support/workers_main.lua):
-- forking never happens inside busted.
local aio = require "aio"
local H = require "helper"

local function slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function alive(pid)
  local stat = slurp("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

local function free_port()
  local p = io.popen([[/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
  local port = tonumber(p:read("l"))
  p:close()
  return port
end

-- GET / on a new connection each time: "<index> <pid>", or nil.
local function who(port)
  local ok, r = pcall(aio.http.get, "http://127.0.0.1:" .. port .. "/",
    { timeout = 2, headers = { Connection = "close" } })
  if not ok or r.status ~= 200 then return nil end
  local i, pid = r.body:match("^(%d) (%d+)$")
  return tonumber(i), tonumber(pid)
end

local function eventually(check, secs, what)
  local t0 = aio.now()
  while aio.now() - t0 < secs do
    local v = check()
    if v then return v end
    aio.sleep(0.05)
  end
  error("timed out waiting for " .. what, 2)
end

describe("aio.workers", function()
  it("raises usage inside aio.run and checks its arguments", H.async(function()
    H.raises("usage", aio.workers, 2, function() end)
    assert.has_error(function() aio.workers(0, function() end) end)
    assert.has_error(function() aio.workers(2, "main") end)
  end))

  it("gives up on a worker that keeps dying at its start", H.async(function()
    local r = aio.process.run({ "sh", "-c", H.lua_env() .. [[ lua5.4 -e '
      local aio = require "aio"
      local ok, failures = aio.workers(1, function() error("broken at start") end)
      print(ok, #failures, failures[1].code)']] }, { timeout = H.SLOW and 120 or 30 })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("false\t1\t1\n", r.stdout)
    assert.matches("broken at start", r.stderr)
    assert.matches("died 5 times in a row at its start; stopping", r.stderr)
  end))

  it("runs 2 workers on one port, restarts a dead one, stops all on SIGTERM", H.async(function()
    local T = H.SLOW and 60 or 15
    local dir = H.tmpdir()
    local port = free_port()
    os.execute(("(%s lua5.4 spec/support/workers_main.lua %d %s > %s/out.txt 2>&1; echo $? > %s/status) &")
      :format(H.lua_env(), port, dir, dir, dir))
    local master = eventually(function() return tonumber(slurp(dir .. "/master.pid") or "") end, T, "the master")
    local ok, err = pcall(function()
      -- both workers serve
      local pids = {}
      eventually(function()
        local i, pid = who(port)
        if i then pids[i] = pid end
        return pids[1] and pids[2]
      end, T, "both workers to answer")
      assert.are_not.equal(pids[1], pids[2])
      assert.are_not.equal(master, pids[1])
      -- killing one: the master starts another in its place
      os.execute("kill -KILL " .. pids[1])
      eventually(function() return not alive(pids[1]) end, T, "worker 1 to die")
      local new = eventually(function()
        local i, pid = who(port)
        return i == 1 and pid ~= pids[1] and pid
      end, T, "worker 1 to be restarted")
      assert.is_true(alive(pids[2]))
      -- SIGTERM to the master: a request in flight still finishes
      local slow = aio.spawn(aio.http.get, "http://127.0.0.1:" .. port .. "/slow", { timeout = 10 })
      aio.sleep(0.1)
      os.execute("kill -TERM " .. master)
      local r = slow:await()
      assert.are.equal(200, r.status)
      assert.matches("^%d %d+$", r.body)
      eventually(function() return (slurp(dir .. "/status") or ""):find("\n") end, T, "the master to exit")
      assert.are.equal("0\n", slurp(dir .. "/status"), slurp(dir .. "/out.txt"))
      assert.is_false(alive(new))
      assert.is_false(alive(pids[2]))
      assert.is_false(alive(master))
    end)
    if not ok then os.execute("kill -KILL " .. master .. " 2>/dev/null") end
    H.rmtree(dir)
    assert(ok, err)
  end))
end)
