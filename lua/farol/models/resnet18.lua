-- torchvision's resnet18, with the same module tree and state_dict keys
-- (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc ...), so weights
-- exported from torchvision load with a strict load_state_dict.
--
--   local resnet18 = require("farol.models.resnet18")
--   local model = resnet18(10)            -- or resnet18{num_classes = 10}
--   model:load_state_dict(farol.load("resnet18.safetensors")); model:eval()
local farol = require("farol")
local nn = farol.nn

-- torchvision's init: kaiming_normal_(mode = "fan_out", nonlinearity =
-- "relu") for convolutions; BatchNorm weight 1, bias 0 and fc as nn.Linear
local function conv(in_c, out_c, k, stride, padding)
  local c = nn.Conv2d(in_c, out_c, k, {stride = stride, padding = padding, bias = false})
  local std = math.sqrt(2 / (out_c * k * k))
  farol.no_grad(function() c.weight:copy_(farol.randn(out_c, in_c, k, k) * std) end)
  return c
end

local BasicBlock = nn.Module:extend("BasicBlock")

function BasicBlock:init(in_c, out_c, stride)
  self.conv1 = conv(in_c, out_c, 3, stride, 1)
  self.bn1 = nn.BatchNorm2d(out_c)
  self.relu = nn.ReLU()
  self.conv2 = conv(out_c, out_c, 3, 1, 1)
  self.bn2 = nn.BatchNorm2d(out_c)
  if stride ~= 1 or in_c ~= out_c then
    self.downsample = nn.Sequential(conv(in_c, out_c, 1, stride, 0), nn.BatchNorm2d(out_c))
  end
end

function BasicBlock:forward(x)
  local out = self.relu(self.bn1(self.conv1(x)))
  out = self.bn2(self.conv2(out))
  local identity = self.downsample and self.downsample(x) or x
  return self.relu(out + identity)
end

local ResNet = nn.Module:extend("ResNet")

function ResNet:init(num_classes)
  self.conv1 = conv(3, 64, 7, 2, 3)
  self.bn1 = nn.BatchNorm2d(64)
  self.relu = nn.ReLU()
  self.maxpool = nn.MaxPool2d(3, {stride = 2, padding = 1})
  local widths, in_c = {64, 128, 256, 512}, 64
  for i, w in ipairs(widths) do
    local stride = i == 1 and 1 or 2
    self["layer" .. i] = nn.Sequential(BasicBlock(in_c, w, stride), BasicBlock(w, w, 1))
    in_c = w
  end
  self.avgpool = nn.AdaptiveAvgPool2d({1, 1})
  self.fc = nn.Linear(512, num_classes)
end

function ResNet:forward(x)
  x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
  x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
  return self.fc(self.avgpool(x):flatten(2))
end

-- resnet18([num_classes = 1000]) or resnet18{num_classes = n}
return function(arg, ...)
  if select("#", ...) > 0 then
    nn._fail("models.resnet18: takes one argument (num_classes or an options table), got %d more", select("#", ...))
  end
  local num_classes = arg
  if type(arg) == "table" then
    farol.check_options(arg, "models.resnet18", {"num_classes"})
    num_classes = arg.num_classes
  end
  if num_classes == nil then num_classes = 1000 end
  nn._check_int("models.resnet18", "num_classes", num_classes)
  return ResNet(num_classes)
end
