--[[ to_thread.lua: CPU-bound work on a pool thread while the loop keeps
ticking. Usage: lua5.4 examples/to_thread.lua ]]

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

aio.run(function()
  local ticks = 0
  local ticker = aio.spawn(function()
    while true do aio.sleep(0.01) ticks = ticks + 1 end
  end)
  local t0 = aio.now()
  local n = aio.to_thread(count_primes, 300000)
  print(("%d primes below 300000 in %.2f s; the loop ticked %d times meanwhile")
    :format(n, aio.now() - t0, ticks))
  ticker:cancel()
end)
