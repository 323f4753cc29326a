--[[
download.lua: stream a large response to a file with aio.fs, in chunks, so
memory stays bounded however big the body is; a progress line goes to
stderr. While the file is written more slowly than the network delivers,
the transfer pauses. Without a URL the example serves SIZE bytes locally.

Usage: lua5.4 examples/download.lua [SIZE_MB] [FILE] [URL]
  SIZE_MB  size of the local download in MiB (default 64)
  FILE     where to write it (default: a temporary file, removed after)
  URL      download this instead
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"
local fixture = require "support.fixture_server"

local size = math.floor((tonumber(arg[1]) or 64) * 1024 * 1024)
local path = arg[2]
local url = arg[3]

local function peak_rss_mb()
  local f = io.open("/proc/self/status")
  local kb = f and tonumber(f:read("a"):match("VmHWM:%s*(%d+)")) or 0
  if f then f:close() end
  return kb / 1024
end

aio.run(function()
  local server
  if not url then
    local block = ("0123456789abcdef"):rep(4096)   -- 64 KiB
    server = fixture.start(function()
      local sent = 0
      return 200, {["content-type"] = "application/octet-stream", ["content-length"] = size},
        function()                                 -- the body, chunk by chunk
          if sent >= size then return nil end
          local n = math.min(#block, size - sent)
          sent = sent + n
          return n == #block and block or block:sub(1, n)
        end
    end)
    url = server.url .. "/big.bin"
  end
  local keep = path ~= nil
  path = path or os.tmpname()

  local t0 = aio.now()
  local resp <close> = aio.http.get(url, {stream = true, timeout = {connect = 10, read = 30}})
  resp:raise_for_status()
  local expected = tonumber(resp.headers["content-length"])
  local out <close> = aio.fs.open(path, "w")
  local got, shown = 0, -1
  for chunk in resp:chunks() do
    out:write(chunk)
    got = got + #chunk
    local pct = expected and math.floor(got * 100 / expected) or 0
    if pct ~= shown then
      shown = pct
      io.stderr:write(("\r%7.1f MiB%s"):format(got / 1048576,
        expected and ("  %3d%%"):format(pct) or ""))
    end
  end
  io.stderr:write("\n")
  out:close()
  local secs = aio.now() - t0
  local st = aio.fs.stat(path)
  print(("downloaded %d bytes to %s in %.2f s (%.0f MiB/s), peak RSS %.0f MiB"):format(
    st.size, keep and path or "a temporary file", secs, st.size / 1048576 / secs, peak_rss_mb()))
  if not keep then aio.fs.remove(path) end
  if server then server:close() end
end)
