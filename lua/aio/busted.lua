--- aio.busted: busted helpers for async code. Each test body runs as the
-- main task of its own aio.testing.run, with a virtual clock unless asked
-- otherwise, and the test fails if the body raises, leaves tasks running,
-- or lets a task fail without anyone retrieving its error.
--
--   local async = require "aio.busted"
--   it("backs off", async(function() ... end))
--   it("talks to the server", async(function() ... end, {clock = "real"}))
--   async.it("times out", function() ... end, {autojump = 0.01})
--   local real = async.with{clock = "real", timeout = 10}
--
-- Options are those of aio.testing.run: clock ("virtual" by default, or
-- "real"), autojump, timeout (real seconds the test may take). See LICENSE

local testing = require "aio.core.testing"
local args = require "aio.core.args"

local pairs = pairs

-- `defaults` overlaid with `opts` (argument `n` of `fname`), checked, and
-- strict.
local function merge(defaults, opts, n, fname)
  opts = args.opts(opts, n, fname)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for k, v in pairs(opts) do o[k] = v end
  o.strict = true
  testing._options(o, n, fname)
  return o
end

-- A helper (callable table) whose options default to `defaults`.
local function helper(defaults)
  local H = {}

  --- Runs `fn()` as the main task of a strict aio.testing.run now and
  --- returns its results.
  ---@param fn function
  ---@param opts? table
  function H.run(fn, opts)
    args.callable(fn, 1, "run")
    return testing.run(fn, merge(defaults, opts, 2, "run"))
  end

  --- A test body for busted's it/before_each/after_each/setup/teardown:
  --- calling it runs `fn()` as the main task of a strict aio.testing.run.
  ---@param fn function
  ---@param opts? table
  ---@return fun()
  local function wrap(fn, opts)
    args.callable(fn, 1, "busted")
    local o = merge(defaults, opts, 2, "busted")
    return function() return testing.run(fn, o) end
  end

  --- Registers a busted test whose body runs as a task:
  --- `async.it("does x", function() ... end, opts)`.
  ---@param name string
  ---@param fn function
  ---@param opts? table
  function H.it(name, fn, opts)
    args.check(name, "string", 1, "it")
    args.callable(fn, 2, "it")
    local o = merge(defaults, opts, 3, "it")
    return require("busted").it(name, function() return testing.run(fn, o) end)
  end

  --- A helper like this one whose options default to `opts` (over the
  --- current defaults): `local real = async.with{clock = "real"}`.
  ---@param opts table
  function H.with(opts)
    args.check(opts, "table", 1, "with")
    return helper(merge(defaults, opts, 1, "with"))
  end

  return setmetatable(H, {
    __call = function(_, fn, opts) return wrap(fn, opts) end,
  })
end

return helper({})
