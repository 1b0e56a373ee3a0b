#!/bin/sh
# mux-threads.sh -- prumux-mux (and the multiplexer inside prumux-infer
# --from-ids) give the same bytes on 1, 2 and 3 threads: the shipped N = 2
# model over records of 5 rows (groups across record boundaries, a ragged
# last group), and an N = 1 model over rows of different lengths with type
# ids (the padded embedding stage).  A wrong row id is still named.
. "$abs_top_srcdir/tests/init.sh"

m=$srcdir/share/prumux/wordnet-lexfile-n2.pmx
head -n 23 "$srcdir/share/prumux/sample-glosses.tsv" > in.tsv \
  || framework_failure_ "cannot write the input"
prumux-tokenize -m "$m" --fields=2 --batch=5 in.tsv > tok.pmxs || fail_ "tokenize"
for j in 1 2 3; do
  prumux-mux -m "$m" -j $j tok.pmxs > mux$j.pmxs || fail_ "N = 2: mux -j $j"
  prumux-infer -m "$m" --from-ids -j $j tok.pmxs > ids$j.pmxs || fail_ "infer --from-ids -j $j"
done
compare mux1.pmxs mux2.pmxs && compare mux1.pmxs mux3.pmxs \
  || fail_ "N = 2: the multiplexer's output depends on its threads"
compare ids1.pmxs ids2.pmxs && compare ids1.pmxs ids3.pmxs \
  || fail_ "infer --from-ids: the output depends on the threads"
prumux-infer -m "$m" -j 1 mux1.pmxs | compare - ids1.pmxs \
  || fail_ "infer --from-ids differs from prumux-mux | prumux-infer"

# N = 1: rows of 2 to 11 tokens, sentence pairs (type ids 0 and 1).
"$abs_top_builddir/tests/test-model" --write-tiny tiny.pmx || framework_failure_ "tiny model"
printf 'a\tb c\nb c d e\tf\nf a b c d e\tc\na\tb\n' > pairs.tsv
prumux-tokenize -m tiny.pmx --fields=1,2 --batch=3 pairs.tsv > tok1.pmxs || fail_ "tokenize pairs"
prumux-cat -f tsv -t type_ids tok1.pmxs | grep -q '	1' || framework_failure_ "no type ids of 1"
for j in 1 2 3; do
  prumux-mux -m tiny.pmx -j $j tok1.pmxs > e$j.pmxs || fail_ "N = 1: mux -j $j"
done
compare e1.pmxs e2.pmxs && compare e1.pmxs e3.pmxs \
  || fail_ "N = 1: the embedding stage's output depends on its threads"

# A token id outside the vocabulary: the first bad row is named, whatever
# the threads.
prumux-cat -f tsv tok1.pmxs | awk -F '\t' '/^#tensor\tids/ { t = 1; print; next }
  /^#/ { t = 0 } t && ++n == 2 { $2 = 99 } { print }' OFS='\t' > bad.tsv
prumux-cat -e bad.tsv -o bad.pmxs || framework_failure_ "cannot write the bad stream"
for j in 1 3; do
  expect_fail 1 'row 1: token id 99 at position 1 is outside the vocabulary' \
    prumux-mux -m tiny.pmx -j $j bad.pmxs
done
exit 0
