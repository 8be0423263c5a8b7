#!/usr/bin/env python3
"""Writes tests/fixtures/empty_shapes.lua: every op with a 0 in each dim of
its inputs, run in PyTorch 1.13 (forward, and backward for a given
grad_output), for tests/lua/empty_shapes_spec.lua.

    /usr/bin/python3 tests/tools/make_empty_shapes.py > tests/fixtures/empty_shapes.lua

A case holds the Lua call (inputs a, b, c, d, e; `farol` in scope), the
PyTorch call, the inputs (float inputs are filled with fill(n, k) and
require a gradient; index inputs are 0-based here, 1-based in Lua), and
PyTorch's result: output shapes, dtypes and values, and the gradients of
sum(out_k * g_k) with g_k = fill(numel, 100 + k).  When PyTorch raises,
the case carries `err`, the text farol's message must contain."""
import math
import torch
import torch.nn.functional as F

torch.manual_seed(0)
CASES = []


def fill(n, k):
    return [((i * 7 + k * 3) % 11 - 5) / 4 for i in range(n)]


def numel(shape):
    return math.prod(shape)


def f(*shape, grad=True):
    return {"kind": "float", "shape": list(shape), "grad": grad}


def idx(shape, values):
    return {"kind": "index", "shape": list(shape), "values": list(values)}


def mask(*shape):
    return {"kind": "mask", "shape": list(shape)}


def case(name, lua, fn, inputs, err=None, onebased=False, differs=None, ref=None):
    """differs: why farol's result is not PyTorch's; ref then computes farol's
    expected result in PyTorch (or err gives farol's error)"""
    CASES.append(dict(name=name, lua=lua, fn=fn, inputs=inputs, err=err,
                      onebased=onebased, differs=differs, ref=ref))


def zeroed(shape, d):
    s = list(shape)
    s[d] = 0
    return tuple(s)


def sh(shape):
    return ", ".join(str(s) for s in shape)


def build(spec, k):
    if spec["kind"] == "float":
        t = torch.tensor(fill(numel(spec["shape"]), k), dtype=torch.float64).reshape(spec["shape"])
        return t.requires_grad_(spec["grad"])
    if spec["kind"] == "mask":
        n = numel(spec["shape"])
        return torch.tensor([float(i % 2) for i in range(n)], dtype=torch.float64).reshape(spec["shape"])
    return torch.tensor(spec["values"], dtype=torch.int64).reshape(spec["shape"])


# ---- the cases

B3 = (2, 3, 4)
for d in range(3):
    s = zeroed(B3, d)
    for op, sym in (("add", "+"), ("sub", "-"), ("mul", "*"), ("div", "/")):
        case(f"{op} [{sh(s)}] and [{sh(s[1:])}]", f"a {sym} b",
             lambda a, b, op=op: getattr(torch, op)(a, b), [f(*s), f(*s[1:])])
    case(f"pow [{sh(s)}] ^ [1, {s[2]}]", "a:pow(b)", torch.pow,
         [f(*s), f(1, s[2])])
    case(f"pow_scalar [{sh(s)}]", "a ^ 2", lambda a: a ** 2, [f(*s)])
    case(f"neg [{sh(s)}]", "-a", lambda a: -a, [f(*s)])
    case(f"where [{sh(s)}]", "farol.where(c, a, b)", lambda a, b, c: torch.where(c != 0, a, b),
         [f(*s), f(s[2]), mask(*s)])
    case(f"masked_fill [{sh(s)}]", "a:masked_fill(b, -1)", lambda a, c: a.masked_fill(c != 0, -1),
         [f(*s), mask(*s)])
    case(f"eq [{sh(s)}]", "a:eq(b)", lambda a, b: torch.eq(a, b).to(a.dtype),
         [f(*s, grad=False), f(*s[1:], grad=False)])
    for op in ("abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu",
               "gelu", "silu", "softplus", "sign", "relu6", "hardswish", "hardsigmoid"):
        tfn = {"gelu": F.gelu, "silu": F.silu, "softplus": F.softplus, "relu": torch.relu,
               "relu6": F.relu6, "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid}.get(
            op, getattr(torch, op, None))
        case(f"{op} [{sh(s)}]", f"a:{op}()", lambda a, tfn=tfn: tfn(a), [f(*s)])
    case(f"leaky_relu [{sh(s)}]", "a:leaky_relu(0.1)", lambda a: F.leaky_relu(a, 0.1), [f(*s)])
    case(f"elu [{sh(s)}]", "a:elu()", lambda a: F.elu(a), [f(*s)])
    case(f"clamp [{sh(s)}]", "a:clamp(-0.5, 0.5)", lambda a: a.clamp(-0.5, 0.5), [f(*s)])

