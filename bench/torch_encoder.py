#!/usr/bin/python3
"""torch_encoder.py -- PyTorch's speed on the same encoder shapes as
bench/encoder-bench.c, for the side-by-side in `make bench-encoder`.

The encoder layers only (no embeddings, no pooler), fp32, eval, no_grad,
random weights, all positions, an all-valid attention mask.  Two
implementations: 'eager' (HF-style modules, any pruned shape) and 'nnfast'
(nn.TransformerEncoderLayer and its fused inference path; dense shapes only).
Torch runs at its best on this machine per PERF-ANCHORS.md: one torch thread
(torch.set_num_threads(1)) while OpenBLAS, which runs its fp32 GEMMs, uses
OPENBLAS_NUM_THREADS threads (set it in the environment).

Prints one summary line per implementation: the median pass in seq/s, the
range over passes, and sequences per CPU-second (at one thread, the figure
least disturbed by other processes on a shared machine).
"""
import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as Fn


class Layer(torch.nn.Module):
    def __init__(self, H, heads, dh, F):
        super().__init__()
        self.heads, self.dh, self.F = heads, dh, F
        if heads:
            A = heads * dh
            self.query, self.key, self.value = (torch.nn.Linear(H, A) for _ in range(3))
            self.out = torch.nn.Linear(A, H)
            self.ln1 = torch.nn.LayerNorm(H, eps=1e-12)
        if F:
            self.up, self.down = torch.nn.Linear(H, F), torch.nn.Linear(F, H)
            self.ln2 = torch.nn.LayerNorm(H, eps=1e-12)

    def forward(self, x, add_mask):
        G, T, _ = x.shape
        if self.heads:
            def split(t):
                return t.view(G, T, self.heads, self.dh).transpose(1, 2)
            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            s = q @ k.transpose(-1, -2) / math.sqrt(self.dh) + add_mask
            c = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(G, T, -1)
            x = self.ln1(self.out(c) + x)
        if self.F:
            x = self.ln2(self.down(Fn.gelu(self.up(x))) + x)
        return x


def per_layer(arg, L):
    v = [int(a) for a in arg.split(",")]
    return v * L if len(v) == 1 else v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", default="12")
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--ffn", default="3072")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--impl", default="eager,nnfast")
    a = ap.parse_args()
    torch.set_num_threads(1)
    heads, ffn = per_layer(a.heads, a.layers), per_layer(a.ffn, a.layers)
    H, T, B = a.hidden, a.seq, a.batch
    x = torch.randn(B, T, H)
    dense = len(set(heads)) == 1 and len(set(ffn)) == 1 and heads[0] and ffn[0]
    for impl in a.impl.split(","):
        if impl == "nnfast" and not dense:
            continue
        if impl == "eager":
            model = torch.nn.ModuleList(Layer(H, h, a.head_dim, f) for h, f in zip(heads, ffn))
            add_mask = torch.zeros(B, 1, 1, T)

            def run():
                y = x
                for ly in model:
                    y = ly(y, add_mask)
                return y
        else:
            layer = torch.nn.TransformerEncoderLayer(H, heads[0], ffn[0], 0.0, "gelu",
                                                     layer_norm_eps=1e-12, batch_first=True)
            model = torch.nn.TransformerEncoder(layer, a.layers, enable_nested_tensor=False)
            pad = torch.zeros(B, T, dtype=torch.bool)

            def run():
                return model(x, src_key_padding_mask=pad)
        model.eval()
        with torch.no_grad():
            run()
            times, cpu = [], []
            for _ in range(a.passes):
                t0, c0 = time.perf_counter(), time.process_time()
                run()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        med = statistics.median(times)
        print(f"torch {impl} L {a.layers} H {H} heads {a.heads} ffn {a.ffn} T {T} batch {B}: "
              f"{B / med:.2f} seq/s (passes {B / max(times):.2f}-{B / min(times):.2f})"
              f"; {B / statistics.median(cpu):.2f} seq per CPU-s")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
