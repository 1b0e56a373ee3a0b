"""ref-l0.py -- PyTorch reference of CoFi's hard-concrete masks.

Usage: ref-l0.py DUMP
DUMP is written by tests/test-l0: per case, the shape, log alpha, the noise
u of one training sample and lib/prune/l0.c's results.  This recomputes them in
float64 from MUX-PLM-SPEC.md §6.2-§6.5, written as CoFi's L0Module
(cdf_qz, quantile_concrete, _deterministic_z, expected size with hidden,
lagrangian_regularization), with autograd for every gradient, and compares.

Tolerances: values the C library returns in double (expected sparsity,
Lagrangian, dL/dlambda) within 1e-6 relative; values it stores in float
(z, cdf, deterministic masks, dL/dlog alpha) within 1e-5 relative to the
element (plus 1e-7 of the array's largest magnitude, for elements that
cancel to ~0); the deterministic masks' zeros exactly.  Exits 1 on any
mismatch.
"""
import math
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

LIMIT_A, LIMIT_B, EPSILON = -0.1, 1.1, 1e-6
TEMPERATURE = 2.0 / 3.0
MAGICAL_NUMBER = 0.8


def cdf_qz(x, loga):
    xn = (x - LIMIT_A) / (LIMIT_B - LIMIT_A)
    logits = math.log(xn) - math.log(1 - xn)
    return torch.sigmoid(logits * TEMPERATURE - loga).clamp(min=EPSILON, max=1 - EPSILON)


def quantile_concrete(x, loga):
    y = torch.sigmoid((torch.log(x) - torch.log(1 - x) + loga) / TEMPERATURE)
    return y * (LIMIT_B - LIMIT_A) + LIMIT_A


def deterministic_z(size, loga):
    expected_num_nonzeros = torch.sum(1 - cdf_qz(0, loga))
    expected_num_zeros = size - expected_num_nonzeros.item()
    num_zeros = round(expected_num_zeros)
    soft_mask = torch.sigmoid(loga / TEMPERATURE * MAGICAL_NUMBER)
    if num_zeros > 0:
        if soft_mask.ndim == 0:
            soft_mask = torch.tensor(0.0)
        else:
            _, indices = torch.topk(soft_mask, k=num_zeros, largest=False)
            soft_mask[indices] = 0.0
    return soft_mask


class Masks:
    """The flat log alphas split by kind, in the masks TSV's order."""

    def __init__(self, shape, flat):
        L, H = shape["layers"], shape["hidden"]
        heads, ffn = shape["heads"], shape["ffn"]
        o = 0
        self.head = []
        for l in range(L):
            self.head.append(flat[o:o + heads[l]]); o += heads[l]
        self.head_layer = flat[o:o + L]; o += L
        self.intermediate = []
        for l in range(L):
            self.intermediate.append(flat[o:o + ffn[l]]); o += ffn[l]
        self.mlp = flat[o:o + L]; o += L
        self.hidden = flat[o:o + H]; o += H
        assert o == flat.numel()
        self.L = L

    def flat(self, per):
        """PER(kind, values, size) for every group, concatenated in order."""
        out = [per(h, h.numel()) for h in self.head]
        out += [per(self.head_layer[l], 1).reshape(1) for l in range(self.L)]
        out += [per(i, i.numel()) for i in self.intermediate]
        out += [per(self.mlp[l], 1).reshape(1) for l in range(self.L)]
        out += [per(self.hidden, self.hidden.numel())]
        return torch.cat(out)


def expected_size(m, head_weight):
    # §6.4: sum(outer(hidden_score, head_score)) * params_per_head / H
    #       + sum(outer(hidden_score, intermediate_score)) * 2
    hidden_score = 1 - cdf_qz(0, m.hidden)
    head_score = torch.cat([(1 - cdf_qz(0, m.head_layer[l])) * (1 - cdf_qz(0, h))
                            for l, h in enumerate(m.head)])
    int_score = torch.cat([(1 - cdf_qz(0, m.mlp[l])) * (1 - cdf_qz(0, i))
                           for l, i in enumerate(m.intermediate)])
    return (torch.sum(torch.outer(hidden_score, head_score)) * head_weight
            + torch.sum(torch.outer(hidden_score, int_score)) * 2)


