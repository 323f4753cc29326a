-- Many WebSockets at once: 10,000 connections (1,000 under sanitizers
-- and valgrind) opened to an aio server in another process
-- (spec/support/ws_server_child.lua), a broadcast to all of them, then
-- closed: descriptors and memory come back to where they were.
local aio = require "aio"
local H = require "helper"
local S = require "support.http_servers"

local HERE = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

describe("many WebSockets", function()
  local dir, pid, port

  setup(function()
    dir = H.tmpdir()
    local ready = dir .. "/ready"
    -- the same environment as ours (a sanitizer build needs its runtime)
    local p = io.popen(("%s lua5.4 '%ssupport/ws_server_child.lua' '%s' %d > '%s/log' 2>&1 & echo $!")
      :format(H.lua_env(), HERE, ready, H.pid(), dir))
    pid = tonumber(p:read("l"))
    p:close()
    S.wait_until(function() return S.slurp(ready) ~= nil end, 30, "the WebSocket server", dir .. "/log")
    port = math.tointeger(tonumber(S.slurp(ready)))
  end)

  teardown(function()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    H.rmtree(dir)
  end)

  it("opens, broadcasts to and closes 10,000 connections; nothing is left", H.async(function()
    local N = math.min(H.SLOW and 1000 or 10000, H.fd_limit() - 300)
    local url = "ws://127.0.0.1:" .. port .. "/"
    local probe <close> = aio.http.ws_connect(url)
    local function stats()
      probe:send("stats")
      local heap, open, rss = probe:receive():match("(%d+) (%d+) (%d+)")
      return tonumber(heap), tonumber(open), tonumber(rss)
    end
    collectgarbage()
    local fds0, heap0 = H.fd_count(), collectgarbage("count")
    local server_heap0 = stats()

    -- runs fn(i) for i = 1..N, at most 200 at a time
    local function each(fn)
      local gate = aio.Semaphore(200)
      local group <close> = aio.TaskGroup()
      for i = 1, N do
        group:spawn(function()
          local _ <close> = gate:acquire()
          fn(i)
        end)
      end
    end

    local conns = {}
    each(function(i) conns[i] = aio.http.ws_connect(url, { timeout = 60 }) end)
    local _, open = stats()
    assert.are.equal(N + 1, open)
    assert.are.equal(fds0 + N, H.fd_count())

    -- one task sends to every connection: no send waits for its peer
    probe:send("broadcast")
    local sent, gap = probe:receive():match("sent (%d+) ([%d.]+)")
    assert.are.equal(N, tonumber(sent))
    assert.is_true(tonumber(gap) < (H.SLOW and 10 or 2), "the server's loop stalled " .. gap .. " s")
    each(function(i) assert.are.equal("hello all", conns[i]:receive()) end)
    each(function(i)
      conns[i]:close()
      assert.are.equal(1000, conns[i].close_code)
    end)
    conns = nil
    local deadline = aio.now() + 30
    repeat
      aio.sleep(0.05)
      _, open = stats()
    until open == 1 or aio.now() > deadline
    assert.are.equal(1, open)
    assert.are.equal(fds0, H.fd_count())
    collectgarbage()
    collectgarbage()
    assert.is_true(collectgarbage("count") < heap0 + 1024,
      ("Lua heap %.0f KiB, was %.0f KiB"):format(collectgarbage("count"), heap0))
    local server_heap = stats()
    assert.is_true(server_heap < server_heap0 + 1024,
      ("server Lua heap %.0f KiB, was %.0f KiB"):format(server_heap, server_heap0))
  end, { timeout = H.SLOW and 600 or 120 }))
end)
