#!/bin/sh
# mux-ref.sh -- the embedding stage, multiplexer, demultiplexers and heads
# of libprumux against the PyTorch reference (tests/ref-mux.py): muxed
# embeddings and logits within 1e-4 for N = 1, 2, 5, 10, the index_pos,
# index and mlp demultiplexers, pruned widths and ragged last groups.
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || skip_ "no Python with torch"
"$py" "$srcdir/tests/ref-mux.py" stages "$abs_top_builddir/tests/test-mux" "$tmp_" \
  || fail_ "stages differ from the reference"