# arithmetic where broadcasting makes the 0: [0] with [3, 1]
case("add [3, 1] and [0]", "a + b", lambda a, b: a + b, [f(3, 1), f(0)])
case("mul [0, 1] and [4]", "a * b", lambda a, b: a * b, [f(0, 1), f(4)])

# reductions over every dim, all dims, with and without keepdim
REDUCE_ERRS = {"amax": "amax", "amin": "amin"}
for d in range(3):
    s = zeroed(B3, d)
    for op in ("sum", "mean", "var", "std", "amax", "amin", "logsumexp", "norm"):
        tfn = {"norm": lambda a, dim=None, keepdim=False: a.norm(dim=dim, keepdim=keepdim) if dim is not None
               else a.norm()}.get(op)
        if tfn is None:
            tfn = (lambda op: lambda a, dim=None, keepdim=False:
                   getattr(a, op)() if dim is None else getattr(a, op)(dim, keepdim=keepdim))(op)
        if op != "logsumexp":   # logsumexp has no all-dims form
            case(f"{op} [{sh(s)}]", f"a:{op}()", lambda a, tfn=tfn: tfn(a), [f(*s)],
                 err=f"farol: {op}: cannot reduce an empty tensor" if op in REDUCE_ERRS else None)
        for rd in range(3):
            for keep in (False, True):
                err = None
                if op in REDUCE_ERRS and s[rd] == 0:
                    err = f"farol: {op}: cannot reduce over dim {rd + 1} of size 0"
                case(f"{op} [{sh(s)}] dim {rd + 1}{' keepdim' if keep else ''}",
                     f"a:{op}({rd + 1}, {str(keep).lower()})",
                     lambda a, tfn=tfn, rd=rd, keep=keep: tfn(a, rd, keep), [f(*s)], err=err)
    for op in ("max", "min"):
        for rd in range(3):
            err = f"farol: {op}: cannot reduce over dim {rd + 1} of size 0" if s[rd] == 0 else None
            case(f"{op} [{sh(s)}] dim {rd + 1}", f"a:{op}({rd + 1})",
                 lambda a, op=op, rd=rd: tuple(getattr(a, op)(rd)), [f(*s)], err=err, onebased=True)
    for op in ("argmax", "argmin"):
        case(f"{op} [{sh(s)}]", f"a:{op}()", lambda a, op=op: getattr(a, op)(), [f(*s)],
             err=f"farol: {op}: cannot reduce an empty tensor", onebased=True)
        for rd in range(3):
            err = f"farol: {op}: cannot reduce over dim {rd + 1} of size 0" if s[rd] == 0 else None
            case(f"{op} [{sh(s)}] dim {rd + 1}", f"a:{op}({rd + 1})",
                 lambda a, op=op, rd=rd: getattr(a, op)(rd), [f(*s)], err=err, onebased=True)
    for op in ("softmax", "log_softmax"):
        for rd in range(3):
            case(f"{op} [{sh(s)}] dim {rd + 1}", f"farol.{op}(a, {rd + 1})",
                 lambda a, op=op, rd=rd: getattr(F, op)(a, rd), [f(*s)])
