--- aio.core.compose: running several tasks together. gather, settle, wait,
-- as_completed and first (over the core's task watcher, src/sync/watch.c),
-- and the task forms of timeout and shield.
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local spawn, is_task, task_state = core.spawn, core.is_task, core.task_state
local watch, now = core.watch, core.now
local callable, argerror, typename = args.is_callable, args.error, args.typename
local select, type = select, type

local M = {}

--- Turns gather-style arguments (functions or tasks, or one array of them)
--- into an array of tasks, spawning the functions. Returns the array and
--- whether the array form was used.
local function collect(fname, ...)
  local nargs = select("#", ...)
  local items, array = {...}, false
  local first = ...
  if nargs == 1 and type(first) == "table" and not callable(first) then
    items, array = first, true
    nargs = #first
  end
  local tasks = {}
  for i = 1, nargs do
    local v = items[i]
    if not (is_task(v) or callable(v)) then
      argerror(array and 1 or i, fname, "function or task expected, got " .. typename(v))
    end
  end
  for i = 1, nargs do
    local v = items[i]
    tasks[i] = is_task(v) and v or spawn(v)
  end
  return tasks, array
end

local function cancel_all(tasks)
  for i = 1, #tasks do tasks[i]:cancel() end
end

--- Waits until every task is done; cannot be interrupted.
local function wait_all(tasks)
  core.shield(function()
    local w <close> = watch(tasks)
    while w:next() do end
  end)
end

--- Cancels every task, waits for all of them, re-raises `err`.
local function abandon(tasks, err)
  cancel_all(tasks)
  wait_all(tasks)
  error(err, 0)
end

local function first_value(t)
  return (t:result())
end

--- Waits for every task, or with `fail_fast` until one fails (returns it).
--- If the caller is cancelled meanwhile, all the tasks are cancelled and
--- waited for, and the cancellation is re-raised.
local function watch_all(tasks, fail_fast)
  local w <close> = watch(tasks)
  for _ = 1, #tasks do
    local ok, t = pcall(w.next, w)
    if not ok then abandon(tasks, t) end
    if fail_fast and task_state(t) ~= "ok" then return t end
  end
end

--- Runs functions (and awaits tasks) concurrently; returns each one's first
--- result in input order. The first error cancels the others, waits for
--- them, and is raised.
function M.gather(...)
  local tasks, array = collect("gather", ...)
  local n = #tasks
  local failed = watch_all(tasks, true)
  if failed then abandon(tasks, failed:error()) end
  local results = {n = n}
  for i = 1, n do results[i] = first_value(tasks[i]) end
  if array then return results end
  return table.unpack(results, 1, n)
end

--- Waits for all; returns for each a record {ok = true, value = v} or
--- {ok = false, error = e}. Never raises for a child's error.
function M.settle(...)
  local tasks, array = collect("settle", ...)
  local n = #tasks
  watch_all(tasks, false)
  local records = {n = n}
  for i = 1, n do
    local t = tasks[i]
    if task_state(t) == "ok" then
      records[i] = {ok = true, value = first_value(t)}
    else
      records[i] = {ok = false, error = t:error()}
    end
  end
  if array then return records end
  return table.unpack(records, 1, n)
end

local RETURN_WHEN = {all = true, first = true, first_error = true}

local function task_array(tasks, fname)
  if type(tasks) ~= "table" or is_task(tasks) then
    argerror(1, fname, "array of tasks expected, got " .. typename(tasks))
  end
  return (collect(fname, tasks))
end

--- Waits for tasks without cancelling any. opts.return_when: "all"
--- (default), "first" or "first_error"; opts.timeout. Returns the tasks
--- done (in completion order) and those still pending (in input order).
function M.wait(tasks, opts)
  tasks = task_array(tasks, "wait")
  opts = args.opts(opts, 2, "wait")
  local timeout = opts.timeout
  if timeout ~= nil then timeout = args.duration(timeout, 2, "wait", "timeout") end
  local when = opts.return_when or "all"
  if not RETURN_WHEN[when] then
    argerror(2, "wait", "return_when must be \"all\", \"first\" or \"first_error\", got "
      .. tostring(when))
  end
  local deadline = timeout and now() + timeout
  local done, is_done = {}, {}
  local w <close> = watch(tasks)
  while #done < #tasks do
    local t = w:next(deadline and math.max(0, deadline - now()))
    if t == nil then break end
    done[#done + 1] = t
    is_done[t] = true
    if when == "first" then break end
    if when == "first_error" and task_state(t) == "failed" then break end
  end
  local pending = {}
  for i = 1, #tasks do
    if not is_done[tasks[i]] then pending[#pending + 1] = tasks[i] end
  end
  return done, pending
end

--- Iterates over tasks in completion order:
--- `for t in aio.as_completed(list) do local v = t:await() end`.
--- Raises `timeout` when `timeout` seconds pass first.
function M.as_completed(tasks, timeout)
  tasks = task_array(tasks, "as_completed")
  if timeout ~= nil then timeout = args.duration(timeout, 2, "as_completed") end
  local deadline = timeout and now() + timeout
  local w = watch(tasks)
  local function iter()
    local t, why = w:next(deadline and math.max(0, deadline - now()))
    if t == nil then
      w:close()
      if why == "timeout" then
        error(core.Error("timeout", ("aio.as_completed timed out after %g s"):format(timeout),
                         {seconds = timeout}), 2)
      end
    end
    return t
  end
  -- the watch is the loop's to-be-closed value: break and errors close it
  return iter, nil, nil, w
end

--- Returns the value and index of the first function/task to succeed and
--- cancels (and waits for) the rest; if all fail, raises the first error.
function M.first(...)
  local tasks = collect("first", ...)
  local w <close> = watch(tasks)
  local first_failed
  while true do
    local ok, t, i = pcall(w.next, w)
    if not ok then abandon(tasks, t) end
    if t == nil then break end
    if task_state(t) == "ok" then
      cancel_all(tasks)
      wait_all(tasks)
      for _, other in ipairs(tasks) do
        if other ~= t and task_state(other) == "failed" then other:error() end
      end
      return first_value(t), i
    end
    local e = t:error()
    first_failed = first_failed or e
  end
  if #tasks == 0 then
    args.usage("aio.first needs at least one function or task")
  end
  error(first_failed, 0)
end

--- aio.timeout(seconds, fn, ...) runs fn(...) in the current task with a
--- deadline (see the core); aio.timeout(seconds, task) awaits the task and,
--- at the deadline, cancels it, waits for it to finish and raises `timeout`.
function M.timeout(seconds, f, ...)
  if type(seconds) ~= "number" or seconds ~= seconds then
    args.duration(seconds, 1, "timeout")           -- raises, at the caller
  end
  if not is_task(f) then
    if not callable(f) then
      argerror(2, "timeout", "function or task expected, got " .. typename(f))
    end
    return core.timeout(seconds, f, ...)
  end
  local task = f
  local r = table.pack(pcall(core.timeout, seconds, task.await, task))
  if r[1] then return table.unpack(r, 2, r.n) end
  if not task:done() then
    task:cancel()
    wait_all({task})
  end
  error(r[2], 0)
end

--- aio.shield(fn, ...) runs fn(...) protected from cancellation (see the
--- core); aio.shield(task) awaits the task: cancelling the caller raises in
--- the caller at once but does not cancel the task.
function M.shield(f, ...)
  if not is_task(f) then
    if not callable(f) then
      argerror(1, "shield", "function or task expected, got " .. typename(f))
    end
    return core.shield(f, ...)
  end
  local w <close> = watch({f})
  w:next()
  return f:result()
end

return M
