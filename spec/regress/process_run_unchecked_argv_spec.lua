-- Regression: require "aio.core"'s process.run took argv unchecked:
-- process.run({}, {}) aborted the interpreter in uv_spawn (an assertion),
-- and aio.process.run(t) with a __len of math.maxinteger looped for ever
-- building argv. Both layers check argv now: bounded, non-empty, strings.
local aio = require "aio"
local core = require "aio.core"
local H = require "helper"

describe("process.run's argv", function()
  it("is checked by the C core too", H.async(function()
    assert.has_error(function() core.process.run({}, {}) end)
    local ok, err = pcall(core.process.run, {}, {})
    assert.is_false(ok)
    assert.matches("argv is empty", tostring(err))
    assert.matches("must be a string", tostring(select(2, pcall(core.process.run, { "echo", {} }, {}))))
    H.raises("usage", core.process.run, { "echo", "a\0b" }, {})
    assert.matches("must be a string", tostring(select(2, pcall(core.process.run, { "sh" }, { env = { X = {} } }))))
    assert.matches("cwd must be a string", tostring(select(2, pcall(core.process.run, { "sh" }, { cwd = {} }))))
    assert.matches("NaN", tostring(select(2, pcall(core.process.run, { "sh" }, { timeout = 0 / 0 }))))
    local r = core.process.run({ "sh", "-c", "echo $X$Y", 7 }, { env = { X = 1, Y = "z" } })
    assert.are.equal("1z\n", r.stdout)
  end))

  it("is bounded when its length is not", H.async(function()
    local huge = setmetatable({}, {
      __len = function() return math.maxinteger end,
      __index = function() return "x" end,
    })
    local ok, err = pcall(aio.process.run, huge)
    assert.is_false(ok)
    assert.matches("too many", tostring(err))
  end))
end)
