--[[
producer_consumer.lua: a producer and a few consumers connected by a bounded
aio.Queue. The producer closes the queue when it is done (no sentinel
values); each consumer's `for item in queue:items()` loop ends once the queue
is closed and drained. A full queue makes the producer wait: backpressure.

Usage: lua5.4 examples/producer_consumer.lua [ITEMS] [CONSUMERS] [MAXSIZE]
  ITEMS      items to produce (default 20)
  CONSUMERS  consumer tasks (default 3)
  MAXSIZE    queue capacity (default 5)
]]
local aio = require "aio"

local items = tonumber(arg[1]) or 20
local nconsumers = tonumber(arg[2]) or 3
local maxsize = tonumber(arg[3]) or 5

aio.run(function()
  local queue = aio.Queue(maxsize)

  local producer = aio.spawn(function()
    for i = 1, items do
      queue:put("item-" .. i)          -- waits while the queue is full
      aio.sleep(0.01)
    end
    queue:close()                      -- consumers finish what is left, then stop
  end)

  local counts = {}
  local consumers = {}
  for c = 1, nconsumers do
    counts[c] = 0
    consumers[c] = aio.spawn(function()
      for item in queue:items() do
        aio.sleep(0.02 + 0.01 * c)     -- pretend to work on it
        counts[c] = counts[c] + 1
        print(("consumer %d handled %s"):format(c, item))
      end
    end)
  end

  producer:await()
  aio.gather(consumers)
  local total = 0
  for c = 1, nconsumers do total = total + counts[c] end
  print(("%d items handled by %d consumers: %s"):format(total, nconsumers, table.concat(counts, "/")))
end)
