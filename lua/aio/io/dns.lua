--- aio.dns: name resolution on libuv's thread pool (getaddrinfo), so the
-- loop never waits for a resolver. See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local cresolve = core.dns.resolve

local M = {}

local families = { inet = true, inet6 = true, any = true }

--- Resolves a host name to its addresses (suspends). An IP address
--- literal resolves to itself at once.
---@param host string
---@param opts? {family?: "inet"|"inet6"|"any"}
---@return string[] addresses IPv4 and IPv6, in the resolver's order
function M.resolve(host, opts)
  args.carg(host, 1, "resolve", "host")
  local family = args.opts(opts, 2, "resolve").family
  if family ~= nil and not families[family] then
    args.error(2, "resolve", "family must be \"inet\", \"inet6\" or \"any\"")
  end
  return cresolve(host, family)
end

return M
