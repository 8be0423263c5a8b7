-- One benchmark model, timed as a user calls it:
--   build/farol bench/run.lua --model NAME [--threads N] [--repeats K]
-- prints one line:
--   bench impl=farol model=NAME threads=N forward_ms=.. saliency_ms=.. ms_per_example=.. gflops=.. rss_mib=..
-- (medians of K calls after 3 warm-ups, K = 10 unless given; rss = the process's peak RSS)
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = here .. "/?.lua;" .. package.path
local farol = require("farol")
local models = require("models")

local opts = {threads = farol.get_num_threads(), repeats = 10}
local i = 1
while i <= #arg do
  local key = arg[i]:match("^%-%-(%w+)$")
  if not key or arg[i + 1] == nil then error("usage: run.lua --model NAME [--threads N] [--repeats K]", 0) end
  opts[key] = arg[i + 1]
  i = i + 2
end
local name = opts.model
if not (name and models[name]) then error("run.lua: --model must be one of mlp, cnn, resnet18, transformer", 0) end
local threads, repeats = math.tointeger(tonumber(opts.threads)), math.max(1, math.tointeger(tonumber(opts.repeats)))

farol.set_num_threads(threads)
farol.manual_seed(1234)
local model, x, target, extra = models[name]()
model:eval()

local function median_ms(fn) return models.median_ms(fn, repeats, 3) end

local function peak_rss_mib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then return tonumber(kb) / 1024 end
  end
  return 0
end

local forward_ms = median_ms(function() return farol.no_grad(model, x, extra) end)
local sal = farol.Saliency(model)
local saliency_ms = median_ms(function() return sal:attribute(x, target, true, extra) end)
local n = x:size(1)
print(string.format("bench impl=farol model=%s threads=%d forward_ms=%.2f saliency_ms=%.2f "
  .. "ms_per_example=%.3f gflops=%.1f rss_mib=%.0f", name, threads, forward_ms, saliency_ms,
  saliency_ms / n, 2 * models.forward_gflop[name] / (saliency_ms / 1e3), peak_rss_mib()))
