--- aio: asyncio + aiohttp for Lua 5.4, on one libuv loop driven from C.
-- This is the façade: the core functions come straight from the C module
-- (aio.core); every other public name is loaded on first use from the
-- layer folders lua/aio/{core,sync,io,http,db}/ through the table `lazy`
-- below, the one index of the public Lua API: a new module adds its
-- public names there (and its file to the rockspec). See LICENSE

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
  if slow ~= nil then require("aio.core.args").check(slow, "number", 2, "set_debug") end
  core.set_debug(on, slow)
end

-- No colouring, also through nested coroutines: coroutine.resume/wrap pass
-- a suspension inside a generator on to the task (see src/core/coro.c).
coroutine.resume = core.resume
coroutine.wrap = core.wrap
coroutine.yield = core.yield

-- The public names provided by Lua modules, loaded on first use: name ->
-- module. Users only ever see aio.<name>; the module paths follow the
-- layers (core, sync, io, http, db). A new module adds its line here.
local lazy = {
  -- core: composition, structured concurrency, retries, testing
  timeout = "aio.core.compose", shield = "aio.core.compose",
  gather = "aio.core.compose", settle = "aio.core.compose",
  wait = "aio.core.compose", as_completed = "aio.core.compose",
  first = "aio.core.compose",
  TaskGroup = "aio.core.taskgroup", retry = "aio.core.retry",
  testing = "aio.core.testing",
  -- sync: primitives, queues, rate limiting
  Semaphore = "aio.sync.primitives", BoundedSemaphore = "aio.sync.primitives",
  Lock = "aio.sync.primitives", Event = "aio.sync.primitives",
  Condition = "aio.sync.primitives",
  Queue = "aio.sync.queue", PriorityQueue = "aio.sync.queue",
  LifoQueue = "aio.sync.queue",
  RateLimiter = "aio.sync.ratelimit",
  -- io: files, sockets, names, threads, processes, signals
  fs = "aio.io.fs", tcp = "aio.io.tcp", dns = "aio.io.dns",
  process = "aio.io.process", to_thread = "aio.io.thread",
  signal = "aio.io.signal", workers = "aio.io.workers",
  -- http: the client, server and WebSocket (aio.http loads each on use)
  http = "aio.http",
  -- db: database clients
  redis = "aio.db.redis",
  pg = "aio.db.pg",
}

setmetatable(aio, {
  __index = function(t, name)
    local modname = lazy[name]
    if modname == nil then return nil end
    local mod = core.load(modname)   -- require, or `io` with EMFILE...
    -- a module either exports the name (aio.core.retry's retry) or is
    -- the value itself (aio.http.client is aio.http)
    local value = mod
    if type(mod) == "table" and mod[name] ~= nil then value = mod[name] end
    rawset(t, name, value)
    return value
  end,
})

return aio
