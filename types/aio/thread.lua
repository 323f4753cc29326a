---@meta aio.thread

-- `require "aio.thread"`: aio.to_thread plus the limit on how many calls
-- run at once. The class aio.thread is described in types/aio.lua.

---@type aio.thread
local thread = {}

return thread
