#!/bin/sh
# parallel-pipe.sh -- batch inference split over jobs by GNU parallel
# (--pipe --keep-order, chunks of a multiple of the model's N lines, so
# that every chunk groups its rows as the single run does) writes the
# bytes of the single run, as prumux-grid(7) says.
. "$abs_top_srcdir/tests/init.sh"
parallel --version 2> /dev/null | grep -q 'GNU parallel' || skip_ "GNU parallel is not installed"

m=$srcdir/share/prumux/wordnet-lexfile-n2.pmx
i=0
while [ $i -lt 10 ]; do cat "$srcdir/share/prumux/sample-glosses.tsv"; i=$((i + 1)); done > in.tsv
run="prumux-tokenize -m $m -f 2 | prumux-mux -m $m | prumux-infer -m $m | prumux-demux -m $m --emit=logits"
sh -c "$run" < in.tsv > single.tsv || fail_ "single run"
[ "$(wc -l < single.tsv)" = 240 ] || fail_ "single run: rows"
parallel --pipe --keep-order -N 20 -j 2 "$run" < in.tsv > split.tsv || fail_ "parallel run"
compare single.tsv split.tsv || fail_ "the split run differs from the single run"
exit 0
