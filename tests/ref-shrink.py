"""ref-shrink.py -- CoFi shrinking (lib/prune/shrink.c, `prumux-model shrink`)
against PyTorch references written from MUX-PLM-SPEC.md §6.

Usage: ref-shrink.py BINDIR WORKDIR

For a plain BERT classifier (N = 1, pooler) and a MUX-BERT (N = 2,
index_pos), both with 3 layers: random weights written as a Hugging Face
directory, converted by prumux-convert, shrunk by `prumux-model shrink`
with masks that cut some heads, FFN dimensions and hidden dimensions,
remove the attention sublayer of layer 1 (head_layer_z = 0) and the FFN of
layer 2 (mlp_z = 0) and keep the others at soft values, then run through
prumux-mux | prumux-infer | prumux-demux.  Checked:

1. The shrunk archive holds exactly the tensors CoFi's update_params then
   prune_model_with_z (written here in float32 torch, in CoFi's order of
   multiplication) give, bit for bit, and records the pruned hidden size
   and pmx_cofi_z_sparsity's sparsity.
2. Its pipeline logits equal a float64 forward of those tensors within
   1e-5 (absolute).
3. With hidden_z in {0, 1} (soft structure masks): its pipeline logits
   equal the masked unshrunk model's, run as CoFi's modeling code runs it
   (head_z on each head's context, head_layer_z and mlp_z on the sublayer
   outputs, intermediate_z on the FFN activations, hidden_z on the
   embeddings and on every sublayer output before and after a LayerNorm
   over the kept dimensions, a sublayer whose output sums to 0 skipped),
   within 1e-5.  Two departures from PruMUX's training forward, both what
   the physically pruned model computes (§6.9): hidden_z also masks the
   first embedding pass before the mux and the demux's instance embedding.
   With soft hidden_z the masked and shrunk models differ by design
   (update_params scales neither the residual stream nor output.dense's
   bias): that difference is printed, not checked.
4. A 20-layer model (329 tensors, two records) shrunk to one record's
   worth: 1. and 2. again, and no empty record.
5. Issue 16: a CoFi checkpoint with pruned hidden dimensions as CoFi saves
   it (embeddings (V, H'), pooler.dense (H, H'), classifier (C, H), config
   hidden_size H) converts and runs: logits through the pipeline, and the
   sentence embeddings of `--pool=pooler` (width H) and `--pool=cls` (width
   H'), within 1e-5 of PyTorch; logits with `--pool=cls` are refused.
"""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pmxstream  # noqa: E402


