--- aio.retry: calls a function until it returns without error, sleeping
-- with exponential backoff (and jitter) between attempts.
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local is_error = core.is_error

-- Option `key` of aio.retry: a number >= min, or `dflt` when absent.
local function at_least(opts, key, dflt, min)
  local v = opts[key]
  if v == nil then return dflt end
  v = args.number(v, 2, "retry", "opts." .. key)
  if v < min then args.error(2, "retry", ("opts.%s must be at least %g"):format(key, min)) end
  return v
end

local function default_retry_on() return true end

--- Calls `fn()` until it returns without error; returns its results.
--- opts.attempts (3), opts.delay (first backoff, 0.5 s), opts.factor (2),
--- opts.max_delay (30 s), opts.jitter (true: each delay is scaled by a
--- random factor in [0.5, 1)), opts.retry_on(err) -> boolean (default:
--- anything). `cancelled` and `usage` errors are never retried. Raises the
--- last error.
---@param fn function
---@param opts? {attempts?: integer, delay?: number, factor?: number, max_delay?: number, jitter?: boolean, retry_on?: fun(err: any): boolean}
local function retry(fn, opts)
  args.callable(fn, 1, "retry")
  opts = args.opts(opts, 2, "retry")
  local attempts = args.count(opts.attempts, 2, "retry", "opts.attempts", 1) or 3
  local delay = at_least(opts, "delay", 0.5, 0)
  local factor = at_least(opts, "factor", 2, 1)
  local max_delay = at_least(opts, "max_delay", 30, 0)
  local jitter = opts.jitter ~= false
  local retry_on = opts.retry_on
  if retry_on == nil then retry_on = default_retry_on end
  args.callable(retry_on, 2, "retry", "opts.retry_on")
  for attempt = 1, attempts do
    local r = table.pack(pcall(fn))
    if r[1] then return table.unpack(r, 2, r.n) end
    local err = r[2]
    if attempt == attempts or is_error(err, "cancelled") or is_error(err, "usage")
       or not retry_on(err) then
      error(err, 0)
    end
    local d = delay < max_delay and delay or max_delay
    if jitter then d = d * (0.5 + 0.5 * math.random()) end
    core.sleep(d)
    delay = delay * factor
  end
end

return { retry = retry }
