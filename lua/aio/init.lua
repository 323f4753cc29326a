--- aio: asyncio + aiohttp for Lua 5.4, on one libuv loop driven from C.
-- This is the façade: the core functions come straight from the C module
-- (aio.core); everything else is loaded on first use from lua/aio/*.lua.
-- See LICENSE

local core = require "aio.core"

---@class aio
local aio = {
  _VERSION = "aio scm",
}

--- Runs `fn(...)` as the main task on a new loop and returns its results.
-- When it finishes, every task still alive is cancelled and unwinds, every
-- handle is closed, and errors nobody retrieved are reported on stderr.
-- Re-raises the main task's error; raises `interrupted` after SIGINT.
---@generic R
---@param fn fun(...): R
---@return R ...
aio.run = core.run

--- Schedules `fn(...)` to start as a new task on a later turn of the loop.
---@param fn function
---@return aio.Task
aio.spawn = core.spawn

--- The running task, or nil outside tasks.
---@return aio.Task|nil
aio.current = core.current

--- The tasks that are not done.
---@return aio.Task[]
aio.tasks = core.tasks

--- Suspends the running task for `seconds`; `sleep(0)` lets every other
--- ready task run once.
---@param seconds number
aio.sleep = core.sleep

--- Monotonic time in seconds.
---@return number
aio.now = core.now

--- The error metatable: errors raised by aio are tables {kind=, message=}
--- with this metatable. `aio.Error(kind, message, fields)` makes one.
aio.Error = core.Error

--- Is `e` an aio error (of `kind`, if given)?
---@param e any
---@param kind? string
---@return boolean
aio.is_error = core.is_error

--- Turns debug mode on or off: warnings for tasks that block the loop for
--- more than `slow` seconds (0.1), spawn sites recorded for reports.
---@param on boolean
---@param slow? number
function aio.set_debug(on, slow)
  if slow ~= nil and type(slow) ~= "number" then
    error("bad argument #2 to 'set_debug' (number expected, got " .. type(slow) .. ")", 2)
  end
  core.set_debug(on, slow)
end

-- No colouring, also through nested coroutines: coroutine.resume/wrap pass
-- a suspension inside a generator on to the task (see src/coro.c).
coroutine.resume = core.resume
coroutine.wrap = core.wrap
coroutine.yield = core.yield

-- Names provided by modules loaded on first use: name -> module.
local lazy = {
  timeout = "aio.compose", shield = "aio.compose",
  gather = "aio.compose", settle = "aio.compose", wait = "aio.compose",
  as_completed = "aio.compose", first = "aio.compose",
  TaskGroup = "aio.taskgroup", retry = "aio.retry",
  Semaphore = "aio.sync", BoundedSemaphore = "aio.sync", Lock = "aio.sync",
  Event = "aio.sync", Condition = "aio.sync",
  Queue = "aio.queue", PriorityQueue = "aio.queue", LifoQueue = "aio.queue",
  RateLimiter = "aio.ratelimit",
  http = "aio.http", fs = "aio.fs", tcp = "aio.tcp", dns = "aio.dns",
  process = "aio.process", to_thread = "aio.thread", signal = "aio.signal",
}

setmetatable(aio, {
  __index = function(t, name)
    local modname = lazy[name]
    if modname == nil then return nil end
    local mod = require(modname)
    -- a module either exports the name (aio.retry.retry) or is the value
    -- itself (aio.http)
    local value = mod
    if type(mod) == "table" and mod[name] ~= nil then value = mod[name] end
    rawset(t, name, value)
    return value
  end,
})

return aio
