#!/usr/bin/python3
"""Regenerates the op fixtures (tests/fixtures/ops/*.safetensors) with PyTorch.

Every file describes its cases in its own metadata (see
tests/fixtures/CASES.md, "How to use an ops/ file"): per variant vK the Lua
call, the PyTorch expression `vK.torch` that makes the reference, the input
names, the outputs ("out" or "out,indices") and the inputs whose gradient is
checked.  This script keeps those case definitions and the input shapes,
draws new values and recomputes everything PyTorch computes:

  - an input whose gradient is checked gets its values scaled by a random
    factor in [1 - jitter, 1 + jitter] (signs, domains such as positive
    bases, and distances from kinks are kept); variants whose note starts
    with "kink", "ties" or "boundaries" sit on a special point on purpose and
    keep their inputs exactly, as do index, mask and statistics inputs;
  - grad_out is drawn afresh (standard normal);
  - out (and indices), the gradients, and a float64 central-difference check
    of every smooth variant's gradients (recorded in the metadata; variants
    with an exact 0 in a checked input sit on a kink and are not checked).

Integer inputs and outputs are 1-based in the files, as in the Lua API; the
PyTorch expressions subtract 1 themselves, and integer results get 1 added.

  /usr/bin/python3 tests/tools/make_ops_fixtures.py --out DIR [--from DIR]
      [--seed N] [--jitter 0.05] [op ...]

Python and torch are a tool here, never a farol dependency.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F  # noqa: F401 (used by the vK.torch expressions)

from safetensors_io import read_safetensors, save_safetensors

SPECIAL = ("kink", "ties", "boundaries")


def evaluate(expr, env, outputs):
    """vK.torch evaluated: a list of results as the file stores them"""
    r = eval(expr, {"torch": torch, "F": F, "math": math}, dict(env))  # noqa: S307 (our own files)
    rs = list(r) if isinstance(r, (tuple, list)) else [r]
    if len(outputs) == 1:
        rs = rs[:1]
    return rs


def fd_check(expr, env, outputs, grads_wrt, grad_out, analytic, gen):
    """worst relative error of a directional central difference per input"""
    worst = 0.0
    h = 1e-6
    for name, g in zip(grads_wrt, analytic):
        d = torch.randn(env[name].shape, dtype=torch.float64, generator=gen)
        vals = []
        for s in (1, -1):
            e = dict(env)
            e[name] = (env[name].detach() + s * h * d)
            with torch.no_grad():
                vals.append((evaluate(expr, e, outputs)[0] * grad_out).sum().item())
        num = (vals[0] - vals[1]) / (2 * h)
        ana = (g * d).sum().item()
        worst = max(worst, abs(num - ana) / max(1.0, abs(num)))
    return worst


def regenerate(meta, tensors, gen, jitter):
    out = {}
    worst_fd = 0.0
    for v in meta["variants"].split(","):
        names = [n for n in meta[v + ".inputs"].split(",") if n]
        wrt = [n for n in meta[v + ".grads"].split(",") if n]
        outputs = meta[v + ".outputs"].split(",")
        special = meta.get(v + ".note", "").split(" ")[0].rstrip(":,") in SPECIAL
        env = {}
        for n in names:
            t = tensors[v + "." + n]
            if n in wrt and not special and t.is_floating_point():
                t = t * (1 + jitter * (2 * torch.rand(t.shape, dtype=t.dtype, generator=gen) - 1))
            env[n] = t.clone().requires_grad_(n in wrt)
        results = evaluate(meta[v + ".torch"], env, outputs)
        for n in names:
            out[v + "." + n] = env[n].detach()
        for name, r in zip(outputs, results):
            r = r.detach()
            out[v + "." + name] = r + 1 if not r.is_floating_point() else r.clone()
        if wrt:
            go = torch.randn(results[0].shape, dtype=results[0].dtype, generator=gen)
            gs = torch.autograd.grad(results[0], [env[n] for n in wrt], go)
            out[v + ".grad_out"] = go
            for n, g in zip(wrt, gs):
                out[v + ".grad_" + n] = g.detach()
            # exact zeros are kinks of abs, relu and sign, where differences jump
            if not special and not any((env[n] == 0).any().item() for n in wrt):
                worst_fd = max(worst_fd, fd_check(meta[v + ".torch"], env, outputs, wrt, go, gs, gen))
    # the file's own order of tensors where it had them
    order = [k for k in tensors if k in out] + [k for k in out if k not in tensors]
    return {k: out[k] for k in order}, worst_fd


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="src", default=os.path.join(here, "..", "fixtures", "ops"),
                    help="the fixture files whose cases are regenerated (default tests/fixtures/ops)")
    ap.add_argument("--out", required=True, help="directory for the new files")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--jitter", type=float, default=0.05)
    ap.add_argument("ops", nargs="*", help="only these ops (file names without .safetensors)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    files = sorted(f for f in os.listdir(a.src) if f.endswith(".safetensors"))
    if a.ops:
        files = [f for f in files if f[: -len(".safetensors")] in a.ops]
    torch.set_default_dtype(torch.float64)
    for i, f in enumerate(files):
        meta, tensors = read_safetensors(os.path.join(a.src, f))
        gen = torch.Generator().manual_seed(a.seed + i)
        torch.manual_seed(a.seed + i)
        new, worst = regenerate(meta, tensors, gen, a.jitter)
        meta = dict(meta)
        meta["generator"] = "torch %s via tests/tools/make_ops_fixtures.py" % torch.__version__
        meta["seed"] = str(a.seed + i)
        meta["finite_difference_check"] = (
            "every gradient of a smooth variant agrees with float64 directional central "
            "differences (worst rel err %.1e)" % worst)
        if worst > 1e-6:
            sys.exit("%s: finite differences disagree with autograd (rel err %.2e)" % (f, worst))
        save_safetensors(os.path.join(a.out, f), new, meta)
        print("%-32s %d variants, worst finite-difference rel err %.1e" % (f, len(meta["variants"].split(",")), worst))


if __name__ == "__main__":
    main()
