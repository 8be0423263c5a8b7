"""The safetensors reader and writer the fixture generators share (the
format: a little-endian u64 header size, the JSON header padded with spaces
to 8 bytes, then the tensors' bytes in header order).  Dev tool only."""
import json
import struct

import torch

NAMES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.float16: "F16",
         torch.bfloat16: "BF16", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
         torch.uint8: "U8", torch.bool: "BOOL"}
DTYPES = {v: k for k, v in NAMES.items()}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: its bits as int16
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save_safetensors(path, tensors, metadata=None):
    """tensors: name -> tensor, written in the dict's order; metadata: a
    dict of strings, or None for no __metadata__ entry"""
    header, blobs, offset = ({} if metadata is None else {"__metadata__": metadata}), [], 0
    for name, t in tensors.items():
        data = tensor_bytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def read_safetensors(path):
    """-> (metadata, name -> tensor in file order)"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, d in header.items():  # JSON order = file order
        a, b = d["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[d["dtype"]]) if b > a else \
            torch.empty(0, dtype=DTYPES[d["dtype"]])
        tensors[name] = t.reshape(d["shape"]).clone()
    return meta, tensors
