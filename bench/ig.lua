-- Integrated Gradients against Saliency on a benchmark model, as users call
-- them:
--   build/farol bench/ig.lua [--model cnn] [--threads N] [--repeats K] [--methods 1]
-- prints one line for IG (n_steps 50, internal_batch_size 64; ig_over_saliency
-- the median over repeats of IG's time over the mean of a Saliency call just
-- before and just after it):
--   bench ig model=cnn threads=N saliency_ms=.. ig_ms=.. ig_over_saliency=.. forward_rows=..
-- With --methods 1, one more line per method of the gradient family with its
-- time and its multiple of one Saliency call (medians of K calls, K = 3
-- unless given, after one warm-up), and the many-targets call against K
-- separate ones.
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = here .. "/?.lua;" .. package.path
local farol = require("farol")
local models = require("models")

local opts = {model = "cnn", threads = farol.get_num_threads(), repeats = 3, methods = "0"}
local i = 1
while i <= #arg do
  local key = arg[i]:match("^%-%-(%w+)$")
  if not key or opts[key] == nil or arg[i + 1] == nil then
    error("usage: ig.lua [--model NAME] [--threads N] [--repeats K] [--methods 1]", 0)
  end
  opts[key] = arg[i + 1]
  i = i + 2
end
local name = opts.model
if not models[name] then error("ig.lua: --model must be one of mlp, cnn, resnet18, transformer", 0) end
local repeats = math.max(1, math.tointeger(tonumber(opts.repeats)))
farol.set_num_threads(math.tointeger(tonumber(opts.threads)))
farol.manual_seed(1234)
local model, x, target, extra = models[name]()
model:eval()

local function median_ms(fn) return models.median_ms(fn, repeats, 1) end

-- counts the rows the model sees (IG's chunking)
local rows = 0
local counted = function(...)
  rows = rows + select(1, ...):size(1)
  return model(...)
end

local sal = farol.Saliency(model)
local sal_opts = {target = target, additional_forward_args = extra}
local ig = farol.IntegratedGradients(counted)
local ig_opts = {target = target, additional_forward_args = extra, n_steps = 50, internal_batch_size = 64}
-- on a shared machine the load drifts: each repeat times Saliency just
-- before and after IG, and the ratio is the median of the per-repeat ratios
local function timed(fn)
  local t0 = farol.clock()
  fn()
  return (farol.clock() - t0) * 1e3
end
sal:attribute(x, sal_opts)
rows = 0
ig:attribute(x, ig_opts)
local ig_rows = rows
local ratios, sal_t, ig_t = {}, {}, {}
for k = 1, repeats do
  local s1 = timed(function() sal:attribute(x, sal_opts) end)
  ig_t[k] = timed(function() ig:attribute(x, ig_opts) end)
  local s2 = timed(function() sal:attribute(x, sal_opts) end)
  sal_t[k] = (s1 + s2) / 2
  ratios[k] = ig_t[k] / sal_t[k]
end
local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end
local saliency_ms = median(sal_t)
print(string.format("bench ig model=%s threads=%d saliency_ms=%.1f ig_ms=%.1f ig_over_saliency=%.1f "
  .. "forward_rows=%d", name, farol.get_num_threads(), saliency_ms, median(ig_t), median(ratios), ig_rows))

if opts.methods ~= "1" then return end

-- the layer each model's layer methods look at, and the int-free forward
local layers = {mlp = function(m) return m[3] end, cnn = function(m) return m[8] end,
                resnet18 = function(m) return m.layer4 end, transformer = function(m) return m.layer2 end}
local layer = layers[name](model)
local function line(what, ms)
  print(string.format("bench method model=%s %s_ms=%.1f over_saliency=%.2f", name, what, ms, ms / saliency_ms))
end
local base = {target = target, additional_forward_args = extra}
local function with(t)
  local o = {}
  for k, v in pairs(base) do o[k] = v end
  for k, v in pairs(t) do o[k] = v end
  return o
end
line("input_x_gradient", median_ms(function() return farol.InputXGradient(model):attribute(x, base) end))
-- IG in chunks of one step (internal_batch_size = N): one batch of 50 N rows
-- costs far more memory and, on the cnn, twice the time
line("ig_50_steps", median_ms(function()
  return farol.IntegratedGradients(model):attribute(x, with{n_steps = 50, internal_batch_size = x:size(1)})
end))
line("smoothgrad_5_samples", median_ms(function()
  return farol.NoiseTunnel(farol.Saliency(model)):attribute(x, with{nt_samples = 5, stdevs = 0.1})
end))
line("guided_backprop", median_ms(function() return farol.GuidedBackprop(model):attribute(x, base) end))
line("deconvolution", median_ms(function() return farol.Deconvolution(model):attribute(x, base) end))
line("layer_gradcam", median_ms(function() return farol.LayerGradCam(model, layer):attribute(x, base) end))
if name == "cnn" or name == "resnet18" then
  line("guided_gradcam", median_ms(function() return farol.GuidedGradCam(model, layer):attribute(x, base) end))
end
line("layer_ig_50_steps", median_ms(function()
  return farol.LayerIntegratedGradients(model, layer):attribute(x, with{n_steps = 50, internal_batch_size = x:size(1)})
end))
-- many targets: up to 3 classes in one expanded batch against separate calls
local classes = farol.no_grad(model, x, extra):size(2)
local targets = {}
for t = 1, math.min(3, classes) do targets[t] = t end
local one = median_ms(function() return sal:attribute(x, {targets = targets, additional_forward_args = extra}) end)
local three = median_ms(function()
  for _, t in ipairs(targets) do sal:attribute(x, {target = t, additional_forward_args = extra}) end
end)
print(string.format("bench targets model=%s k=%d one_call_ms=%.1f separate_calls_ms=%.1f ratio=%.2f",
  name, #targets, one, three, one / three))
