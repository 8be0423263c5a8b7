#!/usr/bin/python3
"""PyTorch's modules as the reference for farol.nn modules.

    /usr/bin/python3 tests/tools/make_module_fixtures.py

Writes tests/fixtures/modules/<name>.safetensors, float64, one file per
module kind with variants v1, v2, ...  Metadata per variant:
  vN.module   the farol constructor (a Lua expression over `nn`)
  vN.call     the call (a Lua expression over `m` and the inputs); its
              results are flattened (a table of tensors counts as its
              elements) in the order PyTorch returns them
  vN.inputs   input names;  vN.params  the state_dict keys with gradients
Tensors: vN.<input>, vN.sd.<key> (the state_dict), vN.out<k>,
vN.grad_out<k>, vN.grad.<input>, vN.grad.sd.<param>.  Used by
tests/lua/modules_spec.lua.  Dev tool only (Debian's python3-torch).
"""
import collections
import os

import torch
import torch.nn as nn

from safetensors_io import save_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "modules")


def flatten(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flatten(o)]
    return [out]


class File:
    def __init__(self, name):
        self.name, self.tensors, self.meta, self.n = name, collections.OrderedDict(), {}, 0

    def variant(self, module, lua_module, inputs, lua_call, call=None):
        """inputs: OrderedDict name -> tensor; call(m, *inputs) -> outputs"""
        self.n += 1
        v = "v%d" % self.n
        module = module.double().eval()
        xs = [t.double().clone().requires_grad_(t.is_floating_point()) for t in inputs.values()]
        outs = flatten((call or (lambda m, *a: m(*a)))(module, *xs))
        params = [(k, p) for k, p in module.named_parameters()]
        g_outs = [torch.randn_like(o) for o in outs]
        wrt = [x for x in xs if x.requires_grad] + [p for _, p in params]
        grads = torch.autograd.grad(outs, wrt, g_outs, allow_unused=True)
        t = self.tensors
        for name, x in zip(inputs, xs):
            t[v + "." + name] = x.detach()
        for k, s in module.state_dict().items():
            t[v + ".sd." + k] = s.double() if s.is_floating_point() else s
        for i, (o, g) in enumerate(zip(outs, g_outs)):
            t["%s.out%d" % (v, i + 1)] = o.detach()
            t["%s.grad_out%d" % (v, i + 1)] = g
        names = [n for n, x in zip(inputs, xs) if x.requires_grad] + ["sd." + k for k, _ in params]
        for name, g, w in zip(names, grads, wrt):
            t[v + ".grad." + name] = g if g is not None else torch.zeros_like(w)
        self.meta[v + ".module"] = lua_module
        self.meta[v + ".call"] = lua_call
        self.meta[v + ".inputs"] = ",".join(inputs)
        self.meta[v + ".params"] = ",".join(k for k, _ in params)
        self.meta[v + ".outputs"] = str(len(outs))

    def save(self):
        self.meta["variants"] = ",".join("v%d" % (i + 1) for i in range(self.n))
        path = os.path.join(OUT, self.name + ".safetensors")
        save_safetensors(path, self.tensors, self.meta)
        print("%-14s %d variants, %6d bytes" % (self.name, self.n, os.path.getsize(path)))


def od(**kw):
    return collections.OrderedDict(kw)


def kinks(*points):
    """random values plus the activation's corners, exactly"""
    return torch.cat([torch.randn(20, dtype=torch.float64) * 4, torch.tensor(points, dtype=torch.float64)]).view(1, -1)


def activations():
    cases = [
        ("relu6", nn.ReLU6(), "nn.ReLU6()", (0.0, 6.0, -1.0, 3.0, 7.0, -0.0)),
        ("hardswish", nn.Hardswish(), "nn.Hardswish()", (-3.0, 3.0, 0.0, -4.0, 4.0, 1.0)),
        ("hardsigmoid", nn.Hardsigmoid(), "nn.Hardsigmoid()", (-3.0, 3.0, 0.0, -4.0, 4.0, 1.0)),
        ("silu", nn.SiLU(), "nn.SiLU()", (0.0, -30.0, 30.0, 1.0)),
    ]
    for name, mod, lua, pts in cases:
        f = File(name)
        f.variant(mod, lua, od(x=kinks(*pts)), "m(x)")
        f.save()
    f = File("leaky_relu_module")
    f.variant(nn.LeakyReLU(), "nn.LeakyReLU()", od(x=kinks(0.0, -1.0, 1.0)), "m(x)")
    f.variant(nn.LeakyReLU(0.2), "nn.LeakyReLU(0.2)", od(x=kinks(0.0, -1.0, 1.0)), "m(x)")
    f.save()
    f = File("elu_module")
    f.variant(nn.ELU(), "nn.ELU()", od(x=kinks(0.0, -1.0, 1.0)), "m(x)")
    f.variant(nn.ELU(0.5), "nn.ELU(0.5)", od(x=kinks(0.0, -1.0, 1.0)), "m(x)")
    f.save()