for op in ("sum", "mean", "amax", "logsumexp"):
    case(f"{op} of a 0-d tensor", f"a:{op}(1)", lambda a, op=op: getattr(a, op)(0), [f()])

# matrix products: a 0 in M, K, N and in the batch
for M, K, N in ((0, 3, 4), (2, 0, 4), (2, 3, 0)):
    case(f"matmul [{M}, {K}] @ [{K}, {N}]", "farol.matmul(a, b)", torch.matmul, [f(M, K), f(K, N)])
    case(f"matmul [2, {M}, {K}] @ [{K}, {N}]", "farol.matmul(a, b)", torch.matmul, [f(2, M, K), f(K, N)])
    case(f"linear [{M}, {K}] w [{N}, {K}] b [{N}]", "farol.linear(a, b, c)", F.linear,
         [f(M, K), f(N, K), f(N)])
    case(f"linear [{M}, {K}] w [{N}, {K}]", "farol.linear(a, b)", F.linear, [f(M, K), f(N, K)])
case("matmul [0, 2, 3] @ [3, 4]", "farol.matmul(a, b)", torch.matmul, [f(0, 2, 3), f(3, 4)])
case("matmul [0] @ [0]", "farol.matmul(a, b)", torch.matmul, [f(0), f(0)])
case("matmul [0] @ [0, 3]", "farol.matmul(a, b)", torch.matmul, [f(0), f(0, 3)])
case("matmul [2, 0] @ [0]", "farol.matmul(a, b)", torch.matmul, [f(2, 0), f(0)])
# empty operands whose strides are not those of their shape (views)
case("matmul [0, 3]^T @ [0, 5]", "farol.matmul(a:t(), b)", lambda a, b: a.t() @ b, [f(0, 3), f(0, 5)])
case("linear [0, 3]^T w [4, 0] b [4]", "farol.linear(a:t(), b, c)", lambda a, b, c: F.linear(a.t(), b, c),
     [f(0, 3), f(4, 0), f(4)])
case("linear [2, 0, 3]^T w [4, 3]", "farol.linear(a:transpose(1, 2), b)",
     lambda a, b: F.linear(a.transpose(0, 1), b), [f(2, 0, 3), f(4, 3)])
case("linear [3, 2, 0] w [4, 0] b [4]", "farol.linear(a, b, c)", F.linear, [f(3, 2, 0), f(4, 0), f(4)])

# convolutions
case("conv2d batch 0", "farol.conv2d(a, b, c)", F.conv2d, [f(0, 3, 6, 6), f(4, 3, 3, 3), f(4)])
case("conv2d batch 0, stride, padding, dilation",
     "farol.conv2d(a, b, c, {stride = 2, padding = 1, dilation = 2})",
     lambda a, b, c: F.conv2d(a, b, c, stride=2, padding=1, dilation=2),
     [f(0, 3, 7, 7), f(4, 3, 3, 3), f(4)])
case("conv2d batch 0, groups 2", "farol.conv2d(a, b, nil, {groups = 2})",
     lambda a, b: F.conv2d(a, b, groups=2), [f(0, 4, 5, 5), f(6, 2, 3, 3)])
case("conv2d batch 0, no bias", "farol.conv2d(a, b)", F.conv2d, [f(0, 3, 5, 5), f(4, 3, 3, 3)])
case("conv2d height 0", "farol.conv2d(a, b)", F.conv2d, [f(2, 3, 0, 5), f(4, 3, 3, 3)],
     err="farol: conv2d: output size is not positive")
case("conv2d height 0 with padding", "farol.conv2d(a, b, nil, {padding = 2})",
     lambda a, b: F.conv2d(a, b, padding=2), [f(2, 3, 0, 5), f(4, 3, 3, 3)],
     err="farol: conv2d: input 0 x 5 is empty: only the batch or the channels may be 0")
case("conv2d 0 output channels", "farol.conv2d(a, b)", F.conv2d, [f(2, 3, 5, 5), f(0, 3, 3, 3)],
     err="farol: conv2d: x and w need at least one channel, got 3 and 0")
