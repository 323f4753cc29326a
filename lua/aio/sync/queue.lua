--- aio.sync.queue: Queue, LifoQueue and PriorityQueue, implemented in the C
-- core (src/sync/queue.c): FIFO-fair, cancellation-safe, closable.
-- See LICENSE

local core = require "aio.core"

---@class aio.Queue
---@field maxsize integer  0 when unbounded
---@field put fun(self: aio.Queue, v: any)  suspends while full; raises `closed` after close()
---@field get fun(self: aio.Queue): any  suspends while empty; nil once closed and drained
---@field put_nowait fun(self: aio.Queue, v: any)  raises `queue_full`
---@field get_nowait fun(self: aio.Queue): any  raises `queue_empty`
---@field size fun(self: aio.Queue): integer
---@field empty fun(self: aio.Queue): boolean
---@field full fun(self: aio.Queue): boolean
---@field task_done fun(self: aio.Queue)
---@field join fun(self: aio.Queue)  suspends until every value put is marked done
---@field close fun(self: aio.Queue)
---@field items fun(self: aio.Queue): (fun(): any), aio.Queue

return {
  --- A FIFO queue; `maxsize` 0 or nil: unbounded.
  ---@type fun(maxsize?: integer): aio.Queue
  Queue = core.Queue,
  --- A LIFO queue (last put, first got).
  ---@type fun(maxsize?: integer): aio.Queue
  LifoQueue = core.LifoQueue,
  --- Smallest first, by `less(a, b)` (default <); equal ones in put order.
  ---@type fun(maxsize?: integer, less?: fun(a: any, b: any): boolean): aio.Queue
  PriorityQueue = core.PriorityQueue,
}
