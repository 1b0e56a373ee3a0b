#!/usr/bin/python3
"""torch_encoder.py -- PyTorch's speed on the same encoder shapes as
bench/encoder-bench.c, for the side-by-side in `make bench-encoder`.

The encoder layers only (no embeddings, no pooler), fp32, eval, no_grad,
random weights, all positions, an all-valid attention mask.  Two
implementations: 'eager' (HF-style modules, any pruned shape) and 'nnfast'
(nn.TransformerEncoderLayer and its fused inference path; dense shapes only).
Torch runs at its best on this machine per PERF-ANCHORS.md: one torch thread
(torch.set_num_threads(1)) while OpenBLAS, which runs its fp32 GEMMs, uses
OPENBLAS_NUM_THREADS threads (set it in the environment).  --threads=N sets
torch's own threads instead, for a torch whose GEMMs follow them (PyPI's,
with MKL and oneDNN, as on the lent GPU machines).

Prints one summary line per implementation: the median pass in seq/s, the
range over passes, and sequences per CPU-second (at one thread, the figure
least disturbed by other processes on a shared machine).

--device=cuda runs the same on the GPU (the peer of prumux-infer
--device=cuda:0): fp32 with TF32 off unless --tf32, torch.cuda.synchronize()
around each pass, and the most GPU memory torch allocated.  SEQ per CPU-s is
then meaningless and not printed.  --host-io adds what prumux-infer pays on
a GPU: each pass copies its input from pinned host memory and its output
(all positions) back to pinned host memory.
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
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--host-io", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    gpu = dev.type == "cuda"
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        torch.backends.cudnn.allow_tf32 = a.tf32

    def sync():
        if gpu:
            torch.cuda.synchronize(dev)
    heads, ffn = per_layer(a.heads, a.layers), per_layer(a.ffn, a.layers)
    H, T, B = a.hidden, a.seq, a.batch
    x = torch.randn(B, T, H, device=dev)
    host_io = gpu and a.host_io
    if host_io:
        x_host = torch.randn(B, T, H).pin_memory()
        y_host = torch.empty(B, T, H).pin_memory()
    dense = len(set(heads)) == 1 and len(set(ffn)) == 1 and heads[0] and ffn[0]
    for impl in a.impl.split(","):
        if impl == "nnfast" and not dense:
            continue
        if impl == "eager":
            model = torch.nn.ModuleList(Layer(H, h, a.head_dim, f) for h, f in zip(heads, ffn))
            add_mask = torch.zeros(B, 1, 1, T, device=dev)

            def run():
                y = x_host.to(dev, non_blocking=True) if host_io else x
                for ly in model:
                    y = ly(y, add_mask)
                if host_io:
                    y_host.copy_(y, non_blocking=True)
                return y
        else:
            layer = torch.nn.TransformerEncoderLayer(H, heads[0], ffn[0], 0.0, "gelu",
                                                     layer_norm_eps=1e-12, batch_first=True)
            model = torch.nn.TransformerEncoder(layer, a.layers, enable_nested_tensor=False)
            pad = torch.zeros(B, T, dtype=torch.bool, device=dev)

            def run():
                y = model(x_host.to(dev, non_blocking=True) if host_io else x,
                          src_key_padding_mask=pad)
                if host_io:
                    y_host.copy_(y, non_blocking=True)
                return y
        model.to(dev).eval()
        if gpu:
            torch.cuda.reset_peak_memory_stats(dev)
        with torch.no_grad():
            run()
            sync()
            times, cpu = [], []
            for _ in range(a.passes):
                t0, c0 = time.perf_counter(), time.process_time()
                run()
                sync()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        med = statistics.median(times)
        where = (f"; device {a.device}{' tf32' if a.tf32 else ' fp32'}"
                 f"{', host input and output' if host_io else ''}, most memory allocated "
                 f"{torch.cuda.max_memory_allocated(dev) / 2**20:.0f} MiB" if gpu else
                 f"; {B / statistics.median(cpu):.2f} seq per CPU-s")
        print(f"torch {torch.__version__} {impl} threads {a.threads} L {a.layers} H {H} heads {a.heads} ffn {a.ffn} T {T} batch {B}: "
              f"{B / med:.2f} seq/s (passes {B / max(times):.2f}-{B / min(times):.2f})" + where)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