case("conv2d 0 input channels", "farol.conv2d(a, b, c)", F.conv2d, [f(2, 0, 5, 5), f(4, 0, 3, 3), f(4)],
     differs="a sum over 0 channels is 0, so the output is the bias, as linear's with 0 features",
     ref=lambda a, b, c: F.conv2d(torch.cat([a, torch.zeros(2, 1, 5, 5)], 1),
                                  torch.cat([b, torch.zeros(4, 1, 3, 3)], 1), c))
case("conv1d batch 0", "farol.conv1d(a, b, c)", F.conv1d, [f(0, 3, 6), f(4, 3, 3), f(4)])
case("conv1d batch 0, stride 2, padding 1", "farol.conv1d(a, b, nil, {stride = 2, padding = 1})",
     lambda a, b: F.conv1d(a, b, stride=2, padding=1), [f(0, 3, 6), f(4, 3, 3)])
case("conv1d length 0", "farol.conv1d(a, b)", F.conv1d, [f(2, 3, 0), f(4, 3, 3)],
     err="farol: conv1d: output size is not positive")

# pools
for op, tfn in (("max_pool2d", F.max_pool2d), ("avg_pool2d", F.avg_pool2d)):
    case(f"{op} batch 0", f"farol.{op}(a, 2)", lambda a, tfn=tfn: tfn(a, 2), [f(0, 3, 4, 4)])
    case(f"{op} batch 0, stride 1, padding 1", f"farol.{op}(a, 3, {{stride = 1, padding = 1}})",
         lambda a, tfn=tfn: tfn(a, 3, stride=1, padding=1), [f(0, 2, 4, 4)])
    case(f"{op} 0 channels", f"farol.{op}(a, 2)", lambda a, tfn=tfn: tfn(a, 2), [f(2, 0, 4, 4)],
         err=f"farol: {op}: x [2, 0, 4, 4] has an empty channel or spatial dim (only the batch may be 0)")
    case(f"{op} height 0", f"farol.{op}(a, 2)", lambda a, tfn=tfn: tfn(a, 2), [f(2, 3, 0, 4)],
         err=f"farol: {op}: x [2, 3, 0, 4] has an empty channel or spatial dim")
case("adaptive_avg_pool2d batch 0", "farol.adaptive_avg_pool2d(a, {2, 2})",
     lambda a: F.adaptive_avg_pool2d(a, (2, 2)), [f(0, 3, 5, 5)])
case("adaptive_avg_pool2d 0 channels", "farol.adaptive_avg_pool2d(a, {2, 2})",
     lambda a: F.adaptive_avg_pool2d(a, (2, 2)), [f(2, 0, 5, 5)])
case("adaptive_avg_pool2d output height 0", "farol.adaptive_avg_pool2d(a, {0, 2})",
     lambda a: F.adaptive_avg_pool2d(a, (0, 2)), [f(2, 3, 5, 5)])
case("adaptive_avg_pool2d height 0", "farol.adaptive_avg_pool2d(a, {2, 2})",
     lambda a: F.adaptive_avg_pool2d(a, (2, 2)), [f(2, 3, 0, 5)],
     err="farol: adaptive_avg_pool2d: input planes must not be empty, got 0 x 5")

# norms
def bn_ref(a, b, c, d, e):  # PyTorch's CPU kernel fails on 0 channels with weights
    return a * 1 + (d.sum() + e.sum() + b.sum() + c.sum()) * 0


for s in ((0, 3, 2, 2), (2, 0, 2, 2), (2, 3, 0, 2), (2, 3, 2, 0)):
    c = s[1]
    case(f"batch_norm [{sh(s)}]", "farol.batch_norm(a, b, c, d, e)",
         lambda a, b, c, d, e: F.batch_norm(a, b, c, d, e),
         [f(*s), f(c, grad=False), {"kind": "float", "shape": [c], "grad": False, "positive": True},
          f(c), f(c)],
         differs="the empty result" if c == 0 else None, ref=bn_ref if c == 0 else None)
