-- What a trained digit classifier looks at.  The weights were trained once
-- by examples/train/train_digits.py (PyTorch, scikit-learn's 8x8 digits) and
-- ship with farol, as do 360 held-out digits; everything here is farol.
--
--   build/farol examples/digits.lua [--out DIR] [--count N]
--
-- Prints the accuracy on the held-out digits, attributes a few of them (the
-- predicted class) with Saliency and, when farol has them, Integrated
-- Gradients, SmoothGrad (NoiseTunnel) and Grad-CAM, and writes a PNG grid:
-- each row a digit, each column a method, titles giving the classes.
local farol = require("farol")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local out_dir, count = "build/demo", 4
local i = 1
while arg and arg[i] do
  if arg[i] == "--out" and arg[i + 1] then
    out_dir, i = arg[i + 1], i + 2
  elseif arg[i] == "--count" and tonumber(arg[i + 1]) then
    count, i = math.tointeger(tonumber(arg[i + 1])), i + 2
  else
    io.stderr:write("usage: digits.lua [--out DIR] [--count N]\n")
    os.exit(2)
  end
end
if not count or count < 1 or count > 20 then
  io.stderr:write("digits.lua: --count must be 1 to 20\n")
  os.exit(2)
end
local t0 = farol.clock()

-- the model (examples/models/digits.lua builds it and loads the weights)
local digits = dofile(here .. "/models/digits.lua")
local model, meta = digits.model, digits.meta
local data = farol.load(here .. "/data/digits_test.safetensors")
local images, labels = data.images, data.labels   -- labels: the digits 0-9

-- accuracy on the held-out digits (class k is digit k - 1)
local logits = farol.no_grad(model, images)
local _, predicted = logits:max(2)
local n, correct = #labels, 0
local pred, label = predicted:totable(), labels:totable()
for k = 1, n do
  if pred[k] == label[k] + 1 then correct = correct + 1 end
end
print(string.format("digit classifier: %d of %d held-out digits right, accuracy %.2f %% "
                    .. "(training script reported %.2f %%)", correct, n, 100 * correct / n,
                    100 * tonumber(meta.test_accuracy)))

-- a few digits: the first of several classes, and the first mistake if any
local picks, seen = {}, {}
for k = 1, n do
  if #picks >= count then break end
  if pred[k] ~= label[k] + 1 and not seen.mistake then
    seen.mistake = true
    picks[#picks + 1] = k
  end
end
for k = 1, n do
  if #picks >= count then break end
  if not seen[label[k]] and pred[k] == label[k] + 1 then
    seen[label[k]] = true
    picks[#picks + 1] = k
  end
end
table.sort(picks)
local x = images:index_select(1, farol.tensor(picks, "int64"))
local target = {}
for j, k in ipairs(picks) do target[j] = pred[k] end

-- the methods farol has; each gives one attribution per digit
local methods = {
  {"Saliency", function() return farol.Saliency(model):attribute(x, target) end, "absolute_value"},
}
if farol.IntegratedGradients then
  methods[#methods + 1] = {"Integ. Grad.", function()
    return farol.IntegratedGradients(model):attribute(x, {target = target, n_steps = 32})
  end, "all"}
end
if farol.NoiseTunnel then
  methods[#methods + 1] = {"SmoothGrad", function()
    farol.manual_seed(0)
    return farol.NoiseTunnel(farol.Saliency(model)):attribute(x, {target = target, nt_type = "smoothgrad",
                                                               nt_samples = 16, stdevs = 0.15})
  end, "absolute_value"}
end
if farol.LayerGradCam and farol.LayerAttribution then
  methods[#methods + 1] = {"Grad-CAM", function()
    local cam = farol.LayerGradCam(model, model[3]):attribute(x, {target = target, relu_attributions = true})
    return farol.LayerAttribution.interpolate(cam, {8, 8}, "bilinear")
  end, "positive"}
end

local results = {}
for m, method in ipairs(methods) do
  local ok, attr = pcall(method[2])
  if ok then
    results[#results + 1] = {name = method[1], attr = attr, sign = method[3]}
  else
    io.stderr:write(string.format("digits.lua: %s skipped: %s\n", method[1], tostring(attr)))
  end
end

-- the grid: the digit, then each method's heat map, then Saliency blended
local rows = {}
for j, k in ipairs(picks) do
  local digit = x[j]
  local row = {{image = digit, method = "original_image",
                title = string.format("target %d\npred %d%s", label[k], pred[k] - 1,
                                      pred[k] == label[k] + 1 and "" or " (!)")}}
  for _, r in ipairs(results) do
    row[#row + 1] = {attr = r.attr[j], image = digit, method = "heat_map", sign = r.sign,
                     title = j == 1 and r.name .. "\n" .. r.sign:gsub("_value", "") or nil}
  end
  row[#row + 1] = {attr = results[1].attr[j], image = digit, method = "blended_heat_map",
                   sign = "absolute_value", title = j == 1 and "Saliency\nblended" or nil}
  rows[#rows + 1] = row
end
os.execute("mkdir -p '" .. out_dir:gsub("'", "'\\''") .. "'")
local path = out_dir .. "/digits_attributions.png"
farol.viz.grid(rows, {path = path, scale = 12})
local names = {}
for _, r in ipairs(results) do names[#names + 1] = r.name end
print(string.format("attributed %d digits with %s", #picks, table.concat(names, ", ")))
print("heat maps written to " .. path)
print(string.format("(%.2f s)", farol.clock() - t0))
