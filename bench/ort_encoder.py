#!/usr/bin/python3
"""ort_encoder.py -- ONNX Runtime's speed on the encoder shapes of
bench/encoder-bench.c, the strongest CPU peer in `make bench-encoder`.

Two steps, because the two libraries live in different interpreters here
(Debian's torch for /usr/bin/python3, PyPI's onnxruntime for python3):

  /usr/bin/python3 ort_encoder.py --export=FILE.onnx SHAPE...   (torch)
  python3 ort_encoder.py --run=FILE.onnx SHAPE... --threads=2   (ORT)

The graph is torch_encoder.py's eager encoder (the same layers, any pruned
shape), random weights, fp32, batch and length fixed, exported with
torch.onnx (opset 14).  ORT runs it with every graph optimisation
(ORT_ENABLE_ALL: LayerNorm, GELU and attention fusions), THREADS intra-op
threads and one inter-op thread, the way a user deploying BERT on a CPU
would.  The output line has the form of torch_encoder.py's.
"""
import argparse
import os
import statistics
import sys
import time


def shape_args(ap):
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", default="12")
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--ffn", default="3072")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)


def export(a, path):
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_encoder import Layer, per_layer

    heads, ffn = per_layer(a.heads, a.layers), per_layer(a.ffn, a.layers)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(
                Layer(a.hidden, h, a.head_dim, f) for h, f in zip(heads, ffn))

        def forward(self, x, add_mask):
            for ly in self.layers:
                x = ly(x, add_mask)
            return x

    torch.manual_seed(0)
    model = Encoder().eval()
    x = torch.randn(a.batch, a.seq, a.hidden)
    add_mask = torch.zeros(a.batch, 1, 1, a.seq)
    with torch.no_grad():
        torch.onnx.export(model, (x, add_mask), path, opset_version=14,
                          input_names=["x", "add_mask"], output_names=["y"])


def run(a, path):
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((a.batch, a.seq, a.hidden), dtype=np.float32),
            "add_mask": np.zeros((a.batch, 1, 1, a.seq), np.float32)}
    sess.run(None, feed)
    times = []
    for _ in range(a.passes):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    B, med = a.batch, statistics.median(times)
    print(f"onnxruntime {ort.__version__} L {a.layers} H {a.hidden} heads {a.heads} "
          f"ffn {a.ffn} T {a.seq} batch {B} threads {a.threads}: {B / med:.2f} seq/s "
          f"(passes {B / max(times):.2f}-{B / min(times):.2f})")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    shape_args(ap)
    ap.add_argument("--export")
    ap.add_argument("--run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=5)
    a = ap.parse_args()
    if a.export:
        export(a, a.export)
    elif a.run:
        run(a, a.run)
    else:
        ap.error("--export or --run")


if __name__ == "__main__":
    main()
