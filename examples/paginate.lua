--[[
paginate.lua: a generator (coroutine.wrap) that fetches page after page of
a paginated API, consumed with a plain `for` loop. The HTTP requests inside
the generator suspend the task as any call would: no special async
iterator is needed. Without a URL the example serves ITEMS items, PER_PAGE
per page, locally.

Usage: lua5.4 examples/paginate.lua [ITEMS] [PER_PAGE] [URL]
  ITEMS     items the local API holds (default 47)
  PER_PAGE  items per page (default 10)
  URL       an API answering URL?page=N with {"items": [...], "next": N+1 or null}
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"
local cjson = require "cjson"
local fixture = require "support.fixture_server"

local total = tonumber(arg[1]) or 47
local per_page = tonumber(arg[2]) or 10
local url = arg[3]

-- Yields the items of every page, fetching the next page when needed.
local function items(api)
  return coroutine.wrap(function()
    local page = 1
    while page do
      local body = aio.http.get(api, {query = {page = page}}):raise_for_status():json()
      for _, item in ipairs(body.items) do coroutine.yield(item) end
      page = body.next ~= cjson.null and math.tointeger(body.next) or nil
    end
  end)
end

aio.run(function()
  local server
  if not url then
    server = fixture.start(function(req)
      local page = tonumber(req.query.page) or 1
      local list = {}
      for i = (page - 1) * per_page + 1, math.min(page * per_page, total) do
        list[#list + 1] = {id = i, name = "item " .. i}
      end
      aio.sleep(0.02)                      -- a remote API is not instant
      local last = page * per_page >= total
      return 200, {["content-type"] = "application/json"},
        cjson.encode({items = list, next = last and cjson.null or page + 1})
    end)
    url = server.url .. "/items"
  end

  local count, last = 0, nil
  for item in items(url) do
    count = count + 1
    last = item
  end
  print(("%d items from %d pages; the last is %q"):format(
    count, math.ceil(count / per_page), last and last.name or "none"))
  if server then server:close() end
end)
