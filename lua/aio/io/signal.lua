--- aio.signal: run a handler as a new task each time the process receives
-- a signal. The signal is caught in libuv; a task of the registration
-- spawns the handlers, so they run like any other task. See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"
local background = require "aio.core.background"

local csignal = core.signal
local watch, canonical = csignal.watch, csignal.name

-- Signals a handler task cannot serve: uncatchable, or faults that must
-- stop the program where they happen.
local UNCATCHABLE = {
  SIGKILL = true, SIGSTOP = true,
  SIGSEGV = true, SIGBUS = true, SIGFPE = true, SIGILL = true,
}
local spawn, is_error = core.spawn, core.is_error

local M = {}

---@class aio.signal.Registration
---@field name string the signal's name ("SIGTERM")
local Registration = {}
Registration.__index = Registration
Registration.__name = "aio.signal.Registration"

-- The registration's task: one handler task per delivery until closed.
local function dispatch(watcher, handler, name)
  local wait = watcher.wait
  while true do
    local ok, n = pcall(wait, watcher)
    if not ok then
      if is_error(n, "closed") then return end
      error(n, 0)
    end
    for _ = 1, n do spawn(handler, name) end
  end
end

--- Calls `handler(name)` in a new task each time signal `name` arrives
--- ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", ..., or without "SIG").
--- Handling SIGINT replaces aio.run's default (cancel the main task)
--- until the registration is closed. Returns the registration; close()
--- it (also with <close>) to stop. Deliveries close together may be
--- merged into one by the system, as for any signal.
---@param name string
---@param handler fun(name: string)
---@return aio.signal.Registration
function M.signal(name, handler)
  args.carg(name, 1, "signal", "signal name")
  args.callable(handler, 2, "signal")
  local canon = canonical(name)
  if canon == nil then
    args.usage("aio.signal: unknown signal '" .. name .. "'")
  end
  if UNCATCHABLE[canon] then
    args.usage("aio.signal: " .. canon .. " cannot be handled")
  end
  local watcher = watch(name)
  local reg = setmetatable({ name = canon, _watcher = watcher }, Registration)
  return background.start(reg, "signal " .. canon, dispatch, watcher, handler, canon)
end

--- Stops handling the signal (handlers already started go on). In a task
--- it also waits for the registration's task to end. Harmless when
--- repeated.
Registration.close = background.closer(Registration, function(reg) reg._watcher:close() end)

Registration.__close = Registration.close

-- aio.signal is this module: calling it is calling M.signal.
setmetatable(M, { __call = function(_, ...) return M.signal(...) end })

function Registration:__tostring()
  args.self(self, Registration, "__tostring")
  return ("aio.signal (%s%s)"):format(self.name, self._closed and ", closed" or "")
end

return M
