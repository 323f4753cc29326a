--[[
virtual_clock.lua: run code that waits for hours in milliseconds, with the
virtual clock of aio.testing.run (what tests of such code use: see
"Testing your code" in the README). A poller checks an upstream service
every 15 minutes; every eighth round the service is down for a while and
aio.retry backs off 1, 2, then 4 minutes. A whole day of it runs at once,
and the times printed are exact, the same on every run.

Usage: lua5.4 examples/virtual_clock.lua [HOURS]
  HOURS  how many (virtual) hours to poll for (default 24)
]]
local aio = require "aio"

local hours = tonumber(arg[1]) or 24
local PERIOD = 15 * 60

local cpu = os.clock()
local rounds, retried = aio.testing.run(function()
  local rounds, retried, down_until = 0, 0, -1
  local function check()                -- the upstream service
    if aio.now() < down_until then error(aio.Error("io", "upstream down")) end
    return "up"
  end
  while aio.now() < hours * 3600 do
    rounds = rounds + 1
    local start = aio.now()
    if rounds % 8 == 0 then down_until = start + 150 end  -- down 2.5 min
    aio.retry(check, {attempts = 4, delay = 60, factor = 2, max_delay = 600,
                      jitter = false})
    if aio.now() > start then
      retried = retried + 1
      print(("%02d:%02d  round %3d up again after %d s of retries"):format(
        start // 3600, start % 3600 // 60, rounds, aio.now() - start))
    end
    aio.sleep(PERIOD - (aio.now() - start))   -- the next round on time
  end
  return rounds, retried
end)
print(("%d hours: %d rounds, %d needed retries; %.3f s of CPU"):format(
  hours, rounds, retried, os.clock() - cpu))
