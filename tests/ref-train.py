"""ref-train.py -- PyTorch autograd reference for prumux training.

Usage: ref-train.py DIR
Reads DIR/weights.pmxs, DIR/data.pmxs (written by tests/test-train-ref),
recomputes in float64 from MUX-PLM-SPEC.md the loss, every parameter's
gradient and 10 AdamW steps (torch.optim.AdamW, linear warm-up/decay as
transformers' get_linear_schedule_with_warmup, clip_grad_norm_), and
compares them with DIR/grads.pmxs and DIR/losses.pmxs.  With masks
(DIR/z.tsv, meta masked=1) the model is CoFi's (MUX-PLM-SPEC.md §6.1,
modeling_bert.py): context *= head_z, attention output * head_layer_z,
intermediate * intermediate_z, FFN output * mlp_z, hidden_z before and
after every LayerNorm, CoFiLayerNorm over the nonzero hidden_z dims, a
sublayer whose output sums to 0 skipped; the first, per-instance
embedding pass of a muxed model is masked as the second (train-model.h).
The loss differentiated then adds sum(ext_dhidden[l] * hidden[l]) +
sum(ext_dlogits * logits), and the mask gradients are compared with
DIR/dz.tsv with the weights' tolerance.

Tolerances (C computes in float32): loss |d| <= 1e-5 (1 + |loss|); per
tensor max |g_C - g_torch| <= 1e-6 + 1e-4 max |g_torch|; step losses
|d| <= 1e-5 (1 + |loss|), gradient norms 1e-5 (1 + norm).  Exits 1 on any mismatch.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pmxstream  # noqa: E402

torch.set_default_dtype(torch.float64)


def load(path):
    meta, recs = pmxstream.read(path)
    return meta, {k: v.copy() for k, v in recs[0].items()}


def read_z(path):
    """The masks TSV as {(kind, layer): [values]} of float64 leaves."""
    rows = {}
    with open(path) as f:
        next(f)
        for line in f:
            layer, kind, index, z = line.rstrip("\n").split("\t")
            rows.setdefault((kind, -1 if layer == "-" else int(layer)), []).append(
                (int(index), float(z)))
    return {k: torch.tensor([z for _, z in sorted(v)], requires_grad=True)
            for k, v in rows.items()}


def cofi_ln(x, P, p, hz, eps):
    """CoFiLayerNorm: normalise over the dims with nonzero hidden_z only."""
    w, b = P[p + ".weight"], P[p + ".bias"]
    if hz is None:
        return F.layer_norm(x, (x.shape[-1],), w, b, eps)
    idx = torch.where(hz != 0)[0]
    out = x.clone()
    out[..., idx] = F.layer_norm(x[..., idx], (len(idx),), w[idx], b[idx], eps)
    return out


def model_loss(P, d, meta, Z=None, acts=None):
    N = int(meta["mux_n"])
    muxed = int(meta["muxed"]) == 1
    layers = int(meta["layers"])
    hd = int(meta["head_dim"])
    eps = 1e-12
    ids = torch.as_tensor(d["ids"]).long()
    B, T = ids.shape
    H = P["embeddings.word_embeddings.weight"].shape[1]
    ln = lambda x, p: F.layer_norm(x, (x.shape[-1],), P[p + ".weight"], P[p + ".bias"], eps)
    lin = lambda x, p: F.linear(x, P[p + ".weight"], P[p + ".bias"])
    gelu = lambda x: F.gelu(x)          # exact erf form
    pos = P["embeddings.position_embeddings.weight"][:T]
    typ = P["embeddings.token_type_embeddings.weight"]
    word = P["embeddings.word_embeddings.weight"]
    hz = Z[("hidden", -1)] if Z else None
    # CoFiBertEmbeddings: (sum * hz) -> CoFiLayerNorm -> * hz
    hmul = (lambda t: t * hz) if Z else (lambda t: t)
    emb = lambda t: hmul(cofi_ln(hmul(t), P, "embeddings.LayerNorm", hz, eps))
    if muxed:
        # §2.3: E1 = LN(word + pos + type0); mean_i E1_i * v_i; E2 = LN(M + pos + type0)
        e1 = emb(word[ids] + pos + typ[0])
        G = B // N
        keys = P["instance_embedding"]
        m = (e1.view(G, N, T, H) * keys.view(1, N, 1, H)).mean(dim=1)
        x = emb(m + pos + typ[0])
        mask = None
    else:
        types = torch.as_tensor(d["type_ids"]).long()
        x = emb(word[ids] + pos + typ[types])
        G = B
        lengths = torch.as_tensor(d["lengths"]).long()
        keep = torch.arange(T).view(1, T) < lengths.view(B, 1)
        mask = torch.where(keep, 0.0, -math.inf).view(B, 1, 1, T)
    hiddens = [x]
    for l in range(layers):
        p = f"encoder.layer.{l}"
        if p + ".attention.self.query.weight" in P:
            q = lin(x, p + ".attention.self.query")
            k = lin(x, p + ".attention.self.key")
            v = lin(x, p + ".attention.self.value")
            nh = q.shape[-1] // hd
            sh = lambda t: t.view(G, T, nh, hd).transpose(1, 2)
            s = sh(q) @ sh(k).transpose(-1, -2) / math.sqrt(hd)
            if mask is not None:
                s = s + mask
            ctx = s.softmax(-1) @ sh(v)                      # (G, nh, T, hd)
            if Z:
                ctx = ctx * Z[("head", l)].view(1, nh, 1, 1)
            ctx = ctx.transpose(1, 2).reshape(G, T, nh * hd)
            a = lin(ctx, p + ".attention.output.dense")
            if Z:
                a = a * Z[("head_layer", l)][0]
                if a.sum().eq(0).item():                     # CoFiBertSelfOutput
                    x = a + x
                else:
                    x = hmul(cofi_ln(a * hz + x, P, p + ".attention.output.LayerNorm", hz, eps))
            else:
                x = ln(x + a, p + ".attention.output.LayerNorm")
        if p + ".intermediate.dense.weight" in P:
            i = gelu(lin(x, p + ".intermediate.dense"))
            if Z:
                i = i * Z[("intermediate", l)]
            f = lin(i, p + ".output.dense")
            if Z:
                f = f * Z[("mlp", l)][0]
                if f.sum().eq(0).item():                     # CoFiBertOutput
                    x = f + x
                else:
                    x = hmul(cofi_ln(f * hz + x, P, p + ".output.LayerNorm", hz, eps))
            else:
                x = ln(x + f, p + ".output.LayerNorm")
        hiddens.append(x)
    loss = torch.zeros(())
    tw = float(meta["task_weight"])
    rw = float(meta["retrieval_weight"])
    labels = torch.as_tensor(d["label"]).long()
    if tw != 0 or acts is not None:
        if muxed:
            # §4.1: index_pos classification path (dropout in place of LN 1/2)
            h0 = x[:, 0, :].repeat_interleave(N, dim=0)            # (B, H), row g*N+i
            e = P["demux_module.demux_instance_embedding"].repeat(G, 1)
            z1 = gelu(lin(torch.cat([e, h0], 1), "demux_module.dense_1"))
            z2 = gelu(lin(z1, "demux_module.dense_2")) + z1
            z3 = ln(gelu(lin(z2, "demultiplexer.pre_decoder")),
                    "demultiplexer.pre_decoder_layer_norm") + z2
        else:
            z3 = x[:, 0, :]
        logits = lin(z3, "classifier")
        if tw != 0:
            loss = loss + tw * F.cross_entropy(logits, labels, ignore_index=-1)
        if acts is not None:
            acts["logits"] = logits
    if acts is not None:
        acts["hidden"] = hiddens
    def vocab_head(z):
        z = ln(gelu(lin(z, "demux_module.dense_1")), "demux_module.layer_norm_1")
        z = ln(gelu(lin(z, "demux_module.dense_2")), "demux_module.layer_norm_2")
        z = ln(gelu(lin(z, "retrieval_head.pre_decoder")), "retrieval_head.pre_decoder_layer_norm")
        return lin(z, "retrieval_head.decoder")
    mw = float(meta.get("mlm_weight", 0))
    if mw != 0:
        # §4.5 MLM: every instance at every masked position, against the original
        mlm = torch.as_tensor(d["mlm_labels"]).long().view(G, N, T)
        e = P["demux_module.demux_instance_embedding"].view(1, N, 1, H).expand(G, N, T, H)
        z = torch.cat([e, x.view(G, 1, T, H).expand(G, N, T, H)], 3)
        logits = vocab_head(z)
        loss = loss + mw * F.cross_entropy(logits.reshape(G * N * T, -1), mlm.reshape(-1),
                                           ignore_index=-1)
    if rw != 0:
        # §4.2: one instance per muxed position, its token the target, PAD ignored
        inst = torch.as_tensor(d["ret_inst"]).long()                # (G, T)
        e = P["demux_module.demux_instance_embedding"][inst]       # (G, T, H)
        tgt = ids.view(G, N, T).gather(1, inst.view(G, 1, T)).view(G, T)
        logits = vocab_head(torch.cat([e, x], 2))
        tgt = torch.where(tgt == 0, -100, tgt)
        loss = loss + rw * F.cross_entropy(logits.view(G * T, -1), tgt.view(-1))
    return loss


def params(W):
    # The instance keys are fixed (learn_muxing = 0): no gradient.
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=k != "instance_embedding")
            for k, v in W.items()}


def main():
    d_ = sys.argv[1]
    _, W = load(os.path.join(d_, "weights.pmxs"))
    meta, data = load(os.path.join(d_, "data.pmxs"))
    _, grads = load(os.path.join(d_, "grads.pmxs"))
    _, steps = load(os.path.join(d_, "losses.pmxs"))
    bad = 0

    P = params(W)
    masked = int(meta.get("masked", 0)) == 1
    Z = read_z(os.path.join(d_, "z.tsv")) if masked else None
    acts = {}
    loss = model_loss(P, data, meta, Z, acts)
    total = loss
    if masked:
        # The loss computed outside the model: its gradients, given.
        G = acts["hidden"][0].shape[0]
        eh = torch.as_tensor(data["ext_dhidden"])
        for l, h in enumerate(acts["hidden"]):
            total = total + (eh[l].view(h.shape) * h).sum()
        total = total + (torch.as_tensor(data["ext_dlogits"]) * acts["logits"]).sum()
    total.backward()
    cl = float(grads["loss"][0])
    ok = abs(cl - loss.item()) <= 1e-5 * (1 + abs(loss.item()))
    print(f"{'ok  ' if ok else 'FAIL'} loss C {cl:.8f} torch {loss.item():.8f}")
    bad += not ok
    worst = 0.0
    for k, p in P.items():
        gt = p.grad if p.grad is not None else torch.zeros_like(p)
        gc = torch.tensor(grads[k], dtype=torch.float64)
        err = (gc - gt).abs().max().item()
        scale = gt.abs().max().item()
        worst = max(worst, err / (1e-6 + 1e-4 * scale))
        if not err <= 1e-6 + 1e-4 * scale:
            print(f"FAIL grad {k}: max |diff| {err:.3g}, max |grad| {scale:.3g}")
            bad += 1
    print(f"{'ok  ' if not bad else 'FAIL'} {len(P)} gradient tensors, "
          f"worst error / tolerance {worst:.2e}")
    if masked:
        dZ = read_z(os.path.join(d_, "dz.tsv"))
        zbad = 0
        zworst = 0.0
        for k, z in Z.items():
            gt = z.grad if z.grad is not None else torch.zeros_like(z)
            gc = dZ[k].detach()
            err = (gc - gt).abs().max().item()
            scale = gt.abs().max().item()
            zworst = max(zworst, err / (1e-6 + 1e-4 * scale))
            if not err <= 1e-6 + 1e-4 * scale:
                print(f"FAIL mask gradient {k}: max |diff| {err:.3g}, max |grad| {scale:.3g}")
                zbad += 1
        print(f"{'ok  ' if not zbad else 'FAIL'} {len(Z)} mask gradient vectors, "
              f"worst error / tolerance {zworst:.2e}")
        bad += zbad

    # Ten AdamW steps from the same weights.
    P = params(W)
    freeze = int(meta["freeze_embeddings"])
    trained = {k: p for k, p in P.items()
               if k != "instance_embedding" and not (freeze and k.startswith("embeddings."))}
    nodecay = lambda k: k.endswith(".bias") or "LayerNorm" in k or "layer_norm" in k
    groups = [{"params": [p for k, p in trained.items() if not nodecay(k)],
               "weight_decay": float(meta["weight_decay"])},
              {"params": [p for k, p in trained.items() if nodecay(k)], "weight_decay": 0.0}]
    lr = float(meta["lr"])
    opt = torch.optim.AdamW(groups, lr=lr)
    n, warm = int(meta["steps"]), int(meta["warmup"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, warm) if s < warm else max(0.0, (n - s) / max(1, n - warm)))
    for s in range(n):
        opt.zero_grad()
        loss = model_loss(P, data, meta, Z and {k: v.detach() for k, v in Z.items()})
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(trained.values()), float(meta["clip"]))
        opt.step()
        sched.step()
        c = float(steps["losses"][s])
        ok = abs(c - loss.item()) <= 1e-5 * (1 + abs(loss.item()))
        cn = float(steps["grad_norms"][s])
        ok_n = abs(cn - norm.item()) <= 1e-5 * (1 + norm.item())
        print(f"{'ok  ' if ok and ok_n else 'FAIL'} step {s}: loss C {c:.6f} torch "
              f"{loss.item():.6f}, grad norm C {cn:.5f} torch {norm.item():.5f}")
        bad += (not ok) + (not ok_n)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
