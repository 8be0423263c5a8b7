-- Memory over a long attribution loop: does RSS level off without the user
-- ever calling collectgarbage?
--   build/farol bench/rss_curve.lua [n]     (n Saliency calls, default 3000)
-- Prints the RSS (VmRSS) and farol.memory() every 100 iterations, then
-- start, end and max lines.  Tensors are Lua userdata of a few bytes each,
-- so Lua's own GC barely sees them; farol runs a full collection when the
-- bytes held by this state's tensors, or the engine's live bytes, double
-- since the last collection (farol.memory() reports both).
local farol = require("farol")
local nn = farol.nn

local n = math.tointeger(tonumber(arg[1] or "3000"))
if not n or n < 1 then error("usage: rss_curve.lua [iterations >= 1]", 0) end

local function rss_mib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) / 1024 end
  end
  error("rss_curve.lua: no VmRSS in /proc/self/status", 0)
end

local function memory_line()
  local live, state, collections = farol.memory()
  return string.format("engine_live_mib=%.1f state_tensors_mib=%.1f collections=%d",
    live / 2 ^ 20, state / 2 ^ 20, collections)
end

farol.manual_seed(1)
local model = nn.Sequential(
  nn.Conv2d(3, 16, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(16, 32, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
  nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10))
model:eval()
local x = farol.randn(16, 3, 32, 32)
local target = {}
for i = 1, 16 do target[i] = (i - 1) % 10 + 1 end
local sal = farol.Saliency(model)

local start = rss_mib()
local max, t0 = start, farol.clock()
print(string.format("rss start iter=0 rss_mib=%.1f %s", start, memory_line()))
for i = 1, n do
  local attr = sal:attribute(x, target)
  if i % 100 == 0 or i == n then
    local rss = rss_mib()
    if rss > max then max = rss end
    print(string.format("rss iter=%d rss_mib=%.1f %s", i, rss, memory_line()))
  end
end
local finish = rss_mib()
if finish > max then max = finish end
print(string.format("rss end iter=%d rss_mib=%.1f %s", n, finish, memory_line()))
print(string.format("rss max rss_mib=%.1f (start %.1f, end %.1f, %.2f s for %d calls)",
  max, start, finish, farol.clock() - t0, n))
