#!/usr/bin/env python3
"""safetensors2bin.py -- write a model.safetensors (such as prumux-export's)
as pytorch_model.bin, for code that predates safetensors: the published
MUX-PLM and PruMUX code pins transformers 4.4.2, which reads only
pytorch_model.bin.  The inverse of bin2safetensors.py.

Usage: python3 safetensors2bin.py [-o OUTPUT] FILE_OR_DIR

FILE_OR_DIR is a model.safetensors or a directory holding one; OUTPUT
defaults to pytorch_model.bin beside it.  Needs torch (Debian:
python3-torch), not the safetensors package.  The MUX-PLM demux module's
names (demux_module., demultiplexer.demux_module.,
retrieval_head.demux_module.) share one storage, as in the published
checkpoints.  The output is written to a temporary file and renamed into
place.
"""
import argparse
import json
import os
import struct
import sys
import tempfile

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1"}
ALIASES = ("demultiplexer.", "retrieval_head.")


def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("too short for a safetensors header")
    (n,) = struct.unpack_from("<Q", buf)
    if 8 + n > len(buf):
        raise ValueError("header runs past the end of the file")
    head = json.loads(buf[8:8 + n])
    data = memoryview(buf)[8 + n:]
    out = {}
    for name, e in head.items():
        if name == "__metadata__":
            continue
        if e["dtype"] not in DTYPES:
            raise ValueError(f"{name}: dtype {e['dtype']} is not supported")
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], DTYPES[e["dtype"]]).reshape(e["shape"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source")
    ap.add_argument("-o", "--output")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("safetensors2bin.py: torch is required (Debian: python3-torch)")
    src = args.source
    if os.path.isdir(src):
        src = os.path.join(src, "model.safetensors")
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(src)),
                                      "pytorch_model.bin")
    try:
        arrays = read_safetensors(src)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"safetensors2bin.py: {src}: {e}")
    sd = {}
    for name, a in arrays.items():
        base = name
        for alias in ALIASES:
            if name.startswith(alias + "demux_module."):
                base = name[len(alias):]
        t = torch.from_numpy(a.astype(a.dtype.newbyteorder("="), copy=True))
        shared = sd.get(base) if base != name else None
        if shared is None:
            for alias in ALIASES:
                shared = shared if shared is not None else sd.get(alias + base)
        if shared is not None and torch.equal(shared, t):
            t = shared                  # one storage, several names
        sd[name] = t
    fd, tmp = tempfile.mkstemp(prefix=".pytorch_model.", dir=os.path.dirname(out) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(sd, f)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"{out}: {len(sd)} tensors")


if __name__ == "__main__":
    main()