def pools():
    f = File("pool_ceil_mode")
    x7, x8 = torch.randn(2, 3, 7, 7), torch.randn(1, 2, 8, 9)
    f.variant(nn.MaxPool2d(3, 2, ceil_mode=True), "nn.MaxPool2d(3, {stride = 2, ceil_mode = true})",
              od(x=x7), "m(x)")
    f.variant(nn.MaxPool2d(2, ceil_mode=True), "nn.MaxPool2d(2, {ceil_mode = true})", od(x=x7), "m(x)")
    # the last window would start in the right padding: dropped
    f.variant(nn.MaxPool2d(2, 2, padding=1, ceil_mode=True),
              "nn.MaxPool2d(2, {stride = 2, padding = 1, ceil_mode = true})", od(x=x8), "m(x)")
    f.variant(nn.MaxPool2d((3, 2), (2, 3), padding=(1, 0), ceil_mode=True),
              "nn.MaxPool2d({3, 2}, {stride = {2, 3}, padding = {1, 0}, ceil_mode = true})", od(x=x8), "m(x)")
    for cip in (True, False):
        lc = "true" if cip else "false"
        f.variant(nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=cip),
                  "nn.AvgPool2d(3, {stride = 2, padding = 1, ceil_mode = true, count_include_pad = %s})" % lc,
                  od(x=x8), "m(x)")
        f.variant(nn.AvgPool2d(2, 3, padding=1, count_include_pad=cip),
                  "nn.AvgPool2d(2, {stride = 3, padding = 1, count_include_pad = %s})" % lc, od(x=x7), "m(x)")
    f.variant(nn.AvgPool2d(3, 2, ceil_mode=True), "nn.AvgPool2d(3, {stride = 2, ceil_mode = true})",
              od(x=x8[0]), "m(x)")
    f.save()


def rnns():
    for kind, cls in (("lstm", nn.LSTM), ("gru", nn.GRU)):
        f = File(kind)
        K = kind.upper()
        lstm = kind == "lstm"
        # seq-first, one layer, no state
        f.variant(cls(3, 4), "nn.%s(3, 4)" % K, od(x=torch.randn(5, 2, 3)), "m(x)")
        # batch_first, two layers, bidirectional, with an initial state
        m = cls(3, 4, num_layers=2, batch_first=True, bidirectional=True)
        h0, c0 = torch.randn(4, 2, 4), torch.randn(4, 2, 4)
        lua = "nn.%s(3, 4, {num_layers = 2, batch_first = true, bidirectional = true})" % K
        if lstm:
            f.variant(m, lua, od(x=torch.randn(2, 5, 3), h0=h0, c0=c0), "m(x, {h0, c0})",
                      lambda m, x, h, c: m(x, (h, c)))
        else:
            f.variant(m, lua, od(x=torch.randn(2, 5, 3), h0=h0), "m(x, h0)")
        # unbatched input, no bias, three layers
        f.variant(cls(2, 3, num_layers=3, bias=False), "nn.%s(2, 3, {num_layers = 3, bias = false})" % K,
                  od(x=torch.randn(4, 2)), "m(x)")
        # dropout between layers has no effect in eval mode
        f.variant(cls(3, 2, num_layers=2, dropout=0.5), "nn.%s(3, 2, {num_layers = 2, dropout = 0.5})" % K,
                  od(x=torch.randn(3, 1, 3)), "m(x)")
        f.save()


def sequential():
    f = File("sequential")
    m = nn.Sequential(collections.OrderedDict([
        ("conv", nn.Conv2d(2, 3, 3, padding=1)), ("bn", nn.BatchNorm2d(3)), ("act", nn.Hardswish()),
        ("pool", nn.MaxPool2d(2, ceil_mode=True)), ("flat", nn.Flatten()), ("fc", nn.Linear(27, 4))]))
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.2, 0.2)
    f.variant(m, 'nn.Sequential{{"conv", nn.Conv2d(2, 3, 3, {padding = 1})}, {"bn", nn.BatchNorm2d(3)}, '
                 '{"act", nn.Hardswish()}, {"pool", nn.MaxPool2d(2, {ceil_mode = true})}, '
                 '{"flat", nn.Flatten()}, {"fc", nn.Linear(27, 4)}}',
              od(x=torch.randn(2, 2, 5, 5)), "m(x)")
    f.save()


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    activations()
    pools()
    rnns()
    sequential()


if __name__ == "__main__":
    main()