def load(name):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"),
                                                  os.path.join(HERE, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rm = load("ref-mux")
rmodel = load("ref-model")

TOL = 1e-5
H, HEADS, HD, LAYERS, INTER, C = 32, 4, 8, 3, 64, 3
failures = []


def report(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"FAIL: {cmd if isinstance(cmd, str) else ' '.join(cmd)} "
                         f"exited {p.returncode}")
    return p


# ---- masks -------------------------------------------------------------------

def make_masks(seed, soft_hidden, deep=False):
    """Random deterministic-style masks: zeros and soft survivors (as
    sigmoid(1.2 loga) gives them, < 1); layer 1's attention and layer 2's
    FFN removed by their layer masks (DEEP: both sublayers of every layer
    from 3 on but each fourth).  Float32 values (what the TSV holds)."""
    g = torch.Generator().manual_seed(seed)

    def soft(n):
        return (0.3 + 0.69 * torch.rand(n, generator=g)).float()

    def cut(v, frac):
        k = max(1, int(round(frac * v.numel())))
        idx = torch.randperm(v.numel(), generator=g)[:k]
        v = v.clone()
        v[idx] = 0
        return v

    zs = {"head": [], "head_layer": soft(LAYERS), "intermediate": [], "mlp": soft(LAYERS)}
    for l in range(LAYERS):
        zs["head"].append(cut(soft(HEADS), 0.25 + 0.25 * (l == 2)))
        zs["intermediate"].append(cut(soft(INTER), 0.3))
    zs["head_layer"][1] = 0          # a fully pruned attention sublayer
    zs["mlp"][2] = 0                 # a fully pruned FFN
    if deep:
        for l in range(3, LAYERS):
            if l % 4:
                zs["head_layer"][l] = zs["mlp"][l] = 0
    hidden = soft(H) if soft_hidden else torch.ones(H)
    zs["hidden"] = cut(hidden, 0.25)
    return zs


def write_masks(path, zs):
    f32 = lambda x: f"{float(np.float32(x)):.9g}"
    with open(path, "w") as f:
        f.write("layer\tkind\tindex\tz\n")
        for l in range(LAYERS):
            for h in range(HEADS):
                f.write(f"{l}\thead\t{h}\t{f32(zs['head'][l][h])}\n")
        for l in range(LAYERS):
            f.write(f"{l}\thead_layer\t0\t{f32(zs['head_layer'][l])}\n")
        for l in range(LAYERS):
            for j in range(INTER):
                f.write(f"{l}\tintermediate\t{j}\t{f32(zs['intermediate'][l][j])}\n")
        for l in range(LAYERS):
            f.write(f"{l}\tmlp\t0\t{f32(zs['mlp'][l])}\n")
        for d in range(H):
            f.write(f"-\thidden\t{d}\t{f32(zs['hidden'][d])}\n")


def sparsity(zs):
    """pmx_cofi_z_sparsity: CoFi's calculate_model_size at this shape."""
    kh = int((zs["hidden"] != 0).sum())
    rem = 0
    for l in range(LAYERS):
        heads = int(((zs["head"][l] * zs["head_layer"][l]) != 0).sum())
        ffn = int(((zs["intermediate"][l] * zs["mlp"][l]) != 0).sum())
        rem += heads * kh * 4 * HD + ffn * kh * 2
    prunable = LAYERS * (4 * H * H + 4 * H + 2 * H * INTER + 5 * H)
    return 1 - rem / prunable


# ---- CoFi's update_params and prune_model_with_z (float32, CoFi's order) ------

def cofi_shrink(W, zs, N):
    W = {k: v.clone().float() for k, v in W.items()}
    hz = zs["hidden"]
    for l in range(LAYERS):                                # update_params
        p = f"encoder.layer.{l}."
        if p + "output.dense.weight" in W:
            W[p + "output.dense.weight"] = W[p + "output.dense.weight"].mul(zs["intermediate"][l])
            W[p + "output.dense.weight"] = W[p + "output.dense.weight"].transpose(0, 1).mul(
                zs["mlp"][l]).transpose(0, 1)
            W[p + "output.dense.bias"] = W[p + "output.dense.bias"].mul(zs["mlp"][l])
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        if p + "attention.self.value.weight" in W:
            head_z = torch.repeat_interleave(zs["head"][l], HD)
            W[p + "attention.self.value.weight"] = W[p + "attention.self.value.weight"].transpose(
                0, 1).mul(head_z).transpose(0, 1)
            W[p + "attention.self.value.bias"] = W[p + "attention.self.value.bias"].mul(head_z)
            W[p + "attention.output.dense.weight"] = W[p + "attention.output.dense.weight"].transpose(
                0, 1).mul(zs["head_layer"][l]).transpose(0, 1)
            W[p + "attention.output.dense.bias"] = W[p + "attention.output.dense.bias"].mul(
                zs["head_layer"][l])
    for n in ("word", "position", "token_type"):
        k = f"embeddings.{n}_embeddings.weight"
        W[k] = W[k].mul(hz)
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        if p + "attention.self.query.weight" in W:
            for n in ("key", "query", "value"):
                W[p + f"attention.self.{n}.weight"] = W[p + f"attention.self.{n}.weight"].mul(hz)
            W[p + "attention.output.dense.weight"] = W[p + "attention.output.dense.weight"].transpose(
                0, 1).mul(hz).transpose(0, 1)
            W[p + "attention.output.dense.bias"] = W[p + "attention.output.dense.bias"].mul(hz)
        if p + "intermediate.dense.weight" in W:
            W[p + "intermediate.dense.weight"] = W[p + "intermediate.dense.weight"].mul(hz)
            W[p + "output.dense.weight"] = W[p + "output.dense.weight"].transpose(0, 1).mul(
                hz).transpose(0, 1)
    if "pooler.dense.weight" in W:
        W["pooler.dense.weight"] = W["pooler.dense.weight"].mul(hz)
    elif N == 1:              # no pooler: the classifier by the pooler's rule
        W["classifier.weight"] = W["classifier.weight"].mul(hz)
    if N > 1:                                              # PruMUX
        W["instance_embedding"] = W["instance_embedding"].mul(hz)
        W["demux_module.dense_1.weight"] = W["demux_module.dense_1.weight"].mul(torch.cat([hz, hz]))

    # prune_model_with_z
    index = torch.nonzero(hz).reshape(-1)
    out = {}
    for k, v in W.items():
        out[k] = v
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        hk = zs["head"][l] * zs["head_layer"][l]
        keep_heads = [h for h in range(HEADS) if hk[h] != 0]
        rows = torch.tensor([h * HD + e for h in keep_heads for e in range(HD)], dtype=torch.long)
        names = [k for k in out if k.startswith(p + "attention.")]
        if not keep_heads:
            for k in names:
                del out[k]
        else:
            for n in ("query", "key", "value"):
                out[p + f"attention.self.{n}.weight"] = out[p + f"attention.self.{n}.weight"][rows][:, index]
                out[p + f"attention.self.{n}.bias"] = out[p + f"attention.self.{n}.bias"][rows]
            out[p + "attention.output.dense.weight"] = out[p + "attention.output.dense.weight"][index][:, rows]
            out[p + "attention.output.dense.bias"] = out[p + "attention.output.dense.bias"][index]
            for n in ("weight", "bias"):
                out[p + f"attention.output.LayerNorm.{n}"] = out[p + f"attention.output.LayerNorm.{n}"][index]
        ik = zs["intermediate"][l] * zs["mlp"][l]
        dims = torch.nonzero(ik).reshape(-1)
        names = [k for k in out if k.startswith((p + "intermediate.", p + "output."))]
        if dims.numel() == 0:
            for k in names:
                del out[k]
        else:
            out[p + "intermediate.dense.weight"] = out[p + "intermediate.dense.weight"][dims][:, index]
            out[p + "intermediate.dense.bias"] = out[p + "intermediate.dense.bias"][dims]
            out[p + "output.dense.weight"] = out[p + "output.dense.weight"][index][:, dims]
            out[p + "output.dense.bias"] = out[p + "output.dense.bias"][index]
            for n in ("weight", "bias"):
                out[p + f"output.LayerNorm.{n}"] = out[p + f"output.LayerNorm.{n}"][index]
    for n in ("word", "position", "token_type"):
        k = f"embeddings.{n}_embeddings.weight"
        out[k] = out[k][:, index]
    for n in ("weight", "bias"):
        out[f"embeddings.LayerNorm.{n}"] = out[f"embeddings.LayerNorm.{n}"][index]
    if "pooler.dense.weight" in out:
        out["pooler.dense.weight"] = out["pooler.dense.weight"][:, index]
    elif N == 1:
        out["classifier.weight"] = out["classifier.weight"][:, index]
    if N > 1:
        index2 = torch.cat((index, index + H), 0)
        out["instance_embedding"] = out["instance_embedding"][:, index]
        out["demux_module.demux_instance_embedding"] = out["demux_module.demux_instance_embedding"][:, index]
        out["demux_module.dense_1.weight"] = out["demux_module.dense_1.weight"][:, index2]
    return out


# ---- the masked model as CoFi's modeling code runs it (float64) -----------------

def cofi_ln(x, w, b, hz, eps=1e-12):
    """CoFiLayerNorm: normalise over the dims with nonzero hidden_z."""
    idx = torch.where(~hz.eq(0))[0]
    out = x.clone()
    out[..., idx] = F.layer_norm(x[..., idx], [len(idx)], w[idx], b[idx], eps)
    return out


def masked_embed(W, hz, ids=None, types=None, vectors=None):
    x = W["embeddings.word_embeddings.weight"][ids] if vectors is None else vectors
    T = x.shape[1]
    ty = torch.zeros(x.shape[:2], dtype=torch.long) if types is None else types
    e = x + W["embeddings.position_embeddings.weight"][:T] + W["embeddings.token_type_embeddings.weight"][ty]
    e = e.mul(hz)
    e = cofi_ln(e, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], hz)
    return e.mul(hz)


