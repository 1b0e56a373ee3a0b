#!/bin/sh
# mux-e2e.sh -- from text to labels: prumux-tokenize | prumux-mux |
# prumux-infer | prumux-demux with model archives made by prumux-convert
# from Hugging Face-style MUX-BERT and BERT checkpoints.  1,001 input lines
# with N = 5 give 1,001 output lines in input order (a ragged last group,
# records of 13 rows), logits within 1e-4 of the PyTorch reference, and
# --eval agrees with the reference accuracy; the same for N = 1 (pooler
# classifier) and N = 2 with the index demultiplexer on 101 lines.
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || skip_ "no Python with torch"
bin=$abs_top_builddir/bin
for c in "5 index_pos 1001" "1 none 101" "2 index 101"; do
  set -- $c
  mkdir "w$1" || framework_failure_ "mkdir"
  "$py" "$srcdir/tests/ref-mux.py" e2e "$bin" "w$1" "$1" "$2" "$3" \
    || fail_ "N = $1 ($2): the pipeline differs from the reference"
done
