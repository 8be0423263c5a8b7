-- The work of one thread's lua_State in tests/c/threads_lua.c: a small CNN
-- built from this state's seed, and the calls the test repeats.  Loaded as
-- a chunk with the seed as its argument; returns a table of functions.
local farol = require("farol")
local nn = farol.nn
local seed = ...

-- one thread per state: no OpenMP team, and sums in a fixed order, so every
-- result is bitwise reproducible
farol.set_num_threads(1)
farol.manual_seed(seed)
local model = nn.Sequential(
  nn.Conv2d(3, 16, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(16, 16, 3, {padding = 1}), nn.ReLU(), nn.Flatten(),
  nn.Linear(16 * 16 * 16, 32), nn.Tanh(), nn.Linear(32, 10))
model:eval()
local x = farol.randn(4, 3, 32, 32)
local target = {}
for i = 1, 4 do target[i] = (seed + i) % 10 + 1 end
local sal = farol.Saliency(model)

local W = {}

-- Saliency of the CNN: a (4, 3, 32, 32) float32 tensor
function W.attribute() return sal:attribute(x, target) end

-- a forward with the tape off in this thread only: other threads'
-- attributions must still record theirs
function W.forward_no_grad() return farol.no_grad(model, x) end

-- 64 normals from a seed of this state
function W.random()
  farol.manual_seed(seed * 7 + 1)
  return farol.randn(64)
end

-- a farol error whose message names this state's seed
function W.error()
  local ok, err = pcall(function() return farol.zeros(seed, 3):view(7, seed) end)
  assert(not ok)
  return err
end

return W
