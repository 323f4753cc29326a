--[[
files.lua: write, append and read a file line by line with aio.fs; every
call runs on libuv's thread pool, so the loop never blocks on the disk.

Usage: lua5.4 examples/files.lua [DIR]
  DIR  where to make the scratch file (default: a new temporary directory)
]]

local aio = require "aio"
local fs = aio.fs

aio.run(function()
  local dir = arg[1]
  local made = not dir
  if made then
    dir = os.tmpname()
    os.remove(dir)
    fs.mkdir(dir)
  end
  local path = dir .. "/notes.txt"
  fs.write_file(path, "first line\n")
  fs.append_file(path, "second line\n")
  do
    local f <close> = fs.open(path)
    for line in f:lines() do print("read: " .. line) end
  end
  print(("%s is %d bytes"):format(path, fs.stat(path).size))
  fs.remove(path)
  if made then fs.remove(dir) end
end)
