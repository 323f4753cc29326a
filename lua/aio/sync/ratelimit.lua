--- aio.RateLimiter: a token bucket. `rate` tokens are added every `per`
-- seconds up to `burst` (default: rate); acquire(n) takes n tokens, waiting
-- (FIFO: a large request is not overtaken by later small ones) until the
-- bucket holds them.
-- See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local now, sleep = core.now, core.sleep
local check = args.self

---@class aio.RateLimiter
local RateLimiter = {}
RateLimiter.__index = RateLimiter
RateLimiter.__name = "aio.RateLimiter"

-- Argument `n` of `fname`, called `name`: a positive finite number.
local function positive(v, n, fname, name)
  v = args.number(v, n, fname)
  if v <= 0 or v == math.huge then
    args.error(n, fname, name .. " must be a positive finite number")
  end
  return v
end

-- The number of tokens asked for: 1 by default, at most the burst size.
local function tokens(self, n, fname)
  if n == nil then return 1 end
  positive(n, 1, fname, "n")
  if n > self.burst then
    args.usage(("%s(%g): more tokens than the burst size %g can ever hold")
      :format(fname, n, self.burst))
  end
  return n
end

--- A limiter allowing `rate` acquisitions per `per` seconds, with bursts of
--- up to `burst` (default `rate`).
---@param rate number
---@param per number
---@param burst? number
---@return aio.RateLimiter
local function new(rate, per, burst)
  positive(rate, 1, "RateLimiter", "rate")
  positive(per, 2, "RateLimiter", "per")
  if burst ~= nil then positive(burst, 3, "RateLimiter", "burst") end
  burst = burst or rate
  return setmetatable({
    rate = rate, per = per, burst = burst,
    tokens = burst, stamp = now(),
    turn = core.Lock(),   -- FIFO order among waiting acquirers
  }, RateLimiter)
end

local function refill(self)
  local t = now()
  local tokens = self.tokens + (t - self.stamp) * self.rate / self.per
  self.tokens = tokens < self.burst and tokens or self.burst
  self.stamp = t
end

--- Takes `n` (1) tokens, waiting until the bucket holds them. Cancelled
--- while waiting, it takes nothing.
---@param n? number
function RateLimiter:acquire(n)
  check(self, RateLimiter, "acquire")
  n = tokens(self, n, "acquire")
  local turn <close> = self.turn:acquire()
  refill(self)
  while self.tokens < n do
    sleep((n - self.tokens) * self.per / self.rate)
    refill(self)
  end
  self.tokens = self.tokens - n
end

--- Takes `n` (1) tokens if the bucket holds them and nobody waits.
---@param n? number
---@return boolean
function RateLimiter:try_acquire(n)
  check(self, RateLimiter, "try_acquire")
  n = tokens(self, n, "try_acquire")
  if self.turn:locked() then return false end
  refill(self)
  if self.tokens < n then return false end
  self.tokens = self.tokens - n
  return true
end

--- Tokens in the bucket now.
---@return number
function RateLimiter:available()
  check(self, RateLimiter, "available")
  refill(self)
  return self.tokens
end

function RateLimiter:__tostring()
  check(self, RateLimiter, "__tostring")
  return ("aio.RateLimiter(%g per %g s, burst %g)"):format(self.rate, self.per, self.burst)
end

return { RateLimiter = new }
