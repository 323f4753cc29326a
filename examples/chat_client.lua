--[[
chat_client.lua: a client for chat_server.lua. Joins a room, prints what
the room says while it sends each MESSAGE given (or, without any, each
line typed on stdin), then leaves with a clean close.

Usage: lua5.4 examples/chat_client.lua URL NICK [MESSAGE...]
  URL   the room, e.g. ws://127.0.0.1:8080/rooms/lua
  NICK  the name the others see
]]
local aio = require "aio"

local url, nick = arg[1], arg[2]
if not url or not nick then
  io.stderr:write("usage: lua5.4 examples/chat_client.lua URL NICK [MESSAGE...]\n")
  os.exit(2)
end
local messages = table.pack(select(3, table.unpack(arg)))

aio.run(function()
  local ws <close> = aio.http.ws_connect(url .. "?nick=" .. nick, { heartbeat = 20 })
  local last = nick .. ": " .. (messages[messages.n] or "")
  local seen = aio.Event()
  local printer = aio.spawn(function()            -- what the room says
    for text in ws:messages() do
      print(text)
      if messages.n > 0 and text == last then seen:set() end
    end
    print(("(closed: %d %s)"):format(ws.close_code, ws.close_reason))
    seen:set()
  end)
  if messages.n > 0 then
    for i = 1, messages.n do ws:send(messages[i]) end
    aio.timeout(10, seen.wait, seen)              -- until our last one came back
  else
    local stdin <close> = aio.fs.open("/dev/stdin")
    for line in stdin:lines() do ws:send(line) end
  end
  ws:close(1000, "bye")
  printer:await()
end)
