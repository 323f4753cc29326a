--[[
crawler.lua: the capstone. Crawls a site from a start URL with what the
other examples show one at a time: a Queue of URLs, WORKERS concurrent
fetchers in a TaskGroup, aio.retry (3 attempts with backoff) for failures
worth retrying, a visited set so each page is fetched once, every page
written to disk with aio.fs (off the loop), and a graceful stop on SIGINT:
the queue is closed and each worker finishes the page in hand. Without a
URL the example generates a local site of PAGES linked pages, a few of them
flaky (503 at the first try) and a few links broken (404).

Usage: lua5.4 examples/crawler.lua [PAGES] [OUT_DIR] [URL] [DELAY]
  PAGES    pages of the local site, and the most pages crawled (default 300)
  OUT_DIR  where pages are saved (default: a temporary directory)
  URL      start here instead of the local site (same host only)
  DELAY    seconds the local site takes per page (default 0.01)
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"
local fixture = require "support.fixture_server"

local pages = tonumber(arg[1]) or 300
local out_dir = arg[2] ~= "" and arg[2] or nil
local start = arg[3] ~= "" and arg[3] or nil
local delay = tonumber(arg[4]) or 0.01
local WORKERS = 30

-- The local site: page N links to 2N, 2N+1 and 7N mod PAGES + 1; one page
-- in ten fails once with 503; every 25th page links to a missing page.
local function local_site()
  local failed_once = {}
  return fixture.start(function(req)
    local id = tonumber(req.path:match("^/page/(%d+)$"))
    if not id or id > pages then return 404, {}, "no such page" end
    aio.sleep(delay)
    if id % 10 == 7 and not failed_once[id] then
      failed_once[id] = true
      return 503, {}, "busy"
    end
    local links = {(7 * id) % pages + 1}
    if 2 * id <= pages then links[#links + 1] = 2 * id end
    if 2 * id + 1 <= pages then links[#links + 1] = 2 * id + 1 end
    if id % 25 == 0 then links[#links + 1] = pages + id end   -- broken
    local html = {("<html><title>page %d</title><body>"):format(id)}
    for _, l in ipairs(links) do html[#html + 1] = ('<a href="/page/%d">%d</a>'):format(l, l) end
    html[#html + 1] = "</body></html>"
    return 200, {["content-type"] = "text/html"}, table.concat(html, "\n")
  end)
end

local function worth_retrying(err)
  return (aio.is_error(err, "http") and err.status >= 500)
    or aio.is_error(err, "connect") or aio.is_error(err, "timeout")
end

aio.run(function()
  local server
  if not start then
    server = local_site()
    start = server.url .. "/page/1"
  end
  local origin = assert(start:match("^(https?://[^/]+)"), "start URL must be http(s)://host/...")
  local tmp = not out_dir
  out_dir = out_dir or os.tmpname() .. ".d"
  aio.fs.mkdir(out_dir, {parents = true})

  local session <close> = aio.http.Session{max_per_host = WORKERS, timeout = 10}
  local queue = aio.Queue()
  local seen, pending = {[start] = true}, 1
  local saved, failed, stopping = 0, {}, false
  queue:put(start)

  -- Ctrl-C: stop taking new URLs; pages in hand are finished and saved
  local sigint <close> = aio.signal("SIGINT", function()
    io.stderr:write("\nSIGINT: finishing the pages in hand\n")
    stopping = true
    queue:close()
  end)

  local function crawl_one(url)
    local resp = aio.retry(function() return session:get(url):raise_for_status() end,
                           {attempts = 3, delay = 0.05, retry_on = worth_retrying})
    local name = url:sub(#origin + 2):gsub("[^%w]+", "_")
    aio.fs.write_file(("%s/%s.html"):format(out_dir, name ~= "" and name or "index"), resp.body)
    saved = saved + 1
    for link in resp.body:gmatch('href="([^"]+)"') do
      local abs = link:match("^https?://") and link or origin .. link
      if abs:sub(1, #origin) == origin and not seen[abs] and not stopping then
        seen[abs] = true
        pending = pending + 1
        queue:put(abs)
      end
    end
  end

  local t0 = aio.now()
  do
    local workers <close> = aio.TaskGroup()
    for _ = 1, WORKERS do
      workers:spawn(function()
        for url in queue:items() do
          if stopping then break end
          local ok, err = pcall(crawl_one, url)
          if not ok then
            if aio.is_error(err, "cancelled") then error(err, 0) end
            failed[#failed + 1] = ("%s: %s"):format(url, tostring(err))
          end
          pending = pending - 1
          if pending == 0 then queue:close() end     -- nothing left to find
        end
      end)
    end
  end

  print(("%s: %d pages saved, %d failed, %d URLs seen, in %.2f s"):format(
    stopping and "interrupted" or "done", saved, #failed, (function()
      local n = 0 for _ in pairs(seen) do n = n + 1 end return n end)(), aio.now() - t0))
  for _, f in ipairs(failed) do print("  failed " .. f) end
  if tmp then
    for _, name in ipairs(aio.fs.list(out_dir)) do aio.fs.remove(out_dir .. "/" .. name) end
    aio.fs.remove(out_dir)
  else
    print("pages are in " .. out_dir)
  end
  if server then server:close() end
end)
