--- spec/support/proc.lua: starting and watching the server processes the
-- specs talk to (spec/support/http_servers.lua, redis_server.lua): started
-- in the background without the sanitizer runtime (LD_PRELOAD is for us
-- only), watched through /proc, stopped by PID. See LICENSE

local M = {}

--- The shell prefix that starts a child without the sanitizer runtime.
M.CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "

--- Starts shell command `cmd` in the background, its output to file `log`;
--- returns its PID.
function M.spawn(cmd, log)
  local p = assert(io.popen(M.CLEAN_ENV .. cmd .. " > '" .. log .. "' 2>&1 & echo $!"))
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "could not start: " .. cmd)
  return pid
end

--- The contents of file `path`, or nil.
function M.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Is process `pid` running (a zombie waiting for its reaper is not)?
function M.alive(pid)
  local stat = M.slurp("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

--- Sleeps without a child process (children are slow under valgrind): in
--- a task with aio.sleep, elsewhere in a loop of its own.
function M.nap(secs)
  local aio = require "aio"
  if aio.current() then aio.sleep(secs) else aio.run(aio.sleep, secs) end
end

return M
