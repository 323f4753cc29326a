local aio = require "aio"
local H = require "helper"

-- Many tasks use one Queue and one Semaphore while a chaos task cancels
-- them at random and timeouts fire at random. At the end: every value put
-- was got exactly once, no value was got that was not put, the semaphore
-- has all its permits, and no task is left (the helper checks that).
local function run_chaos(seed)
  math.randomseed(seed)
  local N = 3000
  local q = aio.Queue(4)
  local sem = aio.Semaphore(3)
  local put_ok, got = {}, {}
  local next_id = 0
  local inside, max_inside = 0, 0
  local workers = {}

  local function producer()
    while next_id < N do
      next_id = next_id + 1
      local id = next_id
      local ok = pcall(aio.timeout, math.random() * 0.003, q.put, q, id)
      if ok then put_ok[id] = true end
      if math.random() < 0.2 then aio.sleep(math.random() * 0.0005) end
    end
  end

  local function consumer()
    while true do
      local ok, v = pcall(aio.timeout, math.random() * 0.003, q.get, q)
      if ok then
        if v == nil then return end
        got[v] = (got[v] or 0) + 1
      elseif not aio.is_error(v, "timeout") then
        error(v, 0)
      end
    end
  end

  local function sem_user()
    for _ = 1, 50 do
      pcall(aio.timeout, math.random() * 0.002, function()
        local permit <close> = sem:acquire()
        inside = inside + 1
        local out <close> = setmetatable({}, {__close = function() inside = inside - 1 end})
        if inside > max_inside then max_inside = inside end
        aio.sleep(math.random() * 0.001)
      end)
    end
  end

  local kinds = {producer = producer, consumer = consumer, sem_user = sem_user}
  local function start(kind)
    local t = aio.spawn(kinds[kind])
    workers[#workers + 1] = {task = t, kind = kind}
  end
  for _ = 1, 3 do start("producer") end
  for _ = 1, 4 do start("consumer") end
  for _ = 1, 4 do start("sem_user") end

  local cancels = 0
  local chaos = aio.spawn(function()
    while next_id < N do
      aio.sleep(math.random() * 0.0005)
      cancels = cancels + 1
      local w = workers[math.random(#workers)]
      if not w.task:done() and w.kind ~= "consumer" then
        w.task:cancel("chaos")
        start(w.kind)
      elseif w.kind == "consumer" and math.random() < 0.3 then
        w.task:cancel("chaos")
        start("consumer")
      end
    end
  end)
  chaos:await()
  -- let the producers and sem users finish, then drain
  for _, w in ipairs(workers) do
    if w.kind ~= "consumer" then pcall(w.task.await, w.task) end
  end
  q:close()
  for _, w in ipairs(workers) do pcall(w.task.await, w.task) end

  local nput, ngot = 0, 0
  for id = 1, N do
    if put_ok[id] then
      nput = nput + 1
      assert.are.equal(1, got[id], "value " .. id .. " was put and got " .. tostring(got[id]) .. " times")
    else
      assert.is_nil(got[id], "value " .. id .. " was got but its put failed")
    end
    ngot = ngot + (got[id] or 0)
  end
  assert.are.equal(nput, ngot)
  assert.is_true(nput > 0)
  assert.is_true(cancels > 20, "chaos cancelled only " .. cancels .. " times")
  assert.are.equal(3, sem:available())
  assert.are.equal(0, inside)
  assert.is_true(max_inside <= 3)
  assert.are.equal(0, q:size())
end

describe("primitives under random cancellation", function()
  for _, seed in ipairs({1, 42, 20261121}) do
    it("lose nothing and leak nothing (seed " .. seed .. ")", H.async(function()
      run_chaos(seed)
    end))
  end
end)
