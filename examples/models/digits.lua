-- The shipped digit classifier as a farol model, for examples/digits.lua and
-- the dataset driver (`scripts/attribute --model examples/models/digits.lua`).
-- Returns {model, transform, meta}: transform turns any picture into the
-- model's input, a 1 x 8 x 8 grey image in [0, 1].
local farol = require("farol")
local nn = farol.nn

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

-- layer for layer as in examples/train/train_digits.py
local model = nn.Sequential(
  nn.Conv2d(1, 16, 3, {padding = 1}), nn.ReLU(), nn.Conv2d(16, 32, 3, {padding = 1}), nn.ReLU(),
  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 10))
local weights, meta = farol.load(here .. "/digits_cnn.safetensors")
model:load_state_dict(weights)
model:eval()

local function transform(img)
  if img:size(1) == 3 then img = farol.image.to_grayscale(img) end
  if img:size(1) ~= 1 then error("farol: digits: need a grey or RGB picture, got " .. img:size(1) .. " channels", 0) end
  if img:size(2) ~= 8 or img:size(3) ~= 8 then img = farol.image.resize(img, {8, 8}) end
  return img
end

return {model = model, transform = transform, meta = meta}
