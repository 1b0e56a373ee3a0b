#!/usr/bin/python3
"""ref-minilm.py -- sentence embeddings of the real all-MiniLM-L6-v2
checkpoint: the whole prumux pipeline (tokenize | mux | infer | demux,
through a model archive made by prumux-convert) against PyTorch.

The reference is sentence-transformers' computation written in plain torch:
BERT embeddings (word + position + token type 0, LayerNorm), the six encoder
layers of ref-encoder.py with the padding mask, mean pooling over the real
tokens, L2 normalisation.  Token ids come from prumux-tokenize --format=tsv
(tests/tokenize-hf.sh proves them identical to Hugging Face's).

    TOL = 1e-4 (max absolute difference per embedding component, fp32)

Usage: ref-minilm.py MODEL_DIR ARCHIVE TEXTS EMBEDDINGS_TSV
Exit 0 = pass, 1 = fail, 77 = torch missing.
"""
import importlib.util
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as Fn
except ImportError as e:                                   # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("ref_encoder", os.path.join(here, "ref-encoder.py"))
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

TOL = 1e-4
model_dir, archive, texts, got_path = sys.argv[1:5]
with open(os.path.join(model_dir, "config.json")) as f:
    conf = json.load(f)
w = {k[5:] if k.startswith("bert.") else k: torch.from_numpy(v.copy())
     for k, v in ref.read_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
H, heads, eps = conf["hidden_size"], conf["num_attention_heads"], conf["layer_norm_eps"]
names = {"query": "attention.self.query", "key": "attention.self.key",
         "value": "attention.self.value", "out": "attention.output.dense",
         "ln1": "attention.output.LayerNorm", "up": "intermediate.dense",
         "down": "output.dense", "ln2": "output.LayerNorm"}
layers = []
for i in range(conf["num_hidden_layers"]):
    ly = ref.Layer(H, heads, H // heads, conf["intermediate_size"], eps)
    ly.load_state_dict({f"{m}.{p}": w[f"encoder.layer.{i}.{hf}.{p}"]
                        for m, hf in names.items() for p in ("weight", "bias")})
    layers.append(ly)

ids_tsv = subprocess.run(["prumux-tokenize", "-m", archive, "--format=tsv", texts],
                         check=True, capture_output=True, text=True).stdout.splitlines()
rows = [[int(t) for t in line.split()] for line in ids_tsv]
T = max(len(r) for r in rows)
ids = torch.zeros(len(rows), T, dtype=torch.long)
mask = torch.zeros(len(rows), T)
for g, r in enumerate(rows):
    ids[g, :len(r)] = torch.tensor(r)
    mask[g, :len(r)] = 1
with torch.no_grad():
    emb = (w["embeddings.word_embeddings.weight"][ids]
           + w["embeddings.position_embeddings.weight"][:T][None]
           + w["embeddings.token_type_embeddings.weight"][0])
    x = Fn.layer_norm(emb, (H,), w["embeddings.LayerNorm.weight"],
                      w["embeddings.LayerNorm.bias"], eps)
    h = ref.encode(layers, x, mask)
    pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    want = Fn.normalize(pooled, dim=-1).numpy()

got = np.loadtxt(got_path, dtype=np.float64, ndmin=2)
if got.shape != want.shape:
    print(f"FAIL: embeddings shape {got.shape}, expected {want.shape}")
    sys.exit(1)
diff = float(np.abs(got - want).max())
print(f"all-MiniLM-L6-v2, {len(rows)} sentences: max abs difference {diff:.2e} (tolerance {TOL})")
# The test must be able to fail: unnormalised embeddings differ by far more.
assert np.abs(got - pooled.numpy()).max() > 10 * TOL
sys.exit(0 if diff <= TOL else 1)
