--- aio.core.background: what objects that own a background task share (a TCP
-- server's accepting task, a signal registration's dispatching task):
-- closing them stops the source, then waits for that task to end.
-- See LICENSE

local core = require "aio.core"

local current = core.current

local M = {}

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

return M
