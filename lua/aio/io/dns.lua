--- aio.dns: name resolution on libuv's thread pool (getaddrinfo), so the
-- loop never waits for a resolver. See LICENSE

local core = require "aio.core"

local cresolve = core.dns.resolve

local M = {}

local families = { inet = true, inet6 = true, any = true }

--- Resolves a host name to its addresses (suspends). An IP address
--- literal resolves to itself at once.
---@param host string
---@param opts? {family?: "inet"|"inet6"|"any"}
---@return string[] addresses IPv4 and IPv6, in the resolver's order
function M.resolve(host, opts)
  if type(host) ~= "string" then
    error(("bad argument #1 to 'resolve' (string expected, got %s)")
      :format(host == nil and "no value" or type(host)), 2)
  end
  local family
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("bad argument #2 to 'resolve' (table expected, got " .. type(opts) .. ")", 2)
    end
    family = opts.family
    if family ~= nil and not families[family] then
      error("bad argument #2 to 'resolve' (family must be \"inet\", \"inet6\" or \"any\")", 2)
    end
  end
  return cresolve(host, family)
end

return M
