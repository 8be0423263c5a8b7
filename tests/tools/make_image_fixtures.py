#!/usr/bin/env python3
"""Makes tests/fixtures/viz/: small PNG/JPEG files and what torchvision
(0.14, Debian's python3-torchvision) makes of them and of resizing.

    /usr/bin/python3 tests/tools/make_image_fixtures.py

image.safetensors (float64 unless said):
  rgb_png        3x6x5  the pixels of rgb.png / 255
  gray_png       1x4x7  the pixels of gray.png / 255
  jpeg_decoded   3x16x16 torchvision.io.decode_jpeg(smooth.jpg) / 255 (libjpeg;
                 stb_image's IDCT may differ by a few levels)
  resize.src     3x7x9 and resize.src1 1x5x12 (random, float32)
  resize.K       F.resize(src, size, antialias=False) for the sizes in the
                 metadata (bilinear unless the name ends in _nearest)
  crop.K         F.center_crop(src, size)
  gray.src3 / gray.out1  F.rgb_to_grayscale(src)
"""
import json
import os

import torch
import torchvision.transforms.functional as F
from torchvision.io import decode_jpeg, encode_jpeg, encode_png
from torchvision.transforms import InterpolationMode

from safetensors_io import save_safetensors

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "viz")


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes(data.tolist()))


def main():
    g = torch.Generator().manual_seed(0)
    out, meta = {}, {}
    rgb = torch.randint(0, 256, (3, 6, 5), generator=g, dtype=torch.uint8)
    gray = torch.randint(0, 256, (1, 4, 7), generator=g, dtype=torch.uint8)
    write("rgb.png", encode_png(rgb))
    write("gray.png", encode_png(gray))
    out["rgb_png"] = rgb.double() / 255
    out["gray_png"] = gray.double() / 255
    # a smooth picture, so that JPEG keeps it close
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    smooth = torch.stack([xx * 16, yy * 16, (xx + yy) * 8]).clamp(0, 255).to(torch.uint8)
    jpg = encode_jpeg(smooth, quality=95)
    write("smooth.jpg", jpg)
    out["jpeg_decoded"] = decode_jpeg(jpg).double() / 255

    src = torch.rand(3, 7, 9, generator=g)
    src1 = torch.rand(1, 5, 12, generator=g)
    out["resize.src"], out["resize.src1"] = src, src1
    cases = {"down": (src, [4, 5]), "up": (src, [11, 13]), "mixed": (src, [3, 14]), "edge": (src, 5),
             "edge1": (src1, 3), "up1": (src1, [9, 20])}
    for name, (x, size) in cases.items():
        out["resize." + name] = F.resize(x, size, antialias=False)
        out["resize." + name + "_nearest"] = F.resize(x, size, interpolation=InterpolationMode.NEAREST)
        meta["resize." + name] = json.dumps({"src": "resize.src1" if x is src1 else "resize.src", "size": size})
    crops = {"small": (src, [3, 4]), "odd": (src, 4), "pad": (src, [9, 12]), "pad1": (src1, [6, 13])}
    for name, (x, size) in crops.items():
        out["crop." + name] = F.center_crop(x, size)
        meta["crop." + name] = json.dumps({"src": "resize.src1" if x is src1 else "resize.src", "size": size})
    out["gray.out1"] = F.rgb_to_grayscale(src)
    save_safetensors(os.path.join(OUT, "image.safetensors"), dict(sorted(out.items())), meta)


if __name__ == "__main__":
    main()
