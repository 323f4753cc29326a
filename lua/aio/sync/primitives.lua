--- aio.sync.primitives: Semaphore, BoundedSemaphore and Lock (from the C
-- core), Event and Condition (here, over the core's WaitList). All
-- FIFO-fair and cancellation-safe.
-- See LICENSE

local core = require "aio.core"

local M = {}

---@class aio.Semaphore
---@field acquire fun(self: aio.Semaphore): aio.Semaphore  suspends; the result releases once when closed (<close>)
---@field try_acquire fun(self: aio.Semaphore): aio.Semaphore|nil
---@field release fun(self: aio.Semaphore)
---@field available fun(self: aio.Semaphore): integer

--- A counting semaphore with `n` permits (default 1).
---@param n? integer
---@return aio.Semaphore
M.Semaphore = core.Semaphore

--- A semaphore whose release above `n` raises `usage`.
---@param n? integer
---@return aio.Semaphore
M.BoundedSemaphore = core.BoundedSemaphore

---@class aio.Lock
---@field acquire fun(self: aio.Lock): aio.Lock  suspends; the result releases when closed (<close>)
---@field try_acquire fun(self: aio.Lock): aio.Lock|nil
---@field release fun(self: aio.Lock)  raises `usage` if not locked
---@field locked fun(self: aio.Lock): boolean

--- A mutual-exclusion lock.
---@return aio.Lock
M.Lock = core.Lock

local WaitList = core.WaitList
local LockMT = getmetatable(core.Lock())

local function usage(msg, level)
  error(core.Error("usage", msg), level + 1)
end

---------------------------------------------------------------------------
-- Event
---------------------------------------------------------------------------

---@class aio.Event
local Event = {}
Event.__index = Event
Event.__name = "aio.Event"

local function check_event(self, fname)
  if getmetatable(self) ~= Event then
    error(("bad argument #1 to '%s' (aio.Event expected, got %s)"):format(fname, type(self)), 3)
  end
end

--- A flag tasks can wait for: set() wakes every waiter.
---@return aio.Event
function M.Event()
  return setmetatable({flag = false, waiters = WaitList()}, Event)
end

--- Sets the flag and wakes every waiting task.
function Event:set()
  check_event(self, "set")
  if not self.flag then
    self.flag = true
    self.waiters:notify_all()
  end
end

--- Clears the flag.
function Event:clear()
  check_event(self, "clear")
  self.flag = false
end

---@return boolean
function Event:is_set()
  check_event(self, "is_set")
  return self.flag
end

--- Suspends until the flag is set (returns at once if it is); returns true.
---@return true
function Event:wait()
  check_event(self, "wait")
  if not self.flag then self.waiters:wait(false) end
  return true
end

function Event:__tostring()
  return ("aio.Event(%s)"):format(self.flag and "set" or "clear")
end

---------------------------------------------------------------------------
-- Condition
---------------------------------------------------------------------------

---@class aio.Condition
local Condition = {}
Condition.__index = Condition
Condition.__name = "aio.Condition"

local function check_cond(self, fname)
  if getmetatable(self) ~= Condition then
    error(("bad argument #1 to '%s' (aio.Condition expected, got %s)"):format(fname, type(self)), 3)
  end
end

--- A condition variable over `lock` (a new Lock by default).
---@param lock? aio.Lock
---@return aio.Condition
function M.Condition(lock)
  if lock == nil then
    lock = core.Lock()
  elseif getmetatable(lock) ~= LockMT then
    error("bad argument #1 to 'Condition' (aio.Lock expected, got " .. type(lock) .. ")", 2)
  end
  return setmetatable({lock = lock, waiters = WaitList()}, Condition)
end

--- Acquires the underlying lock (suspends); returns a guard for <close>.
function Condition:acquire()
  check_cond(self, "acquire")
  return self.lock:acquire()
end

function Condition:try_acquire()
  check_cond(self, "try_acquire")
  return self.lock:try_acquire()
end

function Condition:release()
  check_cond(self, "release")
  return self.lock:release()
end

---@return boolean
function Condition:locked()
  check_cond(self, "locked")
  return self.lock:locked()
end

--- Releases the lock, waits to be notified, re-acquires the lock before it
--- returns (also when it raises: a cancelled waiter still holds the lock
--- afterwards, so its <close> guard releases it once). Returns true.
---@return true
function Condition:wait()
  check_cond(self, "wait")
  if not self.lock:locked() then
    usage("Condition:wait() needs the lock to be held", 2)
  end
  self.lock:release()
  local ok, err = pcall(self.waiters.wait, self.waiters, true)
  core.shield(self.lock.acquire, self.lock)
  if not ok then error(err, 0) end
  return true
end

--- Waits until `pred()` returns a true value, and returns that value.
---@param pred fun(): any
function Condition:wait_for(pred)
  check_cond(self, "wait_for")
  if type(pred) ~= "function" then
    error("bad argument #1 to 'wait_for' (function expected, got " .. type(pred) .. ")", 2)
  end
  local r = pred()
  while not r do
    self:wait()
    r = pred()
  end
  return r
end

--- Wakes up to `n` (1) waiting tasks; the lock must be held.
---@param n? integer
function Condition:notify(n)
  check_cond(self, "notify")
  if n ~= nil and math.type(n) ~= "integer" then
    error("bad argument #1 to 'notify' (integer expected, got " .. type(n) .. ")", 2)
  end
  if not self.lock:locked() then
    usage("Condition:notify() needs the lock to be held", 2)
  end
  self.waiters:notify(n or 1)
end

--- Wakes every waiting task; the lock must be held.
function Condition:notify_all()
  check_cond(self, "notify_all")
  if not self.lock:locked() then
    usage("Condition:notify_all() needs the lock to be held", 2)
  end
  self.waiters:notify_all()
end

Condition.__close = function(self) self.lock:release() end

function Condition:__tostring()
  return ("aio.Condition(%s, %d waiting)"):format(self.lock:locked() and "locked" or "unlocked",
                                                  self.waiters:waiting())
end

return M
