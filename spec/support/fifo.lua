--- spec/support/fifo.lua: named pipes that hold a libuv pool thread (or a
-- worker) blocked until the test releases them, so that specs can fill
-- the pool deterministically. See LICENSE

local aio = require "aio"

local F = {}

--- Makes a FIFO at `path` (blocks the loop for the mkfifo(1) run: set-up).
function F.make(path)
  assert(os.execute("mkfifo '" .. path .. "'"), "mkfifo failed")
  return path
end

--- Holds `n` pool threads: each of `n` tasks opens its own FIFO for
--- reading with aio.fs.open, which blocks a pool thread in open(2) until
--- a writer comes. Their requests are queued when it returns. Returns a
--- function that releases them all and waits for the tasks.
function F.hold_pool(dir, n)
  local tasks, paths = {}, {}
  for i = 1, n do
    paths[i] = F.make(("%s/hold-%d"):format(dir, i))
    tasks[i] = aio.spawn(function()
      local f <close> = aio.fs.open(paths[i], "r")
      return f:read("a")
    end)
  end
  aio.sleep(0)        -- every task has handed its open to libuv
  return function()
    for i = 1, n do
      -- a reader is (or will be) blocked in open: this open returns
      local w = assert(io.open(paths[i], "w"))
      w:write("released")
      w:close()
    end
    for i = 1, n do assert(tasks[i]:await() == "released") end
  end
end

return F
