--- aio.fs: files and directories without blocking the loop. Every system
-- call runs on libuv's thread pool; the calling task suspends meanwhile.
-- Failures raise an `io` error with `code` ("ENOENT", "EACCES", ...) and
-- `path`. See LICENSE

local core = require "aio.core"
local args = require "aio.core.args"

local cfs = core.fs
local open = cfs.open
local is_error = core.is_error
local check, carg, argerror = args.check, args.carg, args.error
local type, error = type, error

local M = {}

---@class aio.File
---@field read fun(self: aio.File, ...: integer|string): ...
---@field write fun(self: aio.File, ...: string|number): aio.File
---@field seek fun(self: aio.File, whence?: "set"|"cur"|"end", offset?: integer): integer
---@field close fun(self: aio.File): boolean
local File = cfs.File
-- The class of files (luaL_newmetatable's, under its name)
local FileMT = debug.getregistry()["aio.File"]

--- Iterates over the file with `file:read(...)` (default "l") until it
--- returns nil; the file stays open, as with io's file:lines.
---@param ... integer|string formats
---@return fun(): string?
function File:lines(...)
  args.self(self, FileMT, "lines")
  local fmts = table.pack(...)
  if fmts.n == 0 then fmts = { "l", n = 1 } end
  local unpack = table.unpack
  return function()
    return self:read(unpack(fmts, 1, fmts.n))
  end
end

--- Opens a file (suspends). Modes as io.open: "r", "w", "a", "r+", "w+",
--- "a+" ("b" ignored; "x" after "w"/"a": fail if it exists).
---@param path string
---@param mode? string
---@return aio.File
function M.open(path, mode)
  carg(path, 1, "open", "path")
  if mode ~= nil then
    check(mode, "string", 2, "open")
    -- as io.open: r, w or a, then at most one each of "+", "b", and "x"
    -- (not after r)
    local base, rest = mode:match("^([rwa])([+bx]*)$")
    local ok = base ~= nil and not (base == "r" and rest:find("x", 1, true))
    for c in (rest or ""):gmatch(".") do
      local _, n = rest:gsub("[" .. c .. "]", "")
      if n > 1 then ok = false end
    end
    if not ok then argerror(2, "open", "invalid mode") end
  end
  return open(path, mode)
end

--- Reads a whole file (suspends), in chunks on the thread pool.
---@param path string
---@return string
function M.read_file(path)
  carg(path, 1, "read_file", "path")
  local f <close> = open(path, "r")
  return (f:read("a"))
end

local function put(path, data, mode, fname)
  carg(path, 1, fname, "path")
  if type(data) == "number" then data = tostring(data) end
  check(data, "string", 2, fname)
  local f <close> = open(path, mode)
  f:write(data)
end

--- Writes `data` to a file, creating or truncating it (suspends).
---@param path string
---@param data string
function M.write_file(path, data) put(path, data, "w", "write_file") end

--- Appends `data` to a file, creating it if needed (suspends).
---@param path string
---@param data string
function M.append_file(path, data) put(path, data, "a", "append_file") end

--- Information about a file (suspends; follows symbolic links):
--- {type = "file"|"directory"|"link"|"fifo"|"socket"|"char"|"block",
---  size, mode (permission bits), mtime, atime, ctime (seconds), ino,
---  dev, nlink, uid, gid, blocks}.
---@param path string
---@return table
function M.stat(path)
  carg(path, 1, "stat", "path")
  return cfs.stat(path)
end

--- Does `path` exist (suspends)? Raises for errors other than "no such
--- file" (a permission error, for instance).
---@param path string
---@return boolean
function M.exists(path)
  carg(path, 1, "exists", "path")
  local ok, err = pcall(cfs.stat, path)
  if ok then return true end
  if is_error(err, "io") and (err.code == "ENOENT" or err.code == "ENOTDIR") then
    return false
  end
  error(err, 0)
end

--- Creates a directory (suspends). opts.mode (0777 before the umask);
--- opts.parents: also create missing parents, and accept an existing
--- directory.
---@param path string
---@param opts? {mode?: integer, parents?: boolean}
function M.mkdir(path, opts)
  carg(path, 1, "mkdir", "path")
  opts = args.opts(opts, 2, "mkdir")
  local mode = args.count(opts.mode, 2, "mkdir", "mode")
  if not opts.parents then return cfs.mkdir(path, mode) end
  local ok, err = pcall(cfs.mkdir, path, mode)
  if ok then return end
  if not is_error(err, "io") then error(err, 0) end
  if err.code == "ENOENT" then
    local parent = path:match("^(.*[^/])/+[^/]+/*$")
    if not parent then error(err, 0) end
    M.mkdir(parent, opts)
    ok, err = pcall(cfs.mkdir, path, mode)
    if ok then return end
  end
  if err.code == "EEXIST" and cfs.stat(path).type == "directory" then return end
  error(err, 0)
end

--- Removes a file or an empty directory (suspends).
---@param path string
function M.remove(path)
  carg(path, 1, "remove", "path")
  local ok, err = pcall(cfs.unlink, path)
  if ok then return end
  if is_error(err, "io") and err.code == "EISDIR" then
    return cfs.rmdir(path)
  end
  error(err, 0)
end

--- Renames (moves) a file or directory (suspends), replacing `to`.
---@param from string
---@param to string
function M.rename(from, to)
  carg(from, 1, "rename", "from")
  carg(to, 2, "rename", "to")
  return cfs.rename(from, to)
end

--- The names in a directory (suspends), sorted, without "." and "..".
---@param dir string
---@return string[]
function M.list(dir)
  carg(dir, 1, "list", "path")
  return cfs.scandir(dir)
end

return M
