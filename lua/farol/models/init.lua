-- farol.models: architectures with torchvision's names, keyword arguments
-- (as an options table, or a number for num_classes) and state_dict keys.
local models = {
  resnet18 = require("farol.models.resnet18"),
  mobilenet_v2 = require("farol.models.mobilenet_v2"),
}
for _, part in ipairs({"squeezenet", "densenet", "vgg"}) do
  for k, v in pairs(require("farol.models." .. part)) do models[k] = v end
end
return models
