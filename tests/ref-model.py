"""ref-model.py -- reference checks of prumux-convert on small Hugging
Face-style checkpoints written here by hand (numpy only; torch optional).

    ref-model.py make OUTDIR     write model directories OUTDIR/NAME/, each with
                                 config.json, model.safetensors (or, with torch,
                                 pytorch_model.bin), vocab.txt, tokenizer files,
                                 'args' (prumux-convert options) and expect.json
    ref-model.py check DIR PMX [EXPECT]
                                 compare archive PMX with its source DIR:
                                 every tensor, after an independent Python
                                 version of the name mapping, must equal the
                                 source converted to f32 bit for bit, the set
                                 of names must match exactly, and config.json
                                 must hold the fields of EXPECT (default
                                 DIR/expect.json).

The checkpoints are irregular on purpose: CoFi-pruned hidden sizes, per-layer
head counts and FFN widths, fully pruned attention or FFN sublayers (with the
unused unpruned LayerNorms CoFi leaves behind), PruMUX instance keys and demux
module aliases, F16/BF16 weights, gamma/beta names and bert./model. prefixes.
"""
import io
import json
import os
import struct
import sys
import tarfile
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pmxstream  # noqa: E402

warnings.filterwarnings("ignore")
rng = np.random.default_rng(20261124)
H0, HEADS, HD, FFN0, VOCAB = 32, 4, 8, 64, 50


# ---- writing safetensors by hand ------------------------------------------

def to_bytes(a, dt):
    if dt == "F32":
        return a.astype("<f4").tobytes()
    if dt == "F16":
        return a.astype("<f2").tobytes()
    if dt == "F64":
        return a.astype("<f8").tobytes()
    if dt == "BF16":                    # round to nearest even, like torch
        u = a.astype("<f4").view("<u4").astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        return u.astype("<u2").tobytes()
    if dt == "I64":
        return a.astype("<i8").tobytes()
    raise ValueError(dt)


