-- Regression: the third SIGINT during aio.run handed the signal to the
-- disposition saved when the run started. Under the lua5.4 interpreter
-- that is its own handler, which only sets a hook on the main thread: a
-- task blocking the loop in its coroutine never ran it, so the process
-- could not be stopped with Ctrl-C at all. The third SIGINT ends it now.
local H = require "helper"

describe("SIGINT", function()
  local gap = H.SLOW and 1.5 or 0.3

  it("ends the process at the third, under lua5.4's own handler", function()
    local out = H.lua_child_sigint([[
      local aio = require "aio"
      io.stdout:setvbuf("no")
      aio.run(function()
        print("started")
        -- swallows the second SIGINT's `interrupted` and blocks on
        while true do pcall(function() while true do end end) end
      end)
    ]], 3, gap)
    assert.matches("started", out)
    assert.not_matches("alive", out)
    assert.matches("status=130", out)     -- killed by SIGINT (128 + 2)
  end)

  it("makes aio.run raise interrupted as an aio.Error after one", function()
    local out = H.lua_child_sigint([[
      local aio = require "aio"
      io.stdout:setvbuf("no")
      local ok, err = pcall(aio.run, function()
        print("started")
        aio.sleep(30)
      end)
      print("run:", ok, aio.is_error(err, "interrupted"), tostring(err))
    ]], 1, gap)
    assert.matches("run:%s+false%s+true%s+interrupted: interrupted by SIGINT", out)
    assert.matches("status=0", out)
  end)
end)