for s, ns in (((0, 4), (4,)), ((3, 0), (0,)), ((2, 0, 3), (3,)), ((2, 3, 0), (3, 0))):
    case(f"layer_norm [{sh(s)}] over [{sh(ns)}]", f"farol.layer_norm(a, {{{sh(ns)}}}, b, c)",
         lambda a, b, c, ns=ns: F.layer_norm(a, ns, b, c), [f(*s), f(*ns), f(*ns)])

# lookups and losses
case("embedding of 0 indices", "farol.embedding(a, b)", F.embedding, [idx((0,), []), f(4, 3)])
case("embedding of [2, 0] indices", "farol.embedding(a, b)", F.embedding, [idx((2, 0), []), f(4, 3)])
case("embedding into width 0", "farol.embedding(a, b)", F.embedding, [idx((2,), [1, 3]), f(4, 0)])
case("embedding of 0 indices into 0 rows", "farol.embedding(a, b)", F.embedding, [idx((0,), []), f(0, 3)])
case("cross_entropy of batch 0", "farol.cross_entropy(a, b)", F.cross_entropy, [f(0, 3), idx((0,), [])])
case("cross_entropy of 0 classes", "farol.cross_entropy(a, b)", F.cross_entropy, [f(2, 0), idx((2,), [0, 0])],
     err="farol: cross_entropy: label 1 (element 1 of labels) is out of range for 0 classes")
case("mse_loss of [0, 3]", "farol.mse_loss(a, b)", F.mse_loss, [f(0, 3), f(0, 3)])
case("dropout of [0, 3] in training", "farol.dropout(a, 0.5, true)", lambda a: F.dropout(a, 0.5, True),
     [f(0, 3)])
case("dropout of [0, 3] in eval", "farol.dropout(a, 0.5, false)", lambda a: F.dropout(a, 0.5, False),
     [f(0, 3)])
case("pad [0, 3] last dim", "farol.pad(a, {1, 2})", lambda a: F.pad(a, (1, 2)), [f(0, 3)])
case("pad [0, 3] both dims", "farol.pad(a, {1, 1, 1, 1}, 2)", lambda a: F.pad(a, (1, 1, 1, 1), value=2.0),
     [f(0, 3)])
case("pad [0] to [3]", "farol.pad(a, {1, 2})", lambda a: F.pad(a, (1, 2)), [f(0)])

# shapes and views
case("view [0, 3] as [3, 0]", "a:view(3, 0)", lambda a: a.view(3, 0), [f(0, 3)])
case("view [0, 3] as [-1, 6]", "a:view(-1, 6)", lambda a: a.view(-1, 6), [f(0, 3)])
case("view [0, 3] as [-1, 0]", "a:view(-1, 0)", lambda a: a.view(-1, 0), [f(0, 3)],
     err="farol: view: cannot infer the -1 in [-1, 0] for a tensor of shape [0, 3]")
case("reshape [2, 0, 3] to [-1]", "a:reshape(-1)", lambda a: a.reshape(-1), [f(2, 0, 3)])
case("reshape transposed [3, 0] to [0, 3]", "a:t():reshape(0, 3)", lambda a: a.t().reshape(0, 3), [f(3, 0)])
case("flatten [2, 0, 3]", "a:flatten(2)", lambda a: a.flatten(1), [f(2, 0, 3)])
case("squeeze [0, 1, 3]", "a:squeeze()", lambda a: a.squeeze(), [f(0, 1, 3)])
case("unsqueeze [0, 3]", "a:unsqueeze(2)", lambda a: a.unsqueeze(1), [f(0, 3)])
case("transpose [2, 0, 3]", "a:transpose(1, 3)", lambda a: a.transpose(0, 2), [f(2, 0, 3)])
case("t [0, 3]", "a:t()", lambda a: a.t(), [f(0, 3)])
case("permute [2, 0, 3]", "a:permute(3, 1, 2)", lambda a: a.permute(2, 0, 1), [f(2, 0, 3)])
case("expand [0, 1] to [0, 4]", "a:expand(0, 4)", lambda a: a.expand(0, 4), [f(0, 1)])
case("expand [3, 1] to [3, 0]", "a:expand(3, 0)", lambda a: a.expand(3, 0), [f(3, 1)])
case("expand [3] to [0, 3]", "a:expand(0, 3)", lambda a: a.expand(0, 3), [f(3)])
case("select dim 2 of [0, 3]", "a:select(2, 2)", lambda a: a.select(1, 1), [f(0, 3)])
case("select dim 1 of [0, 3]", "a:select(1, 1)", lambda a: a.select(0, 0), [f(0, 3)],
     err="farol: select: index 1 is out of range for a dim of size 0")
