--[[
to_thread.lua: CPU-heavy work (counting primes) moved to a thread with
aio.to_thread, while a ticker task keeps ticking on the loop; then the same
work done inline, where the ticker stops until it is over.

Usage: lua5.4 examples/to_thread.lua [LIMIT]
  LIMIT  count the primes below this (default 300000)
]]

local aio = require "aio"

-- no upvalues: the function moves to another Lua state
local function count_primes(limit)
  local count = 0
  for i = 2, limit do
    local prime = true
    for d = 2, math.floor(math.sqrt(i)) do
      if i % d == 0 then prime = false break end
    end
    if prime then count = count + 1 end
  end
  return count
end

local limit = tonumber(arg[1]) or 300000

aio.run(function()
  local ticks = 0
  local ticker = aio.spawn(function()
    while true do aio.sleep(0.01) ticks = ticks + 1 end
  end)
  aio.sleep(0)

  local t0 = aio.now()
  local n = aio.to_thread(count_primes, limit)
  print(("in a thread: %d primes below %d in %.2f s; the ticker ticked %d times meanwhile")
    :format(n, limit, aio.now() - t0, ticks))

  ticks = 0
  t0 = aio.now()
  n = count_primes(limit)               -- nothing else runs until it returns
  print(("inline:      %d primes below %d in %.2f s; the ticker ticked %d times meanwhile")
    :format(n, limit, aio.now() - t0, ticks))
  ticker:cancel()
end)
