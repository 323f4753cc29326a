--- aio.core.background: what objects that own a background task share (a TCP
-- server's accepting task, a signal registration's dispatching task):
-- closing them stops the source, then waits for that task to end.
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local current, spawn = core.current, core.spawn

local M = {}

--- Starts `obj`'s background task, `fn(...)`, named `name`; returns obj.
---@param obj table
---@param name string
---@param fn function
---@return table obj
function M.start(obj, name, fn, ...)
  local t = spawn(fn, ...)
  t.name = name
  obj._task = t
  return obj
end

--- Closes `obj` once: calls `stop(obj)`, then, from a task that may
--- suspend, waits for `obj._task` to end. Harmless when repeated.
---@param obj table
---@param stop fun(obj: table)
function M.close(obj, stop)
  if obj._closed then return end
  obj._closed = true
  stop(obj)
  local t = obj._task
  local me = current()
  if me and me ~= t and not t:done() and coroutine.isyieldable() then
    t:await()
  end
end

--- The close() method of the objects of `class`: checks its receiver,
--- then closes it with `stop` (see M.close).
---@param class table
---@param stop fun(obj: table)
---@return fun(self: table)
function M.closer(class, stop)
  return function(self)
    args.self(self, class, "close")
    M.close(self, stop)
  end
end

return M
