"""prune_bench.py -- PyTorch takes the CoFi pruning steps prumux-prune
takes, for bench/prune-bench.sh: the teacher forward, a hard-concrete
sample, the masked student forward, both distillation losses, the
Lagrangian, backward, clipping and the three AdamW updates of
tests/ref-prune.py (the same maths), in fp32, on the model of
bench/train_bench.py.  Prints examples per second.

Usage: prune_bench.py N STEPS BATCH T VOCAB THREADS [LAYERS HIDDEN HEADS FFN]
"""
import importlib.util
import math
import os
import sys
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(here, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ref_prune = load("ref_prune", "../tests/ref-prune.py")
train_bench = load("train_bench", "train_bench.py")
torch.set_default_dtype(torch.float32)


def main():
    N, steps, B, T, V, threads = (int(a) for a in sys.argv[1:7])
    L, H, NH, F = (int(a) for a in sys.argv[7:11]) if len(sys.argv) > 7 else (2, 64, 2, 256)
    torch.set_num_threads(1)
    Tp, meta, data = train_bench.make_model(N, B, T, V, L, H, NH, F)
    Tp = {k: v.detach() for k, v in Tp.items()}
    S = {k: v.clone().requires_grad_(k != "instance_embedding") for k, v in Tp.items()}
    S["layer_transformation.weight"] = torch.eye(H).requires_grad_()
    S["layer_transformation.bias"] = torch.zeros(H).requires_grad_()
    data["label"][:] = -1
    meta.update({"task_weight": 0, "temperature": 2, "alpha_ce": 0.1, "alpha_layer": 0.9,
                 "head_weight": (4 * H * H + 4 * H) // NH / H,
                 "prunable": L * (4 * H * H + 4 * H + 2 * H * F + 5 * H)})
    heads, ffn = [NH] * L, [F] * L
    g = torch.Generator().manual_seed(3)
    init = [10.0] * (sum(heads) + L) + [0.0] * sum(ffn) + [10.0] * (L + H)
    loga = (torch.tensor(init) + 0.01 * torch.randn(len(init), generator=g)).requires_grad_()
    lam = torch.zeros(2, requires_grad=True)
    trained = [p for k, p in S.items()
               if k != "instance_embedding" and not k.startswith("embeddings.")]
    opt = torch.optim.AdamW(trained, lr=5e-5, weight_decay=0.0)
    opt_l0 = torch.optim.AdamW([loga], lr=0.01, weight_decay=0.0)
    opt_lam = torch.optim.AdamW([lam], lr=0.01, weight_decay=0.0, maximize=True)

    def step(s):
        for o in (opt, opt_l0, opt_lam):
            o.zero_grad()
        u = torch.rand(loga.numel(), generator=g).clamp(1e-6, 1 - 1e-6)
        loss = ref_prune.step_loss(S, Tp, loga, lam, u, data, meta, 0.5, (heads, ffn))[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        opt_l0.step()
        opt_lam.step()
        with torch.no_grad():
            loga.clamp_(math.log(1e-2), math.log(1e2))

    for s in range(3):
        step(s)
    t0 = time.perf_counter()
    for s in range(steps):
        step(s)
    print(f"{steps * B / (time.perf_counter() - t0):.1f}")


if __name__ == "__main__":
    main()