def write_safetensors(path, tensors):
    """tensors: list of (name, array, dtype-name)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a, dt in tensors:
        b = to_bytes(a, dt)
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    buf = open(path, "rb").read()
    n = struct.unpack_from("<Q", buf)[0]
    header = json.loads(buf[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        b, e = v["data_offsets"]
        raw = buf[8 + n + b:8 + n + e]
        dt, shape = v["dtype"], v["shape"]
        if dt == "F32":
            a = np.frombuffer(raw, "<f4")
        elif dt == "F16":
            a = np.frombuffer(raw, "<f2").astype(np.float32)
        elif dt == "F64":
            a = np.frombuffer(raw, "<f8").astype(np.float32)
        elif dt == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = None                    # integer buffers: dropped
        out[name] = (dt, None if a is None else a.reshape(shape))
    return out


# ---- the model directories ---------------------------------------------------

def values(*shape):
    a = rng.standard_normal(shape).astype(np.float32)
    flat = a.reshape(-1)
    # A few values that stress half-precision conversion (all finite, and
    # finite in f16 too: archives refuse NaN and infinite weights).
    specials = [0.0, -0.0, 65504.0, -65504.0, 6.1e-5, 5.96e-8, 1e-40]
    flat[:min(len(flat), len(specials))] = specials[:len(flat)]
    return a


def linear(prefix, out, inn, dt="F32"):
    return [(prefix + ".weight", values(out, inn), dt), (prefix + ".bias", values(out), dt)]


def norm(prefix, n, dt="F32", old=False):
    w, b = ("gamma", "beta") if old else ("weight", "bias")
    return [(f"{prefix}.{w}", values(n), dt), (f"{prefix}.{b}", values(n), dt)]


def embeddings(p, hidden, maxpos, dt="F32", old=False):
    return ([(p + "embeddings.word_embeddings.weight", values(VOCAB, hidden), dt),
             (p + "embeddings.position_embeddings.weight", values(maxpos, hidden), dt),
             (p + "embeddings.token_type_embeddings.weight", values(2, hidden), dt),
             (p + "embeddings.position_ids", np.arange(maxpos).reshape(1, maxpos), "I64")]
            + norm(p + "embeddings.LayerNorm", hidden, dt, old))


def layer(p, l, hidden, heads, ffn, dt="F32", old=False):
    """heads/ffn 0: the sublayer is pruned; CoFi keeps its unpruned LayerNorm."""
    q = f"{p}encoder.layer.{l}."
    t = []
    if heads:
        for n in ("query", "key", "value"):
            t += linear(q + "attention.self." + n, heads * HD, hidden, dt)
        t += linear(q + "attention.output.dense", hidden, heads * HD, dt)
        t += norm(q + "attention.output.LayerNorm", hidden, dt, old)
    else:
        t += norm(q + "attention.output.LayerNorm", H0, dt, old)
    if ffn:
        t += linear(q + "intermediate.dense", ffn, hidden, dt)
        t += linear(q + "output.dense", hidden, ffn, dt)
        t += norm(q + "output.LayerNorm", hidden, dt, old)
    else:
        t += norm(q + "output.LayerNorm", H0, dt, old)
    return t


def hf_config(layers, maxpos=40, **extra):
    c = {"model_type": "bert", "hidden_act": "gelu", "hidden_size": H0,
         "num_attention_heads": HEADS, "intermediate_size": FFN0,
         "num_hidden_layers": layers, "max_position_embeddings": maxpos,
         "type_vocab_size": 2, "vocab_size": VOCAB, "layer_norm_eps": 1e-12,
         "position_embedding_type": "absolute"}
    c.update(extra)
    return c


def write_dir(out, name, cfg, tensors, expect, args="", files=None, torch_bin=False,
              sub=""):
    """SUB: the folder of the Hugging Face files (older sentence-transformers
    models keep them in 0_BERT/)."""
    top = os.path.join(out, name)
    d = os.path.join(top, sub)
    os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("".join(f"tok{i}\n" for i in range(VOCAB)))
    for fname, text in (files or {}).items():
        os.makedirs(os.path.dirname(os.path.join(top, fname)), exist_ok=True)
        with open(os.path.join(top, fname), "w") as f:
            f.write(text)
    if torch_bin:
        import torch
        sd = {}
        for n, a, dt in tensors:
            t = torch.from_numpy(np.ascontiguousarray(a))
            sd[n] = t.to({"F32": torch.float32, "F16": torch.float16,
                          "BF16": torch.bfloat16, "I64": torch.int64}[dt])
            # The demux module's aliases share one storage, as in PyTorch.
            alias = "demultiplexer." + n[len("retrieval_head."):]
            if n.startswith("retrieval_head.demux_module.") and alias in sd:
                sd[n] = sd[alias]
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    else:
        write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    with open(os.path.join(top, "args"), "w") as f:
        f.write(args)
    json.dump(expect, open(os.path.join(top, "expect.json"), "w"), indent=2)


def make(out):
    # 1. BertForSequenceClassification: "bert." prefix, gamma/beta names,
    #    F16 and BF16 weights, id2label, cased tokenizer with HF's huge
    #    model_max_length sentinel.
    t = embeddings("bert.", H0, 40, "F16", old=True)
    t += layer("bert.", 0, H0, 4, FFN0, "BF16", old=True)
    t += layer("bert.", 1, H0, 4, FFN0, "F16")
    t += linear("bert.pooler.dense", H0, H0) + linear("classifier", 3, H0)
    cfg = hf_config(2, architectures=["BertForSequenceClassification"],
                    id2label={"0": "negative", "1": "neutral", "2": "positive"},
                    finetuning_task="sst2")
    tok = ('{"do_lower_case": false, "strip_accents": null, '
           '"model_max_length": 1000000000000000019884624838656}')
    write_dir(out, "cls", cfg, t, {
        "hidden": H0, "layers": 2, "layer_heads": [4, 4], "layer_ffn": [FFN0, FFN0],
        "num_labels": 3, "labels": ["negative", "neutral", "positive"], "pooling": "pooler",
        "normalize": False, "attend_padding": False, "max_length": 40, "lowercase": False,
        "strip_accents": False, "mux_n": 1, "mux_variant": "none", "task": "sst2"},
        files={"tokenizer_config.json": tok})

    # 2. CoFi-pruned classifier: hidden 24 of 32, irregular heads and FFN
    #    widths, a layer without attention, one without FFN, one with
    #    neither; the distillation layer_transformation; "model." prefix.
    d = 24
    t = embeddings("model.", d, 40)
    t += layer("model.", 0, d, 3, 40) + layer("model.", 1, d, 0, 17)
    t += layer("model.", 2, d, 1, 0) + layer("model.", 3, d, 0, 0)
    t += linear("model.pooler.dense", H0, d) + linear("classifier", 2, H0)
    t += linear("layer_transformation", H0, d)
    cfg = hf_config(4, architectures=["CoFiBertForSequenceClassification"])
    write_dir(out, "pruned", cfg, t, {
        "hidden": d, "layers": 4, "layer_heads": [3, 0, 1, 0], "layer_ffn": [40, 17, 0, 0],
        "num_labels": 2, "labels": ["neg", "pos"], "pooling": "pooler",
        "lowercase": True, "strip_accents": True, "max_length": 33},
        args="--labels=neg,pos --max-length=33")

    # 3. PruMUX: multiplexed (N=2, index_pos), pruned hidden 24, the demux
    #    module under both of its alias prefixes, retrieval head, pooler.
    N = 2
    t = mux_tensors(N, d)
    cfg = hf_config(2, maxpos=130, architectures=["MuxedBertForSequenceClassification"],
                    muxing_variant="gaussian_hadamard", demuxing_variant="index_pos",
                    num_instances=N, num_hidden_demux_layers=3, finetuning_task="qqp")
    expect = {
        "hidden": d, "layers": 2, "layer_heads": [2, 4], "layer_ffn": [30, 0],
        "mux_n": 2, "mux_variant": "gaussian_hadamard", "demux_variant": "index_pos",
        "demux_layers": 3, "num_labels": 2, "labels": ["0", "1"], "pooling": "cls",
        "attend_padding": True, "max_length": 128, "task": "qqp"}
    write_dir(out, "mux", cfg, t, expect)

    # 4. sentence-transformers: no prefix, mean pooling, Normalize.
    t = embeddings("", H0, 40) + layer("", 0, H0, 4, FFN0) + linear("pooler.dense", H0, H0)
    mods = json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    write_dir(out, "st", hf_config(1, architectures=["BertModel"]), t, {
        "hidden": H0, "layers": 1, "num_labels": 0, "labels": [], "pooling": "mean",
        "normalize": True, "attend_padding": False, "max_length": 16, "lowercase": True,
        "strip_accents": False}, files={
            "modules.json": mods,
            "1_Pooling/config.json": '{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": false}',
            "sentence_bert_config.json": '{"max_seq_length": 16, "do_lower_case": false}',
            "tokenizer_config.json": '{"do_lower_case": true, "strip_accents": false}'})

    # 4b. An older sentence-transformers layout: the Hugging Face files in
    #     0_BERT/ (module type models.BERT), CLS pooling, no Normalize.
    t = embeddings("", H0, 40) + layer("", 0, H0, 2, 24)
    mods = json.dumps([
        {"idx": 0, "name": "0", "path": "0_BERT", "type": "sentence_transformers.models.BERT"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])
    write_dir(out, "st-old", hf_config(1), t, {
        "hidden": H0, "layers": 1, "layer_heads": [2], "layer_ffn": [24], "pooling": "cls",
        "normalize": False, "max_length": 12, "lowercase": False, "strip_accents": False},
        sub="0_BERT", files={
            "modules.json": mods,
            "1_Pooling/config.json": '{"pooling_mode_mean_tokens": false, "pooling_mode_cls_token": true}',
            "0_BERT/sentence_bert_config.json": '{"max_seq_length": 12, "do_lower_case": false}',
            "0_BERT/tokenizer_config.json": '{"do_lower_case": false}'})

    # 4c. Sharded: model.safetensors.index.json and two shard files.
    t = embeddings("bert.", H0, 40) + layer("bert.", 0, H0, 4, 16) + layer("bert.", 1, H0, 1, 0)
    write_dir(out, "sharded", hf_config(2), t, {
        "hidden": H0, "layers": 2, "layer_heads": [4, 1], "layer_ffn": [16, 0]})
    shard_dir = os.path.join(out, "sharded")
    os.unlink(os.path.join(shard_dir, "model.safetensors"))
    half = len(t) // 2
    shards = {"model-00001-of-00002.safetensors": t[:half],
              "model-00002-of-00002.safetensors": t[half:]}
    for f, part in shards.items():
        write_safetensors(os.path.join(shard_dir, f), part)
    json.dump({"metadata": {}, "weight_map": {n: f for f, part in shards.items() for n, _, _ in part}},
              open(os.path.join(shard_dir, "model.safetensors.index.json"), "w"))

    # 5. Deep: more tensors than one stream record holds (as BERT-large).
    t = embeddings("bert.", H0, 40)
    for l in range(17):
        t += layer("bert.", l, H0, 1 + l % 4, 8 + l)
    write_dir(out, "deep", hf_config(17), t, {
        "hidden": H0, "layers": 17, "layer_heads": [1 + l % 4 for l in range(17)],
        "layer_ffn": [8 + l for l in range(17)], "num_labels": 0})

    # 6. pytorch_model.bin files (need torch), converted by
    #    bin2safetensors.py: a BF16 classifier, and a PruMUX model whose
    #    demux aliases share storage as PruMUX saves them.
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    write_dir(out, "muxbin", cfg, mux_tensors(N, d), expect, torch_bin=True)
    t = embeddings("bert.", H0, 40) + layer("bert.", 0, H0, 2, 20, "BF16")
    t += linear("classifier", 2, H0)
    write_dir(out, "bin", hf_config(1, architectures=["BertForSequenceClassification"]), t, {
        "hidden": H0, "layers": 1, "layer_heads": [2], "layer_ffn": [20], "num_labels": 2,
        "pooling": "cls"}, torch_bin=True)


def mux_tensors(N, d):
    t = embeddings("bert.", d, 130)
    t += layer("bert.", 0, d, 2, 30) + layer("bert.", 1, d, 4, 0)
    t += [("instance_embedding", values(N, d), "F32")]
    demux = [("demux_module.demux_instance_embedding", values(N, d), "F32")]
    demux += linear("demux_module.dense_1", H0, 2 * d)
    for k in (2, 3):
        demux += linear(f"demux_module.dense_{k}", H0, H0)
    for k in (1, 2, 3):
        demux += norm(f"demux_module.layer_norm_{k}", H0)
    t += [("demultiplexer." + n, a, dt) for n, a, dt in demux]
    t += [("retrieval_head." + n, a.copy(), dt) for n, a, dt in demux]
    t += linear("demultiplexer.pre_decoder", H0, H0) + norm("demultiplexer.pre_decoder_layer_norm", H0)
    t += linear("retrieval_head.pre_decoder", H0, H0) + norm("retrieval_head.pre_decoder_layer_norm", H0)
    t += linear("retrieval_head.decoder", VOCAB, H0)
    t += linear("bert.pooler.dense", H0, d) + linear("classifier", 2, H0)
    t += linear("layer_transformation", H0, d)
    return t


# ---- checking an archive -------------------------------------------------------

def canonical(name):
    """Independent restatement of the importer's name rules."""
    for p in ("model.", "bert."):
        if name.startswith(p):
            name = name[len(p):]
    if name.endswith("position_ids") or name.startswith("layer_transformation."):
        return None
    for p in ("demultiplexer.demux_module.", "retrieval_head.demux_module."):
        if name.startswith(p):
            name = name[len(p) - len("demux_module."):]
    if name.endswith(".gamma"):
        name = name[:-6] + ".weight"
    elif name.endswith(".beta"):
        name = name[:-5] + ".bias"
    return name


