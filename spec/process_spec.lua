local aio = require "aio"
local H = require "helper"
local eventually = require "support.wait"

local run = aio.process.run

-- Is process `pid` alive (a zombie counts as alive for kill -0)?
local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- Is process `pid` running (alive and not a zombie)? For grandchildren,
-- which whoever adopts them reaps, in its own time.
local function running(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local state = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  return state ~= nil and state ~= "Z"
end

-- The pids written by a child into `path`, one per line.
local function pids(path)
  local list = {}
  local f = io.open(path)
  if not f then return list end
  for l in f:lines() do list[#list + 1] = tonumber(l) end
  f:close()
  return list
end

describe("aio.process.run", function()
  it("returns the exit code and the captured output", H.async(function()
    local r = run({ "sh", "-c", "echo out; echo err >&2; exit 3" })
    assert.are.same({ code = 3, stdout = "out\n", stderr = "err\n" }, r)
    r = run({ "true" })
    assert.are.same({ code = 0, stdout = "", stderr = "" }, r)
  end))

  it("passes arguments as they are, without a shell", H.async(function()
    local r = run({ "printf", "%s|", "a b", "$HOME", "'q'", "" })
    assert.are.equal("a b|$HOME|'q'||", r.stdout)
  end))

  it("feeds input and reads large outputs without deadlock", H.async(function()
    local big = ("0123456789abcdef"):rep(256 * 1024)          -- 4 MiB
    local r = run({ "cat" }, { input = big })
    assert.are.equal(0, r.code)
    assert.is_true(r.stdout == big)
    -- both streams full at once, input still being written
    r = run({ "sh", "-c", "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2; cat >/dev/null" },
      { input = big })
    assert.are.equal(3000000, #r.stdout)
    assert.are.equal(3000000, #r.stderr)
    -- the child does not read its input at all
    r = run({ "true" }, { input = big })
    assert.are.equal(0, r.code)
    r = run({ "cat" }, { input = "" })
    assert.are.equal("", r.stdout)
  end))

  it("gives the child an empty stdin when there is no input", H.async(function()
    local r = run({ "sh", "-c", "cat; echo done" })
    assert.are.equal("done\n", r.stdout)
  end))

  it("runs in cwd with the environment changed as asked", H.async(function()
    local dir = H.tmpdir()
    local r = run({ "sh", "-c", "pwd; echo \"$AIO_A|${AIO_B-unset}|${HOME:+home}\"" },
      { cwd = dir, env = { AIO_A = "set", AIO_B = false, HOME = "/root" } })
    assert.are.equal(dir .. "\n" .. "set|unset|home\n", r.stdout)
    r = run({ "sh", "-c", "echo ${AIO_B-unset}" }, { env = { AIO_B = 5 } })
    assert.are.equal("5\n", r.stdout)
    H.rmtree(dir)
  end))

  it("reports a child killed by a signal", H.async(function()
    local r = run({ "sh", "-c", "kill -TERM $$" })
    assert.are.equal(-15, r.code)
    assert.are.equal("SIGTERM", r.signal)
  end))

  it("leaves out the streams it does not capture", H.async(function()
    local r = run({ "sh", "-c", "echo hidden; echo hidden >&2" }, { stdout = "null", stderr = "null" })
    assert.are.same({ code = 0 }, r)
    r = run({ "true" }, { stderr = "inherit" })
    assert.is_nil(r.stderr)
    assert.are.equal("", r.stdout)
  end))

  it("raises io when the program cannot start", H.async(function()
    local err = H.raises("io", run, { "aio-no-such-program" })
    assert.are.equal("ENOENT", err.code)
    assert.are.equal("aio-no-such-program", err.path)
    assert.matches("cannot run 'aio%-no%-such%-program'", err.message)
    err = H.raises("io", run, { "/tmp" })
    assert.are.equal("EACCES", err.code)
    assert.are.equal(0, require("aio.core").stats().handles)
  end))

  it("kills and reaps the child and its children on timeout", H.async(function()
    local dir = H.tmpdir()
    local secs = H.SLOW and 3 or 0.3                  -- time for sh to start
    local t0 = aio.now()
    local err = H.raises("timeout", run, { "sh", "-c",
      "echo $$ > pids; sleep 30 & echo $! >> pids; echo partial; wait" },
      { cwd = dir, timeout = secs })
    local dt = aio.now() - t0
    assert.is_true(dt >= secs and dt < secs + 5, "took " .. dt)
    assert.are.equal(secs, err.seconds)
    assert.are.equal("partial\n", err.stdout)
    assert.matches("process 'sh' timed out after " .. secs .. " s", err.message)
    local list = pids(dir .. "/pids")
    assert.are.equal(2, #list)
    assert.is_false(alive(list[1]))               -- reaped: not even a zombie
    eventually(function() return not running(list[2]) end)
    H.rmtree(dir)
  end))

  it("kills and reaps the child when the caller is cancelled", H.async(function()
    local dir = H.tmpdir()
    local t = aio.spawn(run, { "sh", "-c", "echo $$ > pids; sleep 30 & echo $! >> pids; wait" },
      { cwd = dir })
    eventually(function() return #pids(dir .. "/pids") == 2 end)
    local list = pids(dir .. "/pids")
    assert.is_true(alive(list[1]) and alive(list[2]))
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "cancelled"))
    assert.is_false(alive(list[1]))
    eventually(function() return not running(list[2]) end)
    -- and under aio.timeout
    local t0 = aio.now()
    local secs = H.SLOW and 3 or 0.3                  -- time for sh to start
    err = H.raises("timeout", aio.timeout, secs, run, { "sh", "-c", "echo $$ > pid2; exec sleep 30" },
      { cwd = dir })
    assert.is_true(aio.now() - t0 < secs + 5)
    assert.is_false(alive(pids(dir .. "/pid2")[1]))
    H.rmtree(dir)
  end))

  it("runs many children at once", H.async(function()
    local tasks = {}
    for i = 1, 25 do tasks[i] = aio.spawn(run, { "sh", "-c", "sleep 0.05; echo " .. i }) end
    for i, t in ipairs(tasks) do assert.are.equal(i .. "\n", t:await().stdout) end
  end))

  it("leaves no child behind when a run ends", function()
    local dir = H.tmpdir()
    aio.run(function()
      aio.spawn(run, { "sh", "-c", "echo $$ > " .. dir .. "/pid; exec sleep 30" })
      eventually(function() return #pids(dir .. "/pid") == 1 end)
    end)
    assert.is_false(alive(pids(dir .. "/pid")[1]))
    H.rmtree(dir)
  end)

  it("rejects bad arguments", H.async(function()
    assert.has_error(function() run() end, "bad argument #1 to 'run' (table expected, got no value)")
    assert.has_error(function() run({}) end, "bad argument #1 to 'run' (argv is empty: the program is missing)")
    assert.has_error(function() run({ "echo", {} }) end, "bad argument #1 to 'run' (argv[2] must be a string without zero bytes)")
    assert.has_error(function() run({ "echo" }, { input = 5 }) end, "bad argument #2 to 'run' (input must be a string)")
    assert.has_error(function() run({ "echo" }, { env = { ["A=B"] = "x" } }) end)
    assert.has_error(function() run({ "echo" }, { stdout = "file" }) end,
      "bad argument #2 to 'run' (stdout must be \"pipe\", \"inherit\" or \"null\")")
    assert.has_error(function() run({ "echo" }, { timeout = "1" }) end, "bad argument #2 to 'run' (timeout must be a number)")
  end))

  it("raises usage outside a task", function()
    H.raises("usage", run, { "true" })
  end)
end)
