--[[
debug_mode.lua: a task that blocks the loop (a busy loop that never
suspends) and the warning debug mode prints about it on stderr: the task's
name, how long it ran, where it is now and where it was spawned. Also set by
AIO_DEBUG=1 in the environment.

Usage: lua5.4 examples/debug_mode.lua [SECONDS]
  SECONDS  how long the task hogs the loop (default 0.3)
]]
local aio = require "aio"

local hog_for = tonumber(arg[1]) or 0.3

aio.set_debug(true)

aio.run(function()
  local ticks = 0
  local ticker = aio.spawn(function()
    while true do aio.sleep(0.05) ticks = ticks + 1 end
  end)

  local hog = aio.spawn(function()
    local t0 = os.clock()
    while os.clock() - t0 < hog_for do end    -- never suspends: blocks everyone
    aio.sleep(0)
  end)
  hog.name = "cpu-hog"
  hog:await()

  ticker:cancel()
  print(("the ticker ticked %d times while the hog ran %.1f s (debug warning on stderr)")
    :format(ticks, hog_for))
end)
