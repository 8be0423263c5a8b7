-- torchvision's VGG (vgg11 ... vgg19_bn, the VGG class and make_layers),
-- with the same module tree and state_dict keys (features.0.weight,
-- features.1.running_mean, classifier.0.weight ...) and keyword arguments:
--
--   farol.models.vgg11_bn{num_classes = 10}          -- also init_weights, dropout
--   farol.models.VGG(farol.models.vgg_layers({64, "M", 128}, true), {num_classes = 10})
--
-- The classifier takes C x 7 x 7 features, C the output channels of the
-- last convolution in features (512 in every torchvision configuration).
-- farol's one addition: `width` (default 4096, torchvision's fixed value),
-- the classifier's hidden width, so a narrowed VGG can be built and tested.
local farol = require("farol")
local nn = farol.nn
local common = require("farol.models.common")

local VGG = nn.Module:extend("VGG")

-- the output channels of the last convolution in m (depth first), or nil
local function last_channels(m)
  local c = m.out_channels
  for _, child in m:named_children() do c = last_channels(child) or c end
  return c
end

-- VGG(features [, num_classes | {num_classes = 1000, init_weights = true,
-- dropout = 0.5, width = 4096}])
function VGG:init(features, arg, ...)
  local fn = "models.VGG"
  common.no_extra(fn, select("#", ...))
  if not nn.is_module(features) then nn._fail("%s: features must be a module, got %s", fn, type(features)) end
  local o = common.options(fn, arg, {"num_classes", "init_weights", "dropout", "width"},
                           {num_classes = 1000, init_weights = true, dropout = 0.5, width = 4096})
  nn._check_int(fn, "width", o.width)
  if type(o.init_weights) ~= "boolean" then
    nn._fail("%s: init_weights must be a boolean, got %s", fn, type(o.init_weights))
  end
  self.features = features
  self.avgpool = nn.AdaptiveAvgPool2d({7, 7})
  local c, w = last_channels(features) or 512, o.width
  self.classifier = nn.Sequential(nn.Linear(c * 7 * 7, w), nn.ReLU(), nn.Dropout(o.dropout),
                                  nn.Linear(w, w), nn.ReLU(), nn.Dropout(o.dropout),
                                  nn.Linear(w, o.num_classes))
  if not o.init_weights then return end
  -- torchvision's init: kaiming_normal_ (fan_out) convolutions, BatchNorm
  -- 1 and 0, Linear N(0, 0.01), biases 0
  for name, p in self:named_parameters() do
    if p:dim() == 4 then common.kaiming_normal(p, "fan_out")
    elseif p:dim() == 2 then common.normal(p, 0.01)
    elseif name:match("^features") and name:match("weight$") then common.constant(p, 1)
    else common.constant(p, 0) end
  end
end

function VGG:forward(x)
  return self.classifier(self.avgpool(self.features(x)):flatten(2))
end

-- torchvision's make_layers: cfg lists output channels, "M" a 2x2 max pool
local function make_layers(cfg, batch_norm)
  local fn = "models.vgg_layers"
  if type(cfg) ~= "table" then nn._fail("%s: cfg must be an array, got %s", fn, type(cfg)) end
  local layers, in_c = {}, 3
  for i, v in ipairs(cfg) do
    if v == "M" then
      layers[#layers + 1] = nn.MaxPool2d(2, {stride = 2})
    else
      nn._check_int(fn, "cfg[" .. i .. "]", v)
      layers[#layers + 1] = nn.Conv2d(in_c, v, 3, {padding = 1})
      if batch_norm then layers[#layers + 1] = nn.BatchNorm2d(v) end
      layers[#layers + 1] = nn.ReLU()
      in_c = v
    end
  end
  return nn.Sequential(table.unpack(layers))
end

local cfgs = {
  A = {64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"},
  B = {64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"},
  D = {64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"},
  E = {64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"},
}

local M = {VGG = VGG, vgg_layers = make_layers, vgg_cfgs = cfgs}
for depth, cfg in pairs({[11] = "A", [13] = "B", [16] = "D", [19] = "E"}) do
  -- torchvision's vggNN(**kwargs): num_classes, init_weights, dropout
  for _, bn in ipairs({false, true}) do
    local name = "vgg" .. depth .. (bn and "_bn" or "")
    M[name] = function(arg, ...)
      common.no_extra("models." .. name, select("#", ...))
      farol.check_options(type(arg) == "table" and arg or nil, "models." .. name,
                          {"num_classes", "init_weights", "dropout"})
      return VGG(make_layers(cfgs[cfg], bn), arg)
    end
  end
end
return M
