-- torchvision's MobileNetV2 (mobilenet_v2), with the same module tree and
-- state_dict keys (features.0.0.weight, features.1.conv.0.0.weight, ...,
-- classifier.1.weight) and the same keyword arguments:
--
--   local m = farol.models.mobilenet_v2{num_classes = 10, width_mult = 0.5}
--   -- also: inverted_residual_setting, round_nearest, dropout
local farol = require("farol")
local nn = farol.nn
local common = require("farol.models.common")

-- torchvision's _make_divisible: v rounded to a multiple of divisor, never
-- more than 10% below v
local function make_divisible(v, divisor)
  local new_v = math.max(divisor, math.floor(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v then new_v = new_v + divisor end
  return math.tointeger(new_v)
end

-- Conv2dNormActivation: conv (no bias, "same" padding), BatchNorm, ReLU6
local function conv_bn_relu6(in_c, out_c, k, stride, groups)
  return nn.Sequential(
    nn.Conv2d(in_c, out_c, k, {stride = stride, padding = (k - 1) // 2, groups = groups, bias = false}),
    nn.BatchNorm2d(out_c), nn.ReLU6())
end

local InvertedResidual = nn.Module:extend("InvertedResidual")

function InvertedResidual:init(inp, oup, stride, expand_ratio)
  local hidden = math.floor(inp * expand_ratio + 0.5)
  rawset(self, "use_res_connect", stride == 1 and inp == oup)
  local layers = {}
  if expand_ratio ~= 1 then layers[#layers + 1] = conv_bn_relu6(inp, hidden, 1, 1, 1) end
  layers[#layers + 1] = conv_bn_relu6(hidden, hidden, 3, stride, hidden)
  layers[#layers + 1] = nn.Conv2d(hidden, oup, 1, {bias = false})
  layers[#layers + 1] = nn.BatchNorm2d(oup)
  self.conv = nn.Sequential(table.unpack(layers))
end

function InvertedResidual:forward(x)
  if self.use_res_connect then return x + self.conv(x) end
  return self.conv(x)
end

local MobileNetV2 = nn.Module:extend("MobileNetV2")

local DEFAULT_SETTING = {
  {1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
}

function MobileNetV2:init(arg, ...)
  local fn = "models.mobilenet_v2"
  common.no_extra(fn, select("#", ...))
  local o = common.options(fn, arg, {"num_classes", "width_mult", "inverted_residual_setting", "round_nearest",
                                     "dropout"},
                           {num_classes = 1000, width_mult = 1.0, round_nearest = 8, dropout = 0.2,
                            inverted_residual_setting = DEFAULT_SETTING})
  if type(o.width_mult) ~= "number" or o.width_mult <= 0 then
    nn._fail("%s: width_mult must be a positive number, got %s", fn, tostring(o.width_mult))
  end
  nn._check_int(fn, "round_nearest", o.round_nearest)
  local setting = o.inverted_residual_setting
  if type(setting) ~= "table" or #setting == 0 then
    nn._fail("%s: inverted_residual_setting must be a non-empty array of {t, c, n, s}", fn)
  end
  for i, row in ipairs(setting) do
    if type(row) ~= "table" or #row ~= 4 then
      nn._fail("%s: inverted_residual_setting[%d] must be {t, c, n, s}", fn, i)
    end
    for j = 1, 4 do nn._check_int(fn, "inverted_residual_setting[" .. i .. "][" .. j .. "]", row[j]) end
  end

  local wm, rn = o.width_mult, o.round_nearest
  local input_channel = make_divisible(32 * wm, rn)
  local last_channel = make_divisible(1280 * math.max(1.0, wm), rn)
  local features = {conv_bn_relu6(3, input_channel, 3, 2, 1)}
  for _, row in ipairs(setting) do
    local t, c, n, s = table.unpack(row)
    local output_channel = make_divisible(c * wm, rn)
    for i = 1, n do
      features[#features + 1] = InvertedResidual(input_channel, output_channel, i == 1 and s or 1, t)
      input_channel = output_channel
    end
  end
  features[#features + 1] = conv_bn_relu6(input_channel, last_channel, 1, 1, 1)
  self.features = nn.Sequential(table.unpack(features))
  self.classifier = nn.Sequential(nn.Dropout(o.dropout), nn.Linear(last_channel, o.num_classes))
  self.last_channel = last_channel

  -- torchvision's init
  for name, p in self:named_parameters() do
    if p:dim() == 4 then common.kaiming_normal(p, "fan_out")
    elseif name:match("^classifier") then
      if p:dim() == 2 then common.normal(p, 0.01) else common.constant(p, 0) end
    elseif name:match("weight$") then common.constant(p, 1)
    else common.constant(p, 0) end
  end
end

function MobileNetV2:forward(x)
  x = farol.adaptive_avg_pool2d(self.features(x), {1, 1})
  return self.classifier(x:flatten(2))
end

return MobileNetV2
