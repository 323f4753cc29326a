--- aio.testing: running async code under test. aio.testing.run is aio.run
-- with a virtual clock: aio.now() starts at 0, and whenever no task is
-- ready and none waits on I/O, time jumps to the next deadline, so an hour
-- of back-off passes in milliseconds and every run sees the same times.
-- The clock itself is the loop's (src/core/clock.c): every deadline
-- follows it. aio.testing.it is aio.busted's `it`. See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local pack, unpack, sort, concat = table.pack, table.unpack, table.sort, table.concat
local ipairs, tostring, fmt = ipairs, tostring, string.format

local M = {}

local KNOWN = { clock = true, autojump = true, timeout = true, strict = true }

--- Checks the options of aio.testing.run (argument `n` of `fname`).
--- Returns virtual (boolean), autojump and timeout (seconds; 0: none) and
--- strict (boolean).
---@param opts any
---@param n integer
---@param fname string
---@return boolean virtual, number autojump, number timeout, boolean strict
function M._options(opts, n, fname)
  opts = args.opts(opts, n, fname, KNOWN)
  local clock = opts.clock
  if clock ~= nil and clock ~= "virtual" and clock ~= "real" then
    args.error(n, fname, 'opts.clock must be "virtual" or "real"')
  end
  local virtual = clock ~= "real"
  local autojump, timeout = 0, 0
  if opts.autojump ~= nil then
    if not virtual then args.error(n, fname, 'opts.autojump needs clock = "virtual"') end
    autojump = args.duration(opts.autojump, n, fname, "opts.autojump")
  end
  if opts.timeout ~= nil then timeout = args.duration(opts.timeout, n, fname, "opts.timeout") end
  args.option(opts.strict, "boolean", n, fname, "opts.strict")
  return virtual, autojump, timeout, opts.strict == true
end

local function describe(list)
  local names = {}
  for i, t in ipairs(list) do names[i] = tostring(t) end
  return concat(names, ", ")
end

-- Strict mode: `fn` as the main task, failing if it leaves other tasks
-- running (they are cancelled, and unwind when the run ends).
local function strict_main(fn)
  return function()
    local r = pack(fn())
    local me, left = core.current(), {}
    for _, t in ipairs(core.tasks()) do
      if t ~= me then left[#left + 1] = t end
    end
    if #left > 0 then
      local e = core.Error("usage", fmt("the test left %d task(s) running: %s",
        #left, describe(left)))
      for _, t in ipairs(left) do t:cancel() end
      error(e, 0)
    end
    return unpack(r, 1, r.n)
  end
end

-- The error of a strict run whose tasks failed with errors nobody
-- retrieved (`list`, retrieved now): each one's name, error and traceback.
local function unretrieved(list)
  sort(list, function(a, b) return a.id < b.id end)
  local parts = {}
  for i, t in ipairs(list) do
    local tb = t:traceback()
    parts[i] = fmt("task '%s' failed and nobody retrieved its error: %s%s",
      t.name, tostring(t:error()), tb and "\n" .. tb or "")
  end
  local e = core.Error("usage", concat(parts, "\n"))
  e.tasks = list
  return e
end

--- Runs `fn()` as the main task of a new loop, as aio.run does, and
--- returns its results. opts.clock: "virtual" (the default) or "real".
--- With a virtual clock aio.now() starts at 0 and time jumps to the next
--- deadline whenever no task is ready and none waits on I/O, once that
--- has lasted opts.autojump real seconds (0); real I/O keeps real time.
--- opts.timeout: real seconds the run may take (none by default): then
--- the main task is cancelled and `timeout` is raised. opts.strict: raise
--- `usage` when fn returns with other tasks still running (they are
--- cancelled) or when a task failed and nobody retrieved its error.
---@param fn fun(): any
---@param opts? {clock?: "virtual"|"real", autojump?: number, timeout?: number, strict?: boolean}
---@return any ...
function M.run(fn, opts)
  args.callable(fn, 1, "run")
  local virtual, autojump, timeout, strict = M._options(opts, 2, "run")
  if not strict then return core.run_test(virtual, autojump, timeout, false, fn) end
  local r = pack(pcall(core.run_test, virtual, autojump, timeout, true, strict_main(fn)))
  if not r[1] then
    core.report_unretrieved()
    error(r[2], 0)
  end
  local list = core.unretrieved()
  if #list > 0 then error(unretrieved(list), 0) end
  return unpack(r, 2, r.n)
end

--- The real monotonic clock in seconds, which a virtual clock does not
--- change: how long a test really took.
---@return number
M.real_now = core.real_now

return setmetatable(M, {
  -- aio.testing.it: aio.busted's `it` (loads busted on first use)
  __index = function(t, k)
    if k == "it" then
      local it = require("aio.busted").it
      rawset(t, k, it)
      return it
    end
  end,
})
