---@meta aio.io.thread

-- `require "aio.io.thread"`: aio.to_thread plus the limit on how many calls
-- run at once. The class aio.io.thread is described in types/aio.lua.

---@type aio.io.thread
local thread = {}

return thread
