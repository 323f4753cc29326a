--- aio.sync.primitives: Semaphore, BoundedSemaphore and Lock (from the C
-- core), Event and Condition (here, over the core's WaitList). All
-- FIFO-fair and cancellation-safe.
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

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
local check, usage = args.self, args.usage

---------------------------------------------------------------------------
-- Event
---------------------------------------------------------------------------

---@class aio.Event
local Event = {}
Event.__index = Event
Event.__name = "aio.Event"

--- A flag tasks can wait for: set() wakes every waiter.
---@return aio.Event
function M.Event()
  return setmetatable({flag = false, waiters = WaitList()}, Event)
end

--- Sets the flag and wakes every waiting task.
function Event:set()
  check(self, Event, "set")
  if not self.flag then
    self.flag = true
    self.waiters:notify_all()
  end
end

--- Clears the flag.
function Event:clear()
  check(self, Event, "clear")
  self.flag = false
end

---@return boolean
function Event:is_set()
  check(self, Event, "is_set")
  return self.flag
end

--- Suspends until the flag is set (returns at once if it is); returns true.
---@return true
function Event:wait()
  check(self, Event, "wait")
  if not self.flag then self.waiters:wait(false) end
  return true
end

function Event:__tostring()
  check(self, Event, "__tostring")
  return ("aio.Event(%s)"):format(self.flag and "set" or "clear")
end

---------------------------------------------------------------------------
-- Condition
---------------------------------------------------------------------------

---@class aio.Condition
local Condition = {}
Condition.__index = Condition
Condition.__name = "aio.Condition"

--- A condition variable over `lock` (a new Lock by default).
---@param lock? aio.Lock
---@return aio.Condition
function M.Condition(lock)
  if lock == nil then
    lock = core.Lock()
  else
    args.object(lock, LockMT, 1, "Condition")
  end
  return setmetatable({lock = lock, waiters = WaitList()}, Condition)
end

-- Condition:<fname>() may only be called with the lock held.
local function need_lock(self, fname)
  if not self.lock:locked() then
    usage("Condition:" .. fname .. "() needs the lock to be held")
  end
end

-- acquire (suspends; returns a guard for <close>), try_acquire, release
-- and locked are the underlying lock's.
for _, name in ipairs({ "acquire", "try_acquire", "release", "locked" }) do
  Condition[name] = function(self)
    check(self, Condition, name)
    return self.lock[name](self.lock)
  end
end

--- Releases the lock, waits to be notified, re-acquires the lock before it
--- returns (also when it raises: a cancelled waiter still holds the lock
--- afterwards, so its <close> guard releases it once). Returns true.
---@return true
function Condition:wait()
  check(self, Condition, "wait")
  need_lock(self, "wait")
  self.lock:release()
  local ok, err = pcall(self.waiters.wait, self.waiters, true)
  core.shield(self.lock.acquire, self.lock)
  if not ok then error(err, 0) end
  return true
end

--- Waits until `pred()` returns a true value, and returns that value.
---@param pred fun(): any
function Condition:wait_for(pred)
  check(self, Condition, "wait_for")
  args.callable(pred, 1, "wait_for")
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
  check(self, Condition, "notify")
  n = args.count(n, 1, "notify") or 1
  need_lock(self, "notify")
  self.waiters:notify(n)
end

--- Wakes every waiting task; the lock must be held.
function Condition:notify_all()
  check(self, Condition, "notify_all")
  need_lock(self, "notify_all")
  self.waiters:notify_all()
end

--- `local c <close> = cond` releases the lock when c goes out of scope.
Condition.__close = Condition.release

function Condition:__tostring()
  check(self, Condition, "__tostring")
  return ("aio.Condition(%s, %d waiting)"):format(self.lock:locked() and "locked" or "unlocked",
                                                  self.waiters:waiting())
end

return M
