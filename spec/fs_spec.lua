local aio = require "aio"
local H = require "helper"
local F = require "support.fifo"
local eventually = require "support.wait"

local fs = aio.fs

-- Runs `fn(dir)` with a fresh temporary directory, removed afterwards.
local function with_dir(fn)
  return H.async(function()
    local dir = H.tmpdir()
    local ok, err = pcall(fn, dir)
    H.rmtree(dir)
    if not ok then error(err, 0) end
  end)
end

describe("aio.fs", function()
  it("writes and reads back whole files, binary and empty ones included", with_dir(function(dir)
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local data = table.concat(bytes):rep(100)
    fs.write_file(dir .. "/bin", data)
    assert.are.equal(data, fs.read_file(dir .. "/bin"))
    fs.write_file(dir .. "/empty", "")
    assert.are.equal("", fs.read_file(dir .. "/empty"))
    fs.write_file(dir .. "/bin", "short")
    assert.are.equal("short", fs.read_file(dir .. "/bin"))
  end))

  it("reads files that report no size, like those of /proc", H.async(function()
    local status = fs.read_file("/proc/self/status")
    assert.matches("^Name:", status)
    assert.matches("\nPid:%s+" .. H.pid() .. "\n", status)
    local f <close> = fs.open("/proc/self/status")
    assert.matches("^Name:", f:read("l"))
    assert.matches("\nPid:", f:read("a"))
  end))

  it("appends, creating the file first", with_dir(function(dir)
    local p = dir .. "/log"
    fs.append_file(p, "one\n")
    fs.append_file(p, "two\n")
    fs.append_file(p, 3)
    assert.are.equal("one\ntwo\n3", fs.read_file(p))
  end))

  it("raises io with code and path for a missing file", with_dir(function(dir)
    local p = dir .. "/missing/file"
    local err = H.raises("io", fs.read_file, p)
    assert.are.equal("ENOENT", err.code)
    assert.are.equal(p, err.path)
    assert.matches("cannot open '.*/missing/file': no such file or directory %(ENOENT%)", err.message)
    err = H.raises("io", fs.write_file, p, "x")
    assert.are.equal("ENOENT", err.code)
    err = H.raises("io", fs.read_file, dir)           -- a directory
    assert.are.equal("EISDIR", err.code)
    assert.are.equal(dir, err.path)
  end))

  it("reads sizes, lines, the rest, and tests for the end, as io.read does", with_dir(function(dir)
    local p = dir .. "/t"
    fs.write_file(p, "alpha\nbeta\r\n\ngamma")
    local f <close> = fs.open(p)
    assert.are.equal("alp", f:read(3))
    assert.are.equal("ha", f:read("l"))
    assert.are.equal("beta\r\n", f:read("L"))
    assert.are.equal("", f:read("l"))
    assert.are.equal("", f:read(0))                -- not at the end yet
    local a, b = f:read(2, "a")
    assert.are.equal("ga", a)
    assert.are.equal("mma", b)
    assert.are.equal("", f:read("a"))
    assert.is_nil(f:read("l"))
    assert.is_nil(f:read(1))
    assert.is_nil(f:read(0))
    local x, y, z = f:read("l", "l")
    assert.is_nil(x)
    assert.is_nil(y)
    assert.is_nil(z)
  end))

  it("stops reading formats at the first nil", with_dir(function(dir)
    local p = dir .. "/t"
    fs.write_file(p, "one\n")
    local f <close> = fs.open(p)
    assert.are.equal(2, select("#", f:read("l", "l", "l")))
  end))

  it("iterates lines, the last one without a newline too", with_dir(function(dir)
    local p = dir .. "/t"
    fs.write_file(p, "a\nbb\n\nccc")
    local f <close> = fs.open(p)
    local got = {}
    for line in f:lines() do got[#got + 1] = line end
    assert.are.same({ "a", "bb", "", "ccc" }, got)
    f:seek("set")
    got = {}
    for chunk in f:lines(4) do got[#got + 1] = chunk end
    assert.are.same({ "a\nbb", "\n\ncc", "c" }, got)
  end))

  it("reads lines far longer than its buffer and files far larger", with_dir(function(dir)
    local p = dir .. "/long"
    local long = ("0123456789"):rep(50000)            -- 500 kB in one line
    local big = ("x"):rep(3 * 1024 * 1024 + 17)
    fs.write_file(p, "short\n" .. long .. "\n" .. big)
    local f <close> = fs.open(p)
    assert.are.equal("short", f:read("l"))
    assert.are.equal(long, f:read("l"))
    local n = 0
    while true do
      local chunk = f:read(100000)
      if not chunk then break end
      assert.is_true(#chunk <= 100000)
      n = n + #chunk
    end
    assert.are.equal(#big, n)
    assert.are.equal(#("short\n" .. long .. "\n") + #big, #fs.read_file(p))
  end))

  it("streams a large file line by line without holding it in memory", with_dir(function(dir)
    local p = dir .. "/lines"
    local line = ("y"):rep(99) .. "\n"
    do
      local f <close> = fs.open(p, "w")
      local block = line:rep(10000)                    -- 1 MB
      for _ = 1, 48 do f:write(block) end
    end
    collectgarbage()
    local before = H.rss_kb()
    local n, f = 0, fs.open(p)
    for l in f:lines() do
      n = n + 1
      if n % 50000 == 0 then collectgarbage("step", 0) end
      assert(#l == 99)
    end
    f:close()
    assert.are.equal(480000, n)
    -- (ASan and valgrind keep freed memory in quarantine: RSS says nothing)
    if not H.SLOW then
      local grew = H.rss_kb() - before
      assert.is_true(grew < 24 * 1024, "resident memory grew by " .. grew .. " kB for a 48 MB file")
    end
  end))

  it("writes strings and numbers in order and returns the file", with_dir(function(dir)
    local p = dir .. "/w"
    local f = fs.open(p, "w")
    assert.are.equal(f, f:write("a", 1, "b", 2.5, ""):write("\n"))
    f:close()
    assert.are.equal("a1b2.5\n", fs.read_file(p))
  end))

  it("opens with io.open's modes", with_dir(function(dir)
    local p = dir .. "/m"
    H.raises("io", fs.open, p, "r")
    local f = fs.open(p, "w")
    f:write("hello")
    f:close()
    f = fs.open(p, "r+")
    assert.are.equal("he", f:read(2))
    f:write("LL")                                       -- at the position
    f:close()
    assert.are.equal("heLLo", fs.read_file(p))
    f = fs.open(p, "a+")
    assert.are.equal("he", f:read(2))                   -- reads from the start
    f:write("!")                                        -- writes at the end
    assert.are.equal(6, f:seek())
    f:seek("set")
    assert.are.equal("heLLo!", f:read("a"))
    f:close()
    f = fs.open(p, "w+")
    assert.are.equal("", f:read("a"))                   -- truncated
    f:write("new")
    f:seek("set")
    assert.are.equal("new", f:read("a"))
    f:close()
    local err = H.raises("io", fs.open, p, "wx")
    assert.are.equal("EEXIST", err.code)
    f = fs.open(dir .. "/fresh", "wxb")
    f:close()
    err = H.raises("io", function() fs.open(p, "r"):write("x") end)
    assert.are.equal("EBADF", err.code)
    assert.has_error(function() fs.open(p, "q") end, "bad argument #2 to 'open' (invalid mode)")
  end))

  it("seeks from the start, the current position and the end", with_dir(function(dir)
    local p = dir .. "/s"
    fs.write_file(p, "0123456789")
    local f <close> = fs.open(p)
    assert.are.equal("012", f:read(3))
    assert.are.equal(3, f:seek())                        -- after buffered reads
    assert.are.equal(5, f:seek("cur", 2))
    assert.are.equal("56", f:read(2))
    assert.are.equal(8, f:seek("end", -2))
    assert.are.equal("89", f:read("a"))
    assert.are.equal(1, f:seek("set", 1))
    assert.are.equal("1", f:read(1))
    local err = H.raises("io", f.seek, f, "set", -1)
    assert.are.equal("EINVAL", err.code)
    assert.are.equal(2, f:seek())
    assert.has_error(function() f:seek("middle") end)
  end))

  it("closes once, by close or <close>, and refuses use afterwards", with_dir(function(dir)
    local p = dir .. "/c"
    fs.write_file(p, "data")
    local base = H.fd_count()
    local f = fs.open(p)
    assert.are.equal(base + 1, H.fd_count())
    assert.is_true(f:close())
    assert.is_true(f:close())
    assert.are.equal(base, H.fd_count())
    assert.matches("closed", tostring(f))
    local err = H.raises("closed", f.read, f, "a")
    assert.are.equal("attempt to use a closed file", err.message)
    H.raises("closed", f.write, f, "x")
    do
      local g <close> = fs.open(p)
      assert.are.equal(base + 1, H.fd_count())
    end
    assert.are.equal(base, H.fd_count())
    assert.has_error(function() f.read({}, "a") end)   -- not a file
  end))

  it("closes what an error or a cancellation leaves open", with_dir(function(dir)
    local p = dir .. "/e"
    fs.write_file(p, "data")
    local base = H.fd_count()
    local ok = pcall(function()
      local f <close> = fs.open(p)
      error("boom")
    end)
    assert.is_false(ok)
    local t = aio.spawn(function()
      local f <close> = fs.open(p)
      aio.sleep(10)
    end)
    aio.sleep(0.05)
    t:cancel()
    assert.is_true(pcall(t.await, t) == false)
    eventually(function() return H.fd_count() == base end)   -- background close
  end))

  it("closes the files a run left open", function()
    local dir = H.tmpdir()
    local p = dir .. "/left"
    local base = H.fd_count()
    local f = aio.run(function()
      fs.write_file(p, "data")
      return fs.open(p)
    end)
    assert.are.equal(base, H.fd_count())
    aio.run(function()
      local err = H.raises("closed", f.read, f)
      assert.are.equal("attempt to use a closed file", err.message)
      assert.is_true(f:close())
    end)
    H.rmtree(dir)
  end)

  it("reads and writes pipes, which have no offsets", with_dir(function(dir)
    local fifo = F.make(dir .. "/pipe")
    local reader = aio.spawn(function()
      local f <close> = fs.open(fifo, "r")
      local lines = {}
      for l in f:lines() do lines[#lines + 1] = l end
      return lines
    end)
    local w <close> = fs.open(fifo, "w")
    w:write("one\n", "two\n")
    w:write("three")
    assert.are.equal("ESPIPE", H.raises("io", w.seek, w, "set", 0).code)
    w:close()
    assert.are.same({ "one", "two", "three" }, reader:await())
  end))

  it("takes concurrent users of one file in turn", with_dir(function(dir)
    local p = dir .. "/shared"
    local f = fs.open(p, "a+")
    local tasks = {}
    for i = 1, 20 do
      tasks[i] = aio.spawn(function()
        for j = 1, 5 do f:write(("%02d-%d:"):format(i, j), ("z"):rep(1000), "\n") end
      end)
    end
    for _, t in ipairs(tasks) do t:await() end
    f:seek("set")
    local n = 0
    for line in f:lines() do
      n = n + 1
      assert.matches("^%d%d%-%d:" .. ("z"):rep(1000) .. "$", line)
    end
    f:close()
    assert.are.equal(100, n)
  end))

  it("stats files and directories", with_dir(function(dir)
    local p = dir .. "/f"
    fs.write_file(p, "12345")
    local st = fs.stat(p)
    assert.are.equal("file", st.type)
    assert.are.equal(5, st.size)
    assert.is_true(math.type(st.mode) == "integer" and st.mode > 0)
    assert.is_true(math.abs(st.mtime - os.time()) < 60)
    assert.are.equal("directory", fs.stat(dir).type)
    local err = H.raises("io", fs.stat, dir .. "/nope")
    assert.are.equal("ENOENT", err.code)
    assert.are.equal(dir .. "/nope", err.path)
    assert.is_true(fs.exists(p))
    assert.is_false(fs.exists(dir .. "/nope"))
    assert.is_false(fs.exists(p .. "/under/a/file"))
  end))

  it("makes, lists, renames and removes", with_dir(function(dir)
    fs.mkdir(dir .. "/d")
    assert.are.equal("EEXIST", H.raises("io", fs.mkdir, dir .. "/d").code)
    assert.are.equal("ENOENT", H.raises("io", fs.mkdir, dir .. "/x/y").code)
    fs.mkdir(dir .. "/x/y/z", { parents = true })
    fs.mkdir(dir .. "/x/y/z", { parents = true })      -- exists: fine
    fs.mkdir(dir .. "/m", { mode = tonumber("700", 8) })
    assert.are.equal(tonumber("700", 8), fs.stat(dir .. "/m").mode)
    for _, name in ipairs({ "c", "a", "b" }) do fs.write_file(dir .. "/d/" .. name, name) end
    assert.are.same({ "a", "b", "c" }, fs.list(dir .. "/d"))
    assert.are.same({ "d", "m", "x" }, fs.list(dir))
    fs.rename(dir .. "/d/a", dir .. "/d/z")
    assert.are.same({ "b", "c", "z" }, fs.list(dir .. "/d"))
    assert.are.equal("a", fs.read_file(dir .. "/d/z"))
    local err = H.raises("io", fs.rename, dir .. "/d/nope", dir .. "/d/q")
    assert.are.equal("ENOENT", err.code)
    assert.are.equal(dir .. "/d/q", err.to)
    assert.are.equal("ENOTEMPTY", H.raises("io", fs.remove, dir .. "/d").code)
    for _, name in ipairs(fs.list(dir .. "/d")) do fs.remove(dir .. "/d/" .. name) end
    fs.remove(dir .. "/d")
    assert.are.same({ "m", "x" }, fs.list(dir))
    assert.are.equal("ENOENT", H.raises("io", fs.remove, dir .. "/d").code)
    fs.write_file(dir .. "/plain", "x")
    assert.are.equal("ENOTDIR", H.raises("io", fs.list, dir .. "/plain").code)
    fs.remove(dir .. "/plain")
    assert.are.equal("ENOENT", H.raises("io", fs.list, dir .. "/nope").code)
  end))

  it("cancels an open stuck in the pool and closes what it opens later", with_dir(function(dir)
    local fifo = F.make(dir .. "/fifo")
    local base = H.fd_count()
    local t = aio.spawn(function() return fs.open(fifo, "r") end)
    aio.sleep(0.05)                     -- open(2) blocks: no writer yet
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "cancelled"))
    local w = assert(io.open(fifo, "w"))   -- now the blocked open returns
    w:close()
    eventually(function() return H.fd_count() == base end)
  end))

  it("keeps the loop running while the pool is busy", with_dir(function(dir)
    local release = F.hold_pool(dir, 2)
    local ticks = 0
    local ticker = aio.spawn(function() while true do aio.sleep(0.005) ticks = ticks + 1 end end)
    aio.sleep(0.1)
    assert.is_true(ticks >= 5, "only " .. ticks .. " ticks")
    ticker:cancel()
    pcall(ticker.await, ticker)
    release()
  end))

  it("rejects bad arguments with standard messages", with_dir(function(dir)
    assert.has_error(function() fs.read_file() end, "bad argument #1 to 'read_file' (string expected, got no value)")
    assert.has_error(function() fs.write_file(dir .. "/x", {}) end, "bad argument #2 to 'write_file' (string expected, got table)")
    assert.has_error(function() fs.stat(42) end, "bad argument #1 to 'stat' (string expected, got number)")
    local nul = H.raises("usage", fs.open, dir .. "/a\0b")     -- not cut short
    assert.matches("path contains a zero byte", nul.message)
    fs.write_file(dir .. "/r", "x")
    local f <close> = fs.open(dir .. "/r")
    assert.has_error(function() f:read("x") end, "bad argument #1 to 'read' (invalid format)")
    assert.has_error(function() f:read(-1) end, "bad argument #1 to 'read' (negative size)")
    assert.has_error(function() f:write({}) end)
  end))

  it("raises usage outside a task", function()
    local err = H.raises("usage", fs.read_file, "/etc/hostname")
    assert.matches("must be called inside a task", err.message)
  end)
  it("blames the caller's line for a bad mode", H.async(function()
    local ok, err = pcall(function() aio.fs.open("/tmp/x", "rw") end)
    assert.is_false(ok)
    assert.matches("^spec/fs_spec.lua:%d+: bad argument #2 to 'open' %(invalid mode%)", err)
    for _, m in ipairs({"rx", "r++", "wbb", "q", ""}) do
      assert.has_error(function() aio.fs.open("/tmp/x", m) end)
    end
  end))
end)
