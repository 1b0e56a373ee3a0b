"""ref-distill.py -- PyTorch reference for lib/train/distill.c (CoFi's
distillation losses, MUX-PLM-SPEC.md §6.6).

Usage: ref-distill.py DIR
Reads DIR/distill.pmxs (written by tests/test-distill), recomputes in
float64 what CoFi's trainer computes:
  L_pred  = F.kl_div(F.log_softmax(s / T), F.softmax(t / T),
                     reduction="batchmean") * T**2, T = 2
  L_layer = calculate_layer_distillation_loss, version 4: MSE of every
            (teacher layer, layer_transformation(student layer)) pair, the
            greedy alignment from the last teacher layer backwards over the
            existing student layers, the sum of the chosen MSEs
and compares losses (|d| <= 1e-5 (1 + |L|)), the alignment (exactly) and
the gradients (scaled by 0.7 for L_pred, 0.3 for L_layer, as the C side;
max |d| <= 1e-6 + 1e-4 max |g| per tensor).  Exits 1 on any mismatch.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pmxstream  # noqa: E402

torch.set_default_dtype(torch.float64)


def teacher_layers(n):
    # CoFi's [2, 5, 8, 11] for 12 layers; every third from the last otherwise
    return sorted(range(n - 1, -1, -3))


def layer_loss(s_hidden, t_hidden, W, b, exists):
    mse = torch.nn.MSELoss(reduction="mean")
    LS = len(s_hidden)
    spec = teacher_layers(len(t_hidden))
    ys = [F.linear(s, W, b) for s in s_hidden]
    reps = [t_hidden[i] for i in spec]
    l = [mse(t, y) for t in reps for y in ys]
    lw = torch.stack(l).reshape(len(reps), LS)
    existing = torch.tensor(list(exists)).bool()
    alignment = []
    last = LS
    for k in range(len(reps) - 1, -1, -1):
        idx = lw[k].sort()[1]
        align = idx[(idx < last) & existing[idx]]
        if len(align) > 0:
            align = int(align[0])
        else:
            align = last if last < LS else LS - 1    # CoFi would index out of range
        alignment.append(align)
        last = align
    alignment.reverse()
    loss = lw[torch.arange(len(reps)), torch.tensor(alignment)].sum()
    return loss, alignment


def check(name, c, t, bad):
    c = torch.as_tensor(c, dtype=torch.float64).reshape(t.shape)
    err = (c - t).abs().max().item()
    scale = t.abs().max().item()
    ok = err <= 1e-6 + 1e-4 * scale
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |diff| {err:.3g} (max |grad| {scale:.3g})")
    return bad + (not ok)


def main():
    _, recs = pmxstream.read(os.path.join(sys.argv[1], "distill.pmxs"))
    bad = 0
    T = 2.0
    for n, r in enumerate(recs):
        s = torch.tensor(r["s_logits"].astype("float64"), requires_grad=True)
        t = torch.tensor(r["t_logits"].astype("float64"))
        lp = F.kl_div(F.log_softmax(s / T, dim=-1), F.softmax(t / T, dim=-1),
                      reduction="batchmean") * T * T
        LS, RS = r["s_hidden"].shape
        RH = r["t_hidden"].shape[1]
        H, HS = r["lt_weight"].shape
        sh = torch.tensor(r["s_hidden"].astype("float64"), requires_grad=True)
        th = torch.tensor(r["t_hidden"].astype("float64"))
        W = torch.tensor(r["lt_weight"].astype("float64"), requires_grad=True)
        b = torch.tensor(r["lt_bias"].astype("float64"), requires_grad=True)
        s_layers = [sh[j].view(RS // HS, HS) for j in range(LS)]
        t_layers = [th[k].view(RH // H, H) for k in range(th.shape[0])]
        ll, align = layer_loss(s_layers, t_layers, W, b, r["exists"])
        (0.7 * lp + 0.3 * ll).backward()
        for i, (c, ref) in enumerate(zip(r["losses"], (lp.item(), ll.item()))):
            ok = abs(c - ref) <= 1e-5 * (1 + abs(ref))
            print(f"{'ok  ' if ok else 'FAIL'} case {n}: {('L_pred', 'L_layer')[i]} C {c:.8f} torch {ref:.8f}")
            bad += not ok
        ok = list(r["align"]) == align
        print(f"{'ok  ' if ok else 'FAIL'} case {n}: alignment C {list(r['align'])} torch {align}")
        bad += not ok
        bad = check(f"case {n}: dL/ds_logits", r["grad_s_logits"], s.grad, bad)
        bad = check(f"case {n}: dL/ds_hidden", r["grad_s_hidden"], sh.grad, bad)
        bad = check(f"case {n}: dL/dW", r["grad_lt_weight"], W.grad, bad)
        bad = check(f"case {n}: dL/db", r["grad_lt_bias"], b.grad, bad)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
