#!/usr/bin/env python3
"""PyTorch reference for farol's benchmark models (see MODELS.md).

Run with Debian's torch:  /usr/bin/python3 torch_saliency.py --model cnn --threads 2
Prints one line:  bench impl=torch model=cnn threads=2 forward_ms=.. saliency_ms=.. ...
(with blas_core=<the OpenBLAS kernel torch runs>, read from the library it loaded)
Saliency is computed as Captum does (gradient of the selected outputs w.r.t.
the inputs, abs); Captum itself is used when importable, else torch.autograd.
--threads 1 pins torch and OpenBLAS to one thread; --threads N>1 uses N
threads with OMP_WAIT_POLICY=PASSIVE (--wait passive, the default: its
OpenMP threads otherwise spin on the core OpenBLAS needs, which costs it
several times on the MLP and the transformer) or with OpenMP's own wait
(--wait active, PyTorch as installed, faster on the CNN in some runs); the
bench takes the faster.
"""
import argparse, os, resource, statistics, sys, time

FWD_GFLOP = {"mlp": 0.47658, "cnn": 3.26769, "resnet18": 29.02517, "transformer": 6.97934}


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=sorted(FWD_GFLOP))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--wait", choices=["passive", "active"], default="passive")
    return ap.parse_args()


def build(name, torch, nn):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    add = None
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                              nn.Linear(1024, 10))
        x, target = torch.randn(128, 784, generator=g), [i % 10 for i in range(128)]
    elif name == "cnn":
        model = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10), nn.Softmax(dim=1))
        x, target = torch.randn(64, 3, 32, 32, generator=g), 3
    elif name == "resnet18":
        import torchvision
        model = torchvision.models.resnet18(weights=None, num_classes=1000)
        x, target = torch.randn(8, 3, 224, 224, generator=g), [i * 7 % 1000 for i in range(8)]
    else:
        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.TransformerEncoderLayer(
                    256, 8, dim_feedforward=1024, dropout=0.0, batch_first=True) for _ in range(2)])
                self.head = nn.Linear(256, 2)

            def forward(self, x, mask):
                h = x
                for layer in self.layers:
                    h = layer(h, src_key_padding_mask=(mask == 0))
                m = mask.unsqueeze(-1)
                return self.head((h * m).sum(dim=1) / m.sum(dim=1))

        model = Encoder()
        x, target = torch.randn(16, 128, 256, generator=g), 1
        add = torch.ones(16, 128)
        add[1::2, -16:] = 0.0
    return model.eval(), x, target, add


def blas_core():
    """the kernel of the OpenBLAS this process loaded (via openblas_get_corename)"""
    import ctypes
    for line in open("/proc/self/maps"):
        path = line.split()[-1]
        if "libopenblas" in path:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
    return "none"


def main():
    args = parse()
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    if args.threads > 1 and args.wait == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import torch
    import torch.nn as nn
    torch.set_num_threads(args.threads)
    model, x, target, add = build(args.model, torch, nn)
    fargs = () if add is None else (add,)

    try:
        import warnings
        warnings.filterwarnings("ignore")
        from captum.attr import Saliency
        sal = Saliency(model)
        saliency = lambda: sal.attribute(x, target=target, additional_forward_args=add)
        impl = "torch+captum"
    except ImportError:
        def saliency():
            xi = x.detach().requires_grad_(True)
            out = model(xi, *fargs)
            sel = out[:, target] if isinstance(target, int) else out.gather(
                1, torch.tensor(target).view(-1, 1)).squeeze(1)
            (g,) = torch.autograd.grad(sel.sum(), xi)
            return g.abs()
        impl = "torch"

    def forward():
        with torch.no_grad():
            return model(x, *fargs)

    def median_ms(fn):
        for _ in range(3):
            fn()
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)

    fwd = median_ms(forward)
    sal_ms = median_ms(saliency)
    n = x.shape[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bench impl={impl} model={args.model} threads={args.threads} forward_ms={fwd:.2f} "
          f"saliency_ms={sal_ms:.2f} ms_per_example={sal_ms / n:.3f} "
          f"gflops={2 * FWD_GFLOP[args.model] / (sal_ms / 1e3):.1f} rss_mib={rss:.0f} blas_core={blas_core()}")


if __name__ == "__main__":
    sys.exit(main())
