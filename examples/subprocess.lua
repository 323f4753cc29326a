--[[ subprocess.lua: run programs, feed their input, collect their output;
a timeout kills the child and reaps it. Usage: lua5.4 examples/subprocess.lua ]]

local aio = require "aio"

aio.run(function()
  local r = aio.process.run({ "sort" }, { input = "pear\napple\nfig\n" })
  io.write("sorted (exit ", r.code, "):\n", r.stdout)

  local ok, err = pcall(aio.process.run, { "sleep", "10" }, { timeout = 0.2 })
  print(ok, err)                      --> false  timeout: process 'sleep' ...
end)