failures = 0


def close(case, name, got, want, rel, floor=0.0):
    global failures
    got = torch.as_tensor(got, dtype=torch.float64).reshape(-1)
    want = want.detach().reshape(-1)
    big = want.abs().max().item() if want.numel() else 0.0
    err = (got - want).abs()
    bound = rel * want.abs() + floor * big
    worst = (err / (want.abs() + 1e-300)).max().item()
    ok = bool((err <= bound).all())
    print(f"{case} {name}: n {want.numel()}, max |d| {err.max().item():.3g}, "
          f"max rel {worst:.3g} {'ok' if ok else 'FAIL'}")
    if not ok:
        i = int(torch.argmax(err - bound))
        print(f"  worst at {i}: C {got[i].item()!r} torch {want[i].item()!r}")
        failures += 1


def check_case(case, d):
    sh = d["shape"]
    L, H = int(sh[0]), int(sh[1])
    head_weight, prunable = sh[2], sh[3]
    shape = {"layers": L, "hidden": H,
             "heads": [int(sh[4 + 2 * l]) for l in range(L)],
             "ffn": [int(sh[5 + 2 * l]) for l in range(L)]}
    loga = torch.tensor(d["loga"], requires_grad=True)
    u = torch.tensor(d["u"])
    F32 = dict(rel=1e-5, floor=1e-7)

    # A training sample: z = hardtanh(quantile_concrete(u, loga), 0, 1).
    z = F.hardtanh(quantile_concrete(u, loga), min_val=0, max_val=1)
    close(case, "sample z", d["z"], z, **F32)
    (0.5 * torch.sum(z * torch.tensor(d["dz"]))).backward()
    close(case, "sample dL/dloga", d["grad_sample"], loga.grad, **F32)
    loga.grad = None

    close(case, "cdf_qz(0)", d["cdf0"], cdf_qz(0, loga), **F32)
    close(case, "cdf_qz(0.3)", d["cdf3"], cdf_qz(0.3, loga), **F32)

    m = Masks(shape, loga.detach())
    det = m.flat(lambda v, n: deterministic_z(n, v.clone()))
    close(case, "deterministic z", d["det"], det, **F32)
    zeros_c = torch.tensor(d["det"]) == 0
    global failures
    if not torch.equal(zeros_c, det == 0):
        print(f"{case} deterministic zeros differ FAIL")
        failures += 1
    print(f"{case} deterministic zeros: {int(zeros_c.sum())} of {det.numel()}")

    m = Masks(shape, loga)
    s = 1 - expected_size(m, head_weight) / prunable
    close(case, "expected sparsity", [d["sparsity"][0]], s, rel=1e-6)
    (2.0 * s).backward()
    close(case, "d sparsity/dloga", d["grad_sparsity"], loga.grad, **F32)
    loga.grad = None

    lambda_1 = torch.tensor(0.3, requires_grad=True)
    lambda_2 = torch.tensor(-0.7, requires_grad=True)
    target = 0.4
    s = 1 - expected_size(m, head_weight) / prunable
    lag = lambda_1 * (s - target) + lambda_2 * (s - target) ** 2
    lag.backward()
    close(case, "lagrangian", [d["lagrangian"][0]], lag, rel=1e-6)
    close(case, "d lagrangian/dloga", d["grad_lagrangian"], loga.grad, **F32)
    close(case, "d lagrangian/dlambda1", [d["grad_lambda1"][0]], lambda_1.grad, rel=1e-6)
    close(case, "d lagrangian/dlambda2", [d["grad_lambda2"][0]], lambda_2.grad, rel=1e-6)


def main():
    cases = {}
    with open(sys.argv[1]) as f:
        for line in f:
            w = line.split()
            cases.setdefault(w[0], {})[w[1]] = [float(x) for x in w[2:]]
    for case, d in cases.items():
        check_case(case, d)
    if not cases:
        print("no cases")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
