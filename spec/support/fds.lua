--- spec/support/fds.lua: uses up this process's file descriptors (for the
-- specs of what happens without one, run in a child with a low
-- `ulimit -n`). `local release = require("support.fds")()` opens
-- /dev/null until the limit; release() closes them again.
-- See LICENSE

return function()
  local files = {}
  while true do
    local f = io.open("/dev/null")
    if not f then break end
    files[#files + 1] = f
  end
  return function()
    for _, f in ipairs(files) do f:close() end
  end
end
