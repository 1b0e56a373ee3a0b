#!/bin/sh
# shrink-ref.sh -- `prumux-model shrink` against PyTorch (tests/ref-shrink.py
# states what and the tolerances): N = 1 and a MUX-BERT with N = 2, masks
# with a fully pruned attention sublayer and FFN, some heads, FFN and
# hidden dimensions cut and soft survivors.  The shrunk tensors equal
# CoFi's update_params + prune_model_with_z bit for bit; the pipeline's
# logits equal the masked unshrunk model's (hidden_z in {0, 1}) and the
# CoFi-shrunk model's within 1e-5; a CoFi checkpoint with a (H, H')
# pooler runs (issue 16).
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || skip_ "no Python with torch"
"$py" "$srcdir/tests/ref-shrink.py" "$abs_top_builddir/bin" "$tmp_" \
  || fail_ "shrinking differs from the reference"
