#!/usr/bin/env python3
"""Trains the digit classifier that scripts/demo explains, once; its weights
and the held-out digits are committed, so the demo needs no Python.

Data: scikit-learn's copy of the UCI optical handwritten digits (1797 images,
8x8, grey levels 0..16; Debian's python3-sklearn ships it).  Pixels are
scaled to [0, 1].  A fixed, stratified 80/20 split (seed 0): 1437 digits to
train on, 360 held out; the held-out ones are never used for training or
model selection.

Model (the same layers as the farol model in examples/digits.lua):
  Conv2d(1, 16, 3, padding=1) ReLU Conv2d(16, 32, 3, padding=1) ReLU
  MaxPool2d(2) Flatten Linear(512, 64) ReLU Linear(64, 10)
Adam (lr 1e-3), batch 32, 40 epochs, weight decay 1e-4, CPU, torch seed 0.

  /usr/bin/python3 examples/train/train_digits.py
writes examples/models/digits_cnn.safetensors (float32 weights, about 150
KiB, with the test accuracy in its metadata) and
examples/data/digits_test.safetensors (images 360x1x8x8 float32, labels
360 int64 0-based as in sklearn).  Test accuracy when these files were made:
see the `test_accuracy` metadata field (printed by this script and by
scripts/demo).
"""
import json
import os
import struct

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def save(path, tensors, meta):
    """A minimal safetensors writer: u64 header length, JSON header, data."""
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 10))


def main():
    torch.manual_seed(0)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    x_train, y_train = torch.from_numpy(x_train), torch.from_numpy(y_train)
    x_test, y_test = torch.from_numpy(x_test), torch.from_numpy(y_test)

    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    for epoch in range(40):
        net.train()
        perm = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(perm), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            loss = loss_fn(net(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        train_acc = (net(x_train).argmax(1) == y_train).float().mean().item()
        test_acc = (net(x_test).argmax(1) == y_test).float().mean().item()
    print(f"train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f} ({len(x_test)} held-out digits)")

    meta = {
        "description": "Digit classifier (Conv2d(1,16,3,p1) ReLU Conv2d(16,32,3,p1) ReLU MaxPool2d(2) "
                       "Flatten Linear(512,64) ReLU Linear(64,10)) trained by examples/train/train_digits.py "
                       "on scikit-learn's 8x8 digits scaled to [0, 1]",
        "test_accuracy": f"{test_acc:.4f}",
        "train_accuracy": f"{train_acc:.4f}",
        "classes": "0,1,2,3,4,5,6,7,8,9",
    }
    save(os.path.join(ROOT, "examples/models/digits_cnn.safetensors"),
         {k: v.detach().contiguous() for k, v in net.state_dict().items()}, meta)
    save(os.path.join(ROOT, "examples/data/digits_test.safetensors"),
         {"images": x_test.contiguous(), "labels": y_test.contiguous()},
         {"description": "360 held-out 8x8 digits (scikit-learn load_digits, pixels / 16), "
                         "never used in training; labels are the digits 0-9",
          "made_by": "examples/train/train_digits.py"})


if __name__ == "__main__":
    main()
