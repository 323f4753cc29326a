--[[
redis_cache.lua: Redis as a cache in front of a slow HTTP backend. A
lookup reads the cache first; on a miss it asks the backend and stores the
answer with an expiry (SET ... EX). Concurrent misses for the same key
share one backend call (a table of lookups in flight), so a burst of
requests for a cold item does not stampede the backend. Without a URL the
example starts a throwaway redis-server of its own; the backend is a local
HTTP server answering after LATENCY seconds.

Usage: lua5.4 examples/redis_cache.lua [ITEMS] [LATENCY] [URL]
  ITEMS    how many items to look up (default 5)
  LATENCY  seconds the backend takes (default 0.2)
  URL      a Redis server to use instead (redis://host:port, unix:/path)
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local aio = require "aio"
local fixture = require "support.fixture_server"

local nitems = tonumber(arg[1]) or 5
local latency = tonumber(arg[2]) or 0.2

local url, server = require("support.redis_server").url(arg[3])
if not url then return end

aio.run(function()
  local backend_calls = 0
  local backend <close> = fixture.start(function(req)
    backend_calls = backend_calls + 1
    aio.sleep(latency)
    return 200, { ["content-type"] = "application/json" },
      ('{"item": "%s", "price": %d}'):format(req.path:match("%d+"), #req.path * 7)
  end)
  local http <close> = aio.http.Session{ base_url = backend.url, timeout = 10 }
  local cache <close> = aio.redis.connect(url)
  local prefix = ("cache:%d.%d:"):format(os.time(), math.random(1e6))

  local inflight = {}      -- key -> the task fetching it from the backend
  local function lookup(id)
    local key = prefix .. id
    local hit = cache:get(key)
    if hit then return hit end
    local fetch = inflight[key]
    if not fetch then
      fetch = aio.spawn(function()
        local body = http:get("/item/" .. id):raise_for_status().body
        cache:set(key, body, { ex = 60 })
        return body
      end)
      inflight[key] = fetch
      fetch:on_done(function() inflight[key] = nil end)   -- also after a failure
    end
    return fetch:await()
  end

  local function round(label)
    local calls, t0 = backend_calls, aio.now()
    local jobs = {}
    for i = 1, nitems do jobs[i] = function() return lookup(i) end end
    local bodies = aio.gather(jobs)
    print(("%s: %d items in %.3f s, %d backend calls; item 1 = %s"):format(
      label, #bodies, aio.now() - t0, backend_calls - calls, bodies[1]))
  end
  round("cold cache")
  round("warm cache")

  -- a stampede: 50 tasks want the same cold item at once
  local calls, t0 = backend_calls, aio.now()
  local jobs = {}
  for i = 1, 50 do jobs[i] = function() return lookup(nitems + 1) end end
  aio.gather(jobs)
  print(("50 concurrent lookups of one cold item: %d backend call in %.3f s"):format(
    backend_calls - calls, aio.now() - t0))
  print(("ttl of a cached item: %d s"):format(cache:ttl(prefix .. 1)))
end)

if server then server:stop() end
