---@meta aio.busted

-- `require "aio.busted"`: busted helpers whose test bodies run as tasks,
-- each the main task of a strict aio.testing.run (a virtual clock unless
-- clock = "real"); a test fails if its body raises, leaves tasks running,
-- or lets a task fail with nobody retrieving the error.

---@class aio.busted
---@overload fun(fn: async fun(), opts?: aio.testing.Options): fun()
local busted = {}

---Registers a busted test whose body runs as a task.
---@param name string
---@param fn async fun()
---@param opts? aio.testing.Options
function busted.it(name, fn, opts) end

---Runs `fn()` as the main task of a strict aio.testing.run now and
---returns its results (for setup code outside `it`).
---@generic R
---@param fn fun(): R
---@param opts? aio.testing.Options
---@return R ...
function busted.run(fn, opts) end

---A helper like this one whose options default to `opts`:
---`local real = require("aio.busted").with{clock = "real"}`.
---@param opts aio.testing.Options
---@return aio.busted
function busted.with(opts) end

return busted
