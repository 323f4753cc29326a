--[[
worker_pool.lua: a fixed pool of workers takes jobs from a queue; the main
task waits for every job with queue:join() (each worker calls task_done()
after a job), then cancels the idle workers.

Usage: lua5.4 examples/worker_pool.lua [JOBS] [WORKERS]
  JOBS     jobs to run (default 12)
  WORKERS  pool size (default 3)
]]
local aio = require "aio"

local njobs = tonumber(arg[1]) or 12
local nworkers = tonumber(arg[2]) or 3

aio.run(function()
  local jobs = aio.Queue()
  local results = {}

  local workers = {}
  for w = 1, nworkers do
    workers[w] = aio.spawn(function()
      while true do
        local job = jobs:get()
        aio.sleep(job.cost)                       -- the work
        results[#results + 1] = ("job %2d by worker %d"):format(job.id, w)
        jobs:task_done()
      end
    end)
  end

  local t0 = aio.now()
  for id = 1, njobs do
    jobs:put({id = id, cost = 0.01 * (id % 4 + 1)})
  end
  jobs:join()                                     -- every job marked done
  print(("%d jobs in %.2f s with %d workers"):format(#results, aio.now() - t0, nworkers))
  for _, line in ipairs(results) do print(line) end

  for _, w in ipairs(workers) do w:cancel() end   -- idle workers: stop them
  aio.settle(workers)
end)
