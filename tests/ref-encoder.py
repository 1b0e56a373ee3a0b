#!/usr/bin/python3
"""ref-encoder.py -- check prumux-infer's encoder layers against PyTorch.

The reference is the BERT encoder written in plain torch (nn.Linear, erf
GELU, post-LayerNorm, additive -10000 attention mask as in Hugging Face
BERT) with the CoFi rules for pruned layers: no attention weights = an
identity attention sublayer with no LayerNorm, no FFN weights = an identity
FFN.  Random weights go to prumux-infer as a --weights stream, random
encoder inputs as an embeds stream; the hidden states must agree within

    TOL = 1e-4 (max absolute difference, fp32)

at every real position; rows at padded positions must be exactly zero.

Cases: (a) small dense configs with and without the padding mask and ragged
lengths, (b) irregular pruned shapes (different heads per layer, different
FFN widths, a layer without attention, a layer without FFN, pruned hidden
size), positions all / auto / a list, 1 and 2 threads; and with
--safetensors FILE, a real BERT checkpoint (all-MiniLM-L6-v2): its own
embedding layer makes h0 from random token ids, then the encoder is compared.

Each comparison is also made against a deliberately wrong reference (no
mask, or tanh GELU), which must NOT match, so the test can fail.

Usage: ref-encoder.py [--safetensors FILE] [--keep DIR]   (prumux-infer on PATH)
Exit 0 = pass, 1 = fail, 77 = torch missing.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as Fn
except ImportError as e:                                   # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pmxstream  # noqa: E402

TOL = 1e-4
torch.set_num_threads(1)


class Layer(torch.nn.Module):
    """One BERT layer; heads = 0 or F = 0 leaves that sublayer out (CoFi)."""

    def __init__(self, H, heads, dh, F, eps):
        super().__init__()
        self.heads, self.dh, self.F = heads, dh, F
        if heads:
            A = heads * dh
            self.query = torch.nn.Linear(H, A)
            self.key = torch.nn.Linear(H, A)
            self.value = torch.nn.Linear(H, A)
            self.out = torch.nn.Linear(A, H)
            self.ln1 = torch.nn.LayerNorm(H, eps=eps)
        if F:
            self.up = torch.nn.Linear(H, F)
            self.down = torch.nn.Linear(F, H)
            self.ln2 = torch.nn.LayerNorm(H, eps=eps)

    def forward(self, x, mask, gelu="none"):
        G, T, _ = x.shape
        if self.heads:
            def split(t):
                return t.view(G, T, self.heads, self.dh).transpose(1, 2)
            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            s = q @ k.transpose(-1, -2) / math.sqrt(self.dh)
            if mask is not None:
                s = s + (1.0 - mask[:, None, None, :].float()) * -10000.0
            c = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(G, T, -1)
            x = self.ln1(self.out(c) + x)
        if self.F:
            x = self.ln2(self.down(Fn.gelu(self.up(x), approximate=gelu)) + x)
        return x

    def named(self, i):
        """The weights under their archive names."""
        p, d = f"encoder.layer.{i}.", {}
        mods = {}
        if self.heads:
            mods.update({"attention.self.query": self.query,
                         "attention.self.key": self.key,
                         "attention.self.value": self.value,
                         "attention.output.dense": self.out,
                         "attention.output.LayerNorm": self.ln1})
        if self.F:
            mods.update({"intermediate.dense": self.up, "output.dense": self.down,
                         "output.LayerNorm": self.ln2})
        for name, m in mods.items():
            d[p + name + ".weight"] = m.weight.detach().numpy().astype(np.float32)
            d[p + name + ".bias"] = m.bias.detach().numpy().astype(np.float32)
        return d


def randomize(layers, gen):
    with torch.no_grad():
        for ly in layers:
            for m in ly.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.normal_(0, 1 / math.sqrt(m.in_features), generator=gen)
                    m.bias.normal_(0, 0.1, generator=gen)
                elif isinstance(m, torch.nn.LayerNorm):
                    m.weight.normal_(1, 0.1, generator=gen)
                    m.bias.normal_(0, 0.1, generator=gen)


def encode(layers, x, mask, gelu="none"):
    with torch.no_grad():
        for ly in layers:
            x = ly(x, mask, gelu)
    return x


class Checker:
    def __init__(self, tmp):
        self.tmp, self.failed, self.count = tmp, 0, 0

    def run(self, name, layers, cfg, x, lengths, positions="all", threads=1,
            want_positions=None, wrong=None):
        """Run prumux-infer on X (G, T, H) and compare with the reference."""
        self.count += 1
        G, T, H = x.shape
        attend_padding = lengths is None
        weights = {}
        for i, ly in enumerate(layers):
            weights.update(ly.named(i))
        meta = {"id": cfg.get("id", "0123abcd"), "hidden": H, "layers": len(layers),
                "head_dim": cfg["dh"], "ln_eps": repr(cfg.get("eps", 1e-12)),
                "attend_padding": int(attend_padding),
                "pooling": cfg.get("pooling", "cls"),
                "demux_variant": cfg.get("demux", "none"), "mux_n": cfg.get("mux_n", 1)}
        wpath = os.path.join(self.tmp, f"{name}.weights")
        ipath = os.path.join(self.tmp, f"{name}.in")
        opath = os.path.join(self.tmp, f"{name}.out")
        pmxstream.write(wpath, [weights], meta)
        lens = np.full(G, T, np.int32) if lengths is None else np.asarray(lengths, np.int32)
        rec = {"row": np.arange(G, dtype=np.int64), "embeds": x.numpy(), "lengths": lens}
        pmxstream.write(ipath, [rec, rec], {"model": meta["id"], "stage": "embeds"})
        cmd = ["prumux-infer", "--weights", wpath, f"--positions={positions}",
               f"--threads={threads}", "-o", opath, ipath]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            return self.fail(name, f"prumux-infer exited {r.returncode}: {r.stderr}")
        ometa, recs = pmxstream.read(opath)
        if ometa.get("stage") != "hidden" or ometa.get("model") != meta["id"]:
            return self.fail(name, f"bad output META {ometa}")
        if len(recs) != 2:
            return self.fail(name, f"{len(recs)} records, expected 2")
        mask = None if lengths is None else \
            torch.arange(T)[None, :] < torch.as_tensor(lens)[:, None]
        ref = encode(layers, x, mask).numpy()
        pos = recs[0]["positions"]
        if want_positions is not None and list(pos) != list(want_positions):
            return self.fail(name, f"positions {list(pos)}, expected {want_positions}")
        hid = recs[0]["hidden"]
        if hid.shape != (G, len(pos), H):
            return self.fail(name, f"hidden shape {hid.shape}")
        if not np.array_equal(recs[0]["row"], rec["row"]) or \
                not np.array_equal(recs[1]["lengths"], lens):
            return self.fail(name, "row/lengths not copied through")
        if not np.array_equal(recs[0]["hidden"], recs[1]["hidden"]):
            return self.fail(name, "two identical records gave different results")
        diff, bad = 0.0, None
        for g in range(G):
            for j, p in enumerate(pos):
                if p < lens[g]:
                    diff = max(diff, float(np.abs(hid[g, j] - ref[g, p]).max()))
                elif np.any(hid[g, j] != 0):
                    bad = f"padded row (sequence {g}, position {p}) is not zero"
        if bad:
            return self.fail(name, bad)
        if not diff <= TOL:
            return self.fail(name, f"max abs diff {diff:.3g} > {TOL}")
        # The same comparison against a wrong reference must fail.
        wdiff = None
        if wrong is not None:
            wref = wrong(layers, x, mask).numpy()
            wdiff = max(float(np.abs(hid[g, j] - wref[g, p]).max())
                        for g in range(G) for j, p in enumerate(pos) if p < lens[g])
            if wdiff <= TOL:
                return self.fail(name, f"a wrong reference matches too ({wdiff:.3g})")
        print(f"ok   {name}: max abs diff {diff:.2e} (tolerance {TOL})"
              + (f"; wrong reference differs by {wdiff:.2e}" if wdiff else ""))

    def fail(self, name, msg):
        print(f"FAIL {name}: {msg}")
        self.failed += 1


def build(H, heads, ffn, dh, seed, eps=1e-12):
    gen = torch.Generator().manual_seed(seed)
    layers = [Layer(H, h, dh, f, eps) for h, f in zip(heads, ffn)]
    randomize(layers, gen)
    return layers, gen


def no_mask(layers, x, mask):
    return encode(layers, x, None)


def tanh_gelu(layers, x, mask):
    return encode(layers, x, mask, "tanh")


def random_cases(ck):
    # (a) small dense, with the padding mask and ragged lengths, 2 threads.
    layers, gen = build(64, [4, 4], [128, 128], 16, 1)
    x = torch.randn(3, 9, 64, generator=gen)
    ck.run("dense-masked", layers, {"dh": 16}, x, [9, 4, 1], threads=2, wrong=no_mask)
    ck.run("dense-nomask", layers, {"dh": 16}, x, None, wrong=tanh_gelu)
    # dense with the BERT head size (64) and a longer sequence.
    layers, gen = build(128, [2, 2, 2], [256, 256, 256], 64, 2)
    x = torch.randn(4, 33, 128, generator=gen)
    ck.run("dense-dh64", layers, {"dh": 64}, x, [33, 20, 5, 31], threads=2,
           wrong=no_mask)
    # (b) irregular pruned shapes, pruned hidden size 40: heads 3/0/1/5, FFN
    # 50/17/0/33, layer 1 without attention, layer 2 without FFN.
    cfg = {"dh": 8, "eps": 1e-5}
    layers, gen = build(40, [3, 0, 1, 5], [50, 17, 0, 33], 8, 3, eps=1e-5)
    x = torch.randn(5, 12, 40, generator=gen)
    lens = [12, 7, 2, 11, 5]
    ck.run("pruned-masked-all", layers, cfg, x, lens, wrong=no_mask)
    ck.run("pruned-masked-list", layers, cfg, x, lens, positions="6,0,11,0", threads=2,
           want_positions=[6, 0, 11, 0])
    ck.run("pruned-nomask-auto-cls", layers, cfg, x, None, positions="auto",
           want_positions=[0], wrong=tanh_gelu)
    ck.run("pruned-nomask-auto-index", layers, dict(cfg, demux="index", mux_n=3), x,
           None, positions="auto", threads=2, want_positions=[0, 1, 2, 3])
    ck.run("pruned-auto-mean", layers, dict(cfg, pooling="mean"), x, lens,
           positions="auto", want_positions=list(range(12)))
    # the last layer without attention, the first without FFN.
    layers, gen = build(24, [2, 4, 0], [0, 30, 9], 8, 4)
    x = torch.randn(2, 6, 24, generator=gen)
    ck.run("pruned-last-no-attention", layers, {"dh": 8}, x, [6, 3], positions="0,2")
    # no attention anywhere.
    layers, gen = build(16, [0, 0], [20, 0], 8, 5)
    x = torch.randn(2, 5, 16, generator=gen)
    ck.run("pruned-no-attention", layers, {"dh": 8}, x, [5, 2], wrong=tanh_gelu)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        head = json.loads(f.read(n))
        data = f.read()
    types = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], types[t["dtype"]]).reshape(t["shape"])
    return out


def checkpoint_case(ck, path):
    """A real BERT checkpoint: its embedding layer makes h0, then compare."""
    with open(os.path.join(os.path.dirname(path), "config.json")) as f:
        conf = json.load(f)
    w = {k[5:] if k.startswith("bert.") else k: v for k, v in read_safetensors(path).items()}
    H, heads = conf["hidden_size"], conf["num_attention_heads"]
    dh, eps = H // heads, conf["layer_norm_eps"]
    layers = []
    for i in range(conf["num_hidden_layers"]):
        ly = Layer(H, heads, dh, conf["intermediate_size"], eps)
        sd = {}
        names = {"query": "attention.self.query", "key": "attention.self.key",
                 "value": "attention.self.value", "out": "attention.output.dense",
                 "ln1": "attention.output.LayerNorm", "up": "intermediate.dense",
                 "down": "output.dense", "ln2": "output.LayerNorm"}
        for mod, hf in names.items():
            for p in ("weight", "bias"):
                sd[f"{mod}.{p}"] = torch.from_numpy(
                    w[f"encoder.layer.{i}.{hf}.{p}"].copy())
        ly.load_state_dict(sd)
        layers.append(ly)
    gen = torch.Generator().manual_seed(6)
    G, T = 4, 40
    lens = [40, 17, 3, 28]
    ids = torch.randint(1000, conf["vocab_size"], (G, T), generator=gen)
    ids[:, 0] = 101
    for g, n in enumerate(lens):
        ids[g, n - 1] = 102
        ids[g, n:] = 0
    emb = (torch.from_numpy(w["embeddings.word_embeddings.weight"].copy())[ids]
           + torch.from_numpy(w["embeddings.position_embeddings.weight"][:T].copy())[None]
           + torch.from_numpy(w["embeddings.token_type_embeddings.weight"][0].copy()))
    x = Fn.layer_norm(emb, (H,), torch.from_numpy(w["embeddings.LayerNorm.weight"].copy()),
                      torch.from_numpy(w["embeddings.LayerNorm.bias"].copy()), eps)
    ck.run("checkpoint", layers, {"dh": dh, "eps": eps, "pooling": "mean"}, x, lens,
           positions="auto", threads=2, want_positions=list(range(T)), wrong=no_mask)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--safetensors", help="also check this BERT checkpoint")
    ap.add_argument("--keep", help="keep the streams in this directory")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ck = Checker(args.keep or tmp)
        random_cases(ck)
        if args.safetensors:
            checkpoint_case(ck, args.safetensors)
    print(f"{ck.count - ck.failed} passed, {ck.failed} failed")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
