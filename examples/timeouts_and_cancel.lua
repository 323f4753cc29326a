--[[
timeouts_and_cancel.lua: a timeout around slow work, cancelling a task and
seeing its clean-up run, and aio.shield protecting clean-up that must wait.

Usage: lua5.4 examples/timeouts_and_cancel.lua [TIMEOUT]
  TIMEOUT  seconds allowed to the slow work (default 0.2)
]]
local aio = require "aio"

local limit = tonumber(arg[1]) or 0.2

aio.run(function()
  -- 1. a timeout: the slow call is interrupted where it waits
  local ok, err = pcall(aio.timeout, limit, function()
    aio.sleep(10)
  end)
  print("1. timeout:", ok, tostring(err))

  -- 2. cancellation: the task's <close> handler and pcall clean-up run
  local worker = aio.spawn(function()
    local resource <close> = setmetatable({}, {__close = function()
      print("2. resource closed")
    end})
    aio.sleep(10)
  end)
  aio.sleep(0.05)
  worker:cancel("no longer needed")
  local _, why = pcall(worker.await, worker)
  print("2. worker ended:", tostring(why), "cancelled:", worker:cancelled())

  -- 3. shield: clean-up that must suspend still completes when cancelled
  local saver = aio.spawn(function()
    local ok2 = pcall(aio.sleep, 10)
    if not ok2 then
      aio.shield(function()
        aio.sleep(0.05)                -- e.g. flush state to disk
        print("3. state saved despite the cancellation")
      end)
    end
  end)
  aio.sleep(0.01)
  saver:cancel()
  pcall(saver.await, saver)

  -- 4. an outer deadline wins over what happens inside it
  local t0 = aio.now()
  ok, err = pcall(aio.timeout, limit, aio.gather,
                  function() aio.sleep(limit / 2) return "fast" end,
                  function() aio.sleep(limit * 10) return "slow" end)
  print(("4. gather under a %.2f s deadline: %s after %.2f s"):format(limit, tostring(err), aio.now() - t0))
end)
