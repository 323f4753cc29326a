--[[
tcp_echo.lua: a TCP echo server (aio.tcp.listen: one task per connection)
and CLIENTS clients talking to it at the same time.

Usage: lua5.4 examples/tcp_echo.lua [CLIENTS]
  CLIENTS  how many clients connect at once (default 3)
]]

local aio = require "aio"

local nclients = tonumber(arg[1]) or 3

aio.run(function()
  -- each connection runs this handler in its own task
  local server <close> = aio.tcp.listen("127.0.0.1", 0, function(stream)
    for line in function() return stream:read_line() end do
      stream:write("echo: ", line, "\n")
    end
  end)
  print("listening on port " .. server.port)

  local clients = {}
  for i = 1, nclients do
    clients[i] = aio.spawn(function()
      local c <close> = aio.tcp.connect("127.0.0.1", server.port, { timeout = 5 })
      c:write("hello from client ", i, "\n")
      return c:read_line()
    end)
  end
  for _, t in ipairs(clients) do print(t:await()) end
end)
