-- Regression: debug mode reported a task that blocked the loop only if it
-- then suspended; one that returned or raised without suspending again
-- had lost its anchor by the time the report was due, and was never
-- reported. Every step over the threshold is reported, whatever ends it.
local H = require "helper"

describe("debug mode", function()
  it("reports a task that blocks the loop and then returns or raises", function()
    local out = H.lua_child([[
      local aio = require "aio"
      aio.set_debug(true)
      local function block() local t0 = os.clock() while os.clock() - t0 < 0.15 do end end
      aio.run(function()
        local a = aio.spawn(function() block() return 1 end)
        a.name = "returner"
        local b = aio.spawn(function() block() error("boom") end)
        b.name = "raiser"
        a:await()
        pcall(b.await, b)
      end)
    ]])
    assert.matches("task 'returner' ran %d+%.%d+ s without suspending %(it blocked the loop%); then it returned", out)
    assert.matches("task 'raiser' ran %d+%.%d+ s without suspending %(it blocked the loop%); then it failed: [^\n]*boom", out)
    assert.matches("spawned at [^\n]*:5", out)
  end)
end)
