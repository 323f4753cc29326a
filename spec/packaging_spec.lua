local H = require "helper"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

describe("packaging", function()
  it("installs with luarocks make and loads from the installed tree", function()
    local tree = H.tmpdir()
    local ok, out = sh("luarocks --lua-version=5.4 make --deps-mode=none --tree=" .. tree ..
                       " aio-scm-1.rockspec")
    assert.is_true(ok, out)
    -- the installed tree alone (no in-tree paths) must give a working aio
    local script = [[
      local aio = require "aio"
      assert(package.searchpath("aio.core", package.cpath):find("]] .. tree .. [[", 1, true))
      print(aio.run(function() return aio.gather(function() aio.sleep(0.001) return "installed" end) end))
    ]]
    local lpath = tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua;;"
    local cpath = tree .. "/lib/lua/5.4/?.so;;"
    ok, out = sh("cd /tmp && LUA_PATH_5_4='" .. lpath .. "' LUA_CPATH_5_4='" .. cpath ..
                 "' lua5.4 -e '" .. script .. "'")
    H.rmtree(tree)
    assert.is_true(ok, out)
    assert.are.equal("installed\n", out)
  end)

  it("lists every Lua module and C source in the rockspec", function()
    local f = assert(io.open("aio-scm-1.rockspec"))
    local spec = f:read("a")
    f:close()
    for path in io.popen("ls src/*.c src/*/*.c lua/aio/*.lua lua/aio/*/*.lua"):lines() do
      assert.is_truthy(spec:find('"' .. path .. '"', 1, true), path .. " is missing from the rockspec")
    end
  end)
end)
