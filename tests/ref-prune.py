"""ref-prune.py -- PyTorch reference of whole CoFi pruning steps.

Usage: ref-prune.py DIR
Reads what tests/test-prune-ref wrote in DIR and recomputes in float64,
from MUX-PLM-SPEC.md §6 as CoFi's trainer and L0Module compute it:
  z        = hardtanh(sigmoid((log u - log(1 - u) + log_alpha) / beta)
                      * (r - l) + l, 0, 1) with the given noise u (§6.2);
  student  = the masked model of tests/ref-train.py (modeling_bert.py);
  loss     = alpha_ce * KL(softmax(t/T) || log_softmax(s/T), batchmean) T^2
           + alpha_layer * layer distillation v4 (tests/ref-distill.py)
           + lambda1 (s_hat - t) + lambda2 (s_hat - t)^2, s_hat the
             expected sparsity with hidden (§6.4), t warmed up linearly;
  updates  = clip_grad_norm_ (model parameters), torch.optim.AdamW on the
             model (embeddings and instance keys frozen; linear decay),
             AdamW on the log alphas (lr reg_lr), AdamW ascent on the
             lambdas (maximize, i.e. lr -reg_lr), log alpha clamped to
             [log 1e-2, log 1e2].
Compares the first step's gradients of every student parameter, every log
alpha and both lambdas (max |d| <= 1e-6 + 1e-4 max |g| per tensor), and
every step's losses (|d| <= 1e-5 (1 + |L|)).  Exits 1 on any mismatch.
"""
import importlib.util
import math
import os
import sys

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import pmxstream  # noqa: E402


