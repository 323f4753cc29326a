-- The README's reference has a heading for every public function and
-- method: module functions as "#### aio.fs.read_file(...)", methods as
-- "#### file:read(...)". The names are enumerated from the loaded module and
-- from live objects, so a function added without documentation fails here.
local aio = require "aio"
local H = require "helper"

local readme
do
  local f = assert(io.open("README.md"))
  readme = f:read("a")
  f:close()
end

local headings = {}
for h in readme:gmatch("\n#### ([^\n]+)") do headings[#headings + 1] = h end

local function documented(full)
  for _, h in ipairs(headings) do
    if h == full or h:sub(1, #full + 1) == full .. "(" or h:sub(1, #full + 1) == full .. " " then
      return true
    end
  end
  return false
end

local functions_of = H.functions_of

local function methods_of(obj)
  return functions_of(H.method_table(obj))
end

local missing = {}
local function need(list, prefix)
  for _, name in ipairs(list) do
    if not documented(prefix .. name) then missing[#missing + 1] = prefix .. name end
  end
end

describe("the README reference", function()
  it("has a heading for every module function", function()
    H.load_all(aio)
    need(functions_of(aio), "aio.")
    for _, m in ipairs({"http", "fs", "tcp", "dns", "process", "redis", "pg", "testing"}) do
      need(functions_of(aio[m]), "aio." .. m .. ".")
    end
    need(functions_of(require "aio.busted"), "async.")
    assert.are.same({}, missing)
  end)

  it("has a Testing section whose busted example passes", function()
    local code = readme:match("\n## Testing your code\n.-```lua\n(.-)```")
    assert.is_string(code)
    local dir = H.tmpdir()
    local f = assert(io.open(dir .. "/readme_spec.lua", "w"))
    f:write(code)
    f:close()
    local p = io.popen(H.lua_env() .. " busted --lua=lua5.4 -o TAP " .. dir
      .. "/readme_spec.lua 2>&1 </dev/null")
    local out = p:read("a")
    p:close()
    H.rmtree(dir)
    assert.is_nil(out:find("not ok", 1, true), out)
    local oks = 0
    for _ in ("\n" .. out):gmatch("\nok %d") do oks = oks + 1 end
    assert.are.equal(4, oks, out)
  end)

  it("has a heading for every method", H.async(function()
    missing = {}
    local dir = H.tmpdir()
    aio.fs.write_file(dir .. "/f", "x")
    local file <close> = aio.fs.open(dir .. "/f")
    local server <close> = aio.tcp.listen("127.0.0.1", 0, function(s) s:read() end)
    local stream <close> = aio.tcp.connect("127.0.0.1", server.port)
    local session <close> = aio.http.Session()
    local registration <close> = aio.signal("SIGUSR2", function() end)
    local group <close> = aio.TaskGroup()
    local app = aio.http.App()
    local http_server <close> = aio.http.listen(app)
    local req, writer
    app:get("/", function(r) req = r writer = r:respond() end)
    aio.http.get(http_server.url .. "/")
    local wserver <close> = aio.tcp.listen("127.0.0.1", 0, function(s)
      local ws <close> = require("aio.http.websocket").accept(s)
      ws:receive()
    end)
    local ws <close> = aio.http.ws_connect("ws://127.0.0.1:" .. wserver.port .. "/")
    local objects = {
      {"task:", aio.spawn(function() end)},
      {"sem:", aio.Semaphore(1)},
      {"sem:", aio.BoundedSemaphore(1)},
      {"lock:", aio.Lock()},
      {"event:", aio.Event()},
      {"cond:", aio.Condition()},
      {"queue:", aio.Queue()},
      {"queue:", aio.PriorityQueue()},
      {"queue:", aio.LifoQueue()},
      {"group:", group},
      {"limiter:", aio.RateLimiter(1, 1)},
      {"file:", file},
      {"stream:", stream},
      {"server:", server},
      {"session:", session},
      {"registration:", registration},
      {"app:", app},
      {"server:", http_server},
      {"req:", req},
      {"writer:", writer},
      {"ws:", ws},
    }
    for _, o in ipairs(objects) do need(methods_of(o[2]), o[1]) end
    need(functions_of(aio.http.Response), "response:")
    stream:close()
    H.rmtree(dir)
    assert.are.same({}, missing)
  end))
end)
