#!/usr/bin/python3
"""ref-mux.py -- PyTorch reference for prumux's embedding stage, multiplexer,
demultiplexers and heads (MUX-PLM-SPEC.md §2-§4), written from the spec.

    ref-mux.py stages TEST_MUX WORKDIR
        For small random models (N in 1, 2, 5, 10; index_pos, index and mlp
        demux; pruned widths), write the weights and a token stream, run
        `TEST_MUX mux` and `TEST_MUX demux` and compare with the reference:
        the muxed embeddings E2 and the logits within 1e-4 (absolute), and
        the rows in input order with the filler rows of a ragged last group
        dropped.
    ref-mux.py make-model OUT.pt ... (see the end-to-end test, tests/mux-e2e.sh)

The reference follows the published code: first embedding pass, Hadamard
with the stored keys and mean over the instances, second embedding pass, a
plain post-LN BERT encoder (no attention mask for muxed models), then the
demultiplexer and classifier.  A short last group is filled with copies of
the group's first row (prumux's deterministic rule; the published code
draws random rows) and the filler results are dropped.
"""
import math
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pmxstream  # noqa: E402

TOL = 1e-4
CLS, SEP, PAD = 101, 102, 0


# ---- model -----------------------------------------------------------------

def make_model(seed, N, demux="index_pos", H=32, D=None, heads=4, head_dim=8,
               layers=2, inter=64, vocab=1000, max_pos=200, labels=3,
               demux_layers=3, pruned=False, pooler=False, alias=False):
    """Random weights named as prumux model archives name them (model.h)."""
    g = torch.Generator().manual_seed(seed)
    D = D or H

    def r(*shape, s=0.5):
        return (torch.randn(*shape, generator=g) * s).float()

    W = {}
    W["embeddings.word_embeddings.weight"] = r(vocab, H)
    W["embeddings.position_embeddings.weight"] = r(max_pos, H)
    W["embeddings.token_type_embeddings.weight"] = r(2, H)
    W["embeddings.LayerNorm.weight"] = 1 + r(H, s=0.1)
    W["embeddings.LayerNorm.bias"] = r(H, s=0.1)
    for l in range(layers):
        p = f"encoder.layer.{l}."
        k = heads - 1 if pruned and l == 0 else heads   # pruned heads
        skip_attn = pruned and l == 1 and layers > 2
        skip_ffn = pruned and l == layers - 1
        if not skip_attn:
            for n in ("query", "key", "value"):
                W[p + f"attention.self.{n}.weight"] = r(k * head_dim, H, s=0.2)
                W[p + f"attention.self.{n}.bias"] = r(k * head_dim, s=0.1)
            W[p + "attention.output.dense.weight"] = r(H, k * head_dim, s=0.2)
            W[p + "attention.output.dense.bias"] = r(H, s=0.1)
            W[p + "attention.output.LayerNorm.weight"] = 1 + r(H, s=0.1)
            W[p + "attention.output.LayerNorm.bias"] = r(H, s=0.1)
        if not skip_ffn:
            m = inter - 8 if pruned else inter
            W[p + "intermediate.dense.weight"] = r(m, H, s=0.2)
            W[p + "intermediate.dense.bias"] = r(m, s=0.1)
            W[p + "output.dense.weight"] = r(H, m, s=0.2)
            W[p + "output.dense.bias"] = r(H, s=0.1)
            W[p + "output.LayerNorm.weight"] = 1 + r(H, s=0.1)
            W[p + "output.LayerNorm.bias"] = r(H, s=0.1)
    if N > 1:
        keys = torch.randn(N, H, generator=g)
        W["instance_embedding"] = keys / keys.norm(dim=1, keepdim=True)
        dm = "demultiplexer.demux_module." if alias else "demux_module."
        if demux == "index_pos":
            W[dm + "demux_instance_embedding"] = r(N, H, s=1.0)
            W[dm + "dense_1.weight"] = r(D, 2 * H, s=0.2)
            W[dm + "dense_1.bias"] = r(D, s=0.1)
            for k in range(2, demux_layers + 1):
                W[dm + f"dense_{k}.weight"] = r(D, D, s=0.2)
                W[dm + f"dense_{k}.bias"] = r(D, s=0.1)
                # present in the checkpoints, unused by classification
                W[dm + f"layer_norm_{k}.weight"] = 1 + r(D, s=0.3)
                W[dm + f"layer_norm_{k}.bias"] = r(D, s=0.3)
            W[dm + "layer_norm_1.weight"] = 1 + r(D, s=0.3)
            W[dm + "layer_norm_1.bias"] = r(D, s=0.3)
            W["demultiplexer.pre_decoder.weight"] = r(D, D, s=0.2)
            W["demultiplexer.pre_decoder.bias"] = r(D, s=0.1)
            W["demultiplexer.pre_decoder_layer_norm.weight"] = 1 + r(D, s=0.1)
            W["demultiplexer.pre_decoder_layer_norm.bias"] = r(D, s=0.1)
        elif demux == "index":
            W["demultiplexer.dense.weight"] = r(D, 2 * H, s=0.2)
            W["demultiplexer.dense.bias"] = r(D, s=0.1)
            W["demultiplexer.layer_norm.weight"] = 1 + r(D, s=0.1)
            W["demultiplexer.layer_norm.bias"] = r(D, s=0.1)
        elif demux == "mlp":
            for i in range(N):
                W[dm + f"dense_{i}.weight"] = r(D, H, s=0.2)
                W[dm + f"dense_{i}.bias"] = r(D, s=0.1)
                W[dm + f"layer_norm_{i}.weight"] = 1 + r(D, s=0.1)
                W[dm + f"layer_norm_{i}.bias"] = r(D, s=0.1)
            W["demultiplexer.dense_before_out_proj.weight"] = r(D, D, s=0.2)
            W["demultiplexer.dense_before_out_proj.bias"] = r(D, s=0.1)
            W["demultiplexer.layernorm.weight"] = 1 + r(D, s=0.1)
            W["demultiplexer.layernorm.bias"] = r(D, s=0.1)
    if pooler:
        W["pooler.dense.weight"] = r(H, H, s=0.2)
        W["pooler.dense.bias"] = r(H, s=0.1)
    if labels:
        W["classifier.weight"] = r(labels, D, s=0.3)
        W["classifier.bias"] = r(labels, s=0.1)
    return W


