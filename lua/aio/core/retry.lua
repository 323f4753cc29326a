--- aio.retry: calls a function until it returns without error, sleeping
-- with exponential backoff (and jitter) between attempts. The one retry
-- loop: the HTTP client's `retries` runs on it too. See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local is_error, sleep = core.is_error, core.sleep
local pack, unpack, random = table.pack, table.unpack, math.random

local M = {}

local function always() return true end

--- The loop, for options already checked: calls `fn()` up to `o.attempts`
--- times until it returns; between attempts sleeps `o.delay` (capped at
--- `o.max_delay`, scaled by a random factor in [0.5, 1) when `o.jitter`),
--- the delay growing by `o.factor` each time. An error that is
--- `cancelled` or `usage`, or that `o.retry_on(err)` refuses, or the last
--- attempt's error, is raised.
---@param fn function
---@param o {attempts: integer, delay: number, factor: number, max_delay: number, jitter: boolean, retry_on: fun(err: any): boolean}
function M.loop(fn, o)
  local attempts, delay, retry_on = o.attempts, o.delay, o.retry_on
  for attempt = 1, attempts do
    local r = pack(pcall(fn))
    if r[1] then return unpack(r, 2, r.n) end
    local err = r[2]
    if attempt == attempts or is_error(err, "cancelled") or is_error(err, "usage")
       or not retry_on(err) then
      error(err, 0)
    end
    local d = delay < o.max_delay and delay or o.max_delay
    if o.jitter then d = d * (0.5 + 0.5 * random()) end
    sleep(d)
    delay = delay * o.factor
  end
end

-- Option `key` of aio.retry: a number >= min, or `dflt` when absent.
local function at_least(opts, key, dflt, min)
  local v = opts[key]
  if v == nil then return dflt end
  v = args.number(v, 2, "retry", "opts." .. key)
  if v < min then args.error(2, "retry", ("opts.%s must be at least %g"):format(key, min)) end
  return v
end

--- Calls `fn()` until it returns without error; returns its results.
--- opts.attempts (3), opts.delay (first backoff, 0.5 s), opts.factor (2),
--- opts.max_delay (30 s), opts.jitter (true: each delay is scaled by a
--- random factor in [0.5, 1)), opts.retry_on(err) -> boolean (default:
--- anything). `cancelled` and `usage` errors are never retried. Raises the
--- last error.
---@param fn function
---@param opts? {attempts?: integer, delay?: number, factor?: number, max_delay?: number, jitter?: boolean, retry_on?: fun(err: any): boolean}
function M.retry(fn, opts)
  args.callable(fn, 1, "retry")
  opts = args.opts(opts, 2, "retry")
  local retry_on = opts.retry_on
  if retry_on == nil then retry_on = always end
  return M.loop(fn, {
    attempts = args.count(opts.attempts, 2, "retry", "opts.attempts", 1) or 3,
    delay = at_least(opts, "delay", 0.5, 0),
    factor = at_least(opts, "factor", 2, 1),
    max_delay = at_least(opts, "max_delay", 30, 0),
    jitter = opts.jitter ~= false,
    retry_on = args.callable(retry_on, 2, "retry", "opts.retry_on"),
  })
end

return M
