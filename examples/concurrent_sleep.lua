--[[
concurrent_sleep.lua: three waits of one second, first one after the other
(about 3 s), then at the same time with aio.gather (about 1 s).

Usage: lua5.4 examples/concurrent_sleep.lua [SECONDS]
  SECONDS  how long each wait lasts (default 1)
]]
local aio = require "aio"

local seconds = tonumber(arg[1]) or 1

local function wait(name)
  aio.sleep(seconds)
  return name .. " done"
end

aio.run(function()
  local t0 = aio.now()
  wait("a"); wait("b"); wait("c")
  print(("sequential: %.2f s"):format(aio.now() - t0))

  t0 = aio.now()
  local a, b, c = aio.gather(function() return wait("a") end,
                             function() return wait("b") end,
                             function() return wait("c") end)
  print(("gather:     %.2f s  (%s, %s, %s)"):format(aio.now() - t0, a, b, c))
end)
