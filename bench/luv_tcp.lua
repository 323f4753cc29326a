-- TCP echo benchmark, peer: luv (libuv bindings from Debian's lua-luv) with
-- plain callbacks, the fastest way to write it on luv. The same workload
-- as bench/aio_tcp.lua: an echo server and CONNS client connections in one
-- process on 127.0.0.1; each client sends a SIZE-byte message and waits
-- for the whole echo before the next one, ROUNDS times.
--
-- usage: lua5.4 bench/luv_tcp.lua [ROUNDS] [CONNS] [SIZE]
-- Prints: RESULT peer=luv wl=tcp_echo n=... (as aio_tcp.lua)

package.path = "./bench/?.lua;" .. package.path
local uv = require "luv"
local result = require("benchlib").result

local ROUNDS = tonumber(arg[1]) or 2000
local CONNS = tonumber(arg[2]) or 64
local SIZE = tonumber(arg[3]) or 1024
local TIMEOUT = tonumber(os.getenv("BENCH_TIMEOUT") or "120")

local watchdog = uv.new_timer()
watchdog:start(TIMEOUT * 1000, 0, function()
  io.stderr:write("timeout\n")
  os.exit(3)
end)
watchdog:unref()

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
assert(server:listen(1024, function(err)
  assert(not err, err)
  local s = uv.new_tcp()
  server:accept(s)
  s:nodelay(true)
  s:read_start(function(rerr, data)
    if rerr or not data then
      s:close()
      return
    end
    s:write(data)
  end)
end))
local port = server:getsockname().port

local msg = ("m"):rep(SIZE)
local good, finished = 0, 0
local t0, t1

local function client()
  local c = uv.new_tcp()
  local rounds, got, parts = 0, 0, {}
  c:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    c:nodelay(true)
    c:read_start(function(rerr, data)
      assert(not rerr, rerr)
      if not data then return end
      got = got + #data
      parts[#parts + 1] = data
      if got < SIZE then return end
      local echo = table.concat(parts)
      parts, got = {}, 0
      rounds = rounds + 1
      if echo ~= msg or rounds == ROUNDS then
        if echo == msg then good = good + 1 end
        finished = finished + 1
        c:close()
        if finished == CONNS then
          t1 = uv.hrtime()
          server:close()
        end
        return
      end
      c:write(msg)
    end)
    c:write(msg)
  end)
end

t0 = uv.hrtime()
for _ = 1, CONNS do client() end
uv.run()
local secs = (t1 - t0) / 1e9
local n = ROUNDS * CONNS
result({ peer = "luv", wl = "tcp_echo", n = n, secs = secs, rate = n / secs,
         unit = "msgs/s", ok = good == CONNS, conns = CONNS, size = SIZE,
         mb_s = ("%.1f"):format(2 * n * SIZE / secs / 1e6) })