def masked_encoder(W, zs, x, lengths=None):
    hz = zs["hidden"].double()
    B, T, _ = x.shape
    bias = None
    if lengths is not None:
        keep = torch.arange(T)[None, :] < lengths[:, None]
        bias = torch.where(keep, 0.0, torch.finfo(torch.float32).min)[:, None, None, :]
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        lin = lambda t, n: F.linear(t, W[p + n + ".weight"], W[p + n + ".bias"])
        q, k, v = (lin(x, f"attention.self.{n}").view(B, T, HEADS, HD).transpose(1, 2)
                   for n in ("query", "key", "value"))
        s = q @ k.transpose(-1, -2) / (HD ** 0.5)
        if bias is not None:
            s = s + bias
        ctx = s.softmax(-1) @ v
        ctx = ctx * zs["head"][l].double().view(1, HEADS, 1, 1)        # context_layer *= head_z
        ctx = ctx.transpose(1, 2).reshape(B, T, HEADS * HD)
        a = lin(ctx, "attention.output.dense").mul(zs["head_layer"][l].double())
        if a.sum().eq(0).item():                                       # training quirk
            x = a + x
        else:
            a = a.mul(hz)
            x = cofi_ln(a + x, W[p + "attention.output.LayerNorm.weight"],
                        W[p + "attention.output.LayerNorm.bias"], hz).mul(hz)
        i = F.gelu(lin(x, "intermediate.dense")).mul(zs["intermediate"][l].double())
        o = lin(i, "output.dense") * zs["mlp"][l].double()
        if o.sum().eq(0).item():
            x = o + x
        else:
            o = o.mul(hz)
            x = cofi_ln(o + x, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"],
                        hz).mul(hz)
    return x


