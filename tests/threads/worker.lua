-- The work of one thread's lua_State in tests/c/threads_lua.c: a small CNN
-- built from this state's seed, and the calls the test repeats.  Loaded as
-- a chunk with the seed as its argument; returns a table of functions.
local farol = require("farol")
local nn = farol.nn
local seed, threads = ...

-- one thread per state by default: no OpenMP team, and sums in a fixed
-- order, so every result is bitwise reproducible.  In the mixed run the
-- states ask for different counts; the count is one for the process, so a
-- state asking for another one than the first gets an error (kept in
-- W.set_error) and runs with the count in force.
local set_ok, set_error = pcall(farol.set_num_threads, threads or 1)
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

local W = {set_error = not set_ok and set_error or nil}

-- the thread count this state runs with
function W.threads() return farol.get_num_threads() end

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
