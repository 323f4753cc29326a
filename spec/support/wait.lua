--- spec/support/wait.lua: waiting for a condition in a spec (polling, with
-- a bound), for what has no event to wait on. See LICENSE

local aio = require "aio"

--- Suspends until fn() is true, polling every 5 ms; fails the spec after
--- `secs` (default 5) seconds.
return function(fn, secs)
  local deadline = aio.now() + (secs or 5)
  while not fn() do
    if aio.now() > deadline then error("condition not met in time", 2) end
    aio.sleep(0.005)
  end
end