def masked_logits(W, zs, N, ids, types, lengths, max_length, pool="pooler"):
    W = {k: v.double() for k, v in W.items()}
    hz = zs["hidden"].double()
    if N == 1:
        e = masked_embed(W, hz, ids, types)
        h = masked_encoder(W, zs, e, lengths)
        if pool == "pooler":
            z = torch.tanh(F.linear(h[:, 0], W["pooler.dense.weight"], W["pooler.dense.bias"]))
        elif pool == "cls":                 # the classifier reads h_0 (z h, masked)
            z = h[:, 0]
        else:
            keep = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).double()
            z = (h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
        return rm.classify(W, z)
    B = ids.shape[0]
    ids = F.pad(ids, (0, max_length - ids.shape[1]), value=rm.PAD)
    full, _ = rm.fill_ragged(ids, N)
    full = full.clone()
    full[:, 0] = rm.CLS
    G, T = full.shape[0] // N, full.shape[1]
    e1 = masked_embed(W, hz, full)              # hidden_z here too (see above)
    m = (e1.view(G, N, T, H) * W["instance_embedding"][:N].view(1, N, 1, H)).mean(1)
    e2 = masked_embed(W, hz, vectors=m)
    h = masked_encoder(W, zs, e2)
    Wd = dict(W)
    Wd["demux_module.demux_instance_embedding"] = W["demux_module.demux_instance_embedding"] * hz
    z = rm.demux_forward(Wd, h, N, "index_pos", 3)
    return rm.classify(W, z)[:B]


# ---- the pipeline ---------------------------------------------------------------

def model_info(bindir, pmx):
    p = run([os.path.join(bindir, "prumux-model"), "-f", "json", "info", pmx])
    return json.loads(p.stdout)


def pipeline(bindir, wd, pmx, tokens, extra=""):
    b = lambda p: os.path.join(bindir, p)
    out = os.path.join(wd, "out.pmxs")
    cmd = (f"{b('prumux-mux')} -m {pmx} {tokens} | {b('prumux-infer')} -t 1 -m {pmx} "
           f"| {b('prumux-demux')} -m {pmx} --format=stream {extra} > {out}")
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if p.returncode:
        return None, p.stderr.strip()
    _, res = pmxstream.read(out)
    key = "logits" if "logits" in res[0] else "embeddings"
    rows = np.concatenate([r["row"] for r in res])
    return np.concatenate([r[key] for r in res])[np.argsort(rows)], ""


def write_tokens(path, B, seed):
    ids, types, lengths = rm.make_tokens(seed, B, 12)
    recs = [{"row": np.arange(a, b, dtype=np.int64),
             "ids": ids[a:b].numpy().astype(np.int32),
             "type_ids": types[a:b].numpy().astype(np.int32),
             "lengths": lengths[a:b].numpy().astype(np.int32)}
            for a, b in rm.split(B, [5, 4])]
    pmxstream.write(path, recs, {"stage": "tokens"})
    return ids, types, lengths


def maxdiff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)))


