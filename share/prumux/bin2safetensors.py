#!/usr/bin/env python3
"""bin2safetensors.py -- rewrite a PyTorch checkpoint (pytorch_model.bin)
as model.safetensors, which prumux-convert reads.

Usage: python3 bin2safetensors.py [-o OUTPUT] CHECKPOINT

CHECKPOINT is a pytorch_model.bin (a pickled state_dict) or a directory
holding one; OUTPUT defaults to model.safetensors beside it.  Needs torch
(Debian: python3-torch); the safetensors package is not needed, the file is
written by hand: an 8-byte little-endian header length, a JSON header, the
raw little-endian tensor bytes.  Tensors that share storage (the MUX-PLM
demux module aliases) are written once per name; prumux-convert folds them.
The output is written to a temporary file and renamed into place.
"""
import argparse
import json
import os
import struct
import sys
import tempfile


def dtype_names(torch):
    return {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
            torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
            torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
            torch.bool: "BOOL"}


def raw_bytes(torch, t):
    t = t.detach().contiguous().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)         # numpy has no bfloat16
    return t.numpy().tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("-o", "--output")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("bin2safetensors.py: torch is required (Debian: python3-torch)")
    src = args.checkpoint
    if os.path.isdir(src):
        src = os.path.join(src, "pytorch_model.bin")
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(src)),
                                      "model.safetensors")
    try:
        sd = torch.load(src, map_location="cpu", weights_only=True)
    except TypeError:                   # torch < 1.13: no weights_only
        sd = torch.load(src, map_location="cpu")
    except Exception as e:
        sys.exit(f"bin2safetensors.py: {src}: {e}")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        sys.exit(f"bin2safetensors.py: {src}: not a state_dict")
    names = dtype_names(torch)
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for key, t in sd.items():
        if not torch.is_tensor(t):
            continue
        if t.dtype not in names:
            sys.exit(f"bin2safetensors.py: {key}: dtype {t.dtype} is not supported")
        data = raw_bytes(torch, t)
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape),
                       "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)     # data starts 8-aligned, as safetensors does
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)),
                               prefix=".bin2safetensors.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"bin2safetensors.py: {out}: {len(blobs)} tensors, {offset} bytes")


if __name__ == "__main__":
    main()
