--[[
chat_server.lua: a WebSocket chat server. Clients join a room at
ws://HOST:PORT/rooms/NAME?nick=NICK; what one sends, everyone in the room
gets as "nick: text". Each client has an outbox (a bounded Queue) drained
by a writer task, so one slow client never holds up a broadcast: past 100
messages behind it is disconnected (1008). A heartbeat drops clients that
vanish without closing; on SIGINT or SIGTERM the server tells everyone,
closes every WebSocket with 1001 (going away) and stops.

Usage: lua5.4 examples/chat_server.lua [PORT] [--self-test]
  PORT         port to listen on (default 8080; 0: any free port)
  --self-test  three clients chat in two rooms, then SIGTERM stops it all
Then try: lua5.4 examples/chat_client.lua ws://127.0.0.1:8080/rooms/lua alice
]]
local aio = require "aio"

local port = tonumber(arg[1]) or 8080
local self_test = arg[1] == "--self-test" or arg[2] == "--self-test"
if arg[1] == "--self-test" then port = 0 end

local rooms = {}         -- room name -> {[member] = true}
local everyone = {}      -- member -> true, for the shutdown

-- Queues `text` for every member of `room` (never waits).
local function broadcast(room, text)
  for member in pairs(rooms[room] or {}) do
    if not pcall(member.outbox.put_nowait, member.outbox, text) then
      aio.spawn(member.ws.close, member.ws, 1008, "too slow")
    end
  end
end

-- One connection: joins, relays what it says, leaves.
local function chat(req)
  local room = req.params.room
  local nick = req.query.nick or ("guest" .. math.random(1000))
  local ws <close> = req:websocket({ heartbeat = 30 })
  local member = { ws = ws, nick = nick, outbox = aio.Queue(100) }
  local group <close> = aio.TaskGroup()
  group:spawn(function()                          -- the writer
    for text in member.outbox:items() do
      if not pcall(ws.send, ws, text) then break end
    end
  end)
  rooms[room] = rooms[room] or {}
  rooms[room][member], everyone[member] = true, true
  broadcast(room, ("* %s joined %s"):format(nick, room))
  for text in ws:messages() do
    broadcast(room, nick .. ": " .. text)
  end
  rooms[room][member], everyone[member] = nil, nil
  if next(rooms[room]) == nil then rooms[room] = nil end
  broadcast(room, ("* %s left"):format(nick))
  member.outbox:close()
end

local app = aio.http.App()
app:get("/rooms/{room}", chat)

aio.run(function()
  local server <close> = aio.http.listen(app, { port = port })
  print("chat server on ws://127.0.0.1:" .. server.port .. "/rooms/NAME?nick=NICK")
  local function shutdown(signal)
    print(signal .. ": closing every chat")
    server:close()
    local group <close> = aio.TaskGroup()
    for member in pairs(everyone) do
      group:spawn(function()
        pcall(member.ws.send, member.ws, "* the server is going away")
        member.ws:close(1001, "server shutdown")
      end)
    end
  end
  local stop = aio.Event()
  local regs = {}
  for _, signal in ipairs({ "SIGINT", "SIGTERM" }) do
    regs[#regs + 1] = aio.signal(signal, function()
      shutdown(signal)
      stop:set()
    end)
  end

  local tester
  if self_test then
    tester = aio.spawn(function()
      local base = ("ws://127.0.0.1:%d/rooms/"):format(server.port)
      local alice <close> = aio.http.ws_connect(base .. "lua?nick=alice")
      assert(alice:receive() == "* alice joined lua")
      local bob <close> = aio.http.ws_connect(base .. "lua?nick=bob")
      local carol <close> = aio.http.ws_connect(base .. "python?nick=carol")
      print("alice sees: " .. alice:receive())              -- bob joined
      bob:send("hi alice")
      print("alice sees: " .. alice:receive())
      print("bob sees: " .. bob:receive() .. " | " .. bob:receive())
      carol:send("anyone?")
      print("carol sees: " .. carol:receive() .. " | " .. carol:receive())
      local pid = io.open("/proc/self/stat"):read("n")
      aio.process.run({ "kill", "-TERM", tostring(pid) })
      for _, c in ipairs({ { "alice", alice }, { "bob", bob }, { "carol", carol } }) do
        local name, ws, told = c[1], c[2], false
        for text in ws:messages() do told = told or text == "* the server is going away" end
        print(("%s: %s, closed %d %s"):format(name, told and "told" or "not told",
          ws.close_code, ws.close_reason))
      end
    end)
  end

  stop:wait()
  for _, reg in ipairs(regs) do reg:close() end
  server:wait()
  if tester then tester:await() end
  print("chat server stopped")
end)
