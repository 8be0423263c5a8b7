#!/usr/bin/python3
"""Fixtures for farol's file loaders and writers (tests/fixtures/io/).

    /usr/bin/python3 tests/tools/make_io_fixtures.py          writes the fixtures
    /usr/bin/python3 tests/tools/make_io_fixtures.py --check  also has build/farol
        write .npy files (every dtype it writes) and reads them with numpy

dtypes.safetensors: one tensor per file dtype PyTorch writes (F16, BF16, I32,
I16, I8, U8, BOOL, and F32, F64, I64), named by dtype, each with
`<name>.expect` holding its exact values as float64 (or int64), and
`rounding.src` (float32 values: halfway cases, overflow, subnormals, random)
with `rounding.f16` / `rounding.bf16`, PyTorch's .half() and .bfloat16() of it.
npy/<dtype>.npy: numpy.save of the same values (plus a Fortran-order float16,
and uint16 / uint32 arrays [[max, 0, 1], [2, 3, 4]]).
The safetensors file is written by hand (the format is a JSON header and raw
little-endian bytes), so only torch and numpy are needed (Debian's
python3-torch, python3-numpy).  Dev tool only: farol's tests read the files.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from safetensors_io import save_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "io")
ROOT = os.path.join(HERE, "..", "..")

def values():
    """name -> tensor of that dtype (2 x 3 or so, with edge values)"""
    f = torch.tensor([[1.0, -2.5, 0.0], [-0.0, 65504.0, 6.1035156e-05], [5.9604645e-08, 3.1415927, -1e-3]])
    return {
        "float32": torch.tensor([[1.5, -2.25, 3.0e38], [1e-45, 0.1, -7.0]], dtype=torch.float32),
        "float64": torch.tensor([[1.5, -2.25], [1e-300, 0.1]], dtype=torch.float64),
        "int64": torch.tensor([[2**62, -(2**62) - 5, 0], [1, -1, 7]], dtype=torch.int64),
        "float16": f.half(),
        "bfloat16": torch.tensor([[1.0, -2.5, 3.0e38], [1e-38, 3.1415927, -1e-3]]).bfloat16(),
        "int32": torch.tensor([[2**31 - 1, -(2**31), 0], [5, -6, 7]], dtype=torch.int32),
        "int16": torch.tensor([[32767, -32768, 0], [5, -6, 7]], dtype=torch.int16),
        "int8": torch.tensor([[127, -128, 0], [5, -6, 7]], dtype=torch.int8),
        "uint8": torch.tensor([[255, 0, 128], [5, 6, 7]], dtype=torch.uint8),
        "bool": torch.tensor([[True, False, True], [False, False, True]]),
    }


def expect(t):
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        return t.double()
    return t.long()


def rounding():
    g = torch.Generator().manual_seed(3)
    special = [1.0 + 2**-11, 1.0 + 3 * 2**-11, 1.0 + 2**-8, 1.0 + 3 * 2**-8,   # halfway for f16 / bf16
               65504.0, 65519.0, 65520.0, 1e6, -1e6, 2**-24, 2**-25, 3 * 2**-26, 2**-14 - 2**-25,
               1e-40, -0.0, float("inf"), float("-inf"), 3.0e38, 3.4e38]
    r = torch.cat([torch.tensor(special, dtype=torch.float32), torch.randn(200, generator=g) * 100,
                   torch.randn(100, generator=g) * 1e-5])
    return r


def main():
    os.makedirs(os.path.join(OUT, "npy"), exist_ok=True)
    vals = values()
    tensors = {}
    for name, t in vals.items():
        tensors[name] = t
        tensors[name + ".expect"] = expect(t)
    r = rounding()
    tensors["rounding.src"] = r
    tensors["rounding.f16"] = r.half()
    tensors["rounding.bf16"] = r.bfloat16()
    save_safetensors(os.path.join(OUT, "dtypes.safetensors"), tensors)
    for name, t in vals.items():
        if t.dtype == torch.bfloat16:
            continue  # numpy has no bfloat16
        np.save(os.path.join(OUT, "npy", name + ".npy"), t.numpy())
    np.save(os.path.join(OUT, "npy", "float16_fortran.npy"), np.asfortranarray(vals["float16"].numpy()))
    # types torch has no tensor for
    np.save(os.path.join(OUT, "npy", "uint16.npy"), np.array([[65535, 0, 1], [2, 3, 4]], dtype="<u2"))
    np.save(os.path.join(OUT, "npy", "uint32.npy"), np.array([[4294967295, 0, 1], [2, 3, 4]], dtype="<u4"))
    print("wrote", OUT)
    if "--check" in sys.argv:
        check_numpy_reads_farol(vals, r)


def check_numpy_reads_farol(vals, r):
    """build/farol writes .npy files; numpy must read the same values"""
    farol = os.path.join(ROOT, "build", "farol")
    with tempfile.TemporaryDirectory() as d:
        script = f"""
        local x = farol.load("{OUT}/dtypes.safetensors")
        for _, n in ipairs({{"float32", "float64", "int64", "int32", "bool", "float16"}}) do
          farol.save("{d}/" .. n .. ".npy", x[n])
        end
        farol.save("{d}/scalar.npy", farol.tensor(2.5))
        farol.save("{d}/empty.npy", farol.zeros(0, 3))
        farol.save("{d}/t.npy", {{t = x.float32:t()}})
        farol.save("{d}/as_f16.npy", x["rounding.src"], {{dtype = "float16"}})
        farol.save("{d}/as_f32.npy", x.float64, {{dtype = "float32"}})
        """
        subprocess.run([farol, "-e", script], check=True)
        def same(a, b, what):
            assert a.shape == b.shape and a.dtype == b.dtype, (what, a.shape, b.shape, a.dtype, b.dtype)
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), what
        for n in ["float32", "float64", "int64"]:
            same(np.load(f"{d}/{n}.npy"), vals[n].numpy(), n)
        same(np.load(f"{d}/int32.npy"), vals["int32"].numpy().astype(np.int64), "int32 as int64")
        same(np.load(f"{d}/bool.npy"), vals["bool"].numpy().astype(np.float32), "bool as a float mask")
        same(np.load(f"{d}/float16.npy"), vals["float16"].float().numpy(), "float16 as float32")
        same(np.load(f"{d}/scalar.npy"), np.array(2.5, dtype=np.float32), "0-d")
        same(np.load(f"{d}/empty.npy"), np.zeros((0, 3), dtype=np.float32), "empty")
        same(np.load(f"{d}/t.npy"), vals["float32"].numpy().T.copy(), "transposed view")
        same(np.load(f"{d}/as_f16.npy"), r.half().numpy(), "saved as float16")
        same(np.load(f"{d}/as_f32.npy"), vals["float64"].float().numpy(), "float64 saved as float32")
        for f in os.listdir(d):
            with open(f"{d}/{f}", "rb") as fh:
                head = fh.read(10)
                hlen = head[8] | head[9] << 8
                assert (10 + hlen) % 64 == 0, f
    print("numpy reads farol's .npy files: ok")


if __name__ == "__main__":
    main()
