-- torchvision's SqueezeNet 1.0 and 1.1, with the same module tree and
-- state_dict keys (features.3.squeeze.weight, classifier.1.weight ...) and
-- keyword arguments (num_classes, dropout).  Its max pools use ceil_mode.
--
--   local m = farol.models.squeezenet1_1{num_classes = 10}
local farol = require("farol")
local nn = farol.nn
local common = require("farol.models.common")

local Fire = nn.Module:extend("Fire")

function Fire:init(inplanes, squeeze, e1, e3)
  self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
  self.squeeze_activation = nn.ReLU()
  self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
  self.expand1x1_activation = nn.ReLU()
  self.expand3x3 = nn.Conv2d(squeeze, e3, 3, {padding = 1})
  self.expand3x3_activation = nn.ReLU()
end

function Fire:forward(x)
  x = self.squeeze_activation(self.squeeze(x))
  return farol.cat({self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))}, 2)
end

local SqueezeNet = nn.Module:extend("SqueezeNet")

local function pool() return nn.MaxPool2d(3, {stride = 2, ceil_mode = true}) end

-- SqueezeNet(version, [num_classes | {num_classes = 1000, dropout = 0.5}]),
-- version "1_0" or "1_1"
function SqueezeNet:init(version, arg, ...)
  local fn = "models.SqueezeNet"
  common.no_extra(fn, select("#", ...))
  local o = common.options(fn, arg, {"num_classes", "dropout"}, {num_classes = 1000, dropout = 0.5})
  if version == "1_0" then
    self.features = nn.Sequential(nn.Conv2d(3, 96, 7, {stride = 2}), nn.ReLU(), pool(),
      Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool(),
      Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
      pool(), Fire(512, 64, 256, 256))
  elseif version == "1_1" then
    self.features = nn.Sequential(nn.Conv2d(3, 64, 3, {stride = 2}), nn.ReLU(), pool(),
      Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
      Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
      Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
  else
    nn._fail("%s: version must be \"1_0\" or \"1_1\", got %s", fn, tostring(version))
  end
  local final_conv = nn.Conv2d(512, o.num_classes, 1)
  self.classifier = nn.Sequential(nn.Dropout(o.dropout), final_conv, nn.ReLU(), nn.AdaptiveAvgPool2d({1, 1}))
  self.num_classes = o.num_classes

  -- torchvision's init: kaiming_uniform_ convolutions, the final one N(0, 0.01)
  for name, p in self:named_parameters() do
    if name == "classifier.1.weight" then common.normal(p, 0.01)
    elseif p:dim() == 4 then common.kaiming_uniform(p)
    else common.constant(p, 0) end
  end
end

function SqueezeNet:forward(x)
  return self.classifier(self.features(x)):flatten(2)
end

return {
  SqueezeNet = SqueezeNet,
  squeezenet1_0 = function(arg, ...)
    common.no_extra("models.squeezenet1_0", select("#", ...))
    return SqueezeNet("1_0", arg)
  end,
  squeezenet1_1 = function(arg, ...)
    common.no_extra("models.squeezenet1_1", select("#", ...))
    return SqueezeNet("1_1", arg)
  end,
}