def get(W, name):
    if name in W:
        return W[name]
    return W["demultiplexer." + name]


# ---- forward ----------------------------------------------------------------

def embed(W, ids=None, types=None, vectors=None, eps=1e-12):
    """BertEmbeddings: LN(inputs + type + pos), inputs = word[ids] or VECTORS."""
    x = W["embeddings.word_embeddings.weight"][ids] if vectors is None else vectors
    T, H = x.shape[1], x.shape[2]
    ty = torch.zeros(x.shape[:2], dtype=torch.long) if types is None else types
    x = x + W["embeddings.token_type_embeddings.weight"][ty]
    x = x + W["embeddings.position_embeddings.weight"][:T]
    return F.layer_norm(x, (H,), W["embeddings.LayerNorm.weight"],
                        W["embeddings.LayerNorm.bias"], eps)


def encoder(W, x, head_dim, lengths=None, eps=1e-12):
    """Post-LN BERT layers; shapes from the weights; missing sublayers are
    identities (CoFi).  LENGTHS: mask the padding (N = 1 models only)."""
    H = x.shape[-1]
    B, T = x.shape[:2]
    bias = None
    if lengths is not None:
        keep = torch.arange(T)[None, :] < lengths[:, None]
        bias = torch.where(keep, 0.0, torch.finfo(torch.float32).min)[:, None, None, :]
    l = 0
    while any(k.startswith(f"encoder.layer.{l}.") for k in W):
        p = f"encoder.layer.{l}."
        if p + "attention.self.query.weight" in W:
            q, k, v = (F.linear(x, W[p + f"attention.self.{n}.weight"],
                                W[p + f"attention.self.{n}.bias"])
                       for n in ("query", "key", "value"))
            nh = q.shape[-1] // head_dim
            q, k, v = (t.view(B, T, nh, head_dim).transpose(1, 2) for t in (q, k, v))
            s = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
            if bias is not None:
                s = s + bias
            c = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, nh * head_dim)
            a = F.linear(c, W[p + "attention.output.dense.weight"],
                         W[p + "attention.output.dense.bias"])
            x = F.layer_norm(a + x, (H,), W[p + "attention.output.LayerNorm.weight"],
                             W[p + "attention.output.LayerNorm.bias"], eps)
        if p + "intermediate.dense.weight" in W:
            h = F.gelu(F.linear(x, W[p + "intermediate.dense.weight"],
                                W[p + "intermediate.dense.bias"]))
            o = F.linear(h, W[p + "output.dense.weight"], W[p + "output.dense.bias"])
            x = F.layer_norm(o + x, (H,), W[p + "output.LayerNorm.weight"],
                             W[p + "output.LayerNorm.bias"], eps)
        l += 1
    return x


def fill_ragged(ids, N):
    """Pad the batch to a multiple of N with copies of the last group's first
    row (prumux's deterministic stand-in for the code's random rows)."""
    B = ids.shape[0]
    extra = (-B) % N
    if extra:
        first = B - B % N
        ids = torch.cat([ids, ids[first:first + 1].repeat(extra, 1)], 0)
    return ids, extra


def mux_embed(W, ids, N, demux, eps=1e-12):
    """Input ids (B, L) with B % N == 0 -> E2 (B/N, T, H), as the code."""
    ids = ids.clone()
    B, L = ids.shape
    G = B // N
    if demux == "index":
        prefix = torch.full((N, N), 680, dtype=torch.long)
        prefix[torch.arange(N), torch.arange(N)] = -(torch.arange(N) + 2) + 680
        prefix = torch.cat([prefix, torch.full((N, 1), CLS)], 1)
        ids = torch.cat([prefix.repeat(G, 1), ids], 1)
    else:
        ids[:, 0] = CLS
    T = ids.shape[1]
    e1 = embed(W, ids, eps=eps)
    H = e1.shape[-1]
    e1 = e1.view(G, N, T, H) * W["instance_embedding"][:N].unsqueeze(1).unsqueeze(0)
    m = torch.mean(e1, dim=1)
    return embed(W, vectors=m, eps=eps)


