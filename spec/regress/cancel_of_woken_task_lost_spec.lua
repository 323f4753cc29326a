-- Regression: task:cancel() and an expiring aio.timeout only woke tasks
-- that were WAITING. A task already woken (ready, not resumed yet) whose
-- continuation then waited again (a stream with partial data, a process
-- still running after its input was written) never saw the cancellation:
-- it went on waiting, or ran to completion. Every suspension re-checks now.
local aio = require "aio"
local H = require "helper"

-- Spins with sleep(0) until `task` is ready (woken, not yet resumed): the
-- moment a cancellation used to be lost.
local function until_ready(task, secs)
  local t0 = aio.now()
  while not tostring(task):match(", ready%)$") do
    assert(aio.now() - t0 < secs, "the task was never woken")
    aio.sleep(0)
  end
end

-- A server that sends 5 bytes once `go` is set, and a stream to it.
local function half_sender()
  local go = aio.Event()
  local server = aio.tcp.listen("127.0.0.1", 0, function(s)
    go:wait()
    s:write("12345")
    s:read()                          -- until the client closes
  end)
  return go, server, aio.tcp.connect("127.0.0.1", server.port)
end

describe("a cancellation of a task that was woken but not resumed", function()
  it("interrupts stream:read_exactly waiting again after partial data", H.async(function()
    local go, server, s = half_sender()
    local _ <close> = server
    local _ <close> = s
    local reader = aio.spawn(function() return s:read_exactly(10) end)
    aio.sleep(0.01)
    go:set()
    until_ready(reader, 5)
    reader:cancel()
    local ok, err = pcall(aio.timeout, 2, reader.await, reader)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "cancelled"), tostring(err))
    assert.is_true(reader:cancelled())
  end))

  it("interrupts aio.timeout when partial data and the deadline land together", H.async(function()
    local go, server, s = half_sender()
    local _ <close> = server
    local _ <close> = s
    local t0
    local reader = aio.spawn(function()
      t0 = aio.now()
      return pcall(aio.timeout, 0.05, s.read_exactly, s, 10)
    end)
    aio.sleep(0.01)
    go:set()
    aio.sleep(0)                      -- the server writes
    local spin = aio.now()
    while aio.now() - spin < 0.1 do end   -- the deadline passes meanwhile
    local ok, err = reader:await()
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "timeout"), tostring(err))
    assert.is_true(aio.now() - t0 < 1, "ran past its deadline")
  end))

  it("kills process.run whose input was just written", H.async(function()
    local runs = {}
    for i = 1, 5 do
      runs[i] = aio.spawn(function()
        return aio.process.run({"sh", "-c", "cat >/dev/null; sleep 5"}, {input = "x"})
      end)
    end
    for i = 1, 5 do
      until_ready(runs[i], 5)        -- woken by its input's write
      runs[i]:cancel()
    end
    local t0 = aio.now()
    for i = 1, 5 do
      local ok, err = pcall(runs[i].await, runs[i])
      assert.is_false(ok)
      assert.is_true(aio.is_error(err, "cancelled"), tostring(err))
    end
    assert.is_true(aio.now() - t0 < 3, "the children ran on")
  end))

  -- SIGINT cancels the main task when the loop polls; a main task that
  -- returned before the loop polled again lost it
  local function sigint_self()
    io.popen("kill -INT " .. H.pid()):close()
    local t0 = os.clock()
    while os.clock() - t0 < 0.05 do end   -- it arrives while we block
  end

  it("keeps a SIGINT that came while a task blocked and main awaited it", function()
    local ok, err = pcall(aio.run, function()
      local t = aio.spawn(function() sigint_self() return 1 end)
      return t:await()
    end)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "interrupted"), tostring(err))
  end)

  it("keeps a SIGINT that came while the main task blocked and returned", function()
    local ok, err = pcall(aio.run, function() sigint_self() return 1 end)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "interrupted"), tostring(err))
  end)
end)
