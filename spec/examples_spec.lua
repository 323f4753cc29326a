-- Runs every example (with small sizes) and checks what it prints, so the
-- examples never rot.
local H = require "helper"

local function run(script, args)
  local p = io.popen(H.lua_env() .. " lua5.4 examples/" .. script .. " " .. (args or "") .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  assert(ok, ("examples/%s exited with %s:\n%s"):format(script, tostring(code), out))
  return out
end

describe("examples", function()
  it("concurrent_sleep.lua shows gather taking one wait, not three", function()
    local out = run("concurrent_sleep.lua", "0.1")
    local seq = tonumber(out:match("sequential: ([%d.]+) s"))
    local gat = tonumber(out:match("gather:%s+([%d.]+) s"))
    assert.is_true(seq >= 0.3, out)
    assert.is_true(gat >= 0.1 and gat < seq, out)
    assert.matches("a done, b done, c done", out)
  end)

  it("producer_consumer.lua handles every item once", function()
    local out = run("producer_consumer.lua", "12 3 2")
    assert.matches("12 items handled by 3 consumers", out)
    for i = 1, 12 do assert.matches("handled item%-" .. i .. "\n", out) end
  end)

  it("worker_pool.lua finishes every job", function()
    local out = run("worker_pool.lua", "8 2")
    assert.matches("8 jobs in [%d.]+ s with 2 workers", out)
  end)

  it("timeouts_and_cancel.lua shows timeout, clean-up and shield", function()
    local out = run("timeouts_and_cancel.lua", "0.05")
    assert.matches("1%. timeout:%s+false%s+timeout: timed out after 0.05 s", out)
    assert.matches("2%. resource closed", out)
    assert.matches("cancelled: task cancelled: no longer needed", out)
    assert.matches("3%. state saved despite the cancellation", out)
    assert.matches("4%. gather under a 0.05 s deadline: timeout", out)
  end)

  it("task_group.lua fans out and cancels siblings on failure", function()
    local out = run("task_group.lua", "4 2")
    assert.matches("squares: 1 4 9 16", out)
    assert.matches("group raised: child 2 failed; 3 siblings were cancelled", out)
  end)

  it("debug_mode.lua warns about the task that blocks the loop", function()
    local out = run("debug_mode.lua", "0.15")
    assert.matches("task 'cpu%-hog' ran 0%.%d+ s without suspending", out)
    assert.matches("spawned at examples/debug_mode.lua", out)
  end)
end)
