--[[ files.lua: write, append and read files, line by line, on the thread
pool. Usage: lua5.4 examples/files.lua ]]

local aio = require "aio"
local fs = aio.fs

aio.run(function()
  local dir = os.tmpname()
  os.remove(dir)
  fs.mkdir(dir)
  local path = dir .. "/notes.txt"
  fs.write_file(path, "first line\n")
  fs.append_file(path, "second line\n")
  do
    local f <close> = fs.open(path)
    for line in f:lines() do print("read: " .. line) end
  end
  print(("%s is %d bytes"):format(path, fs.stat(path).size))
  fs.remove(path)
  fs.remove(dir)
end)
