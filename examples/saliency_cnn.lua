-- Saliency on a small CNN shipped with farol: which pixels of each image
-- move the predicted class's score the most.
--
--   build/farol examples/saliency_cnn.lua
local farol = require("farol")
local nn = farol.nn

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local weights, meta = farol.load(here .. "/models/cnn_small.safetensors")
print(meta.description)

-- the same architecture as the PyTorch model the weights come from
local model = nn.Sequential(
  nn.Conv2d(1, 4, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 10))
local images = weights.images
weights.images = nil
model:load_state_dict(weights)
model:eval()

-- explain the class each image is predicted as (indices are 1-based)
local logits = farol.no_grad(model, images)
local _, predicted = logits:max(2)
print("predicted classes: " .. table.concat(predicted:totable(), ", "))

local saliency = farol.Saliency(model)
local attribution = saliency:attribute(images, predicted)
print("\nattributions (|d score / d pixel|), shape " .. table.concat(attribution:size(), "x") .. ":")
print(attribution)

-- a quick look: each pixel as a shade, darkest = most salient
local shades = {" ", ".", ":", "-", "=", "+", "*", "#", "%", "@"}
for n = 1, #images do
  local map = attribution[n][1]
  local top = map:max():item()
  print(string.format("\nimage %d, class %d (max attribution %.4f)", n, predicted[n], top))
  for i = 1, map:size(1) do
    local row = {}
    for j = 1, map:size(2) do
      local level = top > 0 and math.floor(map:get(i, j) / top * (#shades - 1) + 0.5) or 0
      row[j] = shades[level + 1]:rep(2)
    end
    print("  |" .. table.concat(row) .. "|")
  end
end
