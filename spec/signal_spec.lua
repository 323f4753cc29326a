local aio = require "aio"
local H = require "helper"
local eventually = require "support.wait"

-- Sends signal `name` to this process from a child (kill(1)).
local function send(name)
  local r = aio.process.run({ "kill", "-" .. name:gsub("^SIG", ""), tostring(H.pid()) })
  assert(r.code == 0, r.stderr)
end

describe("aio.signal", function()
  it("runs the handler in a new task for each delivery", H.async(function()
    local got, tasks = {}, {}
    local reg <close> = aio.signal("SIGUSR1", function(name)
      got[#got + 1] = name
      tasks[#tasks + 1] = aio.current()
    end)
    assert.are.equal("SIGUSR1", reg.name)
    for i = 1, 3 do
      send("SIGUSR1")
      eventually(function() return #got == i end)
    end
    assert.are.same({ "SIGUSR1", "SIGUSR1", "SIGUSR1" }, got)
    assert.are_not.equal(aio.current(), tasks[1])
    assert.are_not.equal(tasks[1], tasks[2])
    assert.are_not.equal(tasks[2], tasks[3])
  end))

  it("lets handlers suspend and run side by side", H.async(function()
    local running, max_running, done, go = 0, 0, 0, false
    local reg <close> = aio.signal("USR2", function()
      running = running + 1
      max_running = math.max(max_running, running)
      eventually(function() return go end)       -- suspends
      running = running - 1
      done = done + 1
    end)
    send("SIGUSR2")
    eventually(function() return running == 1 end)
    send("SIGUSR2")
    eventually(function() return running == 2 end)
    go = true
    eventually(function() return done == 2 end)
    assert.are.equal(2, max_running)
  end))

  it("stops calling the handler once closed", H.async(function()
    local n = 0
    local reg = aio.signal("SIGWINCH", function() n = n + 1 end)  -- ignored by default
    send("SIGWINCH")
    eventually(function() return n == 1 end)
    reg:close()
    reg:close()
    assert.matches("closed", tostring(reg))
    send("SIGWINCH")
    aio.sleep(0.05)
    assert.are.equal(1, n)
  end))

  it("keeps several registrations of one signal apart", H.async(function()
    local a, b = 0, 0
    local ra = aio.signal("SIGURG", function() a = a + 1 end)
    local rb <close> = aio.signal("SIGURG", function() b = b + 1 end)
    send("SIGURG")
    eventually(function() return a == 1 and b == 1 end)
    ra:close()
    send("SIGURG")
    eventually(function() return b == 2 end)
    aio.sleep(0.02)
    assert.are.equal(1, a)
  end))

  it("leaves SIGPIPE harmless after a SIGPIPE registration closes", H.async(function()
    local reg = aio.signal("SIGPIPE", function() end)
    reg:close()
    local srv <close> = aio.tcp.listen("127.0.0.1", 0, function() end)
    local c <close> = aio.tcp.connect("127.0.0.1", srv.port)
    assert.is_nil(c:read())
    local ok, err
    for _ = 1, 100 do
      ok, err = pcall(c.write, c, ("x"):rep(65536))
      if not ok then break end
      aio.sleep(0.001)
    end
    assert.is_true(aio.is_error(err, "io"), tostring(err))   -- and we are alive
  end))

  it("takes SIGINT over from aio.run while registered", function()
    local out = H.lua_child([[
      local aio = require "aio"
      local pid = io.open("/proc/self/stat"):read("a"):match("^(%d+)")
      local got = 0
      local ok, err = pcall(aio.run, function()
        local reg = aio.signal("SIGINT", function() got = got + 1 end)
        aio.process.run({ "kill", "-INT", pid })
        while got == 0 do aio.sleep(0.01) end
        print("handled " .. got)
        reg:close()
        aio.process.run({ "kill", "-INT", pid })
        aio.sleep(5)
        print("not interrupted")
      end)
      print(ok, tostring(err))
    ]])
    assert.matches("handled 1", out)
    assert.matches("false\tinterrupted: interrupted by SIGINT", out)
    assert.is_nil(out:find("not interrupted", 1, true))
  end)

  it("rejects unknown signals and those that cannot be handled", H.async(function()
    local err = H.raises("usage", aio.signal, "SIGNOPE", print)
    assert.matches("unknown signal 'SIGNOPE'", err.message)
    err = H.raises("usage", aio.signal, "SIGKILL", print)
    assert.matches("SIGKILL cannot be handled", err.message)
    H.raises("usage", aio.signal, "STOP", print)
    H.raises("usage", aio.signal, "SIGSEGV", print)
    assert.has_error(function() aio.signal(15, print) end, "bad argument #1 to 'signal' (string expected, got number)")
    assert.has_error(function() aio.signal("SIGTERM") end, "bad argument #2 to 'signal' (function expected, got no value)")
  end))

  it("needs a running loop", function()
    local err = H.raises("usage", aio.signal, "SIGTERM", print)
    assert.matches("needs a running loop", err.message)
  end)
end)
