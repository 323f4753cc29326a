--- spec/support/ws_server_child.lua: an aio WebSocket server
-- (aio.http.listen + req:websocket) in a process of its own, for the
-- many-connection spec (its ends of the connections do not count against
-- the spec's descriptors).
--   lua5.4 ws_server_child.lua READY_FILE PARENT_PID
-- Writes its port to READY_FILE; exits when PARENT_PID is gone. Echoes
-- messages, and answers commands (text messages):
--   "stats"      -> "<Lua heap KiB> <open WebSockets> <RSS KiB>" after a
--                   full garbage collection
--   "broadcast"  -> sends "hello all" to every other open WebSocket from
--                   this one task, then answers "sent <n> <longest gap>":
--                   the longest a ticker task waited meanwhile (seconds)
-- See LICENSE

local aio = require "aio"

local ready, parent = arg[1], arg[2]

local function rss_kb()
  local f = io.open("/proc/self/status")
  local kb = f and tonumber(f:read("a"):match("VmRSS:%s*(%d+)")) or -1
  if f then f:close() end
  return kb
end

aio.run(function()
  local open = {}
  local count = 0
  local srv = aio.http.listen(function(req)
    local ws <close> = req:websocket()
    open[ws] = true
    count = count + 1
    for data in ws:messages() do
      if data == "stats" then
        collectgarbage()
        collectgarbage()
        ws:send(("%d %d %d"):format(math.floor(collectgarbage("count")), count, rss_kb()))
      elseif data == "broadcast" then
        local gap, last, ticking = 0, aio.now(), true
        local ticker = aio.spawn(function()
          while ticking do
            aio.sleep(0.001)
            local now = aio.now()
            if now - last > gap then gap = now - last end
            last = now
          end
        end)
        local n = 0
        for other in pairs(open) do
          if other ~= ws then
            other:send("hello all")
            n = n + 1
          end
        end
        aio.sleep(0.05)
        ticking = false
        ticker:await()
        ws:send(("sent %d %.3f"):format(n, gap))
      else
        ws:send(data)
      end
    end
    open[ws] = nil
    count = count - 1
  end, { port = 0, backlog = 4096, max_connections = 100000 })
  local f = assert(io.open(ready .. ".tmp", "w"))
  f:write(srv.port)
  f:close()
  os.rename(ready .. ".tmp", ready)
  while os.execute("kill -0 " .. parent .. " 2>/dev/null") do aio.sleep(0.5) end
  os.exit(0)
end)
