--[[
ws_echo.lua: a WebSocket echo server (aio.http.listen + req:websocket)
and a client (aio.http.ws_connect) talking to it: text and binary
messages, a ping, and the closing handshake with its code and reason.

Usage: lua5.4 examples/ws_echo.lua [N]
  N  how many messages the client sends (default 3)
]]
local aio = require "aio"

local N = tonumber(arg[1]) or 3

-- the server: each WebSocket is a task that echoes until the client closes
local function echo(req)
  local ws <close> = req:websocket()
  for data, kind in ws:messages() do
    if kind == "text" then ws:send(data) else ws:send_binary(data) end
  end
  print(("server: the client closed with %d %q"):format(ws.close_code, ws.close_reason))
end

aio.run(function()
  local server <close> = aio.http.listen(echo, { port = 0 })
  local url = ("ws://127.0.0.1:%d/echo"):format(server.port)
  local ws <close> = aio.http.ws_connect(url)
  for i = 1, N do
    ws:send("hello " .. i)
    local data, kind = ws:receive()
    print(("client: %s (%s)"):format(data, kind))
  end
  ws:send_binary("\0\1\2")
  print(("client: %d bytes back (%s)"):format(#ws:receive(), "binary"))
  ws:ping()
  ws:close(1000, "done")
  print("client: closed with " .. ws.close_code)
end)
