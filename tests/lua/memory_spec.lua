-- Tensor memory lives outside Lua's heap: the binding drives the collector
-- from the engine's live bytes, so loops stay flat without collectgarbage.
local farol = require("farol")
local nn = farol.nn

local function rss_mib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) / 1024 end
  end
end

describe("memory", function()
  it("keeps a flat RSS over 3000 attributions with no collectgarbage", function()
    farol.manual_seed(3)
    local model = nn.Sequential(nn.Conv2d(3, 16, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2),
                                nn.Conv2d(16, 16, 3, {padding = 1}), nn.ReLU(), nn.Flatten(),
                                nn.Linear(16 * 16 * 16, 10)):eval()
    local x = farol.randn(4, 3, 32, 32)  -- about 48 KiB in, 260 KiB of activations per call
    local sal = farol.Saliency(model)
    local samples = {}
    for i = 1, 3000 do
      local a = sal:attribute(x, (i % 10) + 1)
      assert(a:size(1) == 4)
      if i % 500 == 0 then samples[#samples + 1] = rss_mib() end
    end
    -- without accounting this loop would hold ~800 MiB of dead tensors;
    -- allow generous slack for allocator noise, none for growth
    local first, last = samples[1], samples[#samples]
    assert.is_true(last - first < 64, string.format("RSS grew from %.0f to %.0f MiB", first, last))
    local live = farol.memory()
    assert.is_true(live < 256 * 2^20, "engine holds " .. live .. " bytes")
  end)

  it("collects dead tensors once 16 MiB of them pile up, not later", function()
    collectgarbage()
    local base = farol.memory()
    local _, _, runs0 = farol.memory()
    local highest, runs = 0, 0
    for _ = 1, 300 do
      local t = farol.zeros(256, 1024)  -- 1 MiB, dead at the next iteration
      local live, _, n = farol.memory()
      -- once farol has collected inside this loop its threshold is set from
      -- what survived: twice that, at least 16 MiB
      if n > runs0 then runs = n - runs0; highest = math.max(highest, live - base) end
      assert(t:size(1) == 256)
    end
    assert.is_true(runs >= 2, "farol collected " .. runs .. " times over 300 MiB of garbage")
    assert.is_true(highest <= 17 * 2^20, string.format("dead tensors reached %.1f MiB", highest / 2^20))
    assert.is_true(highest >= 8 * 2^20, string.format("collected too eagerly: %.1f MiB", highest / 2^20))
    collectgarbage()  -- leave no garbage for the exact counts below
  end)

  it("frees a tensor at once with x:free(), and refuses it afterwards", function()
    local before, state_before = farol.memory()
    local x = farol.zeros(1024, 1024)
    local live, state = farol.memory()
    assert.equals(before + 4 * 2^20, live)
    assert.equals(state_before + 4 * 2^20, state)  -- counted for this lua_State
    local row = x[1]                               -- a view counts its own extent
    assert.equals(state_before + 4 * 2^20 + 4096, select(2, farol.memory()))
    row:free()
    x:free()
    live, state = farol.memory()
    assert.equals(before, live)
    assert.equals(state_before, state)
    local ok, err = pcall(function() return x + 1 end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("tensor was freed", 1, true))
    assert.equals("tensor(<freed>)", tostring(x))
    x:free()  -- idempotent
  end)

  it("keeps one account per lua_State when farol is opened again", function()
    local x = farol.ones(256, 256)
    package.loaded.farol = nil
    local again = require("farol")
    package.loaded.farol = farol
    local _, before = again.memory()
    x:free()
    local _, after = again.memory()
    assert.equals(before - 2^18, after)
    assert.is_true(after >= 0)
  end)

  it("releases <close> variables at the end of their scope", function()
    local before = farol.memory()
    do
      local x <close> = farol.ones(512, 512)
      assert.equals(before + 2^20, farol.memory())
    end
    assert.equals(before, farol.memory())
  end)

  it("releases the graph with its outputs", function()
    collectgarbage()
    local before = farol.memory()
    do
      local w = farol.randn(256, 256):requires_grad(true)
      local y = farol.randn(64, 256)
      for _ = 1, 10 do y = farol.linear(y, w):tanh() end
      y:sum():backward()
      assert.is_true(farol.memory() > before)
    end
    collectgarbage()
    collectgarbage()
    assert.equals(before, farol.memory())
  end)
end)
