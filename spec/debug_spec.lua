local H = require "helper"

describe("aio debug mode", function()
  it("warns about a task that blocks the loop, with where it was spawned", function()
    local out = H.lua_child([[
      local aio = require "aio"
      aio.set_debug(true)
      aio.run(function()
        local t = aio.spawn(function()
          local t0 = os.clock()
          while os.clock() - t0 < 0.15 do end
          aio.sleep(0)
        end)
        t.name = "hog"
        t:await()
      end)
    ]])
    assert.matches("task 'hog' ran %d+%.%d+ s without suspending", out)
    assert.matches("spawned at .*:4", out)
  end)

  it("is switched on by AIO_DEBUG=1", function()
    local blocker = [[
      local aio = require "aio"
      aio.run(function()
        local t0 = os.clock()
        while os.clock() - t0 < 0.15 do end
        aio.sleep(0)
      end)
    ]]
    assert.are.equal("", H.lua_child(blocker))
    assert.matches("without suspending", H.lua_child(blocker, "AIO_DEBUG=1"))
  end)

  it("does not warn about tasks that suspend often", function()
    local out = H.lua_child([[
      local aio = require "aio"
      aio.set_debug(true)
      aio.run(function()
        for _ = 1, 100 do aio.sleep(0.001) end
      end)
    ]])
    assert.are.equal("", out)
  end)
end)
