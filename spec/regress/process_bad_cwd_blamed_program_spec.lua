-- Regression: process.run with a working directory that cannot be
-- entered said "cannot run 'pwd': no such file or directory", blaming the
-- program (libuv reports the failed chdir as the exec's error). The error
-- names the directory now (message and `path`).
local aio = require "aio"
local H = require "helper"

describe("process.run with a bad cwd", function()
  it("names the directory", H.async(function()
    local err = H.raises("io", aio.process.run, { "pwd" }, { cwd = "/nonexistent-aio-dir" })
    assert.matches("directory '/nonexistent%-aio%-dir'", err.message)
    assert.are.equal("/nonexistent-aio-dir", err.path)
    assert.are.equal("ENOENT", err.code)
    local file = H.raises("io", aio.process.run, { "pwd" }, { cwd = "/etc/passwd" })
    assert.are.equal("ENOTDIR", file.code)
    assert.are.equal("/etc/passwd", file.path)
  end))

  it("still names a program that is missing", H.async(function()
    local err = H.raises("io", aio.process.run, { "no-such-program-aio" }, { cwd = "/tmp" })
    assert.matches("no%-such%-program%-aio", err.message)
    assert.are.equal("no-such-program-aio", err.path)
    assert.are.equal("ENOENT", err.code)
  end))
end)
