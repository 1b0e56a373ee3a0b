"""train_bench.py -- PyTorch trains the model prumux-train trains, for
bench/train-bench.sh: the MUX-PLM model of tests/ref-train.py (same maths,
same tensor names and shapes), fp32, AdamW with gradient clipping, no
dropout.  Prints examples per second.  THREADS is the GEMM threads: the
caller sets OPENBLAS_NUM_THREADS (Debian's torch runs fp32 GEMMs in
OpenBLAS) and torch's own OpenMP pool gets 1 thread, since two spinning
pools on two cores slow torch several times
(reference/PERF-ANCHORS.md, Surprises 1).  With TORCH_OWN_THREADS set in
the environment torch's pool gets THREADS instead, for a torch whose
GEMMs follow its own threads (PyPI's, with MKL).

Usage: train_bench.py N STEPS BATCH T VOCAB THREADS [LAYERS HIDDEN HEADS FFN]
"""
import importlib.util
import os
import sys
import time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "ref_train", os.path.join(here, "..", "tests", "ref-train.py"))
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
torch.set_default_dtype(torch.float32)

def make_model(N, B, T, V, L=2, H=64, NH=2, F=256, C=8, seed=1):
    """The parameters (fp32 leaves), META and a batch of B rows of exactly
    T tokens, as train-bench.sh gives prumux-train."""
    hd = H // NH
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: (torch.randn(*s, generator=g) * 0.02).requires_grad_()
    z = lambda *s: torch.zeros(*s).requires_grad_()
    o = lambda *s: torch.ones(*s).requires_grad_()
    P = {"embeddings.word_embeddings.weight": r(V, H),
         "embeddings.position_embeddings.weight": r(T, H),
         "embeddings.token_type_embeddings.weight": r(2, H),
         "embeddings.LayerNorm.weight": o(H), "embeddings.LayerNorm.bias": z(H)}
    for l in range(L):
        p = f"encoder.layer.{l}."
        for n in ("query", "key", "value"):
            P[p + f"attention.self.{n}.weight"] = r(NH * hd, H)
            P[p + f"attention.self.{n}.bias"] = z(NH * hd)
        P[p + "attention.output.dense.weight"] = r(H, NH * hd)
        P[p + "attention.output.dense.bias"] = z(H)
        P[p + "attention.output.LayerNorm.weight"] = o(H)
        P[p + "attention.output.LayerNorm.bias"] = z(H)
        P[p + "intermediate.dense.weight"] = r(F, H)
        P[p + "intermediate.dense.bias"] = z(F)
        P[p + "output.dense.weight"] = r(H, F)
        P[p + "output.dense.bias"] = z(H)
        P[p + "output.LayerNorm.weight"] = o(H)
        P[p + "output.LayerNorm.bias"] = z(H)
    if N > 1:
        P["instance_embedding"] = torch.randn(N, H, generator=g)
        P["demux_module.demux_instance_embedding"] = r(N, H)
        P["demux_module.dense_1.weight"] = r(H, 2 * H)
        P["demux_module.dense_1.bias"] = z(H)
        P["demux_module.dense_2.weight"] = r(H, H)
        P["demux_module.dense_2.bias"] = z(H)
        P["demultiplexer.pre_decoder.weight"] = r(H, H)
        P["demultiplexer.pre_decoder.bias"] = z(H)
        P["demultiplexer.pre_decoder_layer_norm.weight"] = o(H)
        P["demultiplexer.pre_decoder_layer_norm.bias"] = z(H)
    P["classifier.weight"] = r(C, H)
    P["classifier.bias"] = z(C)
    meta = {"mux_n": N, "muxed": int(N > 1), "layers": L, "head_dim": hd,
            "task_weight": 1, "retrieval_weight": 0}
    rng = np.random.default_rng(2)
    data = {"ids": rng.integers(104, V, size=(B, T)).astype(np.int32),
            "type_ids": np.zeros((B, T), np.int32),
            "lengths": np.full(B, T, np.int32),
            "label": rng.integers(0, C, size=B).astype(np.int32)}
    data["ids"][:, 0] = 101
    return P, meta, data


def main():
    N, steps, B, T, V, threads = (int(a) for a in sys.argv[1:7])
    L, H, NH, F = (int(a) for a in sys.argv[7:11]) if len(sys.argv) > 7 else (2, 64, 2, 256)
    torch.set_num_threads(threads if os.environ.get("TORCH_OWN_THREADS") else 1)
    P, meta, data = make_model(N, B, T, V, L, H, NH, F)
    params = [p for k, p in P.items() if k != "instance_embedding"]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step():
        opt.zero_grad()
        loss = ref.model_loss(P, data, meta)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"{steps * B / (time.perf_counter() - t0):.1f}")


if __name__ == "__main__":
    main()
