--[[
redis_queue.lua: a work queue shared by several processes. The main
process pushes jobs onto a Redis list; WORKERS worker processes (this same
file, started with aio.process) take them with BLPOP, each job by exactly
one worker, and publish what they computed on a pub/sub channel, which the
main process follows with a subscription. A "stop" job per worker ends them.
Without a URL the example starts a throwaway redis-server of its own.

Usage: lua5.4 examples/redis_queue.lua [JOBS] [WORKERS] [URL]
  JOBS     how many jobs (default 12)
  WORKERS  how many worker processes (default 3)
  URL      a Redis server to use instead (redis://host:port, unix:/path)
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"

-- A worker process: `redis_queue.lua worker ID URL QUEUE CHANNEL`.
if arg[1] == "worker" then
  local id, url, queue, channel = arg[2], arg[3], arg[4], arg[5]
  aio.run(function()
    local r <close> = aio.redis.connect(url)
    while true do
      local item = r:blpop(queue, 10)          -- waits; other tasks go on
      if item == nil or item[2] == "stop" then return end
      local n = tonumber(item[2])
      aio.sleep(0.01)                          -- the work
      r:publish(channel, ("job %d -> %d (worker %s)"):format(n, n * n, id))
    end
  end)
  return
end

local njobs = tonumber(arg[1]) or 12
local nworkers = tonumber(arg[2]) or 3

local url, server = require("support.redis_server").url(arg[3])
if not url then return end

aio.run(function()
  local r <close> = aio.redis.connect(url)
  local tag = ("%d.%d"):format(os.time(), math.random(1e6))
  local queue, channel = "jobs:" .. tag, "results:" .. tag
  -- subscribe first: nothing published after this is missed
  local results <close> = r:subscribe(channel)

  local workers = {}
  for i = 1, nworkers do
    workers[i] = aio.spawn(aio.process.run,
      { arg[-1] or "lua5.4", arg[0], "worker", i, url, queue, channel },
      { stdout = "inherit", stderr = "inherit", timeout = 60 })
  end
  local t0 = aio.now()
  for n = 1, njobs do r:rpush(queue, n) end

  local done, by = 0, {}
  for msg in results:messages() do
    print(msg.data)
    by[msg.data:match("worker (%d+)")] = true
    done = done + 1
    if done == njobs then break end
  end
  local used = 0
  for _ in pairs(by) do used = used + 1 end
  for _ = 1, nworkers do r:rpush(queue, "stop") end
  for _, w in ipairs(workers) do assert(w:await().code == 0, "a worker failed") end
  print(("%d jobs done in %.2f s by %d worker processes (%d of them busy)")
    :format(done, aio.now() - t0, nworkers, used))
end)

if server then server:stop() end
