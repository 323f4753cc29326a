--- aio.retry: calls a function until it returns without error, sleeping
-- with exponential backoff (and jitter) between attempts.
-- See LICENSE

local core = require "aio.core"

local is_error = core.is_error

local function check_number(opts, key, dflt, min)
  local v = opts[key]
  if v == nil then return dflt end
  if type(v) ~= "number" or v ~= v or v < min then
    error(("bad argument #2 to 'retry' (opts.%s must be a number >= %g, got %s)")
      :format(key, min, tostring(v)), 4)
  end
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
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("bad argument #1 to 'retry' (function expected, got " .. type(fn) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'retry' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local attempts = opts.attempts or 3
  if math.type(attempts) ~= "integer" or attempts < 1 then
    error("bad argument #2 to 'retry' (opts.attempts must be an integer >= 1, got "
      .. tostring(attempts) .. ")", 2)
  end
  local delay = check_number(opts, "delay", 0.5, 0)
  local factor = check_number(opts, "factor", 2, 1)
  local max_delay = check_number(opts, "max_delay", 30, 0)
  local jitter = opts.jitter ~= false
  local retry_on = opts.retry_on or default_retry_on
  if type(retry_on) ~= "function" then
    error("bad argument #2 to 'retry' (opts.retry_on must be a function)", 2)
  end
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