def read_archive(path):
    with tarfile.open(path) as tf:
        names = tf.getnames()
        members = {n: tf.extractfile(n).read() for n in names}
    assert names[0] == "prumux-model", names
    assert names[1:] == ["config.json", "vocab.txt", "tensors.pmxs"], names
    meta, records = pmxstream.loads(members["tensors.pmxs"])
    # One record holds every tensor, unless there are more than it can hold.
    assert sum(len(r) for r in records) > 256 * (len(records) - 1), \
        f"{len(records)} records for {sum(len(r) for r in records)} tensors"
    merged = {}
    for r in records:
        assert not set(r) & set(merged), "a tensor in two records"
        merged.update(r)
    return json.loads(members["config.json"]), members["vocab.txt"], merged


def check(d, pmx, expect_path=None):
    hf = d if os.path.exists(os.path.join(d, "config.json")) else os.path.join(d, "0_BERT")
    index = os.path.join(hf, "model.safetensors.index.json")
    files = (sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index)
             else ["model.safetensors"])
    st = {}
    for f in files:
        st.update(read_safetensors(os.path.join(hf, f)))
    cfg, vocab, tensors = read_archive(pmx)
    want = {}
    for name, (dt, a) in st.items():
        c = canonical(name)
        if c is None or a is None:
            continue
        if c in want:                     # an alias: must be the same values
            assert np.array_equal(want[c], a), f"alias {name} differs"
            continue
        want[c] = a
    # LayerNorms of pruned sublayers are dropped.
    for l in range(cfg["layers"]):
        p = f"encoder.layer.{l}."
        if p + "attention.self.query.weight" not in want:
            for k in ("weight", "bias"):
                want.pop(p + "attention.output.LayerNorm." + k, None)
        if p + "intermediate.dense.weight" not in want:
            for k in ("weight", "bias"):
                want.pop(p + "output.LayerNorm." + k, None)
    missing = sorted(set(want) - set(tensors))
    extra = sorted(set(tensors) - set(want))
    assert not missing and not extra, f"missing {missing}, extra {extra}"
    for name, a in want.items():
        got = tensors[name]
        assert got.dtype == np.float32, (name, got.dtype)
        assert got.shape == a.shape, (name, got.shape, a.shape)
        # Bit-exact: F16/BF16 -> f32 is exact, so no tolerance is needed.
        assert got.tobytes() == np.ascontiguousarray(a, np.float32).tobytes(), \
            f"{name}: values differ (max |diff| {np.nanmax(np.abs(got - a))})"
    expect = json.load(open(expect_path or os.path.join(d, "expect.json")))
    for k, v in expect.items():
        assert cfg.get(k) == v, f"config.json: {k}: {cfg.get(k)!r}, expected {v!r}"
    assert vocab == open(os.path.join(hf, "vocab.txt"), "rb").read()
    print(f"{os.path.basename(d.rstrip('/'))}: {len(want)} tensors equal, config as expected")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "check":
        check(*sys.argv[2:])
    else:
        sys.exit(__doc__)
