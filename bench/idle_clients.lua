-- Opens N keep-alive connections to an HTTP server on 127.0.0.1:PORT, makes
-- one GET on each (so each is an idle keep-alive connection afterwards),
-- prints "READY n" and holds them for HOLD seconds (or until killed).
-- Used by bench/server.sh for the RSS per idle connection.
--
-- usage (from the repository root): lua5.4 bench/idle_clients.lua PORT N [HOLD]

package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local aio = require "aio"

local PORT, N, HOLD = tonumber(arg[1]), tonumber(arg[2]) or 10000, tonumber(arg[3]) or 30

aio.run(function()
  local streams, ok = {}, 0
  local sem = aio.Semaphore(256)
  local group <close> = aio.TaskGroup()
  for i = 1, N do
    group:spawn(function()
      local permit <close> = sem:acquire()
      local s = aio.tcp.connect("127.0.0.1", PORT)
      s:write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
      local len
      while true do
        local line = s:read_line()
        if line == "" then break end
        len = len or tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)"))
      end
      s:read_exactly(len or 0)
      streams[i] = s
      ok = ok + 1
    end)
  end
  group:wait()
  io.stdout:write("READY ", ok, "\n")
  io.stdout:flush()
  aio.sleep(HOLD)
  for _, s in pairs(streams) do s:close() end
end)