def demux_forward(W, hidden, N, demux, demux_layers, eps=1e-12):
    """hidden (G, T, H) -> classifier input (G*N, D) in row order g*N + i."""
    G, T, H = hidden.shape
    if demux == "index_pos":
        h = hidden[:, 0:1, :]
        e = get(W, "demux_module.demux_instance_embedding")
        pr = e.unsqueeze(0).unsqueeze(2).expand(G, N, 1, H)
        f = h.unsqueeze(1).expand(G, N, 1, H)
        x = torch.cat([pr, f], dim=3).view(-1, 1, 2 * H)
        for k in range(1, demux_layers):      # dropout_k, not layer_norm_k
            x_in = x
            x = F.gelu(F.linear(x, get(W, f"demux_module.dense_{k}.weight"),
                                get(W, f"demux_module.dense_{k}.bias")))
            if k > 1:
                x = x + x_in
        x_in = x
        x = F.gelu(F.linear(x, W["demultiplexer.pre_decoder.weight"],
                            W["demultiplexer.pre_decoder.bias"]))
        x = F.layer_norm(x, (x.shape[-1],), W["demultiplexer.pre_decoder_layer_norm.weight"],
                         W["demultiplexer.pre_decoder_layer_norm.bias"], eps)
        return (x + x_in).squeeze(1)
    if demux == "index":
        pr = hidden[:, :N, :].unsqueeze(2).expand(G, N, T, H)
        f = hidden.unsqueeze(1).expand(G, N, T, H)
        x = torch.cat([pr, f], dim=3).view(-1, T, 2 * H)
        x = F.gelu(F.linear(x, W["demultiplexer.dense.weight"], W["demultiplexer.dense.bias"]))
        x = F.layer_norm(x, (x.shape[-1],), W["demultiplexer.layer_norm.weight"],
                         W["demultiplexer.layer_norm.bias"], eps)
        return x[:, N, :]
    if demux == "mlp":
        h = hidden[:, 0:1, :]
        feats = []
        for i in range(N):
            x = F.gelu(F.linear(h, get(W, f"demux_module.dense_{i}.weight"),
                                get(W, f"demux_module.dense_{i}.bias")))
            x = F.layer_norm(x, (x.shape[-1],), get(W, f"demux_module.layer_norm_{i}.weight"),
                             get(W, f"demux_module.layer_norm_{i}.bias"), eps)
            feats.append(x.unsqueeze(1))
        x = torch.cat(feats, 1).view(G * N, 1, -1)
        x = F.gelu(F.linear(x, W["demultiplexer.dense_before_out_proj.weight"],
                            W["demultiplexer.dense_before_out_proj.bias"]))
        x = F.layer_norm(x, (x.shape[-1],), W["demultiplexer.layernorm.weight"],
                         W["demultiplexer.layernorm.bias"], eps)
        return x.squeeze(1)
    raise ValueError(demux)


def classify(W, z):
    return F.linear(z, W["classifier.weight"], W["classifier.bias"])


def forward_muxed(W, ids, N, demux, demux_layers, head_dim, max_length):
    """The whole published forward for one batch: (B, L0) ids -> logits (B, C),
    with the muxed embeddings and hidden states for the stage checks."""
    L0 = ids.shape[1]
    ids = F.pad(ids, (0, max_length - L0), value=PAD)
    full, extra = fill_ragged(ids, N)
    e2 = mux_embed(W, full, N, demux)
    hidden = encoder(W, e2, head_dim)
    z = demux_forward(W, hidden, N, demux, demux_layers)
    logits = classify(W, z)
    B = ids.shape[0]
    return e2, hidden, z[:B], logits[:B], extra


