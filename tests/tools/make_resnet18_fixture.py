#!/usr/bin/python3
"""torchvision's resnet18 as the reference for farol.models.resnet18.

    /usr/bin/python3 tests/tools/make_resnet18_fixture.py [DATA.safetensors]

Always writes tests/fixtures/models/resnet18_keys.txt (torchvision's
state_dict keys, in its order).  With a path, also writes there (~45 MB, so
outside the repository) a float32 safetensors file for a numeric check:
the state_dict of resnet18(num_classes=10) with non-trivial BatchNorm
statistics, an input `input` (2 x 3 x 64 x 64), `output_eval` (eval mode),
and, from one training-mode forward on a copy, `output_train` and the
updated buffers as `train.<name>` for bn1 and layer4.1.bn2.  Then run

    FAROL_RESNET18_FIXTURE=DATA.safetensors busted tests/lua/nn_spec.lua

Dev tool only (Debian's python3-torchvision); farol does not depend on it.
"""
import copy
import os
import sys

import torch
import torchvision

from safetensors_io import save_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(HERE, "..", "fixtures", "models", "resnet18_keys.txt")


def main():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    keys = list(model.state_dict().keys())
    os.makedirs(os.path.dirname(KEYS), exist_ok=True)
    with open(KEYS, "w") as f:
        f.write("\n".join(keys) + "\n")
    print(f"{len(keys)} keys -> {os.path.relpath(KEYS)}")
    if len(sys.argv) < 2:
        return

    # realistic running statistics from a few training-mode batches, then
    # affine BatchNorm parameters away from 1 and 0
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 64, 64))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(2, 3, 64, 64)
    out = {name: t for name, t in model.state_dict().items()}
    out["input"] = x
    model.eval()
    with torch.no_grad():
        out["output_eval"] = model(x)
        trained = copy.deepcopy(model).train()
        out["output_train"] = trained(x)
    sd = trained.state_dict()
    for prefix in ("bn1.", "layer4.1.bn2."):
        for b in ("running_mean", "running_var", "num_batches_tracked"):
            out["train." + prefix + b] = sd[prefix + b]
    save_safetensors(sys.argv[1], out)
    print(f"weights, input and outputs -> {sys.argv[1]}")


if __name__ == "__main__":
    main()
