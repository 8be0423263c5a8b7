-- farol.models: architectures with torchvision's names and state_dict keys.
return {
  resnet18 = require("farol.models.resnet18"),
}