case("narrow [3, 4] to length 0", "a:narrow(1, 2, 0)", lambda a: a.narrow(0, 1, 0), [f(3, 4)])
case("narrow [3, 4] to length 0 at the end", "a:narrow(1, 4, 0)", lambda a: a.narrow(0, 3, 0), [f(3, 4)])
case("index_select of 0 indices", "a:index_select(1, b)", lambda a, b: a.index_select(0, b),
     [f(3, 4), idx((0,), [])])
case("index_select of [0, 4] with 0 indices", "a:index_select(1, b)", lambda a, b: a.index_select(0, b),
     [f(0, 4), idx((0,), [])])
case("index_select of [3, 0]", "a:index_select(1, b)", lambda a, b: a.index_select(0, b),
     [f(3, 0), idx((2,), [2, 0])])
case("contiguous of a transposed [0, 3]", "a:t():contiguous()", lambda a: a.t().contiguous(), [f(0, 3)])
case("clone [0, 3]", "a:clone()", lambda a: a.clone(), [f(0, 3)])
case("to float64 [0, 3]", "a:to('float64')", lambda a: a.to(torch.float64), [f(0, 3)])
case("cat [0, 3] and [2, 3] on dim 1", "farol.cat({a, b}, 1)", lambda a, b: torch.cat([a, b], 0),
     [f(0, 3), f(2, 3)])
case("cat [2, 0] and [2, 3] on dim 2", "farol.cat({a, b}, 2)", lambda a, b: torch.cat([a, b], 1),
     [f(2, 0), f(2, 3)])
case("cat [0, 3] and [0, 3]", "farol.cat({a, b}, 1)", lambda a, b: torch.cat([a, b], 0), [f(0, 3), f(0, 3)])
case("cat [0] and [2, 3] (legacy empty)", "farol.cat({a, b}, 1)", lambda a, b: torch.cat([a, b], 0),
     [f(0), f(2, 3)], err="farol: cat: tensor 2 has shape [2, 3] but tensor 1 has shape [0]",
     differs="farol does not skip 1-D empty tensors in cat (a legacy rule PyTorch keeps): "
             "shapes must match")
case("stack [0, 3] and [0, 3] on dim 2", "farol.stack({a, b}, 2)", lambda a, b: torch.stack([a, b], 1),
     [f(0, 3), f(0, 3)])
case("stack [3, 0] and [3, 0]", "farol.stack({a, b})", lambda a, b: torch.stack([a, b]), [f(3, 0), f(3, 0)])


# ---- running them

