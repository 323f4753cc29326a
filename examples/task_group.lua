--[[
task_group.lua: fan-out / fan-in with aio.TaskGroup. Leaving the group's
scope waits for every child; when one child fails, its siblings are
cancelled and its error comes out of the scope.

Usage: lua5.4 examples/task_group.lua [CHILDREN] [FAILING]
  CHILDREN  children to spawn (default 5)
  FAILING   index of the child that fails in the second run (default 3)
]]
local aio = require "aio"

local n = tonumber(arg[1]) or 5
local failing = tonumber(arg[2]) or 3

local function square(i)
  aio.sleep(0.01 * i)
  return i * i
end

aio.run(function()
  -- fan-out, fan-in
  local tasks = {}
  do
    local group <close> = aio.TaskGroup()
    for i = 1, n do tasks[i] = group:spawn(square, i) end
  end                                   -- waits for all children here
  local results = {}
  for i, t in ipairs(tasks) do results[i] = t:result() end
  print("squares: " .. table.concat(results, " "))

  -- the first error cancels the siblings
  local cancelled = 0
  local ok, err = pcall(function()
    local group <close> = aio.TaskGroup()
    for i = 1, n do
      group:spawn(function()
        if i == failing then
          aio.sleep(0.02)
          error(("child %d failed"):format(i), 0)
        end
        local slept = pcall(aio.sleep, 1)
        if not slept then cancelled = cancelled + 1 end
      end)
    end
  end)
  print(("group raised: %s; %d siblings were cancelled"):format(tostring(err), cancelled))
  assert(not ok)
end)
