--- aio.to_thread: runs a Lua function on libuv's thread pool, in a Lua
-- state of its own, while the loop goes on. See LICENSE

local core = require "aio.core"

local cthread = core.thread

local M = {}

--- Runs `fn(...)` on a worker thread and returns its results (suspends).
--- `fn` runs in a separate Lua state (reused from a small pool): it sees
--- that state's globals and standard libraries, and may have no upvalue
--- other than _ENV (`usage` otherwise). Arguments and results are copied:
--- nil, booleans, numbers, strings and tables of those (no cycles, no
--- metatables); other values raise `usage`. An error in `fn` raises
--- `thread` with `message`, `traceback` and `value` (when it can be
--- copied). Cancelling the caller drops a call that has not started yet;
--- a running one finishes on its thread and its results are discarded.
--- At most `limit()` calls run at once (default: the libuv pool size
--- minus one, so files and DNS always find a thread); others wait in
--- order.
---@param fn function
---@return any ...
M.to_thread = cthread.to_thread

--- The most calls that run at once; with `n`, sets it first.
---@param n? integer
---@return integer
M.limit = cthread.limit

--- The size of libuv's thread pool (UV_THREADPOOL_SIZE, default 4).
M.pool_size = cthread.pool_size

return M