def forward_plain(W, ids, types, lengths, head_dim, pool, normalize):
    """N = 1: BertForSequenceClassification (pooler) or an embedding model."""
    e = embed(W, ids, types)
    hidden = encoder(W, e, head_dim, lengths=lengths)
    if pool == "pooler":
        z = torch.tanh(F.linear(hidden[:, 0], W["pooler.dense.weight"], W["pooler.dense.bias"]))
    elif pool == "cls":
        z = hidden[:, 0]
    else:
        keep = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).float()
        z = (hidden * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
    if normalize:
        z = F.normalize(z, dim=-1)
    logits = classify(W, z) if "classifier.weight" in W else None
    return e, hidden, z, logits


# ---- data -------------------------------------------------------------------

def make_tokens(seed, B, L0, vocab=1000, pairs=True):
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(B, L0, dtype=torch.long)
    types = torch.zeros(B, L0, dtype=torch.long)
    lengths = torch.randint(3, L0 + 1, (B,), generator=g)
    for b in range(B):
        n = int(lengths[b])
        ids[b, :n] = torch.randint(1000 - vocab + 200, vocab, (n,), generator=g)
        ids[b, 0] = CLS
        ids[b, n - 1] = SEP
        if pairs and n > 4:
            cut = n // 2
            ids[b, cut - 1] = SEP
            types[b, cut:n] = 1
    return ids, types, lengths


def split(n, sizes):
    """Irregular record sizes covering n rows."""
    out, i, k = [], 0, 0
    while i < n:
        s = min(sizes[k % len(sizes)], n - i)
        out.append((i, i + s))
        i += s
        k += 1
    return out


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")


def maxdiff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise SystemExit(f"FAIL: shape {a.shape} != reference {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def check(name, got, want, failures):
    d = maxdiff(got, want)
    ok = d <= TOL
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |diff| = {d:.3g} (tolerance {TOL})")
    if not ok:
        failures.append(name)


# ---- stage tests --------------------------------------------------------------

CASES = [
    # name, N, demux, kwargs, B, record sizes
    ("N2-index_pos", 2, "index_pos", {}, 23, [3, 7, 1, 12]),
    ("N5-index_pos-alias", 5, "index_pos", {"alias": True}, 23, [3, 7, 1, 12]),
    ("N10-index_pos", 10, "index_pos", {}, 23, [4, 9]),
    ("N5-index_pos-2layers", 5, "index_pos", {"demux_layers": 2}, 12, [5]),
    ("N5-index_pos-pruned", 5, "index_pos",
     {"H": 24, "D": 32, "pruned": True, "layers": 3}, 21, [8, 2]),
    ("N2-index", 2, "index", {}, 9, [4, 4]),
    ("N5-index", 5, "index", {}, 13, [6]),
    ("N5-mlp", 5, "mlp", {"labels": 2}, 11, [3, 3]),
]


def stage_case(tm, wd, name, N, demux, kw, B, sizes, failures):
    max_length, head_dim = 16, 8
    demux_layers = kw.get("demux_layers", 3)
    W = make_model(hash(name) % 1000, N, demux, head_dim=head_dim, **kw)
    meta = {"mux_n": N, "mux_variant": "gaussian_hadamard", "demux_variant": demux,
            "demux_layers": demux_layers, "num_labels": W["classifier.weight"].shape[0],
            "max_length": max_length, "attend_padding": 1}
    wpath = os.path.join(wd, name + ".weights")
    pmxstream.write(wpath, [{k: v.numpy() for k, v in W.items()}], meta)
    ids, types, lengths = make_tokens(len(name), B, 12)
    ids[1::3, 0] = 7        # the muxer must force [CLS] at position 0 itself
    label = torch.randint(0, 2, (B,), generator=torch.Generator().manual_seed(B))
    recs = [{"row": np.arange(a, b, dtype=np.int64),
             "ids": ids[a:b].numpy().astype(np.int32),
             "type_ids": types[a:b].numpy().astype(np.int32),
             "lengths": lengths[a:b].numpy().astype(np.int32),
             "label": label[a:b].numpy().astype(np.int32)} for a, b in split(B, sizes)]
    tpath, epath = os.path.join(wd, name + ".tokens"), os.path.join(wd, name + ".embeds")
    pmxstream.write(tpath, recs, {"stage": "tokens"})
    run([tm, "mux", wpath, tpath, epath])

    with torch.no_grad():
        e2, hidden, z, logits, extra = forward_muxed(W, ids, N, demux, demux_layers,
                                                     head_dim, max_length)
    _, out = pmxstream.read(epath)
    got = np.concatenate([r["embeds"] for r in out])
    rows = np.concatenate([r["row"] for r in out])
    want_rows = np.concatenate([np.arange(B), -np.ones(extra, dtype=np.int64)])
    if not np.array_equal(rows, want_rows):
        failures.append(name + " mux rows")
        print(f"FAIL {name}: mux rows {rows} != {want_rows}")
    lab = np.concatenate([r["label"] for r in out])
    if not np.array_equal(lab[:B], label.numpy()):
        failures.append(name + " mux labels")
        print(f"FAIL {name}: mux labels out of order")
    check(f"{name}: mux embeds {tuple(got.shape)}", got, e2.numpy(), failures)

    # demux: feed the reference encoder's output, in records of 2 groups,
    # keeping only the positions the demultiplexer needs where it is told.
    G = hidden.shape[0]
    hrecs = []
    for a in range(0, G, 2):
        b = min(a + 2, G)
        rec = {"row": rows[a * N:b * N], "label": lab[a * N:b * N]}
        if demux == "index":
            pos = np.arange(N + 1, dtype=np.int32)[::-1].copy()   # any order
            rec["hidden"] = hidden[a:b][:, pos].numpy()
            rec["positions"] = pos
        elif a == 0:
            rec["hidden"] = hidden[a:b].numpy()                    # all positions
        else:
            rec["hidden"] = hidden[a:b, 0:1].numpy()
            rec["positions"] = np.zeros(1, dtype=np.int32)
        hrecs.append(rec)
    hpath, lpath = os.path.join(wd, name + ".hidden"), os.path.join(wd, name + ".logits")
    pmxstream.write(hpath, hrecs, {"stage": "hidden"})
    run([tm, "demux", wpath, hpath, lpath, "both"])
    _, out = pmxstream.read(lpath)
    got = np.concatenate([r["logits"] for r in out])
    emb = np.concatenate([r["embeddings"] for r in out])
    rows = np.concatenate([r["row"] for r in out])
    if not np.array_equal(rows, np.arange(B)):
        failures.append(name + " demux rows")
        print(f"FAIL {name}: demux rows {rows}")
    check(f"{name}: demux logits {tuple(got.shape)}", got, logits.numpy(), failures)
    check(f"{name}: demux features {tuple(emb.shape)}", emb, z.numpy(), failures)


def plain_case(tm, wd, name, pool, normalize, labels, pooler, failures):
    head_dim, B = 8, 7
    W = make_model(len(name), 1, labels=labels, pooler=pooler, head_dim=head_dim)
    meta = {"mux_n": 1, "num_labels": labels, "pooling": pool, "normalize": int(normalize),
            "max_length": 16, "attend_padding": 0}
    wpath = os.path.join(wd, name + ".weights")
    pmxstream.write(wpath, [{k: v.numpy() for k, v in W.items()}], meta)
    ids, types, lengths = make_tokens(7, B, 12)
    recs = [{"row": np.arange(a, b, dtype=np.int64),
             "ids": ids[a:b].numpy().astype(np.int32),
             "type_ids": types[a:b].numpy().astype(np.int32),
             "lengths": lengths[a:b].numpy().astype(np.int32)} for a, b in split(B, [3, 4])]
    tpath, epath = os.path.join(wd, name + ".tokens"), os.path.join(wd, name + ".embeds")
    pmxstream.write(tpath, recs, {"stage": "tokens"})
    run([tm, "mux", wpath, tpath, epath])
    with torch.no_grad():
        e, hidden, z, logits = forward_plain(W, ids, types, lengths, head_dim, pool, normalize)
    _, out = pmxstream.read(epath)
    got = np.concatenate([r["embeds"] for r in out])
    check(f"{name}: embeds {tuple(got.shape)}", got, e.numpy(), failures)
    hrecs = [{"row": r["row"], "lengths": r["lengths"],
              "hidden": hidden[a:b].numpy()} for r, (a, b) in zip(out, split(B, [3, 4]))]
    hpath, lpath = os.path.join(wd, name + ".hidden"), os.path.join(wd, name + ".logits")
    pmxstream.write(hpath, hrecs, {"stage": "hidden"})
    run([tm, "demux", wpath, hpath, lpath, "both" if labels else "embeddings"])
    _, out = pmxstream.read(lpath)
    if labels:
        check(f"{name}: logits", np.concatenate([r["logits"] for r in out]), logits.numpy(),
              failures)
    check(f"{name}: embeddings", np.concatenate([r["embeddings"] for r in out]), z.numpy(),
          failures)


# ---- metrics -------------------------------------------------------------------

def np_ranks(x):
    """Average ranks (1-based) with ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return r


def run_metrics(tm, classes, gold, scores):
    text = "".join(f"{g} " + " ".join(f"{v:.9g}" for v in row) + "\n"
                   for g, row in zip(gold, scores))
    p = subprocess.run([tm, "metrics", str(classes)], input=text, capture_output=True,
                       text=True)
    if p.returncode:
        raise SystemExit("FAIL: test-mux metrics: " + p.stderr)
    return {k: float(v) for k, v in (l.split("\t") for l in p.stdout.splitlines())}


def metrics(tm, failures):
    rng = np.random.default_rng(5)

    def close(name, got, want, tol=1e-6):
        ok = abs(got - want) <= tol
        print(f"{'ok  ' if ok else 'FAIL'} metrics {name}: {got:.9g} vs {want:.9g}")
        if not ok:
            failures.append("metrics " + name)

    # binary: accuracy, F1 of class 1, Matthews from TP/TN/FP/FN
    gold = rng.integers(0, 2, 200)
    sc = rng.normal(size=(200, 2)).astype(np.float32)
    sc[np.arange(200), gold] += 0.7
    pred = sc.argmax(1)
    tp = np.sum((pred == 1) & (gold == 1)); tn = np.sum((pred == 0) & (gold == 0))
    fp = np.sum((pred == 1) & (gold == 0)); fn = np.sum((pred == 0) & (gold == 1))
    m = run_metrics(tm, 2, list(gold) + [-1], np.vstack([sc, [[0, 1]]]))
    close("binary count", m["count"], 200)
    close("binary skipped", m["skipped"], 1)
    close("binary accuracy", m["accuracy"], np.mean(pred == gold))
    close("binary f1", m["f1"], 2 * tp / (2 * tp + fp + fn))
    close("binary matthews", m["matthews"],
          (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    # three classes: Matthews as the correlation of the one-hot matrices
    gold = rng.integers(0, 3, 300)
    sc = rng.normal(size=(300, 3)).astype(np.float32)
    sc[np.arange(300), gold] += 0.5
    pred = sc.argmax(1)
    X, Y = np.eye(3)[gold], np.eye(3)[pred]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    mcc = np.sum(Xc * Yc) / math.sqrt(np.sum(Xc * Xc) * np.sum(Yc * Yc))
    m = run_metrics(tm, 3, gold, sc)
    close("3-class accuracy", m["accuracy"], np.mean(pred == gold))
    close("3-class matthews", m["matthews"], mcc)
    # regression, with ties
    gold = np.round(rng.uniform(0, 5, 150), 1)
    score = (gold + rng.normal(size=150)).astype(np.float32)
    score[:10] = score[10]
    m = run_metrics(tm, 1, gold, score[:, None])
    close("pearson", m["pearson"], np.corrcoef(gold, score.astype(np.float64))[0, 1])
    close("spearman", m["spearman"], np.corrcoef(np_ranks(gold), np_ranks(score))[0, 1])


# ---- errors -------------------------------------------------------------------

def errors(tm, wd, failures):
    """Bad input gives a clear error and status 1, never a crash."""
    W = {k: v.numpy() for k, v in make_model(3, 5, "index").items()}
    meta = {"mux_n": 5, "mux_variant": "gaussian_hadamard", "demux_variant": "index",
            "num_labels": 3, "max_length": 16, "attend_padding": 1}
    good = os.path.join(wd, "err.weights")
    pmxstream.write(good, [W], meta)
    bad = os.path.join(wd, "err-v2.weights")
    pmxstream.write(bad, [W], dict(meta, mux_variant="gaussian_attention_v2"))
    ids = np.full((5, 12), 5, dtype=np.int32)

    def tokens(name, **t):
        path = os.path.join(wd, name)
        rec = {"row": np.arange(len(t.get("ids", ids)), dtype=np.int64), "ids": ids}
        rec.update(t)
        pmxstream.write(path, [rec], {"stage": "tokens"})
        return path

    def hidden(name, **t):
        path = os.path.join(wd, name)
        pmxstream.write(path, [t], {"stage": "hidden"})
        return path

    H = W["embeddings.word_embeddings.weight"].shape[1]
    cases = [
        ("unsupported muxing", ["mux", bad, tokens("t1")], "gaussian_attention_v2.*not supported"),
        ("id outside vocabulary", ["mux", good, tokens("t2", ids=ids * 1000)],
         "outside the vocabulary"),
        ("rows too long", ["mux", good, tokens("t3", ids=np.zeros((5, 40), np.int32))],
         "longer than the model's max_length"),
        ("hidden width", ["demux", good, hidden("h1", row=np.arange(5, dtype=np.int64),
                                                 hidden=np.zeros((1, 22, H + 1), np.float32))],
         "hidden size"),
        ("row count", ["demux", good, hidden("h2", row=np.arange(4, dtype=np.int64),
                                              hidden=np.zeros((1, 22, H), np.float32))],
         "sequences of N = 5 instances need 5"),
        ("missing position", ["demux", good, hidden("h3", row=np.arange(5, dtype=np.int64),
                                                     hidden=np.zeros((1, 1, H), np.float32),
                                                     positions=np.zeros(1, np.int32))],
         "position [0-9]+ is needed"),
    ]
    import re
    for name, args, pattern in cases:
        p = subprocess.run([tm] + args + [os.path.join(wd, "err.out")],
                           capture_output=True, text=True)
        ok = p.returncode == 1 and re.search(pattern, p.stderr)
        print(f"{'ok  ' if ok else 'FAIL'} error {name}: status {p.returncode}: "
              f"{p.stderr.strip()}")
        if not ok:
            failures.append("error " + name)


def stages(tm, wd):
    torch.manual_seed(0)
    failures = []
    for case in CASES:
        stage_case(tm, wd, *case, failures)
    plain_case(tm, wd, "N1-pooler", "pooler", False, 3, True, failures)
    plain_case(tm, wd, "N1-mean-norm", "mean", True, 0, False, failures)
    plain_case(tm, wd, "N1-cls", "cls", False, 2, False, failures)
    metrics(tm, failures)
    errors(tm, wd, failures)
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    return 0


# ---- the programs, end to end ------------------------------------------------

PIPELINE_CASES = [
    # name, N, demux, model kwargs, rows, record sizes
    ("p-N1-pooler", 1, None, {"pooler": True}, 11, [4]),
    ("p-N2-index_pos", 2, "index_pos", {}, 13, [5, 3]),
    ("p-N5-index_pos-pruned", 5, "index_pos",
     {"H": 24, "D": 32, "pruned": True, "layers": 3}, 17, [6, 7]),
    ("p-N10-index_pos", 10, "index_pos", {"labels": 2}, 23, [8]),
    ("p-N5-index", 5, "index", {}, 12, [12]),
]


def pipeline_case(bindir, wd, name, N, demux, kw, B, sizes, failures):
    """tokens | prumux-mux | prumux-infer | prumux-demux, weights from
    --weights streams, against the reference forward."""
    head_dim, max_length = 8, 16
    layers = kw.get("layers", 2)
    W = make_model(len(name) * 7, N, demux or "index_pos", head_dim=head_dim, **kw)
    C = W["classifier.weight"].shape[0]
    names = ",".join(f"class{c}" for c in range(C))
    meta = {"id": f"{name}-0123456789abcdef"[:32], "hidden": W["embeddings.word_embeddings.weight"].shape[1],
            "layers": layers, "head_dim": head_dim, "mux_n": N,
            "mux_variant": "gaussian_hadamard" if N > 1 else "none",
            "demux_variant": demux or "none", "demux_layers": 3, "num_labels": C,
            "labels": names, "max_length": max_length, "attend_padding": int(N > 1),
            "pooling": "pooler" if N == 1 else "cls"}
    wpath = os.path.join(wd, name + ".weights")
    pmxstream.write(wpath, [{k: v.numpy() for k, v in W.items()}], meta)
    ids, types, lengths = make_tokens(B, B, 12)
    label = torch.randint(0, C, (B,), generator=torch.Generator().manual_seed(1))
    recs = [{"row": np.arange(a, b, dtype=np.int64),
             "ids": ids[a:b].numpy().astype(np.int32),
             "type_ids": types[a:b].numpy().astype(np.int32),
             "lengths": lengths[a:b].numpy().astype(np.int32),
             "label": label[a:b].numpy().astype(np.int32)} for a, b in split(B, sizes)]
    tpath = os.path.join(wd, name + ".tokens")
    pmxstream.write(tpath, recs, {"stage": "tokens"})
    with torch.no_grad():
        if N > 1:
            _, _, _, logits, _ = forward_muxed(W, ids, N, demux, 3, head_dim, max_length)
        else:
            _, _, _, logits = forward_plain(W, ids, types, lengths, head_dim, "pooler", False)
    logits = logits.numpy()
    b = lambda p: os.path.join(bindir, p)
    front = (f"{b('prumux-mux')} -w {wpath} {tpath} | {b('prumux-infer')} -t 1 -w {wpath} "
             f"| {b('prumux-demux')} -w {wpath}")
    out = os.path.join(wd, name + ".out")
    for args, check_fn in (
            ("--format=stream", "stream"), ("", "tsv"), ("--emit=probs --format=json", "json"),
            (f"--emit=logits --eval={out}.eval", "eval")):
        p = subprocess.run(f"{front} {args} > {out}", shell=True, capture_output=True,
                           text=True)
        if p.returncode:
            failures.append(f"{name} {check_fn}")
            print(f"FAIL {name}: pipeline {args}: {p.stderr.strip()}")
            continue
        if check_fn == "stream":
            _, res = pmxstream.read(out)
            got = np.concatenate([r["logits"] for r in res])
            rows = np.concatenate([r["row"] for r in res])
            if not np.array_equal(rows, np.arange(B)):
                failures.append(name + " rows")
                print(f"FAIL {name}: rows {rows}")
            check(f"{name}: pipeline logits {got.shape}", got, logits, failures)
        elif check_fn == "tsv":
            lines = open(out).read().splitlines()
            pred = logits.argmax(1)
            prob = torch.softmax(torch.from_numpy(logits), 1).numpy().max(1)
            want = [f"class{p}" for p in pred]
            got = [l.split("\t")[0] for l in lines]
            ok = got == want and len(lines) == B
            d = max(abs(float(l.split("\t")[1]) - q) for l, q in zip(lines, prob))
            print(f"{'ok  ' if ok and d < 1e-5 else 'FAIL'} {name}: TSV, {len(lines)} lines, "
                  f"labels {'match' if got == want else 'differ'}, max |p diff| {d:.3g}")
            if not (ok and d < 1e-5):
                failures.append(name + " tsv")
        elif check_fn == "json":
            import json
            objs = [json.loads(l) for l in open(out)]
            got = np.array([o["probs"] for o in objs])
            rows = [o["row"] for o in objs]
            want = torch.softmax(torch.from_numpy(logits), 1).numpy()
            if rows != list(range(B)):
                failures.append(name + " json rows")
            check(f"{name}: JSON probs", got, want, failures)
        else:
            ev = dict(l.split("\t") for l in open(out + ".eval").read().splitlines())
            acc = float(np.mean(logits.argmax(1) == label.numpy()))
            ok = int(ev["rows"]) == B and abs(float(ev["accuracy"]) - acc) < 1e-6
            print(f"{'ok  ' if ok else 'FAIL'} {name}: --eval accuracy {ev['accuracy']} "
                  f"vs {acc:.6f}, rows {ev['rows']}")
            if not ok:
                failures.append(name + " eval")


def pipeline(bindir, wd):
    failures = []
    for case in PIPELINE_CASES:
        pipeline_case(bindir, wd, *case, failures)
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    return 0


# ---- end to end, from text, through a converted model archive -----------------

def write_hf_dir(d, W, N, demux, C, layers, max_pos, heads=4, inter=64):
    """A Hugging Face directory of a MuxedBertForSequenceClassification as
    the published code saves it (bert. prefix, the demux module under both
    of its names), for prumux-convert."""
    import json
    import struct
    os.makedirs(d, exist_ok=True)
    tensors = {}
    for k, v in W.items():
        if k.startswith(("embeddings.", "encoder.", "pooler.")):
            tensors["bert." + k] = v
        elif k.startswith("demux_module."):
            tensors[k] = v
            tensors["demultiplexer." + k] = v
        else:
            tensors[k] = v
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    H = W["embeddings.word_embeddings.weight"].shape[1]
    cfg = {"model_type": "bert", "hidden_act": "gelu", "hidden_size": H,
           "num_attention_heads": heads, "intermediate_size": inter,
           "num_hidden_layers": layers,
           "max_position_embeddings": max_pos, "type_vocab_size": 2,
           "vocab_size": W["embeddings.word_embeddings.weight"].shape[0],
           "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
           "id2label": {str(c): f"class{c}" for c in range(C)}}
    if N > 1:
        cfg.update(architectures=["MuxedBertForSequenceClassification"],
                   muxing_variant="gaussian_hadamard", demuxing_variant=demux,
                   num_instances=N, num_hidden_demux_layers=3)
    else:
        cfg.update(architectures=["BertForSequenceClassification"])
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    vocab = (["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]",
             "[MASK]"] + [f"word{i}" for i in range(104, 1000)])
    vocab += [f"extra{i}" for i in range(len(vocab), cfg["vocab_size"])]
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")


def e2e(bindir, wd, N, demux, lines):
    """LINES of labelled text through prumux-tokenize | prumux-mux |
    prumux-infer | prumux-demux with a converted archive: one output line per
    input line, in order, logits within 1e-4 of the reference, --eval."""
    failures = []
    C, layers = 3, 2
    W = make_model(100 + N, N, demux or "index_pos", labels=C, head_dim=8,
                   pooler=N == 1)
    d = os.path.join(wd, f"hf{N}")
    write_hf_dir(d, W, N, demux, C, layers, 200)
    model = os.path.join(wd, f"m{N}.pmx")
    b = lambda p: os.path.join(bindir, p)
    run([b("prumux-convert"), d, "-o", model])
    rng = np.random.default_rng(N)
    text = os.path.join(wd, "input.tsv")
    gold = rng.integers(0, C, lines)
    with open(text, "w") as f:
        for i in range(lines):
            words = [f"word{w}" for w in rng.integers(104, 1000, rng.integers(1, 30))]
            if i % 17 == 0:
                words.append("unknownword")
            f.write(" ".join(words) + f"\t{gold[i]}\n")
    tok = [b("prumux-tokenize"), "-v", os.path.join(d, "vocab.txt"), "-f", "1", "-l", "2",
           "-b", "13", text]
    tokens = os.path.join(wd, "tokens")
    run(tok + ["-o", tokens])
    out, ev = os.path.join(wd, "out.tsv"), os.path.join(wd, "eval.txt")
    cmd = (" ".join(tok) + f" | {b('prumux-mux')} -m {model} | {b('prumux-infer')} -t 1 -m {model}"
           f" | {b('prumux-demux')} -m {model} --emit=logits --eval={ev} > {out}")
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if p.returncode:
        print(f"FAIL pipeline exited {p.returncode}: {p.stderr}")
        return 1
    # The fused in-process run (prumux-infer --from-ids) gives the same bytes.
    fused = os.path.join(wd, "fused.tsv")
    cmd = (" ".join(tok) + f" | {b('prumux-infer')} --from-ids -t 1 -m {model}"
           f" | {b('prumux-demux')} -m {model} --emit=logits > {fused}")
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    same = p.returncode == 0 and open(fused, "rb").read() == open(out, "rb").read()
    print(f"{'ok  ' if same else 'FAIL'} prumux-infer --from-ids gives the pipeline's output"
          f"{'' if same else ': ' + p.stderr}")
    if not same:
        failures.append("from-ids")
    got = np.loadtxt(out, ndmin=2)
    _, recs = pmxstream.read(tokens)
    ids = torch.from_numpy(np.concatenate([r["ids"] for r in recs]).astype(np.int64))
    with torch.no_grad():
        if N > 1:
            logits = forward_muxed(W, ids, N, demux, 3, 8, 128)[3].numpy()
        else:
            types = torch.from_numpy(np.concatenate([r["type_ids"] for r in recs]).astype(np.int64))
            lengths = torch.from_numpy(np.concatenate([r["lengths"] for r in recs]).astype(np.int64))
            logits = forward_plain(W, ids, types, lengths, 8, "pooler", False)[3].numpy()
    n_ok = got.shape[0] == lines
    print(f"{'ok  ' if n_ok else 'FAIL'} {lines} input lines -> {got.shape[0]} output lines")
    if not n_ok:
        return 1
    check(f"N={N} {demux}: end-to-end logits {got.shape}", got, logits, failures)
    e = dict(l.split("\t") for l in open(ev).read().splitlines())
    acc = float(np.mean(logits.argmax(1) == gold))
    ok = int(e["rows"]) == lines and abs(float(e["accuracy"]) - acc) < 1e-6
    print(f"{'ok  ' if ok else 'FAIL'} --eval: rows {e['rows']}, accuracy {e['accuracy']} "
          f"(reference {acc:.6f}), matthews {e['matthews']}")
    if not ok:
        failures.append("eval")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "e2e":
        # e2e BINDIR WORKDIR N DEMUX LINES
        sys.exit(e2e(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5],
                     int(sys.argv[6])))
    if len(sys.argv) == 4 and sys.argv[1] == "stages":
        sys.exit(stages(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 4 and sys.argv[1] == "pipeline":
        sys.exit(pipeline(sys.argv[2], sys.argv[3]))
    if len(sys.argv) in (6, 7) and sys.argv[1] == "weights":
        # weights OUT N DEMUX ID [base]: a --weights stream for the programs,
        # small, or of the BERT-base shape (for bench/pipeline-bench.sh)
        out, n, demux, ident = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
        base = len(sys.argv) == 7 and sys.argv[6] == "base"
        shape = dict(H=768, heads=12, head_dim=64, layers=12, inter=3072, vocab=30522,
                     max_pos=512) if base else dict(head_dim=8)
        W = make_model(11, n, demux if n > 1 else "index_pos", labels=2,
                       pooler=base and n == 1, **shape)
        pmxstream.write(out, [{k: v.numpy() for k, v in W.items()}],
                        {"id": ident, "hidden": shape.get("H", 32),
                         "layers": shape.get("layers", 2), "head_dim": shape["head_dim"],
                         "mux_n": n, "mux_variant": "gaussian_hadamard" if n > 1 else "none",
                         "demux_variant": demux if n > 1 else "none", "num_labels": 2,
                         "labels": "neg,pos", "max_length": 128 if base else 16,
                         "attend_padding": int(n > 1),
                         "pooling": "pooler" if base and n == 1 else "cls"})
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "bench-hf":
        # bench-hf DIR N: a BERT-base-shaped checkpoint directory, N instances
        # (index_pos), random weights, for bench/pipeline-bench.sh
        n = int(sys.argv[3])
        W = make_model(11, n, "index_pos", labels=2, pooler=n == 1, H=768, heads=12,
                       head_dim=64, layers=12, inter=3072, vocab=30522, max_pos=512)
        write_hf_dir(sys.argv[2], W, n, "index_pos", 2, 12, 512, heads=12, inter=3072)
        sys.exit(0)
    if len(sys.argv) == 5 and sys.argv[1] == "bench-tokens":
        # bench-tokens OUT ROWS T: full rows of T random tokens, records of 64
        out, B, T = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        rng = np.random.default_rng(0)
        ids = rng.integers(1000, 30000, (B, T)).astype(np.int32)
        ids[:, 0], ids[:, -1] = CLS, SEP
        pmxstream.write(out, [{"row": np.arange(a, b, dtype=np.int64), "ids": ids[a:b],
                               "type_ids": np.zeros((b - a, T), np.int32),
                               "lengths": np.full(b - a, T, np.int32)}
                              for a, b in split(B, [64])], {"stage": "tokens"})
        sys.exit(0)
    if len(sys.argv) in (4, 5) and sys.argv[1] == "tokens":
        # tokens OUT B [MODEL]: a token stream of B rows in records of 7,
        # with labels, made for MODEL
        out, B = sys.argv[2], int(sys.argv[3])
        tmeta = {"stage": "tokens"}
        if len(sys.argv) == 5:
            tmeta["model"] = sys.argv[4]
        ids, types, lengths = make_tokens(B, B, 12)
        pmxstream.write(out, [{"row": np.arange(a, b, dtype=np.int64),
                               "ids": ids[a:b].numpy().astype(np.int32),
                               "type_ids": types[a:b].numpy().astype(np.int32),
                               "lengths": lengths[a:b].numpy().astype(np.int32),
                               "label": (np.arange(a, b) % 2).astype(np.int32)}
                              for a, b in split(B, [7])], tmeta)
        sys.exit(0)
    sys.exit(__doc__)
