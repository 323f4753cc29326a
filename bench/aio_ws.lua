-- WebSocket benchmark for aio, mirroring W8 of ../shared/bench/peers/
-- run-server.sh (100 connections x 1,000 echoed 64-byte messages, driven
-- by node's `ws` client there) and measuring aio's memory per idle
-- WebSocket.
--
-- usage (from the repository root):
--   lua5.4 bench/aio_ws.lua server PORT [raw] an echo server (until killed)
--                                            on aio.http.listen + req:websocket,
--                                            or on aio.tcp.listen ("raw");
--                                            prints "READY <port>"
--   lua5.4 bench/aio_ws.lua client URL [C] [M] C connections x M round trips
--                                            of 64 bytes (100 x 1000)
--   lua5.4 bench/aio_ws.lua idle [N] [raw]    RSS per idle WebSocket of an aio
--                                            server holding N (10000) open
-- Prints RESULT lines (see bench/benchlib.lua). A text message "stats" to
-- the server is answered with "<rss_kb> <open connections> <Lua heap KiB>"
-- after a full garbage collection. Bounded in time: exits with status 3 after
-- BENCH_TIMEOUT seconds (120).

package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local aio = require "aio"
local websocket = require "aio.http.websocket"
local benchlib = require "benchlib"
local result, watchdog = benchlib.result, benchlib.watchdog

local function rss_kb(pid)
  local f = io.open("/proc/" .. (pid or "self") .. "/status")
  if not f then return -1 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or -1
end

-- The echo server: one task per connection, on the HTTP server
-- (req:websocket) or, with kind "raw", on aio.tcp.listen.
local function server(port, kind)
  local open = 0
  local function echo(ws)
    open = open + 1
    local receive, send, send_binary = ws.receive, ws.send, ws.send_binary
    while true do
      local data, k = receive(ws)
      if not data then break end
      if data == "stats" then
        collectgarbage()
        collectgarbage()
        data = ("%d %d %d"):format(rss_kb(), open, math.floor(collectgarbage("count")))
      end
      if k == "text" then send(ws, data) else send_binary(ws, data) end
    end
    open = open - 1
  end
  aio.run(function()
    local srv
    if kind == "raw" or aio.http.listen == nil then   -- (before the HTTP server)
      srv = aio.tcp.listen("127.0.0.1", port, function(s)
        local ws <close> = websocket.accept(s)
        echo(ws)
      end, { backlog = 4096 })
    else
      srv = aio.http.listen(function(req) echo(req:websocket()) end,
        { port = port, backlog = 4096, max_connections = 100000 })
    end
    io.stdout:write("READY ", srv.port, "\n")
    io.stdout:flush()
    aio.Event():wait()
  end)
end

-- C connections, each sending a 64-byte message and waiting for its echo,
-- M times; then closing.
local function client(url, C, M)
  local ok = aio.run(function()
    local dog = watchdog()
    local msg = ("x"):rep(64)
    local good = 0
    local t0 = aio.now()
    local tasks = {}
    for i = 1, C do
      tasks[i] = aio.spawn(function()
        local ws <close> = aio.http.ws_connect(url)
        local send, receive = ws.send, ws.receive
        for _ = 1, M do
          send(ws, msg)
          if receive(ws) ~= msg then return end
        end
        good = good + 1
      end)
    end
    for _, t in ipairs(tasks) do t:await() end
    local secs = aio.now() - t0
    dog:cancel()
    result({ peer = "aio", wl = "w8", n = C * M, secs = secs, rate = C * M / secs,
             unit = "msgs/s", ok = good == C, conns = C })
    return good == C
  end)
  os.exit(ok and 0 or 1)
end

-- Starts the server in a child process and opens N idle connections to
-- it from here; reports the server's RSS growth per connection.
local function idle(N, kind)
  local p = io.popen(("exec lua5.4 bench/aio_ws.lua server 0 %s & echo PID $!"):format(kind or ""), "r")
  local pid = tonumber(p:read("l"):match("PID (%d+)"))
  local port = tonumber(p:read("l"):match("READY (%d+)"))
  local ok = aio.run(function()
    local dog = watchdog()
    local url = "ws://127.0.0.1:" .. port .. "/"
    local probe <close> = aio.http.ws_connect(url)
    local function stats()
      probe:send("stats")
      local kb, n, heap = probe:receive():match("(%d+) (%d+) (%d+)")
      return tonumber(kb), tonumber(n), tonumber(heap)
    end
    for _ = 1, 50 do aio.sleep(0) end
    local warm = {}                       -- warm the server's pools and heap
    for i = 1, 200 do warm[i] = aio.http.ws_connect(url) end
    for _, ws in ipairs(warm) do ws:close() end
    aio.sleep(0.2)
    local before, _, heap0 = stats()
    local conns, sem = {}, aio.Semaphore(256)
    local t0 = aio.now()
    local tasks = {}
    for i = 1, N do
      tasks[i] = aio.spawn(function()
        local _ <close> = sem:acquire()
        conns[i] = aio.http.ws_connect(url, { timeout = 60 })
      end)
    end
    for _, t in ipairs(tasks) do t:await() end
    local opened = aio.now() - t0
    aio.sleep(0.5)
    local after, open, heap = stats()
    for _, ws in ipairs(conns) do ws:close(1000, "", 1) end
    dog:cancel()
    result({ peer = "aio", wl = "ws_idle", n = N, secs = opened, rate = N / opened,
             unit = "conns/s", ok = open == N + 1, server_rss_kb = after,
             bytes_per_conn = ("%.0f"):format((after - before) * 1024 / N),
             lua_bytes_per_conn = ("%.0f"):format((heap - heap0) * 1024 / N) })
    return open == N + 1
  end)
  os.execute("kill " .. pid)
  p:close()
  os.exit(ok and 0 or 1)
end

local mode = arg[1]
if mode == "server" then server(tonumber(arg[2]) or 0, arg[3])
elseif mode == "client" then client(arg[2], tonumber(arg[3]) or 100, tonumber(arg[4]) or 1000)
elseif mode == "idle" then idle(tonumber(arg[2]) or 10000, arg[3])
else
  io.stderr:write("usage: lua5.4 bench/aio_ws.lua server PORT [raw] | client URL [C] [M] | idle [N] [raw]\n")
  os.exit(2)
end