def lua_num(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "0/0"
    if math.isinf(v):
        return "math.huge" if v > 0 else "-math.huge"
    r = repr(float(v))
    return r


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_list(vs):
    return "{" + ", ".join(lua_num(v) for v in vs) + "}"


DT = {torch.float32: "float32", torch.float64: "float64", torch.int64: "int64"}


def run(c):
    ins = []
    for k, spec in enumerate(c["inputs"]):
        t = build(spec, k)
        if spec.get("positive"):
            t = (t.detach().abs() + 0.5).requires_grad_(spec["grad"])
            spec["values"] = t.flatten().tolist()
        ins.append(t)
    out = {"name": c["name"], "lua": c["lua"], "inputs": c["inputs"], "differs": c["differs"]}
    try:
        res = c["fn"](*ins)
        torch_says = "gives " + (str(list(res.shape)) if isinstance(res, torch.Tensor) else "a tuple")
    except Exception as e:
        res, torch_says = None, "raises: " + str(e).split("\n")[0]
    if c["differs"]:
        assert c["err"] or c["ref"], c["name"]
        out["differs"] = c["differs"] + " (PyTorch " + torch_says + ")"
        if c["err"]:
            out["err"] = c["err"]
            return out
        res = c["ref"](*ins)
    elif res is None:  # PyTorch refuses: so must farol
        assert c["err"], f"{c['name']}: PyTorch {torch_says} but the case has no err"
        out["err"] = c["err"]
        return out
    elif c["err"]:
        raise AssertionError(f"{c['name']}: PyTorch {torch_says} but the case expects an error")
    res = res if isinstance(res, tuple) else (res,)
    outs = []
    for r in res:
        v = r.detach().flatten().tolist()
        if r.dtype == torch.int64 and c["onebased"]:
            v = [x + 1 for x in v]
        outs.append({"shape": list(r.shape), "dtype": DT[r.dtype], "values": v})
    out["outputs"] = outs
    floats = [r for r in res if r.is_floating_point() and r.requires_grad]
    wrt = [t for t in ins if t.is_floating_point() and t.requires_grad]
    if floats and wrt:
        gos = [torch.tensor(fill(r.numel(), 100 + k), dtype=r.dtype).reshape(r.shape)
               for k, r in enumerate(floats)]
        try:
            gs = torch.autograd.grad(floats, wrt, gos, allow_unused=True)
        except RuntimeError as e:  # a PyTorch backward that refuses empty shapes
            gs = [None] * len(wrt)
            out["differs"] = ("farol's gradients are the zeros they must be; PyTorch's backward "
                              "raises: " + str(e).split("\n")[0])
        out["grads"] = [{"shape": list(t.shape),
                         "values": (g if g is not None else torch.zeros_like(t)).flatten().tolist()}
                        for t, g in zip(wrt, gs)]
    return out


def emit_spec(s):
    parts = [f'kind = "{s["kind"]}"', "shape = " + lua_list(s["shape"])]
    if s["kind"] == "index":
        parts.append("values = " + lua_list([v + 1 for v in s["values"]]))
    if s["kind"] == "float":
        parts.append("grad = " + ("true" if s["grad"] else "false"))
        if "values" in s:
            parts.append("values = " + lua_list(s["values"]))
    return "{" + ", ".join(parts) + "}"


def main():
    print("-- Generated by tests/tools/make_empty_shapes.py with PyTorch " + torch.__version__ +
          "; do not edit.")
    print("-- Every op with a 0 in each dim: PyTorch's outputs and gradients (see the generator).")
    print("return {")
    for c in CASES:
        r = run(c)
        lines = [f"  {{name = {lua_str(r['name'])}, lua = {lua_str(r['lua'])},"]
        lines.append("   inputs = {" + ", ".join(emit_spec(s) for s in r["inputs"]) + "},")
        if "err" in r:
            lines.append(f"   err = {lua_str(r['err'])},")

        else:
            lines.append("   outputs = {" + ", ".join(
                "{shape = " + lua_list(o["shape"]) + f', dtype = "{o["dtype"]}", values = ' +
                lua_list(o["values"]) + "}" for o in r["outputs"]) + "},")
            if "grads" in r:
                lines.append("   grads = {" + ", ".join(
                    "{shape = " + lua_list(g["shape"]) + ", values = " + lua_list(g["values"]) + "}"
                    for g in r["grads"]) + "},")
        if r.get("differs"):  # farol's choice; the spec prints these
            lines.append(f"   differs = {lua_str(r['differs'])},")
        lines.append("  },")
        print("\n".join(lines))
    print("}")


if __name__ == "__main__":
    main()