def load_module(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(here, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ref_train = load_module("ref_train", "ref-train.py")
ref_distill = load_module("ref_distill", "ref-distill.py")
torch.set_default_dtype(torch.float64)

L_A, L_B, EPS, BETA = -0.1, 1.1, 1e-6, 2.0 / 3.0


def one_minus_cdf0(loga):
    xn = (0 - L_A) / (L_B - L_A)
    c = torch.sigmoid(math.log(xn / (1 - xn)) * BETA - loga).clamp(min=EPS, max=1 - EPS)
    return 1 - c


def split(flat, L, H, heads, ffn):
    """Flat log alphas (masks TSV order) -> {(kind, layer): tensor}."""
    out, o = {}, 0
    for l in range(L):
        out[("head", l)] = flat[o:o + heads[l]]; o += heads[l]
    for l in range(L):
        out[("head_layer", l)] = flat[o:o + 1]; o += 1
    for l in range(L):
        out[("intermediate", l)] = flat[o:o + ffn[l]]; o += ffn[l]
    for l in range(L):
        out[("mlp", l)] = flat[o:o + 1]; o += 1
    out[("hidden", -1)] = flat[o:o + H]; o += H
    assert o == flat.numel()
    return out


def expected_sparsity(A, L, head_weight, prunable):
    hs = one_minus_cdf0(A[("hidden", -1)]).sum()
    heads = sum((one_minus_cdf0(A[("head_layer", l)]) * one_minus_cdf0(A[("head", l)])).sum()
                for l in range(L))
    ints = sum((one_minus_cdf0(A[("mlp", l)]) * one_minus_cdf0(A[("intermediate", l)])).sum()
               for l in range(L))
    return 1 - (head_weight * hs * heads + 2 * hs * ints) / prunable


def step_loss(S, Tp, loga, lam, u, data, meta, target, shape):
    L, H = int(meta["layers"]), S["embeddings.word_embeddings.weight"].shape[1]
    heads, ffn = shape
    z = F.hardtanh(torch.sigmoid((torch.log(u) - torch.log(1 - u) + loga) / BETA)
                   * (L_B - L_A) + L_A, 0, 1)
    Z = split(z, L, H, heads, ffn)
    ta, sa = {}, {}
    with torch.no_grad():
        ref_train.model_loss(Tp, data, meta, None, ta)
    ref_train.model_loss(S, data, meta, Z, sa)
    T = float(meta["temperature"])
    lp = F.kl_div(F.log_softmax(sa["logits"] / T, dim=-1), F.softmax(ta["logits"] / T, dim=-1),
                  reduction="batchmean") * T * T
    exists = [bool(Z[("head_layer", l)].item() != 0) for l in range(L)]
    sh = [h.reshape(-1, H) for h in sa["hidden"][1:]]
    th = [h.reshape(-1, H) for h in ta["hidden"][1:]]
    ll, _ = ref_distill.layer_loss(sh, th, S["layer_transformation.weight"],
                                   S["layer_transformation.bias"], exists)
    s_hat = expected_sparsity(split(loga, L, H, heads, ffn), L,
                              float(meta["head_weight"]), float(meta["prunable"]))
    lag = lam[0] * (s_hat - target) + lam[1] * (s_hat - target) ** 2
    loss = float(meta["alpha_ce"]) * lp + float(meta["alpha_layer"]) * ll + lag
    return loss, lp, ll, lag, s_hat


def close(name, c, t, bad):
    c = torch.tensor(c, dtype=torch.float64).reshape(t.shape)
    err = (c - t).abs().max().item()
    scale = t.abs().max().item()
    ok = err <= 1e-6 + 1e-4 * scale
    if not ok:
        print(f"FAIL {name}: max |diff| {err:.3g}, max |grad| {scale:.3g}")
    return bad + (not ok), err / (1e-6 + 1e-4 * scale)


def main():
    d = sys.argv[1]
    rd = lambda f: pmxstream.read(os.path.join(d, f))
    _, (tw,) = rd("teacher.pmxs")
    _, (sw,) = rd("student.pmxs")
    meta, (data,) = rd("data.pmxs")
    _, (l0,) = rd("l0.pmxs")
    _, (grads,) = rd("grads.pmxs")
    _, (out,) = rd("losses.pmxs")
    shape = [tuple(int(x) for x in p.split("/")) for p in meta["shape"].split(",")]
    shape = ([h for h, _ in shape], [f for _, f in shape])
    Tp = {k: torch.tensor(v.astype("float64")) for k, v in tw.items()}
    for k in ("ids", "type_ids", "lengths", "label"):
        data[k] = data[k].copy()
    frozen = lambda k: k == "instance_embedding" or k.startswith("embeddings.")
    S = {k: torch.tensor(v.astype("float64"), requires_grad=k != "instance_embedding")
         for k, v in sw.items()}
    loga = torch.tensor(l0["loga"].astype("float64"), requires_grad=True)
    lam = torch.tensor([float(meta["lambda1"]), float(meta["lambda2"])], requires_grad=True)
    noise = torch.tensor(l0["noise"].astype("float64"))
    steps, warm = int(meta["steps"]), int(meta["warmup"])
    target_at = lambda s: float(meta["sparsity"]) * min(1.0, s / warm)
    trained = [p for k, p in S.items() if not frozen(k)]
    opt = torch.optim.AdamW(trained, lr=float(meta["lr"]), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (steps - s) / steps)
    reg = float(meta["reg_lr"])
    opt_l0 = torch.optim.AdamW([loga], lr=reg, weight_decay=0.0)
    opt_lam = torch.optim.AdamW([lam], lr=reg, weight_decay=0.0, maximize=True)
    bad = 0
    for s in range(steps):
        for o in (opt, opt_l0, opt_lam):
            o.zero_grad()
        loss, lp, ll, lag, s_hat = step_loss(S, Tp, loga, lam, noise[s], data, meta,
                                             target_at(s), shape)
        loss.backward()
        if s == 0:
            worst = 0.0
            for k, p in S.items():
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                bad, w = close(f"grad {k}", grads[k], g, bad)
                worst = max(worst, w)
            print(f"{'ok  ' if not bad else 'FAIL'} step 0: {len(S)} weight gradients,"
                  f" worst error / tolerance {worst:.2e}")
            b0 = bad
            bad, w = close("grad log_alpha", grads["l0_grad"], loga.grad, bad)
            bad, w2 = close("grad lambda", grads["lambda_grad"], lam.grad, bad)
            print(f"{'ok  ' if bad == b0 else 'FAIL'} step 0: {loga.numel()} log alpha and 2"
                  f" lambda gradients, worst error / tolerance {max(w, w2):.2e}")
        # prumux's AdamW counts steps globally: a parameter outside this
        # step's graph (the LayerNorm of a sublayer whose z is 0) still
        # takes an update with gradient 0, as torch does from its second
        # step on (zero_grad keeps zero tensors), but not at its first.
        for p in trained:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        torch.nn.utils.clip_grad_norm_(trained, float(meta["clip"]))
        opt.step()
        sched.step()
        opt_l0.step()
        opt_lam.step()
        with torch.no_grad():
            loga.clamp_(math.log(1e-2), math.log(1e2))
        row = out["losses"][s]
        names = ("loss", "pred", "layer", "lagrangian", "expected sparsity")
        refs = (loss.item(), lp.item(), ll.item(), lag.item(), s_hat.item())
        oks = [abs(row[i] - refs[i]) <= 1e-5 * (1 + abs(refs[i])) for i in range(5)]
        for i in range(5):
            if not oks[i]:
                print(f"FAIL step {s}: {names[i]} C {row[i]:.8f} torch {refs[i]:.8f}")
        print(f"{'ok  ' if all(oks) else 'FAIL'} step {s}: loss C {row[0]:.8f} torch {refs[0]:.8f}"
              f" (pred {refs[1]:.6f} layer {refs[2]:.6f} lagrangian {refs[3]:.6f}"
              f" expected sparsity {refs[4]:.5f})")
        bad += not all(oks)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
