-- torchvision's DenseNet (densenet121, 161, 169, 201 and the DenseNet class),
-- with the same module tree and state_dict keys (features.conv0.weight,
-- features.denseblock1.denselayer1.norm1.weight, features.transition1.conv
-- .weight, features.norm5.*, classifier.*) and keyword arguments:
--
--   farol.models.densenet121{num_classes = 10}       -- also bn_size, drop_rate
--   farol.models.DenseNet{growth_rate = 8, block_config = {2, 2}, num_init_features = 16}
--
-- memory_efficient is accepted and changes nothing: in torchvision it only
-- trades memory for recomputation (checkpointing).
local farol = require("farol")
local nn = farol.nn
local common = require("farol.models.common")

local DenseLayer = nn.Module:extend("DenseLayer")

function DenseLayer:init(in_c, growth_rate, bn_size, drop_rate)
  self.norm1 = nn.BatchNorm2d(in_c)
  self.relu1 = nn.ReLU()
  self.conv1 = nn.Conv2d(in_c, bn_size * growth_rate, 1, {bias = false})
  self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
  self.relu2 = nn.ReLU()
  self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, {padding = 1, bias = false})
  self.drop_rate = drop_rate
end

-- features: the array of all earlier feature maps
function DenseLayer:forward(features)
  local bottleneck = self.conv1(self.relu1(self.norm1(farol.cat(features, 2))))
  local new = self.conv2(self.relu2(self.norm2(bottleneck)))
  if self.drop_rate > 0 then new = farol.dropout(new, self.drop_rate, self.training) end
  return new
end

-- torchvision's _DenseBlock (a ModuleDict of denselayer1, denselayer2, ...)
local DenseBlock = nn.Module:extend("DenseBlock")

function DenseBlock:init(num_layers, in_c, bn_size, growth_rate, drop_rate)
  rawset(self, "num_layers", num_layers)
  for i = 1, num_layers do
    self["denselayer" .. i] = DenseLayer(in_c + (i - 1) * growth_rate, growth_rate, bn_size, drop_rate)
  end
end

function DenseBlock:forward(x)
  local features = {x}
  for i = 1, self.num_layers do features[#features + 1] = self["denselayer" .. i](features) end
  return farol.cat(features, 2)
end

local function transition(in_c, out_c)
  return nn.Sequential{{"norm", nn.BatchNorm2d(in_c)}, {"relu", nn.ReLU()},
                       {"conv", nn.Conv2d(in_c, out_c, 1, {bias = false})},
                       {"pool", nn.AvgPool2d(2, {stride = 2})}}
end

local DenseNet = nn.Module:extend("DenseNet")

local VALID = {"growth_rate", "block_config", "num_init_features", "bn_size", "drop_rate", "num_classes",
               "memory_efficient"}

function DenseNet:init(arg, ...)
  local fn = "models.DenseNet"
  common.no_extra(fn, select("#", ...))
  local o = common.options(fn, arg, VALID, {growth_rate = 32, block_config = {6, 12, 24, 16},
    num_init_features = 64, bn_size = 4, drop_rate = 0, num_classes = 1000, memory_efficient = false})
  for _, k in ipairs({"growth_rate", "num_init_features", "bn_size"}) do nn._check_int(fn, k, o[k]) end
  if type(o.block_config) ~= "table" or #o.block_config == 0 then
    nn._fail("%s: block_config must be a non-empty array of integers, got %s", fn, tostring(o.block_config))
  end
  for i, n in ipairs(o.block_config) do nn._check_int(fn, "block_config[" .. i .. "]", n) end
  if type(o.drop_rate) ~= "number" or o.drop_rate < 0 or o.drop_rate > 1 then
    nn._fail("%s: drop_rate must be a number in [0, 1], got %s", fn, tostring(o.drop_rate))
  end
  if type(o.memory_efficient) ~= "boolean" then
    nn._fail("%s: memory_efficient must be a boolean, got %s", fn, type(o.memory_efficient))
  end

  local f = {{"conv0", nn.Conv2d(3, o.num_init_features, 7, {stride = 2, padding = 3, bias = false})},
             {"norm0", nn.BatchNorm2d(o.num_init_features)}, {"relu0", nn.ReLU()},
             {"pool0", nn.MaxPool2d(3, {stride = 2, padding = 1})}}
  local c = o.num_init_features
  for i, n in ipairs(o.block_config) do
    f[#f + 1] = {"denseblock" .. i, DenseBlock(n, c, o.bn_size, o.growth_rate, o.drop_rate)}
    c = c + n * o.growth_rate
    if i ~= #o.block_config then
      f[#f + 1] = {"transition" .. i, transition(c, c // 2)}
      c = c // 2
    end
  end
  f[#f + 1] = {"norm5", nn.BatchNorm2d(c)}
  self.features = nn.Sequential(f)
  self.classifier = nn.Linear(c, o.num_classes)

  -- torchvision's init: kaiming_normal_ (fan_in) convolutions, BatchNorm
  -- 1 and 0, Linear bias 0 (its weight keeps nn.Linear's init)
  for name, p in self:named_parameters() do
    if p:dim() == 4 then common.kaiming_normal(p, "fan_in")
    elseif name == "classifier.bias" then common.constant(p, 0)
    elseif name ~= "classifier.weight" then common.constant(p, name:match("weight$") and 1 or 0) end
  end
end

function DenseNet:forward(x)
  local out = farol.adaptive_avg_pool2d(self.features(x):relu(), {1, 1})
  return self.classifier(out:flatten(2))
end

-- densenetNNN(arg): torchvision's fixed growth_rate, block_config and
-- num_init_features; arg: num_classes or {num_classes, bn_size, drop_rate,
-- memory_efficient}
local function variant(name, growth_rate, block_config, num_init_features)
  return function(arg, ...)
    common.no_extra("models." .. name, select("#", ...))
    local o = common.options("models." .. name, arg, {"num_classes", "bn_size", "drop_rate", "memory_efficient"},
                             {num_classes = 1000})
    o.growth_rate, o.block_config, o.num_init_features = growth_rate, block_config, num_init_features
    return DenseNet(o)
  end
end

return {
  DenseNet = DenseNet,
  densenet121 = variant("densenet121", 32, {6, 12, 24, 16}, 64),
  densenet161 = variant("densenet161", 48, {6, 12, 36, 24}, 96),
  densenet169 = variant("densenet169", 32, {6, 12, 32, 32}, 64),
  densenet201 = variant("densenet201", 32, {6, 12, 48, 32}, 64),
}