def shrink_case(bindir, wd, N, soft_hidden, deep=False, pool="pooler"):
    """POOL (N = 1): "pooler", or "cls" / "mean" for a model without a
    pooler whose classifier reads the encoder output (prumux-train's)."""
    name = f"N={N} {'soft' if soft_hidden else 'binary'} hidden_z" + (
        f", {LAYERS} layers" if deep else "") + (f", {pool} pooling" if N == 1 else "")
    d = os.path.join(wd, f"c{N}{int(soft_hidden)}{int(deep)}{pool}")
    os.makedirs(d, exist_ok=True)
    pooler = N > 1 or pool == "pooler"
    W = rm.make_model(40 + N, N, "index_pos", H=H, heads=HEADS, head_dim=HD, layers=LAYERS,
                      inter=INTER, labels=C, pooler=pooler)
    hf = os.path.join(d, "hf")
    rm.write_hf_dir(hf, W, N, "index_pos", C, LAYERS, 200, heads=HEADS, inter=INTER)
    pmx, small = os.path.join(d, "m.pmx"), os.path.join(d, "s.pmx")
    run([os.path.join(bindir, "prumux-convert"), hf, "-o", pmx]
        + (["--pooling=mean"] if N == 1 and pool == "mean" else []))
    if N == 1:
        got_pool = model_info(bindir, pmx)["pooling"]
        report(f"{name}: the converted model's pooling is {got_pool}", got_pool == pool)
    zs = make_masks(7 * N + soft_hidden, soft_hidden, deep)
    masks = os.path.join(d, "masks.tsv")
    write_masks(masks, zs)
    run([os.path.join(bindir, "prumux-model"), "shrink", "-M", masks, "-o", small, pmx])

    # 1. The tensors, bit for bit, and the recorded shape and sparsity.
    want = cofi_shrink(W, zs, N)
    cfg, _, got = rmodel.read_archive(small)
    _, _, orig = rmodel.read_archive(pmx)
    # Tensors CoFi does not touch (retrieval head, unused demux norms) pass
    # through as the unshrunk archive has them.
    for k in orig:
        if k not in want and k not in W:
            want[k] = torch.from_numpy(orig[k].copy())
    names_ok = set(got) == set(want)
    report(f"{name}: the shrunk archive's tensor names", names_ok,
           "" if names_ok else f"extra {sorted(set(got) - set(want))}, "
           f"missing {sorted(set(want) - set(got))}")
    bad = [k for k in want if k in got and not np.array_equal(got[k], want[k].numpy())]
    report(f"{name}: {len(want)} tensors equal CoFi's update_params + prune_model_with_z "
           f"bit for bit", not bad, ", ".join(bad[:5]))
    kh = int((zs["hidden"] != 0).sum())
    sp = sparsity(zs)
    ok = cfg["hidden"] == kh and abs(cfg["sparsity"] - sp) < 1e-12 \
        and cfg["layer_heads"][1] == 0 and cfg["layer_ffn"][2] == 0
    report(f"{name}: config hidden {cfg['hidden']} (kept {kh}), sparsity "
           f"{cfg['sparsity']:.6f} (reference {sp:.6f}), layer_heads {cfg['layer_heads']}, "
           f"layer_ffn {cfg['layer_ffn']}", ok)

    # 2. and 3. Logits through the pipeline.
    B = 13
    tokens = os.path.join(d, "tokens.pmxs")
    ids, types, lengths = write_tokens(tokens, B, 5 + N)
    got, err = pipeline(bindir, d, small, tokens)
    if got is None:
        report(f"{name}: pipeline", False, err)
        return
    max_length = model_info(bindir, small)["max_length"]
    Ws = {k: v.double() for k, v in want.items()}
    # ref-mux's encoder runs layers while it finds their tensors: mark the
    # layers shrinking emptied (both sublayers identities) so it goes on.
    for l in range(LAYERS):
        Ws.setdefault(f"encoder.layer.{l}.(empty)", torch.zeros(1))
    with torch.no_grad():
        if N == 1:
            ref = rm.forward_plain(Ws, ids, types, lengths, HD, pool, False)[3]
        else:
            ref = rm.forward_muxed(Ws, ids, N, "index_pos", 3, HD, max_length)[3]
        masked = masked_logits(W, zs, N, ids, types, lengths, max_length, pool)
    dd = maxdiff(got, ref.numpy())
    report(f"{name}: pipeline logits {got.shape} vs the CoFi-shrunk model in PyTorch",
           dd <= TOL, f"max |diff| {dd:.3g} (tolerance {TOL})")
    dm = maxdiff(got, masked.numpy())
    if soft_hidden:
        print(f"info {name}: shrunk vs masked unshrunk logits differ by {dm:.3g} "
              f"(soft hidden_z: expected, see the header)")
    else:
        report(f"{name}: pipeline logits vs the masked unshrunk model (CoFi's forward)",
               dm <= TOL, f"max |diff| {dm:.3g} (tolerance {TOL})")
    if N == 1 and soft_hidden and not deep and pool == "pooler":
        cofi_pooler_case(bindir, wd, want, ids, types, lengths, tokens)


