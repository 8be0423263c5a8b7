#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses (Python stdlib only).

    python3 tests/fuzz/make_corpus.py

corpus/safetensors: copies of three small fixtures, small valid files (0-d,
int64, metadata, empty tensors, an unaligned data area) and one corrupt file
per rejection of the loader.  corpus/npy: valid v1/v2/v3 files in C and
Fortran order and corrupt ones.  Inputs libFuzzer found (crash-*, or files
it added) may be dropped in the same folders; this script never deletes."""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")


def st(header, data=b"", hlen=None, pad=True):
    text = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if hlen is None else hlen) + text + data


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


SAFETENSORS = {
    "valid_empty": st({}),
    "valid_meta_only": st({"__metadata__": {"case": "x", "k": ""}}),
    "valid_0d": st({"s": t("F64", [], 0, 8), "i": t("I64", [], 8, 16)},
                   struct.pack("<dq", 2.5, -7)),
    "valid_mixed": st({"__metadata__": {"format": "pt"}, "w": t("F32", [2, 2], 0, 16),
                       "b": t("F64", [1], 16, 24), "idx": t("I64", [2], 24, 40)},
                      f32(1, 2, 3, 4) + struct.pack("<d2q", 0.5, 3, 1)),
    "valid_empty_tensor": st({"e": t("F32", [0, 3], 4, 4), "x": t("F32", [2], 0, 8)}, f32(1, 2)),
    "valid_unaligned": st({"x": t("F32", [1, 1, 1], 0, 4)}, f32(9), pad=False),
    "bad_short": b"\x10\x00\x00",
    "bad_hlen_past_end": st({}, hlen=4096),
    "bad_hlen_huge": st({}, hlen=(1 << 64) - 1),
    "bad_not_json": st(b'{"x": {"dtype": "F32", '),
    "bad_not_object": st(b"[1, 2, 3]"),
    "bad_trailing": st(b"{} }"),
    "bad_entry_not_object": st({"x": [1]}),
    "bad_no_dtype": st({"x": {"shape": [1], "data_offsets": [0, 4]}}, f32(1)),
    "bad_dtype": st({"x": t("BF16", [2], 0, 4)}, b"\0" * 4),
    "bad_shape_negative": st({"x": t("F32", [-1], 0, 4)}, f32(1)),
    "bad_shape_float": st({"x": t("F32", [1.5], 0, 4)}, f32(1)),
    "bad_too_many_dims": st({"x": t("F32", [1] * 9, 0, 4)}, f32(1)),
    "bad_numel_overflow": st({"x": t("F64", [1 << 32, 1 << 32], 0, 8)}, b"\0" * 8),
    "bad_zero_dim_huge_span": st({"x": t("F32", [0, 1 << 32, 1 << 32], 0, 0)}),
    "bad_offsets_reversed": st({"x": t("F32", [0], 8, 4)}, b"\0" * 8),
    "bad_offsets_outside": st({"x": t("F32", [2], 4, 12)}, b"\0" * 8),
    "bad_offsets_count": st({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, f32(1)),
    "bad_nbytes": st({"x": t("F32", [3], 0, 8)}, b"\0" * 8),
    "bad_overlap": st({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, b"\0" * 12),
    "bad_duplicate": st(b'{"a":' + json.dumps(t("F32", [1], 0, 4)).encode() + b',"a":'
                        + json.dumps(t("F32", [1], 4, 8)).encode() + b"}", b"\0" * 8),
    "bad_meta_value": st({"__metadata__": {"k": 1}}),
    "bad_meta_duplicate": st(b'{"__metadata__":{"k":"a","k":"b"}}'),
}


def npy(d, data=b"", major=1):
    pre = 10 if major == 1 else 12
    text = d.encode()
    hlen = -(-(pre + len(text) + 1) // 64) * 64 - pre
    text += b" " * (hlen - len(text) - 1) + b"\n"
    size = struct.pack("<H", hlen) if major == 1 else struct.pack("<I", hlen)
    return b"\x93NUMPY" + bytes([major, 0]) + size + text + data


def hdr(descr, fortran, shape):
    return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)


NPY = {
    "valid_f4_c": npy(hdr("<f4", False, "(2, 3)"), f32(0, 1, 2, 3, 4, 5)),
    "valid_f8_fortran": npy(hdr("<f8", True, "(2, 3)"), struct.pack("<6d", 0, 10, 1, 11, 2, 12)),
    "valid_i8_fortran_3d_v2": npy(hdr("<i8", True, "(2, 1, 2)"), struct.pack("<4q", 1, 2, 3, 4), 2),
    "valid_0d_v3": npy(hdr("<f8", False, "()"), struct.pack("<d", 1.5), 3),
    "valid_empty": npy(hdr("<f4", False, "(0, 3)")),
    "valid_py2_long": npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2L,), }",
                          struct.pack("<2q", 5, 6)),
    "bad_magic": b"\x93NUMPX\x01\x00" + npy(hdr("<f4", False, "(1,)"), f32(1))[8:],
    "bad_version": b"\x93NUMPY\x07\x00" + npy(hdr("<f4", False, "(1,)"), f32(1))[8:],
    "bad_truncated_data": npy(hdr("<f4", False, "(4,)"), f32(1)),
    "bad_hlen": b"\x93NUMPY\x01\x00\xff\xff{}",
    "bad_descr_u1": npy(hdr("|u1", False, "(4,)"), b"\0" * 4),
    "bad_descr_be": npy(hdr(">f4", False, "(1,)"), f32(1)),
    "bad_missing_shape": npy("{'descr': '<f4', 'fortran_order': False, }", f32(1)),
    "bad_unknown_key": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", f32(1)),
    "bad_huge_shape": npy(hdr("<f8", False, "(4294967296, 4294967296)"), f32(1)),
    "bad_too_many_dims": npy(hdr("<f4", False, "(" + "1, " * 9 + ")"), f32(1)),
    "bad_big_int": npy(hdr("<f4", False, "(123456789012345678901234567890,)"), f32(1)),
    "bad_zero_dim_huge_span": npy(hdr("<f4", False, "(0, 4611686018427387904, 4)")),
    "bad_bool": npy(hdr("<f4", "1", "(1,)"), f32(1)),
}


def write(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def main():
    out = os.path.join(HERE, "corpus", "safetensors")
    write(out, SAFETENSORS)
    for rel in ["saliency/linear_scalar", "saliency/single_additional_arg", "ops/neg"]:
        shutil.copy(os.path.join(FIX, rel + ".safetensors"),
                    os.path.join(out, "fixture_" + os.path.basename(rel)))
    write(os.path.join(HERE, "corpus", "npy"), NPY)


if __name__ == "__main__":
    main()
