#!/bin/sh
# mux-pipeline.sh -- prumux-mux | prumux-infer | prumux-demux against the
# PyTorch reference forward (tests/ref-mux.py): logits within 1e-4, TSV,
# JSON and --eval outputs, one result per input row in input order, for
# N = 1, 2, 5, 10, index_pos and index demux, pruned shapes.
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || skip_ "no Python with torch"
"$py" "$srcdir/tests/ref-mux.py" pipeline "$abs_top_builddir/bin" "$tmp_" \
  || fail_ "the pipeline differs from the reference"
