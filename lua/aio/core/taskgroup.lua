--- aio.TaskGroup: structured concurrency. Children are spawned into the
-- group; leaving the group's scope (`local g <close> = aio.TaskGroup()`) or
-- group:wait() waits for all of them. The first child to fail cancels its
-- siblings and the body of the scope; its error is raised from the scope
-- exit / wait, and every child error is kept in group.errors.
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local spawn, task_state = core.spawn, core.task_state

---@class aio.TaskGroup
---@field errors any[]  every error a child failed with, in order
local TaskGroup = {}
TaskGroup.__index = TaskGroup
TaskGroup.__name = "aio.TaskGroup"

local check = args.self

local function cancel_children(g)
  for _, t in ipairs(g._tasks) do t:cancel() end
end

local function wait_children(g)
  while g._pending > 0 do g._done:wait(false) end
end

-- Called from the loop when a child finishes (never suspends).
local function child_done(g, t)
  g._pending = g._pending - 1
  if task_state(t) == "failed" then
    g.errors[#g.errors + 1] = t:error()
    if not g._failed then
      g._failed = true
      cancel_children(g)
      core.scope_cancel(g._scope)
    end
  end
  if g._pending == 0 then g._done:notify_all() end
end

--- A new task group for the running task.
---@return aio.TaskGroup
local function new()
  local g = setmetatable({
    errors = {},
    _tasks = {},
    _pending = 0,
    _done = core.WaitList(),
    _scope = core.scope_open(),
    _closed = false,
    _failed = false,
  }, TaskGroup)
  g._on_child = function(t) child_done(g, t) end
  return g
end

--- Spawns `fn(...)` as a child of the group.
---@param fn function
---@return aio.Task
function TaskGroup:spawn(fn, ...)
  check(self, TaskGroup, "spawn")
  args.callable(fn, 1, "spawn")
  if self._closed then args.usage("spawn on a TaskGroup that was closed") end
  local t = spawn(fn, ...)
  self._tasks[#self._tasks + 1] = t
  self._pending = self._pending + 1
  t:on_done(self._on_child)
  return t
end

--- Waits for every child; raises the first child error, if any. If the
--- caller is cancelled meanwhile, the children are cancelled and waited for.
function TaskGroup:wait()
  check(self, TaskGroup, "wait")
  local ok, err = pcall(wait_children, self)
  if not ok then
    cancel_children(self)
    core.shield(wait_children, self)
    if core.scope_owns(self._scope, err) and self.errors[1] ~= nil then
      error(self.errors[1], 0)
    end
    error(err, 0)
  end
  if self.errors[1] ~= nil then error(self.errors[1], 0) end
end

--- Leaving the scope: on an error in the body the children are cancelled
--- first; either way all are waited for. Raises the first child error
--- (which also replaces the cancellation the group caused in the body).
function TaskGroup:__close(err)
  check(self, TaskGroup, "close")
  if self._closed then return end
  self._closed = true
  local ok, werr = true, nil
  if err ~= nil then
    cancel_children(self)
    core.shield(wait_children, self)
  else
    ok, werr = pcall(self.wait, self)
  end
  core.scope_close(self._scope)
  if err ~= nil then
    if core.scope_owns(self._scope, err) and self.errors[1] ~= nil then
      error(self.errors[1], 0)
    end
    return
  end
  if not ok then error(werr, 0) end
end

--- Closes the group explicitly (as leaving its scope does).
TaskGroup.close = TaskGroup.__close

function TaskGroup:__tostring()
  check(self, TaskGroup, "__tostring")
  return ("aio.TaskGroup(%d running, %d errors)"):format(self._pending, #self.errors)
end

return { TaskGroup = new }
