-- Regression: methods of the Lua layer did not check their receiver:
-- Server:close(file) failed deep inside background.lua, Response:text
-- (server) called a nil method; aio.shield(5) and aio.timeout(2) raised
-- "attempt to call a number value". Each raises a standard `bad
-- argument` now, at the caller's line.
local aio = require "aio"
local H = require "helper"
local U = require "support.server_util"

describe("a method called on the wrong receiver", function()
  it("raises bad argument #1, for every method of every object", H.async(function()
    local dir = H.tmpdir()
    local server <close> = U.ok_server()
    local file <close> = aio.fs.open(dir .. "/f", "w")
    local stream <close> = aio.tcp.connect("127.0.0.1", server.port)
    local session <close> = aio.http.Session()
    local response = session:get(("http://127.0.0.1:%d/"):format(server.port))
    local objects = {
      server = server, file = file, stream = stream, session = session, response = response,
      task = aio.spawn(function() end), sem = aio.Semaphore(1), lock = aio.Lock(),
      event = aio.Event(), cond = aio.Condition(), queue = aio.Queue(1),
      pqueue = aio.PriorityQueue(), group = aio.TaskGroup(), limiter = aio.RateLimiter(1, 1),
      registration = aio.signal("SIGUSR2", function() end),
    }
    local wrong = { {}, "x", 5, io.stdout }
    local checked = 0
    for name, obj in pairs(objects) do
      local other = obj == file and stream or file
      for _, k in ipairs(H.functions_of(H.method_table(obj))) do
        local f = H.method_table(obj)[k]
        for _, w in ipairs({ other, table.unpack(wrong) }) do
          local ok, err = pcall(aio.timeout, 1, f, w)
          assert.is_false(ok, name .. ":" .. k)
          -- (a C method called through pcall has no name for Lua: '?')
          local fname = tostring(err):match("bad argument #1 to '([^']*)' %(.* expected, got ")
          assert(fname == k or fname == "?", name .. ":" .. k .. ": " .. tostring(err))
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked > 300)
    objects.registration:close()
    objects.group:wait()
    H.rmtree(dir)
  end))

  it("raises bad argument for aio.shield and aio.timeout without a function", H.async(function()
    local ok, err = pcall(aio.shield, 5)
    assert.is_false(ok)
    assert.matches("^.-wrong_receiver_not_bad_argument_spec.lua:%d+: bad argument #1 to 'shield' %(function or task expected, got number%)", err)
    ok, err = pcall(aio.timeout, 2)
    assert.matches("bad argument #2 to 'timeout' %(function or task expected, got no value%)", err)
    ok, err = pcall(aio.timeout, "2", print)
    assert.matches("bad argument #1 to 'timeout' %(number expected, got string%)", err)
    ok, err = pcall(require("aio.core").timeout, 1, {})
    assert.matches("bad argument #2 to .-timeout' %(function expected, got table%)", err)
  end))
end)
