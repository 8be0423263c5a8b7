#!/usr/bin/python3
"""torchvision's models as the reference for farol.models: Saliency at 64x64.

    /usr/bin/python3 tests/tools/make_model_fixtures.py

Writes tests/fixtures/models/<name>.safetensors for resnet18, mobilenet_v2
(width 1.0 and 0.75), squeezenet1_1, densenet121 and vgg11_bn, each with
num_classes 10, in eval mode.  Used by tests/lua/models_spec.lua.

Weights are full size, yet the files stay small: every convolution and
linear weight and bias is made by a formula that farol computes the same
way (`formula` below: a float64 hash of the index with a kaiming scale,
seeded by the parameter's name), so only the BatchNorm tensors are stored.  Those
are non-trivial: running statistics are the exact averages over three
training-mode batches (momentum None), then weight ~ U(0.5, 1.5) and
bias ~ U(-0.2, 0.2).

vgg11_bn is narrowed: its features are torchvision's configuration "A" with
BatchNorm at full size, but the classifier's 4096-wide hidden layers are 64
wide (replaced after construction; farol's VGG takes `width = 64`), since
torchvision fixes them and they alone hold 120M weights.

Each file holds: the BatchNorm state (sd.<key>), `input` (2x3x64x64),
`target` (1-based classes, int64: example 1's top class, example 2's
second), `logits` and `saliency` (Captum's Saliency with abs, computed as
|d logits[n, target[n]] / d input|) in float32, the same from the model in
float64 as `logits_f64` and `saliency_f64`, and metadata: `build` (the Lua constructor over `models`), `keys`
(torchvision's state_dict keys in order).  Dev tool only.
"""
import math
import os

import torch
import torchvision

from safetensors_io import save_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "models")


def seed(name):
    return sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 9973


def formula(name, shape):
    """A hash of the flat index i, in float64, then float32:
    trunc(frac(sin(i * 12.9898 + seed / 1000) * 43758.5453) * 4096) / 4096
    * scale (frac keeps the sign, so values spread over (-1, 1)); scale sqrt(6 / fan_in) for weights
    (kaiming's variance), 0.1 for biases.  (A plain sine of i would make
    every weight matrix rank 2.)"""
    n = math.prod(shape)
    scale = math.sqrt(6 / (n // shape[0])) if len(shape) >= 2 else 0.1
    i = torch.arange(n, dtype=torch.float64)
    u = torch.frac(torch.sin(i * 12.9898 + seed(name) / 1000) * 43758.5453)
    u = torch.trunc(u * 4096) / 4096  # 12 bits: libm's last-bit differences cannot show
    return (u * scale).float().view(shape)


def bn_names(model):
    out = set()
    for mname, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for k in m.state_dict():
                out.add(mname + "." + k)
    return out


def make(name, model, build):
    torch.manual_seed(1)
    bn = bn_names(model)
    sd = model.state_dict()
    with torch.no_grad():
        for k, t in sd.items():
            if k not in bn:
                t.copy_(formula(k, list(t.shape)))
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running statistics: the exact batch average
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 64, 64))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # the top class of example 1, the second of example 2
        order = model(x).argsort(dim=1, descending=True)
    target = torch.stack([order[0, 0], order[1, 1]])

    def saliency(m, inp):
        inp = inp.clone().requires_grad_(True)
        logits = m(inp)
        g, = torch.autograd.grad(logits[torch.arange(2), target].sum(), inp)
        return logits.detach(), g.abs()

    logits, sal = saliency(model, x)
    logits64, sal64 = saliency(model.double(), x.double())
    tensors = {"sd." + k: t for k, t in model.float().state_dict().items() if k in bn}
    tensors.update(input=x, target=target + 1, logits=logits, saliency=sal, logits_f64=logits64,
                   saliency_f64=sal64)
    meta = {"build": build, "keys": ",".join(sd.keys())}
    path = os.path.join(OUT, name + ".safetensors")
    save_safetensors(path, tensors, meta)
    print("%-16s %5d keys %8d bytes; float32 vs float64: logits %.2e (max %.2e), saliency %.2e (max %.2e)" % (
        name, len(sd), os.path.getsize(path), (logits.double() - logits64).abs().max(), logits64.abs().max(),
        (sal.double() - sal64).abs().max(), sal64.abs().max()))


def main():
    os.makedirs(OUT, exist_ok=True)
    tv = torchvision.models
    make("resnet18", tv.resnet18(num_classes=10), "models.resnet18{num_classes = 10}")
    make("mobilenet_v2", tv.mobilenet_v2(num_classes=10), "models.mobilenet_v2{num_classes = 10}")
    make("mobilenet_v2_w075", tv.mobilenet_v2(num_classes=10, width_mult=0.75),
         "models.mobilenet_v2{num_classes = 10, width_mult = 0.75}")
    make("squeezenet1_1", tv.squeezenet1_1(num_classes=10), "models.squeezenet1_1{num_classes = 10}")
    make("densenet121", tv.densenet121(num_classes=10), "models.densenet121{num_classes = 10}")
    vgg = tv.vgg11_bn(num_classes=10, init_weights=False)
    vgg.classifier[0] = torch.nn.Linear(512 * 7 * 7, 64)
    vgg.classifier[3] = torch.nn.Linear(64, 64)
    vgg.classifier[6] = torch.nn.Linear(64, 10)
    make("vgg11_bn_narrow", vgg,
         "models.VGG(models.vgg_layers(models.vgg_cfgs.A, true), {num_classes = 10, width = 64})")


if __name__ == "__main__":
    main()