def cofi_pooler_case(bindir, wd, Ws, ids, types, lengths, tokens):
    """Issue 16 item 1: a checkpoint as CoFi saves it (its config keeps the
    unpruned hidden_size) converted and run."""
    d = os.path.join(wd, "cofi")
    Wc = {k: v for k, v in Ws.items()}
    rm.write_hf_dir(d, Wc, 1, None, C, LAYERS, 200, heads=HEADS, inter=INTER)
    cfgp = os.path.join(d, "config.json")
    cfg = json.load(open(cfgp))
    cfg["hidden_size"] = H                      # CoFi leaves the config unpruned
    json.dump(cfg, open(cfgp, "w"))
    pmx = os.path.join(d, "cofi.pmx")
    run([os.path.join(bindir, "prumux-convert"), d, "-o", pmx])
    Hk = Ws["embeddings.word_embeddings.weight"].shape[1]
    shape = f"pooler.dense {tuple(Ws['pooler.dense.weight'].shape)}, classifier " \
            f"{tuple(Ws['classifier.weight'].shape)}"
    Wd = {k: v.double() for k, v in Ws.items()}
    with torch.no_grad():
        _, _, zp, logits = rm.forward_plain(Wd, ids, types, lengths, HD, "pooler", False)
        Wn = {k: v for k, v in Wd.items() if not k.startswith("classifier.")}
        _, _, zc, _ = rm.forward_plain(Wn, ids, types, lengths, HD, "cls", False)
        zpn = F.normalize(zp, dim=-1)
    for extra, want, what in (("", logits, "logits"),
                              ("--output=embeddings", zp, f"pooler embeddings (width {H})"),
                              ("--output=embeddings --normalize", zpn,
                               "normalised pooler embeddings"),
                              ("--output=embeddings --pool=cls", zc,
                               f"cls embeddings (width {Hk})")):
        got, err = pipeline(bindir, d, pmx, tokens, extra)
        if got is None:
            report(f"CoFi checkpoint ({shape}): {what}", False, err)
            continue
        dd = maxdiff(got, want.numpy())
        report(f"CoFi checkpoint ({shape}): {what} {got.shape}", dd <= TOL,
               f"max |diff| {dd:.3g} (tolerance {TOL})")
    got, err = pipeline(bindir, d, pmx, tokens, "--pool=cls")
    report("CoFi checkpoint: logits with --pool=cls are refused",
           got is None and "classifier reads" in err, err)


def refusal_case(bindir, wd):
    """Hidden masks on a model whose demultiplexer CoFi/PruMUX have no rule
    for (index) are refused, and nothing is written."""
    d = os.path.join(wd, "index")
    W = rm.make_model(3, 2, "index", H=H, heads=HEADS, head_dim=HD, layers=LAYERS,
                      inter=INTER, labels=C)
    rm.write_hf_dir(os.path.join(d, "hf"), W, 2, "index", C, LAYERS, 200, heads=HEADS,
                    inter=INTER)
    pmx, out, masks = (os.path.join(d, n) for n in ("m.pmx", "s.pmx", "masks.tsv"))
    run([os.path.join(bindir, "prumux-convert"), os.path.join(d, "hf"), "-o", pmx])
    write_masks(masks, make_masks(1, False))
    p = subprocess.run([os.path.join(bindir, "prumux-model"), "shrink", "-M", masks, "-o",
                        out, pmx], capture_output=True, text=True)
    report("hidden masks on an index-demux model are refused",
           p.returncode == 1 and "'index' demultiplexer" in p.stderr
           and not os.path.exists(out), p.stderr.strip())


def main():
    bindir, wd = sys.argv[1], sys.argv[2]
    for N in (1, 2):
        for soft_hidden in (False, True):
            shrink_case(bindir, wd, N, soft_hidden)
    # N = 1 without a pooler (the classifier reads h_0, or the mean of h):
    # its input columns take hidden_z and are cut, by the pooler's rule.
    for pool in ("cls", "mean"):
        for soft_hidden in (False, True):
            shrink_case(bindir, wd, 1, soft_hidden, pool=pool)
    refusal_case(bindir, wd)
    # More tensors than one record holds (the archive's stream packs 256
    # a record), fewer after shrinking: no empty record is written
    # (read_archive checks the packing).
    global H, HEADS, LAYERS, INTER
    H, HEADS, LAYERS, INTER = 16, 2, 20, 16
    shrink_case(bindir, wd, 1, True, deep=True)
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
