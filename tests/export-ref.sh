#!/bin/sh
# export-ref.sh -- prumux-export against the PyTorch reference
# (tests/ref-mux.py export): for MUX-BERT checkpoints with the index_pos and
# index demultiplexers, a pruned MUX model and a pruned BERT classifier,
# convert -> export -> convert gives the same archive bytes and the same
# pipeline outputs, and the exported model.safetensors and config.json,
# read as the published code reads them, give the source's logits (1e-5).
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || skip_ "no Python with torch"
"$py" "$srcdir/tests/ref-mux.py" export "$abs_top_builddir/bin" "$tmp_" \
  || fail_ "the export differs from its source"
