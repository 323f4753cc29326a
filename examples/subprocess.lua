--[[
subprocess.lua: run programs without blocking the loop: feed their input,
collect their output and exit status; a timeout kills the child (and what
it started) and reaps it.

Usage: lua5.4 examples/subprocess.lua [TIMEOUT]
  TIMEOUT  seconds allowed to a `sleep 10` child (default 0.2)
]]

local aio = require "aio"

local timeout = tonumber(arg[1]) or 0.2

aio.run(function()
  local r = aio.process.run({ "sort" }, { input = "pear\napple\nfig\n" })
  io.write("sorted (exit ", r.code, "):\n", r.stdout)

  local ok, err = pcall(aio.process.run, { "sleep", "10" }, { timeout = timeout })
  print(ok, err)                      --> false  timeout: process 'sleep' ...
end)
