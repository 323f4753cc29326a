--- aio.workers: several processes serving, one master watching them
-- (nginx's master/worker, gunicorn). The master only forks, waits, restarts
-- a worker that dies and forwards SIGINT/SIGTERM as SIGTERM; all serving
-- happens in the workers, which share a port with reuse_port.
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local cw = core.workers
local is_error = core.is_error

local M = {}

local RESTART_DELAY = 1     -- seconds before restarting a worker that died young
local YOUNG = 1             -- a worker younger than this when it died
local GIVE_UP = 5           -- young deaths in a row of one worker that stop all

-- The master runs no loop: it times its workers on the real clock.
local now = core.real_now

-- The body of worker `i`: aio.run(main, i, ...) with SIGTERM cancelling the
-- main task (a server's <close> then closes it gracefully). Returns the
-- process's exit code.
local function worker(i, main, ...)
  local extra = table.pack(...)
  local stopped = false
  local ok, err = pcall(core.run, function()
    local me = core.current()
    local reg = require("aio.io.signal").signal("SIGTERM", function()
      stopped = true
      me:cancel("SIGTERM")
    end)
    local res = table.pack(pcall(main, i, table.unpack(extra, 1, extra.n)))
    reg:close()
    if not res[1] then error(res[2], 0) end
  end)
  if ok then return 0 end
  if (stopped and is_error(err, "cancelled")) or is_error(err, "interrupted") then return 0 end
  io.stderr:write(("aio.workers: worker %d (pid %d) failed: %s\n"):format(i, cw.getpid(), tostring(err)))
  io.stderr:flush()
  return 1
end

--- Runs `main(i, ...)` in `n` worker processes (i = 1..n), each under its
--- own aio.run, and watches them from this process (the master), which
--- runs no loop: a worker that dies (a signal, or a non-zero exit) is
--- restarted (after a second if it lived less than one; five such quick
--- deaths in a row stop everything); SIGINT or SIGTERM
--- to the master is forwarded to every worker as SIGTERM, which cancels its
--- main task (a server's <close> then closes it, with the grace given to
--- aio.http.listen). Returns in the master once every worker has stopped:
--- true if all exited with status 0 (a worker stopped by SIGTERM or SIGINT
--- does), else false and an array of {worker=, pid=, code=, signal=} for
--- the others. Must be called outside aio.run (raises `usage`), before any
--- loop or thread exists: use aio.http.listen's reuse_port to share a port.
---@param n integer
---@param main fun(i: integer, ...)
---@return boolean ok, table? failures
function M.workers(n, main, ...)
  n = args.count(n, 1, "workers", nil, 1) or args.check(n, "number", 1, "workers")
  args.callable(main, 2, "workers")
  if core.stats().running then
    args.usage("aio.workers must be called outside aio.run (it forks the processes that run it)")
  end
  local extra = table.pack(...)
  local pids, count = {}, 0
  local failures = {}
  local restarts = {}          -- worker index -> time to restart it
  local young = {}             -- worker index -> young deaths in a row
  local stopping = false
  local function stop_all()
    stopping = true
    restarts = {}
    for pid in pairs(pids) do cw.kill(pid, "SIGTERM") end
  end
  cw.block()
  local function start(i)
    local pid = cw.fork()
    if pid == 0 then
      os.exit(worker(i, main, table.unpack(extra, 1, extra.n)))
    end
    pids[pid] = { i = i, since = now() }
    count = count + 1
  end
  local ok, err = pcall(function()
    for i = 1, n do start(i) end
    while count > 0 or (not stopping and next(restarts)) do
      local wait = 1
      if not stopping then
        local t = now()
        for i, at in pairs(restarts) do
          if at <= t then
            restarts[i] = nil
            start(i)
          else
            wait = math.min(wait, at - t)
          end
        end
      end
      local ev, a, code, sig = cw.wait(wait)
      if ev == "signal" then
        if not stopping then stop_all() end
      elseif ev == "exit" then
        local w = pids[a]
        if w then
          pids[a] = nil
          count = count - 1
          local clean = code == 0 or (stopping and (sig == "SIGTERM" or sig == "SIGINT"))
          if not clean then
            failures[#failures + 1] = { worker = w.i, pid = a, code = code, signal = sig }
          end
          if not stopping and code ~= 0 then
            local died_young = now() - w.since < YOUNG
            young[w.i] = died_young and (young[w.i] or 0) + 1 or 0
            if young[w.i] >= GIVE_UP then
              io.stderr:write(("aio.workers: worker %d died %d times in a row at its start; stopping\n")
                :format(w.i, GIVE_UP))
              stop_all()
            else
              restarts[w.i] = died_young and now() + RESTART_DELAY or now()
              failures[#failures] = nil   -- restarted: not a final failure
            end
          end
        end
      end
    end
  end)
  if not ok then
    for pid in pairs(pids) do cw.kill(pid, "SIGTERM") end
    cw.unblock()
    error(err, 0)
  end
  cw.unblock()
  if #failures == 0 then return true end
  return false, failures
end

setmetatable(M, { __call = function(_, ...) return M.workers(...) end })

return M
