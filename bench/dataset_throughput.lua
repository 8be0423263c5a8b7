-- Throughput of the dataset driver (farol.dataset.run, Saliency, predicted
-- class) on the bench CNN (bench/models.lua, 3x32x32 inputs) at 1 and 2
-- threads, from a safetensors file of random examples; prints images/s.
--   build/farol bench/dataset_throughput.lua [examples=1024] [batch=64] [threads=1,2]
local farol = require("farol")
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local models = dofile(here .. "/models.lua")

local n = math.tointeger(tonumber(arg[1] or "1024"))
local batch = math.tointeger(tonumber(arg[2] or "64"))
farol.manual_seed(0)
local model = models.cnn()
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)
local data = tmp .. "/examples.safetensors"
farol.save(data, {images = farol.rand(n, 3, 32, 32)})

local thread_counts = {}
for t in (arg[3] or "1,2"):gmatch("%d+") do thread_counts[#thread_counts + 1] = math.tointeger(tonumber(t)) end
for _, threads in ipairs(thread_counts) do
  farol.set_num_threads(threads)
  local out = string.format("%s/out-%d", tmp, threads)
  local s = farol.dataset.run{source = data, model = model, out = out, batch_size = batch, shard_size = 256,
                              progress = false}
  print(string.format("dataset driver, bench cnn, Saliency: %d threads: %d images in %.2f s, %.1f images/s",
                      threads, s.attributed, s.seconds, s.rate))
end
os.execute("rm -rf " .. tmp)
